//! The cluster on loopback: shards and edges in this process, talking QUIC with mutual TLS,
//! against the real Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) of this machine, and
//! its RabbitMQ (127.0.0.1:5672) for the timelapse workers (each test in its own schema and key
//! prefix, removed afterwards). A missing service fails the test with its name;
//! `scripts/services` installs and starts them.

use std::net::SocketAddr;
use std::time::Duration;

use place::cluster::{start_edge, start_shard, ClusterSettings, ShardNode, ShardOptions};
use place::config::{defaults, CanvasSection, EdgeSection, ShardSection};
use place_cluster::{Ring, RingStore, ShardInfo};
use place_protocol::{ClientMessage, ErrorCode, RequestId, ServerMessage, TileRequest};
use place_testkit::{guest, Client};
use place_tiles::{PixelChange, TileId};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const REDIS: &str = defaults::REDIS_URL;
const AMQP: &str = place_timelapse::queue::DEFAULT_AMQP_URL;
/// The id of the shard a resharding test adds to a running cluster: of the first few names, one
/// that takes a fair share (a quarter) of the test canvas's 16 tiles from the three shards.
fn spare_shard_id() -> String {
    let geometry = place_tiles::CanvasGeometry::new(256, 256).expect("size");
    let shard = |id: String| ShardInfo {
        id,
        addr: "127.0.0.1:1".into(),
    };
    let three = Ring::new(1, (1..=3).map(|i| shard(format!("shard-{i}"))).collect()).expect("ring");
    (4..100)
        .map(|i| format!("shard-{i}"))
        .find(|id| {
            let four = three.with_shard(shard(id.clone())).expect("add");
            four.spread(geometry)[id] >= 4
        })
        .expect("some name takes four tiles")
}
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn free_udp_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    socket.local_addr().expect("addr")
}

struct TestCluster {
    name: String,
    redis_url: String,
    database_url: String,
    certs: tempfile::TempDir,
    /// The edges' settings (their ids set as each starts).
    edge: place_edge::EdgeConfig,
    /// The shards' settings.
    shard: place_shard::ShardConfig,
    ring: Ring,
    edges: Vec<(String, oneshot::Sender<()>)>,
    edge_handles: Vec<std::sync::Arc<place_edge::Edge>>,
    shards: Vec<Option<ShardNode>>,
    failover_after: Option<Duration>,
}

/// Where a test cluster's services are, and how its shards fail over.
struct ClusterOptions {
    failover_after: Option<Duration>,
    redis_url: String,
    database_url: String,
    /// The edges' spike alarm.
    spike: place_edge::alarm::SpikeConfig,
}

impl TestCluster {
    fn settings(&self, node: &str) -> ClusterSettings {
        ClusterSettings {
            redis_url: self.redis_url.clone(),
            database_url: self.database_url.clone(),
            name: self.name.clone(),
            certs: self.certs.path().to_path_buf(),
            node_id: node.into(),
        }
    }

    async fn start(shards: usize, edges: usize, cooldown_secs: u64) -> TestCluster {
        TestCluster::start_with(shards, edges, cooldown_secs, None).await
    }

    /// Starts a cluster whose shards take a shard silent for `failover_after` out of the ring.
    async fn start_with(
        shards: usize,
        edges: usize,
        cooldown_secs: u64,
        failover_after: Option<Duration>,
    ) -> TestCluster {
        let redis_url = std::env::var("PLACE_TEST_REDIS_URL").unwrap_or(REDIS.into());
        let database_url = std::env::var("PLACE_TEST_DATABASE_URL").unwrap_or(POSTGRES.into());
        let options = ClusterOptions {
            failover_after,
            redis_url,
            database_url,
            spike: place_edge::alarm::SpikeConfig::default(),
        };
        TestCluster::start_on(shards, edges, cooldown_secs, options).await
    }

    /// Starts a cluster whose nodes reach Redis and PostgreSQL at the given URLs.
    async fn start_on(
        shards: usize,
        edges: usize,
        cooldown_secs: u64,
        options: ClusterOptions,
    ) -> TestCluster {
        let ClusterOptions {
            failover_after,
            redis_url,
            database_url,
            spike,
        } = options;
        let name = format!("t{}_{}", std::process::id(), rand_suffix());
        let certs = tempfile::tempdir().expect("tempdir");
        let shard_ids: Vec<String> = (1..=shards).map(|i| format!("shard-{i}")).collect();
        let edge_ids: Vec<String> = (1..=edges).map(|i| format!("edge-{i}")).collect();
        // A spare shard identity, for the shard a resharding test adds.
        let all: Vec<String> = shard_ids
            .iter()
            .chain(&edge_ids)
            .cloned()
            .chain([spare_shard_id()])
            .collect();
        place_cluster::tls::write_certs(certs.path(), &all).expect("certs");
        let infos = shard_ids
            .iter()
            .map(|id| ShardInfo {
                id: id.clone(),
                addr: free_udp_port().to_string(),
            })
            .collect();
        let ring = Ring::new(1, infos).expect("ring");
        let canvas = CanvasSection {
            width: 256,
            height: 256,
            ..CanvasSection::default()
        }
        .validate()
        .expect("valid");
        let (_, edge) = EdgeSection {
            cooldown_secs,
            guest_rate_per_minute: 0,
            guest_pow_bits: 8,
            // Every player of these tests is 127.0.0.1: no per-network placement budget.
            placements_per_address_per_minute: 0,
            ..EdgeSection::default()
        }
        .validate(&canvas, false)
        .expect("valid");
        let edge = place_edge::EdgeConfig { spike, ..edge };
        let shard = ShardSection {
            batch_window_ms: 5,
            ..ShardSection::default()
        }
        .validate(&canvas)
        .expect("valid");
        let mut cluster = TestCluster {
            name,
            redis_url,
            database_url,
            certs,
            edge,
            shard,
            ring,
            edges: Vec::new(),
            edge_handles: Vec::new(),
            shards: Vec::new(),
            failover_after,
        };
        let redis = cluster
            .settings("x")
            .redis()
            .await
            .expect("Redis must be running on 127.0.0.1:6379");
        RingStore::new(redis, &cluster.settings("x").key_prefix())
            .init(&cluster.ring, true)
            .await
            .expect("store the ring");
        for i in 0..shard_ids.len() {
            let node = cluster.start_shard(i).await;
            cluster.shards.push(Some(node));
        }
        for id in &edge_ids {
            let edge = start_edge(&cluster.edge, &cluster.settings(id), AMQP)
                .await
                .expect("edge");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let (stop, stopped) = oneshot::channel::<()>();
            cluster.edge_handles.push(std::sync::Arc::clone(&edge));
            tokio::spawn(place_edge::serve(listener, edge, async {
                let _ = stopped.await;
            }));
            cluster.edges.push((base, stop));
        }
        cluster
    }

    async fn start_shard(&self, i: usize) -> ShardNode {
        let info = &self.ring.shards()[i];
        self.start_shard_as(&info.id, info.addr.parse().expect("socket address"))
            .await
    }

    /// Starts shard `id` on `addr`.
    async fn start_shard_as(&self, id: &str, addr: SocketAddr) -> ShardNode {
        let options = ShardOptions {
            listen_quic: addr,
            failover_after: self.failover_after,
        };
        start_shard(&self.shard, &self.settings(id), options)
            .await
            .expect("PostgreSQL and Redis must be running for the shard")
    }

    async fn ring_store(&self) -> RingStore {
        let redis = self.settings("x").redis().await.expect("redis");
        RingStore::new(redis, &self.settings("x").key_prefix())
    }

    async fn client(&self, edge: usize, cookie: &str) -> Client {
        let ws = self.edges[edge].0.replace("http://", "ws://") + "/ws";
        let mut c = Client::connect(&ws, Some(cookie), false).await;
        assert!(matches!(c.recv().await, ServerMessage::Welcome(_)));
        c
    }

    /// Asserts that the canvas served at `base` equals a replay of the event log, every pixel.
    async fn assert_canvas_equals_log(&self, base: &str) {
        let source = place::verify::LogSource::Postgres {
            url: self.settings("x").database_url,
            cluster: self.name.clone(),
        };
        let report = place::verify::verify(base, &source).await.expect("verify");
        assert_eq!(
            (report.differing, report.pixels),
            (0, 256 * 256),
            "the canvas equals a replay of the log"
        );
    }

    /// Stops everything and removes the test's schema and keys.
    async fn remove(mut self) {
        for (_, stop) in self.edges.drain(..) {
            let _ = stop.send(());
        }
        for node in self.shards.drain(..).flatten() {
            node.run_until(async {}).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pool = sqlx::PgPool::connect(&self.settings("x").database_url)
            .await
            .expect("postgres");
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .execute(&pool)
            .await
            .expect("drop schema");
        let mut redis = self.settings("x").redis().await.expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.settings("x").key_prefix()))
            .query_async(&mut redis)
            .await
            .expect("keys");
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut redis)
                .await
                .expect("del");
        }
    }
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pixel_placed_through_one_edge_reaches_subscribers_on_the_other() {
    let cluster = TestCluster::start(3, 2, 0).await;
    let painter_cookie = guest(&cluster.edges[0].0).await;
    let watcher_cookie = guest(&cluster.edges[1].0).await;
    let mut painter = cluster.client(0, &painter_cookie).await;
    let mut watcher = cluster.client(1, &watcher_cookie).await;
    let mut elsewhere = cluster.client(1, &guest(&cluster.edges[1].0).await).await;

    let tile = TileId::new(2, 1);
    watcher
        .send(&ClientMessage::Subscribe {
            tiles: vec![TileRequest { tile, seq: None }],
        })
        .await;
    let seq = watcher
        .recv_until(|m| match m {
            ServerMessage::Tile { seq, .. } => Some(*seq),
            _ => None,
        })
        .await;
    elsewhere
        .send(&ClientMessage::Subscribe {
            tiles: vec![TileRequest {
                tile: TileId::new(0, 0),
                seq: None,
            }],
        })
        .await;
    assert!(matches!(elsewhere.recv().await, ServerMessage::Tile { .. }));

    painter
        .send(&ClientMessage::Place {
            x: 2 * 64 + 7,
            y: 64 + 9,
            color: 11,
            request_id: Some(RequestId::Number(1)),
        })
        .await;
    assert!(
        matches!(painter.recv().await, ServerMessage::Success { .. }),
        "placed through edge 1"
    );
    assert_eq!(
        watcher.recv().await,
        ServerMessage::Pixels {
            tile,
            first_seq: seq + 1,
            changes: vec![PixelChange {
                lx: 7,
                ly: 9,
                color: 11
            }]
        },
        "seen on edge 2"
    );
    elsewhere.expect_silence(Duration::from_millis(300)).await;

    // Sessions are shared: the painter's cookie works on the other edge too.
    let mut again = cluster.client(1, &painter_cookie).await;
    again.send(&ClientMessage::Ping).await;
    assert_eq!(again.recv().await, ServerMessage::Pong);

    // Every tile of every shard takes placements.
    for ty in 0..4 {
        for tx in 0..4 {
            painter
                .send(&ClientMessage::Place {
                    x: tx * 64,
                    y: ty * 64,
                    color: 3,
                    request_id: None,
                })
                .await;
            assert!(
                matches!(painter.recv().await, ServerMessage::Success { .. }),
                "tile {tx}:{ty}"
            );
        }
    }
    let canvas = reqwest::get(format!("{}/api/v1/canvas", cluster.edges[1].0))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(canvas.len(), 256 * 256);
    assert_eq!(canvas[(64 + 9) * 256 + 2 * 64 + 7], 11);
    assert_eq!(canvas[3 * 64 * 256 + 3 * 64], 3);
    cluster.assert_canvas_equals_log(&cluster.edges[0].0).await;
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cooldown_holds_across_edges() {
    let cluster = TestCluster::start(1, 2, 30).await;
    let cookie = guest(&cluster.edges[0].0).await;
    let mut on_one = cluster.client(0, &cookie).await;
    let mut on_two = cluster.client(1, &cookie).await;
    on_one
        .send(&ClientMessage::Place {
            x: 1,
            y: 1,
            color: 1,
            request_id: None,
        })
        .await;
    on_two
        .send(&ClientMessage::Place {
            x: 2,
            y: 2,
            color: 1,
            request_id: None,
        })
        .await;
    let answers = [on_one.recv().await, on_two.recv().await];
    let successes = answers
        .iter()
        .filter(|m| matches!(m, ServerMessage::Success { .. }))
        .count();
    let limited = answers
        .iter()
        .filter(|m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::RateLimited))
        .count();
    assert_eq!((successes, limited), (1, 1), "{answers:?}");
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_fails_its_tiles_fast_and_resyncs_watchers_when_it_returns() {
    let mut cluster = TestCluster::start(2, 1, 0).await;
    let cookie = guest(&cluster.edges[0].0).await;
    let mut painter = cluster.client(0, &cookie).await;
    let mut watcher = cluster.client(0, &guest(&cluster.edges[0].0).await).await;
    let geometry = place_tiles::CanvasGeometry::new(256, 256).expect("valid");
    let victim_id = cluster.ring.shards()[0].id.clone();
    let dead_tile = cluster
        .ring
        .tiles_of(&victim_id, geometry)
        .next()
        .expect("a tile of shard 1");
    let live_tile = cluster
        .ring
        .tiles_of(&cluster.ring.shards()[1].id, geometry)
        .next()
        .expect("a tile of shard 2");
    let place_on = |tile: TileId, dx: u32, color: i64| {
        let (x, y) = tile.origin();
        ClientMessage::Place {
            x: (x + dx).into(),
            y: y.into(),
            color,
            request_id: None,
        }
    };

    watcher
        .send(&ClientMessage::Subscribe {
            tiles: vec![TileRequest {
                tile: dead_tile,
                seq: None,
            }],
        })
        .await;
    assert!(matches!(
        watcher.recv().await,
        ServerMessage::Tile { seq: 0, .. }
    ));
    painter.send(&place_on(dead_tile, 0, 4)).await;
    assert!(matches!(
        painter.recv().await,
        ServerMessage::Success { .. }
    ));
    assert!(matches!(
        watcher.recv().await,
        ServerMessage::Pixels { first_seq: 1, .. }
    ));

    cluster.shards[0].take().expect("running").crash().await;
    let started = tokio::time::Instant::now();
    painter.send(&place_on(dead_tile, 1, 5)).await;
    match painter.recv().await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::Unavailable),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fails fast: {:?}",
        started.elapsed()
    );
    painter.send(&place_on(live_tile, 0, 6)).await;
    assert!(
        matches!(painter.recv().await, ServerMessage::Success { .. }),
        "the other shard's tiles keep working"
    );

    cluster.shards[0] = Some(cluster.start_shard(0).await);
    // The edge reconnects by itself; the watcher's tile stream resumes from its seq.
    let mut placed = false;
    for _ in 0..40 {
        painter.send(&place_on(dead_tile, 2, 7)).await;
        if matches!(painter.recv().await, ServerMessage::Success { .. }) {
            placed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(placed, "the restarted shard takes placements again");
    let resumed = watcher
        .recv_until(|m| match m {
            ServerMessage::Pixels {
                first_seq, changes, ..
            } => Some((*first_seq, changes.clone())),
            ServerMessage::Tile { seq, .. } => Some((*seq, vec![])),
            _ => None,
        })
        .await;
    assert_eq!(
        resumed,
        (
            2,
            vec![PixelChange {
                lx: 2,
                ly: 0,
                color: 7
            }]
        ),
        "no gap, no duplicate, no reload"
    );
    let canvas = reqwest::get(format!("{}/api/v1/canvas", cluster.edges[0].0))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    let (x, y) = dead_tile.origin();
    assert_eq!(
        canvas[(y * 256 + x) as usize],
        4,
        "the acknowledged pixel survived the crash"
    );
    assert_eq!(
        canvas[(y * 256 + x + 1) as usize],
        0,
        "the refused one was never placed"
    );
    cluster.remove().await;
}

/// `/health/ready` of an edge: its status code and body.
async fn readiness(base: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base}/health/ready"))
        .await
        .expect("GET /health/ready");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Polls `/health/ready` until `check` holds on its body, or fails after `within`.
async fn wait_for_readiness(
    base: &str,
    within: Duration,
    check: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, body) = readiness(base).await;
        if check(status, &body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never matched; last {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a placement and returns the answer to it.
async fn place_once(client: &mut Client, x: i64, y: i64, color: i64) -> ServerMessage {
    client
        .send(&ClientMessage::Place {
            x,
            y,
            color,
            request_id: None,
        })
        .await;
    client
        .recv_until(|m| match m {
            ServerMessage::Success { .. } | ServerMessage::Error(_) => Some(m.clone()),
            _ => None,
        })
        .await
}

/// Places until one is acknowledged (the service is back), or fails after `within`.
async fn place_when_recovered(client: &mut Client, x: i64, y: i64, color: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match place_once(client, x, y, color).await {
            ServerMessage::Success { .. } => return,
            ServerMessage::Error(e) => {
                assert_eq!(
                    e.code,
                    ErrorCode::Unavailable,
                    "only UNAVAILABLE while recovering"
                );
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "placements never recovered"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_postgres_outages_refuse_placements_and_heal_by_themselves() {
    let redis_proxy =
        crate::common::proxy::Proxy::start("127.0.0.1:6379".parse().expect("addr")).await;
    let pg_proxy =
        crate::common::proxy::Proxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let cluster = TestCluster::start_on(
        1,
        1,
        0,
        ClusterOptions {
            failover_after: None,
            redis_url: format!("redis://{}", redis_proxy.addr),
            database_url: format!("postgres://postgres@{}/test", pg_proxy.addr),
            spike: place_edge::alarm::SpikeConfig::default(),
        },
    )
    .await;
    let base = cluster.edges[0].0.clone();
    let mut player = cluster.client(0, &guest(&base).await).await;
    assert!(matches!(
        place_once(&mut player, 1, 1, 1).await,
        ServerMessage::Success { .. }
    ));
    let (status, body) = readiness(&base).await;
    assert_eq!(
        (status, &body["status"], &body["redis"], &body["postgres"]),
        (200, &"ok".into(), &"ok".into(), &"ok".into())
    );
    assert!(body["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    // Redis away: readiness names it, placements are refused with the retryable code.
    redis_proxy.cut();
    let body = wait_for_readiness(&base, Duration::from_secs(5), |s, b| {
        s == 503 && b["redis"] == "unavailable"
    })
    .await;
    assert_eq!(body["postgres"], "ok", "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    let started = tokio::time::Instant::now();
    match place_once(&mut player, 2, 1, 2).await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::Unavailable),
        other => panic!("expected UNAVAILABLE without Redis, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    redis_proxy.restore();
    wait_for_readiness(&base, Duration::from_secs(15), |s, _| s == 200).await;
    place_when_recovered(&mut player, 3, 1, 3, Duration::from_secs(15)).await;

    // PostgreSQL away: the same, and nothing refused is ever written.
    pg_proxy.cut();
    let body = wait_for_readiness(&base, Duration::from_secs(10), |s, b| {
        s == 503 && b["postgres"] == "unavailable"
    })
    .await;
    assert_eq!(body["redis"], "ok", "{body}");
    let started = tokio::time::Instant::now();
    match place_once(&mut player, 4, 1, 4).await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::Unavailable),
        other => panic!("expected UNAVAILABLE without PostgreSQL, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    pg_proxy.restore();
    wait_for_readiness(&base, Duration::from_secs(15), |s, _| s == 200).await;
    place_when_recovered(&mut player, 5, 1, 5, Duration::from_secs(15)).await;

    let canvas = reqwest::get(format!("{base}/api/v1/canvas"))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    let row: Vec<u8> = (1..=5).map(|x| canvas[256 + x]).collect();
    assert_eq!(
        row,
        [1, 0, 3, 0, 5],
        "acknowledged pixels kept, refused ones absent"
    );
    cluster.assert_canvas_equals_log(&base).await;
    cluster.remove().await;
}

/// The session id in a `Cookie` header value made by [`guest`].
fn session_of(cookie: &str) -> &str {
    cookie
        .split(';')
        .find_map(|part| part.trim().strip_prefix("place_session="))
        .expect("a session cookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_change_and_a_session_end_reach_every_edge_within_a_second() {
    let cluster = TestCluster::start(1, 2, 60).await;
    let cookie = guest(&cluster.edges[1].0).await;
    let mut player = cluster.client(1, &cookie).await;
    assert!(matches!(
        place_once(&mut player, 3, 3, 3).await,
        ServerMessage::Success { .. }
    ));
    assert!(
        matches!(place_once(&mut player, 4, 3, 3).await, ServerMessage::Error(e) if e.code == ErrorCode::RateLimited),
        "60 s cooldown"
    );

    // Set on edge 1; the player on edge 2 hears its new wait, measured from its placement.
    let started = tokio::time::Instant::now();
    cluster.edge_handles[0]
        .set_cooldown(Duration::from_secs(2))
        .await
        .expect("set the cooldown");
    let (cooldown, remaining) = player
        .recv_until(|m| match m {
            ServerMessage::Cooldown {
                cooldown,
                cooldown_remaining,
            } => Some((*cooldown, *cooldown_remaining)),
            _ => None,
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cooldown, 2);
    assert!(remaining <= 2000, "{remaining}");
    assert_eq!(cluster.edge_handles[1].cooldown_ms(), 2000);
    tokio::time::sleep(Duration::from_millis(remaining + 50)).await;
    assert!(
        matches!(
            place_once(&mut player, 4, 3, 3).await,
            ServerMessage::Success { .. }
        ),
        "the shorter cooldown holds on edge 2"
    );
    // A new edge process would read it from Redis: the stored value is there.
    let mut redis = cluster.settings("x").redis().await.expect("redis");
    let stored: Option<u64> = redis::cmd("HGET")
        .arg(format!("{}settings", cluster.settings("x").key_prefix()))
        .arg("cooldown_ms")
        .query_async(&mut redis)
        .await
        .expect("hget");
    assert_eq!(stored, Some(2000));

    // The session ends on edge 1: the socket on edge 2 closes with 4401 at once.
    let started = tokio::time::Instant::now();
    cluster.edge_handles[0]
        .end_session(session_of(&cookie))
        .await
        .expect("end the session");
    while player.try_recv(Duration::from_secs(2)).await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the socket stayed open"
        );
    }
    let code = player.closed.as_ref().map(|frame| u16::from(frame.code));
    assert_eq!(code, Some(4401), "{:?}", player.error);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_shared_by_every_edge_and_a_guest_keeps_its_cooldown() {
    use place_testkit::{auth_post, credentials, me};
    let cluster = TestCluster::start(1, 2, 60).await;
    let (one, two) = (cluster.edges[0].0.as_str(), cluster.edges[1].0.as_str());
    let guest_cookie = guest(one).await;
    let guest_id = me(one, &guest_cookie).await.body["userId"].clone();
    let mut c = cluster.client(0, &guest_cookie).await;
    c.send(&ClientMessage::Place {
        x: 1,
        y: 1,
        color: 2,
        request_id: None,
    })
    .await;
    assert!(matches!(c.recv().await, ServerMessage::Success { .. }));

    let registered = credentials(
        one,
        "register",
        "Grace",
        "grace's password",
        Some(&guest_cookie),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["userId"], guest_id);
    let cookie = registered.cookie().expect("session");
    assert_eq!(
        me(two, &guest_cookie).await.status,
        401,
        "the guest session is gone"
    );
    assert_eq!(me(two, &cookie).await.body["username"], "Grace");
    // Its cooldown, taken as a guest through edge 1, holds on edge 2.
    let mut c = cluster.client(1, &cookie).await;
    c.send(&ClientMessage::Place {
        x: 2,
        y: 2,
        color: 2,
        request_id: None,
    })
    .await;
    match c.recv().await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::RateLimited),
        other => panic!("expected RATE_LIMITED, got {other:?}"),
    }
    let taken = credentials(two, "register", "grace", "another password", None).await;
    assert_eq!(taken.status, 409);
    assert_eq!(taken.body["error"]["code"], "USERNAME_TAKEN");

    // Logging out through edge 1 ends the session on edge 2 at once, its WebSocket included.
    assert_eq!(
        auth_post(one, "logout", None, Some(&cookie), &[])
            .await
            .status,
        204
    );
    assert_eq!(me(two, &cookie).await.status, 401);
    assert!(c.try_recv(Duration::from_secs(2)).await.is_none());
    assert_eq!(c.closed.as_ref().map(|f| u16::from(f.code)), Some(4401));
    let back = credentials(two, "login", "GRACE", "grace's password", None).await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body["userId"], guest_id);
    assert_eq!(me(one, &back.cookie().expect("session")).await.status, 200);
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_limit_holds_across_edges() {
    use place_testkit::credentials;
    let cluster = TestCluster::start(1, 2, 0).await;
    let (one, two) = (cluster.edges[0].0.as_str(), cluster.edges[1].0.as_str());
    assert_eq!(
        credentials(one, "register", "heidi", "heidi's password", None)
            .await
            .status,
        201
    );
    let wrong = credentials(one, "login", "heidi", "not it at all", None).await;
    let unknown = credentials(two, "login", "nobody-here", "not it at all", None).await;
    assert_eq!(wrong.status, 401);
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
    for (i, edge) in [one, two, one].into_iter().enumerate() {
        let a = credentials(edge, "login", "heidi", "not it at all", None).await;
        assert_eq!(a.status, 401, "attempt {}", i + 3);
    }
    // The sixth attempt within the minute, on either edge, even with the right password.
    for edge in [two, one] {
        let a = credentials(edge, "login", "heidi", "heidi's password", None).await;
        assert_eq!(a.status, 429, "{}", a.body);
        let retry: u64 = a.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_user_makes_a_cluster_administrator() {
    let cluster = TestCluster::start(1, 1, 0).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_place"))
        .args(["admin", "create-user", "ivan", "--admin", "--cluster-name"])
        .arg(&cluster.name)
        .arg("--database-url")
        .arg(&cluster.database_url)
        .arg("--redis-url")
        .arg(&cluster.redis_url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn place admin");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"ivan's password\n").expect("password");
    }
    let out = child.wait_with_output().expect("place admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let login = place_testkit::credentials(
        &cluster.edges[0].0,
        "login",
        "ivan",
        "ivan's password",
        None,
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["isAdmin"], true);
    let cookie = login.cookie().expect("cookie");
    // `place admin demote` and `promote` take effect on the live session.
    for (action, admin) in [("demote", false), ("promote", true)] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_place"))
            .args(["admin", action, "IVAN", "--cluster"])
            .arg(&cluster.name)
            .arg("--database-url")
            .arg(&cluster.database_url)
            .arg("--redis-url")
            .arg(&cluster.redis_url)
            .output()
            .expect("place admin");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let me = place_testkit::me(&cluster.edges[0].0, &cookie).await;
        assert_eq!(me.body["isAdmin"], admin, "after {action}");
    }
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_place"))
        .args(["admin", "promote", "nobody", "--cluster"])
        .arg(&cluster.name)
        .arg("--database-url")
        .arg(&cluster.database_url)
        .output()
        .expect("place admin");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no registered user"));
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_promoted_or_demoted_by_name_has_or_loses_the_rights_at_once_on_every_edge() {
    let cluster = TestCluster::start(1, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let cookie =
        crate::common::moderation::promotion_and_demotion_count_at_once(&store, &bases).await;
    // Redis is where the edges look: without its set (a Redis restart) nobody is an
    // administrator, until an edge copies them from PostgreSQL again (at its start, and every
    // 30 s).
    let mut redis = cluster.settings("x").redis().await.expect("redis");
    redis::cmd("DEL")
        .arg(place_edge::accounts::admins_key(
            &cluster.settings("x").key_prefix(),
        ))
        .query_async::<()>(&mut redis)
        .await
        .expect("del");
    assert!(!crate::common::moderation::is_admin_at(&bases[0], &cookie).await);
    let _another_edge = start_edge(&cluster.edge, &cluster.settings("edge-1"), AMQP)
        .await
        .expect("a third edge");
    for base in &bases {
        assert!(
            crate::common::moderation::is_admin_at(base, &cookie).await,
            "{base}"
        );
    }
    cluster.remove().await;
}

#[tokio::test]
async fn moderation_across_edges_bans_settings_and_rollbacks() {
    use crate::common::moderation;
    let cluster = TestCluster::start(2, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let player = place_testkit::guest(&bases[1]).await;
    moderation::non_admins_are_refused(&bases[1], &player).await;
    let admin = moderation::admin_cookie(&store, &bases[0], "root").await;
    let log = place::verify::LogSource::Postgres {
        url: cluster.database_url.clone(),
        cluster: cluster.name.clone(),
    };
    moderation::rollbacks_restore_exact_colours(&bases, &admin, &log).await;
    cluster.remove().await;

    let cluster = TestCluster::start(2, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let admin = moderation::admin_cookie(&store, &bases[0], "root").await;
    moderation::bans_and_settings_reach_every_edge(&bases, &admin).await;
    cluster.remove().await;
}

#[tokio::test]
async fn protected_regions_reach_every_edge_within_a_second() {
    let cluster = TestCluster::start(2, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let admin = crate::common::moderation::admin_cookie(&store, &bases[0], "root").await;
    crate::common::regions::regions_hold_on_every_edge(&bases, &admin).await;
    cluster.remove().await;
}

#[tokio::test]
async fn a_spike_at_one_edge_is_alarmed_slowed_down_everywhere_and_listed_by_the_other() {
    let (webhook, received) = crate::common::spikes::webhook_receiver().await;
    let options = ClusterOptions {
        failover_after: None,
        redis_url: std::env::var("PLACE_TEST_REDIS_URL").unwrap_or(REDIS.into()),
        database_url: std::env::var("PLACE_TEST_DATABASE_URL").unwrap_or(POSTGRES.into()),
        spike: place_edge::alarm::SpikeConfig {
            cell: 64,
            min_rate: 5,
            factor: 3,
            webhook: Some(webhook),
            auto_slow: Some(place_edge::alarm::AutoSlow {
                duration: Duration::from_secs(120),
                cooldown: Duration::from_secs(60),
            }),
        },
    };
    let cluster = TestCluster::start_on(2, 2, 0, options).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let admin = crate::common::moderation::admin_cookie(&store, &bases[0], "root").await;
    // The other edge saw no placement, yet lists the alarm (PostgreSQL) and holds the region.
    let watcher = tokio::spawn({
        let (other, admin) = (bases[1].clone(), admin.clone());
        async move {
            // Counted from before the spike is driven (60 guests join first), on a machine that
            // runs the other cluster tests beside this one.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let (mut alarm_seen, mut region_seen) = (false, false);
            loop {
                let alarms =
                    place_testkit::call(&other, "GET", "/api/v1/admin/alarms", Some(&admin), None)
                        .await;
                let regions: serde_json::Value = reqwest::get(format!("{other}/api/v1/regions"))
                    .await
                    .expect("regions")
                    .json()
                    .await
                    .expect("json");
                alarm_seen |= alarms.body["alarms"].get(0).is_some();
                region_seen |= regions["regions"].get(0).is_some();
                if alarm_seen && region_seen {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the other edge never saw it"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    crate::common::spikes::a_spike_is_alarmed_and_slowed_down(&bases[0], &admin, 60, 60, received)
        .await;
    watcher.await.expect("the other edge");
    cluster.remove().await;
}

#[tokio::test]
async fn the_canvas_grows_across_edges_and_shards_under_load_and_stays_grown() {
    let mut cluster = TestCluster::start(3, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let admin = crate::common::moderation::admin_cookie(&store, &bases[0], "root").await;
    let log = place::verify::LogSource::Postgres {
        url: cluster.database_url.clone(),
        cluster: cluster.name.clone(),
    };
    crate::common::growth::canvas_grows_under_load(&bases, &admin, &log).await;
    // The ring carries the size; no tile changed owner.
    let ring = cluster.ring_store().await.require().await.expect("ring");
    let grown = ring.canvas().expect("the ring has the grown size");
    assert_eq!((grown.width(), grown.height()), (356, 320));
    let old = place_tiles::CanvasGeometry::new(256, 256).expect("valid");
    assert!(old.tiles().all(|t| ring.owner(t) == cluster.ring.owner(t)));
    // An edge started now (a second process of edge-2) serves the grown canvas, and a restarted
    // shard serves its new tiles.
    let late = start_edge(&cluster.edge, &cluster.settings("edge-2"), AMQP)
        .await
        .expect("edge");
    let info = late.canvas_info();
    assert_eq!((info.width, info.height), (356, 320));
    let owner = ring.owner(TileId::new(4, 4)).id.clone();
    let i = cluster
        .ring
        .shards()
        .iter()
        .position(|s| s.id == owner)
        .expect("an owner of the ring");
    cluster.shards[i].take().expect("running").crash().await;
    cluster.shards[i] = Some(cluster.start_shard(i).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tile = reqwest::get(format!("{}/api/v1/tiles/4/4", bases[1]))
            .await
            .expect("tile");
        if tile.status() == 200 {
            let pixels = tile.bytes().await.expect("tile body");
            // (306, 286) is (50, 30) in tile (4, 4).
            assert_eq!(pixels[30 * 64 + 50], 5);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tile (4,4) is served again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = place::verify::verify(&bases[1], &log)
        .await
        .expect("verify");
    assert_eq!(report.pixels, 356 * 320);
    assert_eq!(report.differing, 0, "{:?}", report.differences);
    cluster.remove().await;
}

#[tokio::test]
async fn history_is_read_from_postgresql_through_any_edge() {
    let cluster = TestCluster::start(2, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let admin = crate::common::moderation::admin_cookie(&store, &bases[0], "root").await;
    crate::common::history::history_pages_marks_and_heatmap(&bases, &admin).await;
    cluster.remove().await;
}

/// Where a viewer's copy of the tiles differs from the canvas: `(tile, lx, ly)`.
fn mirror_differences(
    mirror: &std::collections::HashMap<TileId, place_tiles::Tile>,
    canvas: &[u8],
) -> Vec<(TileId, u32, u32)> {
    let mut differences = Vec::new();
    for (tile, held) in mirror {
        let (x0, y0) = tile.origin();
        for ly in 0..64 {
            for lx in 0..64 {
                if held.get(lx as u8, ly as u8) != canvas[((y0 + ly) * 256 + x0 + lx) as usize] {
                    differences.push((*tile, lx, ly));
                }
            }
        }
    }
    differences
}

/// When a placement was sent, to which tile, how long its answer took, and whether it was
/// acknowledged.
struct PlacementTiming {
    tile: TileId,
    sent: tokio::time::Instant,
    took: Duration,
    acked: bool,
}

/// The p99 latency of the placements sent in `window`, and the longest any of them waited for
/// its answer (the longest a tile kept a player waiting), with that tile.
fn handoff_figures(
    timings: &[PlacementTiming],
    window: std::ops::Range<tokio::time::Instant>,
) -> (Duration, Duration, TileId) {
    let during: Vec<&PlacementTiming> = timings
        .iter()
        .filter(|t| window.contains(&t.sent))
        .collect();
    let mut took: Vec<Duration> = during.iter().map(|t| t.took).collect();
    took.sort_unstable();
    let p99 = took
        .get((took.len() * 99 / 100).min(took.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    let longest = during
        .iter()
        .max_by_key(|t| t.took)
        .map_or((Duration::ZERO, TileId::new(0, 0)), |t| (t.took, t.tile));
    (p99, longest.0, longest.1)
}

/// A change of the ring, as a test makes it.
type RingChange = dyn FnOnce(&Ring) -> Result<Ring, place_cluster::RingError>;

/// A player painting its own pixels (each pixel once) as fast as the frame limit allows,
/// recording what was acknowledged and every refusal.
/// Pixels are spread over every tile (4099 is prime to 65,536, so pixel `p` maps to a distinct
/// pixel for every `p` below 65,536).
fn paint(
    mut client: Client,
    player: u32,
    players: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<(u32, u32, u8)>>>,
    timings: std::sync::Arc<std::sync::Mutex<Vec<PlacementTiming>>>,
) -> tokio::task::JoinHandle<Vec<place_protocol::ErrorMessage>> {
    tokio::spawn(async move {
        let mut refused = Vec::new();
        let mut k = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let q = (player + players * k) * 4099 % 65_536;
            let (x, y, color) = (q % 256, q / 256, 1 + (k % 15) as u8);
            let sent = tokio::time::Instant::now();
            client
                .send(&ClientMessage::Place {
                    x: x.into(),
                    y: y.into(),
                    color: color.into(),
                    request_id: Some(RequestId::Number(k)),
                })
                .await;
            let answer = client.recv().await;
            timings.lock().expect("lock").push(PlacementTiming {
                tile: TileId::new((x / 64) as u16, (y / 64) as u16),
                sent,
                took: sent.elapsed(),
                acked: matches!(answer, ServerMessage::Success { .. }),
            });
            match answer {
                ServerMessage::Success { .. } => acked.lock().expect("lock").push((x, y, color)),
                ServerMessage::Error(e) => refused.push(e),
                other => panic!("unexpected {other:?}"),
            }
            k += 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        refused
    })
}

/// A viewer of every tile checking that each tile's seqs only ever continue: a batch follows on
/// from what it holds, a snapshot is never older. Returns its copy of the canvas's tiles.
///
/// Once `expected` holds the final canvas, it returns as soon as its copy matches it (or after
/// 10 s more, for the caller to report the difference): a busy machine may deliver the last
/// batches late, and late is not lost.
fn watch_every_tile(
    mut client: Client,
    expected: tokio::sync::watch::Receiver<Option<Vec<u8>>>,
) -> tokio::task::JoinHandle<std::collections::HashMap<TileId, place_tiles::Tile>> {
    tokio::spawn(async move {
        let tiles: Vec<TileRequest> = (0..4)
            .flat_map(|ty| {
                (0..4).map(move |tx| TileRequest {
                    tile: TileId::new(tx, ty),
                    seq: None,
                })
            })
            .collect();
        client.send(&ClientMessage::Subscribe { tiles }).await;
        let mut mirror: std::collections::HashMap<TileId, place_tiles::Tile> = Default::default();
        let mut final_since: Option<tokio::time::Instant> = None;
        loop {
            if let Some(canvas) = expected.borrow().clone() {
                let since = *final_since.get_or_insert_with(tokio::time::Instant::now);
                if mirror_differences(&mirror, &canvas).is_empty()
                    || since.elapsed() > Duration::from_secs(10)
                {
                    return mirror;
                }
            }
            let Some(message) = client.try_recv(Duration::from_millis(100)).await else {
                continue;
            };
            match message {
                ServerMessage::Tile { tile, seq, pixels } => {
                    if let Some(held) = mirror.get(&tile) {
                        assert!(
                            seq >= held.seq(),
                            "tile {tile}: snapshot at {seq} older than {}",
                            held.seq()
                        );
                    }
                    mirror.insert(tile, place_tiles::Tile::from_pixels(seq, pixels));
                }
                ServerMessage::Pixels {
                    tile,
                    first_seq,
                    changes,
                } => {
                    let held = mirror.get_mut(&tile).expect("pixels follow a snapshot");
                    assert_eq!(
                        held.apply_batch(first_seq, &changes),
                        Ok(changes.len()),
                        "tile {tile}: a batch from {first_seq} does not follow on from {}",
                        held.seq()
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_join_leave_and_die_while_players_paint_and_nothing_is_lost() {
    let failover_after = Duration::from_secs(2);
    let mut cluster = TestCluster::start_with(3, 2, 0, Some(failover_after)).await;
    let store = cluster.ring_store().await;
    let geometry = cluster.shard.geometry;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let players = 8;
    let acked: std::sync::Arc<std::sync::Mutex<Vec<(u32, u32, u8)>>> = Default::default();
    let timings: std::sync::Arc<std::sync::Mutex<Vec<PlacementTiming>>> = Default::default();
    let mut painters = Vec::new();
    for i in 0..players {
        let edge = (i % 2) as usize;
        let cookie = guest(&cluster.edges[edge].0).await;
        let client = cluster.client(edge, &cookie).await;
        painters.push(paint(
            client,
            i,
            players,
            stop.clone(),
            acked.clone(),
            timings.clone(),
        ));
    }
    let canvas_of = |edge: usize| {
        let url = format!("{}/api/v1/canvas", cluster.edges[edge].0);
        async move {
            let canvas = reqwest::get(url)
                .await
                .expect("canvas")
                .bytes()
                .await
                .expect("body");
            assert_eq!(
                canvas.len(),
                256 * 256,
                "the canvas, not {:?}",
                String::from_utf8_lossy(&canvas)
            );
            canvas
        }
    };
    let (show_final_canvas, final_canvas) = tokio::sync::watch::channel(None);
    let watcher = {
        let cookie = guest(&cluster.edges[1].0).await;
        watch_every_tile(cluster.client(1, &cookie).await, final_canvas.clone())
    };
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Grow: a fourth shard joins while they paint.
    let acked_before = acked.lock().expect("lock").clone();
    let started = tokio::time::Instant::now();
    let spare = spare_shard_id();
    let spare_addr = free_udp_port();
    let spare_node = cluster.start_shard_as(&spare, spare_addr).await;
    cluster.shards.push(Some(spare_node));
    let spare_info = ShardInfo {
        id: spare.clone(),
        addr: spare_addr.to_string(),
    };
    let mut stored = None;
    let mut paused = None;
    let grown = place_cluster::reshard::change_ring(
        &store,
        geometry,
        "test",
        |ring| ring.with_shard(spare_info.clone()),
        Duration::from_secs(30),
        |p| match p {
            place_cluster::reshard::Progress::Stored { moves, .. } => stored = Some(moves.clone()),
            place_cluster::reshard::Progress::Complete { pauses } => paused = Some(pauses.clone()),
            place_cluster::reshard::Progress::Loading { .. } => {}
        },
    )
    .await
    .expect("the handoff completes");
    let grow_took = started.elapsed();
    let grow_window = started..tokio::time::Instant::now();
    // The new owner serves what was acknowledged before the change (it loaded the tiles).
    let canvas = canvas_of(0).await;
    for (x, y, color) in &acked_before {
        assert_eq!(
            canvas[(y * 256 + x) as usize],
            *color,
            "pixel ({x},{y}) after the move"
        );
    }
    let moves = stored.expect("progress told what moves");
    assert_eq!(grown.epoch(), 2);
    assert!(
        moves.keys().all(|(_, to)| to == spare.as_str()),
        "{moves:?}"
    );
    let moved: usize = moves.values().map(Vec::len).sum();
    assert_eq!(moved, grown.spread(geometry)[spare.as_str()]);
    assert!(moved > 0);
    // Every move's pause is measured by the shards, and none outlasts the handoff itself.
    let pauses = paused.expect("the handoff completed with its pauses");
    assert_eq!(pauses.len(), moves.len(), "{pauses:?}");
    assert!(pauses.iter().all(|p| p.pause <= grow_took), "{pauses:?}");
    println!("adding a shard: longest tile pause {:?}", pauses[0]);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Bad changes are refused with a reason, and change nothing.
    let change = |f: Box<RingChange>| {
        let store = store.clone();
        async move {
            place_cluster::reshard::change_ring(
                &store,
                geometry,
                "test",
                f,
                Duration::from_secs(30),
                |_| {},
            )
            .await
        }
    };
    let again = change(Box::new({
        let info = spare_info.clone();
        move |r| r.with_shard(info)
    }))
    .await;
    assert!(
        matches!(
            again,
            Err(place_cluster::reshard::ReshardError::Ring(
                place_cluster::RingError::DuplicateId(_)
            ))
        ),
        "{again:?}"
    );
    let lock = store
        .lock_changes("someone else", Duration::from_secs(5))
        .await
        .expect("redis")
        .expect("free");
    let busy = change(Box::new(|r| r.without_shard("shard-1"))).await;
    assert!(
        matches!(&busy, Err(place_cluster::reshard::ReshardError::Busy(holder)) if holder.contains("someone else")),
        "{busy:?}"
    );
    store.unlock_changes(&lock).await.expect("unlock");
    let nobody = place::ring_cli::run(
        &store,
        geometry,
        place::ring_cli::RingCommand::Add {
            shard: ShardInfo {
                id: "shard-nobody".into(),
                addr: free_udp_port().to_string(),
            },
            certs: cluster.certs.path().to_path_buf(),
            identity: Some("shard-1".into()),
        },
        Duration::from_secs(5),
    )
    .await;
    let refusal = format!("{:#}", nobody.expect_err("nobody answers there"));
    assert!(refusal.contains("does not answer"), "{refusal}");
    assert_eq!(store.require().await.expect("ring").epoch(), 2);

    // Shrink: an original shard is drained and leaves.
    let started = tokio::time::Instant::now();
    let shrunk = change(Box::new(|r| r.without_shard("shard-1")))
        .await
        .expect("the handoff completes");
    let shrink_window = started..tokio::time::Instant::now();
    assert_eq!(shrunk.epoch(), 3);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Die: another is killed; the survivors notice its silence and take its tiles over.
    let killed_at = tokio::time::Instant::now();
    cluster.shards[1]
        .take()
        .expect("shard-2 runs")
        .crash()
        .await;
    let deadline = killed_at + failover_after + Duration::from_secs(20);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failover of shard-2"
        );
        // A busy machine may make Redis answer late: ask again.
        let (Ok(ring), Ok(reports)) = (store.require().await, store.reports().await) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let settled = ring.shard("shard-2").is_none()
            && ring.shards().iter().all(|s| {
                reports
                    .get(&s.id)
                    .is_some_and(|r| r.epoch == ring.epoch() && r.acquiring == 0)
            });
        if settled {
            assert_eq!(ring.epoch(), 4);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failover_window = killed_at..tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = Vec::new();
    for p in painters {
        refused.extend(p.await.expect("painter"));
    }
    let acked = acked.lock().expect("lock").clone();
    println!(
        "{} placements acknowledged, {} refused; adding a shard moved {moved} tiles, handoff \
         took {grow_took:?}",
        acked.len(),
        refused.len()
    );
    let timings = std::mem::take(&mut *timings.lock().expect("lock"));
    for (what, window) in [("add", grow_window), ("remove", shrink_window)] {
        let (p99, pause, tile) = handoff_figures(&timings, window);
        println!("{what}: p99 placement latency {p99:?}; longest wait {pause:?} (tile {tile})");
    }
    let (p99, pause, tile) = handoff_figures(&timings, failover_window);
    println!(
        "kill -9, failover after {failover_after:?} of silence: p99 {p99:?}; longest wait \
         {pause:?} (tile {tile})"
    );

    // Players never noticed a planned change; a dead shard's tiles are refused as UNAVAILABLE
    // (retryable) until the failover, and nothing is refused as anything else.
    assert!(
        refused.iter().all(|e| e.code == ErrorCode::Unavailable),
        "{} acknowledged, refused: {refused:?}",
        acked.len()
    );
    assert!(acked.len() > 100, "only {} placements", acked.len());

    // Nothing acknowledged was lost, nothing was applied twice, and the viewer holds the canvas.
    let canvas = canvas_of(1).await;
    show_final_canvas.send_replace(Some(canvas.to_vec()));
    let mirror = watcher.await.expect("the viewer saw every seq in order");
    assert_eq!(mirror.len(), 16, "the viewer holds every tile");
    for (x, y, color) in &acked {
        assert_eq!(
            canvas[(y * 256 + x) as usize],
            *color,
            "pixel ({x},{y}) lost"
        );
    }
    let pool = sqlx::PgPool::connect(&cluster.settings("x").database_url)
        .await
        .expect("pg");
    let twice: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT 1 FROM {}.pixel_events GROUP BY x, y HAVING count(*) > 1) d",
        cluster.name
    ))
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(twice, 0, "no placement was applied twice");
    let differences = mirror_differences(&mirror, &canvas);
    assert!(
        differences.is_empty(),
        "the viewer's tiles differ from the canvas at {} pixels, e.g. {:?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
    cluster.assert_canvas_equals_log(&cluster.edges[1].0).await;
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_show_and_change_the_ring_through_any_edge() {
    use crate::common::moderation::admin_cookie;
    use place_testkit::call;
    let cluster = TestCluster::start(3, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let store = place::admin::UserStore::Cluster {
        database_url: cluster.database_url.clone(),
        name: cluster.name.clone(),
        redis_url: cluster.redis_url.clone(),
    };
    let admin = admin_cookie(&store, &bases[0], "root").await;

    let shown = call(&bases[1], "GET", "/api/v1/admin/ring", Some(&admin), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["epoch"], 1);
    let shards = shown.body["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);
    let tiles: u64 = shards
        .iter()
        .map(|s| s["tiles"].as_u64().expect("tiles"))
        .sum();
    assert_eq!(tiles, 16);
    // Reports arrive within a few hundred milliseconds of the shards' start.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let shown = call(&bases[1], "GET", "/api/v1/admin/ring", Some(&admin), None).await;
    assert!(
        shown.body["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .all(|s| s["reporting"] == true && s["epoch"] == 1),
        "{}",
        shown.body
    );

    // Refused with a reason, nothing changed.
    let nobody = serde_json::json!({"id": "shard-9", "addr": free_udp_port().to_string()});
    let refused = call(
        &bases[0],
        "POST",
        "/api/v1/admin/ring/shards",
        Some(&admin),
        Some(nobody),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("does not answer"));
    let unknown = call(
        &bases[0],
        "DELETE",
        "/api/v1/admin/ring/shards/shard-9",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);

    // Draining a shard through edge 2: answered once the handoff is complete, and audited.
    let removed = call(
        &bases[1],
        "DELETE",
        "/api/v1/admin/ring/shards/shard-3",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(removed.body["epoch"], 2);
    let moved: u64 = removed.body["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| {
            assert_eq!(m["from"], "shard-3");
            assert!(m["pauseMs"].is_u64(), "each move's pause is measured: {m}");
            m["tiles"].as_u64().expect("tiles")
        })
        .sum();
    assert_eq!(
        moved,
        shards
            .iter()
            .find(|s| s["id"] == "shard-3")
            .expect("shard-3")["tiles"]
            .as_u64()
            .expect("tiles")
    );
    let shown = call(&bases[0], "GET", "/api/v1/admin/ring", Some(&admin), None).await;
    assert_eq!(shown.body["shards"].as_array().expect("shards").len(), 2);
    let audit = call(
        &bases[0],
        "GET",
        "/api/v1/admin/audit-log",
        Some(&admin),
        None,
    )
    .await;
    assert!(
        audit.body.to_string().contains("ring-remove"),
        "{}",
        audit.body
    );
    cluster.assert_canvas_equals_log(&bases[0]).await;
    cluster.remove().await;
}

/// A `place worker` of `cluster` in this process, until the token is cancelled.
fn start_worker(
    cluster: &TestCluster,
    id: &str,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let settings = place::worker::WorkerSettings {
        database_url: cluster.database_url.clone(),
        cluster: cluster.name.clone(),
        amqp_url: AMQP.into(),
        id: id.into(),
        throttle: Duration::ZERO,
        geometry: cluster.edge.geometry,
        palette: cluster.edge.palette.clone(),
        snapshot_interval: Duration::from_secs(1),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        place::worker::run(&settings, token)
            .await
            .expect("RabbitMQ must be running on 127.0.0.1:5672 for the worker");
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelapse_jobs_go_to_workers_and_a_killed_workers_job_completes_on_another() {
    let cluster = TestCluster::start(2, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    let source = place_store::Store::connect_postgres(&cluster.database_url, &cluster.name)
        .await
        .expect("postgres");
    let geometry = cluster.edge.geometry;
    let (stop_a, worker_a) = start_worker(&cluster, "worker-a");
    crate::common::timelapse::frames_equal_replays(
        &bases,
        &source,
        geometry,
        Duration::from_secs(1),
    )
    .await;
    stop_a.cancel();
    worker_a.await.expect("worker a stops");

    // A slow job, its worker killed with SIGKILL mid-job: the broker hands it to another.
    let mut slow = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_place"))
            .args(["worker", "--id", "worker-slow", "--throttle-ms", "150"])
            .args([
                "--cluster",
                &cluster.name,
                "--database-url",
                &cluster.database_url,
            ])
            .args(["--amqp-url", AMQP, "--width", "256", "--height", "256"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start place worker"),
    );
    let player = place_testkit::Player::account(&bases[0], "renderer").await;
    let now = place_edge::now_ms();
    let spec = serde_json::json!({"from": now - 60_000, "to": now, "frames": 40, "delayMs": 50,
                                  "x": 0, "y": 0, "width": 128, "height": 128});
    let accepted = place_testkit::call(
        &bases[1],
        "POST",
        "/api/v1/timelapse/render",
        Some(&player.cookie),
        Some(spec),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = accepted.body["jobId"].as_str().expect("jobId").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = place_testkit::call(
            &bases[0],
            "GET",
            &format!("/api/v1/timelapse/jobs/{id}"),
            None,
            None,
        )
        .await;
        let done = job.body["framesDone"].as_u64().unwrap_or(0);
        if job.body["status"] == "running" && done >= 3 {
            assert!(done < 40, "the slow worker is mid-job: {}", job.body);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ran: {}",
            job.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    slow.0.kill().expect("kill -9 the worker");
    slow.0.wait().expect("reaped");
    let (stop_b, worker_b) = start_worker(&cluster, "worker-b");
    let done = place_testkit::wait_for_job(&bases[1], &id, Duration::from_secs(60)).await;
    assert_eq!(
        (done["attempts"].as_u64(), done["framesDone"].as_u64()),
        (Some(2), Some(40))
    );
    let gif = reqwest::get(format!("{}/api/v1/timelapse/jobs/{id}/download", bases[0]))
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(crate::common::timelapse::gif_frames(&gif).len(), 40);
    stop_b.cancel();
    worker_b.await.expect("worker b stops");
    place_timelapse::queue::JobQueue::new(AMQP, &cluster.name)
        .delete()
        .await
        .expect("delete the queue");
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_broadcast_latency_across_edges_and_every_shards_figures() {
    let cluster = TestCluster::start(3, 2, 30).await;
    let (painter_base, watcher_base) = (cluster.edges[0].0.clone(), cluster.edges[1].0.clone());
    let mut painter = cluster.client(0, &guest(&painter_base).await).await;
    let mut watcher = cluster.client(1, &guest(&watcher_base).await).await;
    crate::common::observability::metrics_after_placements(
        &painter_base,
        &mut painter,
        &watcher_base,
        &mut watcher,
        &["shard-1", "shard-2", "shard-3"],
    )
    .await;
    // The ring's 16 tiles, each owned by one shard.
    let text = crate::common::observability::scrape(&watcher_base).await;
    let owned: f64 = (1..=3)
        .filter_map(|i| {
            crate::common::observability::metric(
                &text,
                &format!("rplace_shard_tiles_owned{{shard=\"shard-{i}\"}}"),
            )
        })
        .sum();
    assert_eq!(owned, 16.0, "{text}");
    cluster.remove().await;
}

/// A writer into a shared buffer, for the log lines of this test process.
#[derive(Clone)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON log lines of the edges' connections and the shards' QUIC servers in this process,
/// from the first call on (a process has one subscriber: the first test to ask installs it).
fn placement_logs() -> &'static LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer(Default::default());
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("place_edge::connection=debug,place_cluster::shard_server=debug")
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placements_correlation_id_names_its_log_lines_on_the_edge_and_the_shard() {
    let logs = placement_logs();
    let cluster = TestCluster::start(3, 1, 0).await;
    let mut player = cluster.client(0, &guest(&cluster.edges[0].0).await).await;
    let (x, y) = (77, 203);
    assert!(matches!(
        place_once(&mut player, x, y, 9).await,
        ServerMessage::Success { .. }
    ));
    let lines = || -> Vec<serde_json::Value> {
        let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect()
    };
    let of_this_pixel = |l: &serde_json::Value| l["span"]["x"] == x && l["span"]["y"] == y;
    let edge_line = lines()
        .into_iter()
        .find(|l| {
            l["target"] == "place_edge::connection"
                && l["fields"]["message"] == "placed"
                && of_this_pixel(l)
        })
        .expect("the edge logs the placement in its span");
    let id = edge_line["span"]["placement_id"]
        .as_str()
        .expect("a placement id")
        .to_owned();
    assert_eq!(id.len(), 16, "{edge_line}");
    assert_eq!(edge_line["span"]["name"], "placement");
    let shard_line = lines()
        .into_iter()
        .find(|l| l["target"] == "place_cluster::shard_server" && of_this_pixel(l))
        .expect("the shard logs the placement");
    assert_eq!(shard_line["fields"]["message"], "placement applied");
    assert_eq!(
        shard_line["span"]["placement_id"], id,
        "the shard's line names the edge's id: {shard_line}"
    );
    cluster.remove().await;
}

/// How much later than the promised 5 s a killed shard's tiles may come back in this test: the
/// machine running it is shared by builds and other tests, and a shard's report, the
/// survivors' checks and the tiles' loading all wait for a CPU. The 5 s itself is measured
/// without it in `bench/reshard` (its kill step).
const LOADED_MACHINE_SLACK: Duration = Duration::from_secs(2);

/// The viewer's frames of the tiles it watches: when each `pixels` frame arrived, by tile.
type DeltaArrivals = std::collections::HashMap<TileId, Vec<tokio::time::Instant>>;

/// Watches every tile of the 256x256 canvas until `stop`, noting when each delta arrives.
fn note_deltas(
    mut client: Client,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<DeltaArrivals> {
    tokio::spawn(async move {
        let tiles = (0..4)
            .flat_map(|ty| (0..4).map(move |tx| TileId::new(tx, ty)))
            .map(|tile| TileRequest { tile, seq: None })
            .collect();
        client.send(&ClientMessage::Subscribe { tiles }).await;
        let mut arrivals = DeltaArrivals::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(ServerMessage::Pixels { tile, .. }) =
                client.try_recv(Duration::from_millis(100)).await
            {
                arrivals
                    .entry(tile)
                    .or_default()
                    .push(tokio::time::Instant::now());
            }
        }
        arrivals
    })
}

/// A shard killed under placement load, with the default failover settings: every tile it owned
/// acknowledges placements and streams deltas to its viewers again within 5 s of the kill (by
/// this test's clock, plus [`LOADED_MACHINE_SLACK`]); a subscription made while the tile has no
/// owner is answered by the new owner; a player only ever sees `UNAVAILABLE`; nothing
/// acknowledged is lost or applied twice. Started again, the shard puts itself back into the
/// ring (it was taken out by a failover, not by an operator) and owns its old tiles again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shards_tiles_are_back_within_5_s_and_it_rejoins_when_started_again() {
    let failover_after = place_cluster::failover::DEFAULT_FAILOVER_AFTER;
    let mut cluster = TestCluster::start_with(3, 2, 0, Some(failover_after)).await;
    let store = cluster.ring_store().await;
    let geometry = cluster.shard.geometry;
    let doomed: Vec<TileId> = cluster.ring.tiles_of("shard-2", geometry).collect();
    assert!(!doomed.is_empty() && doomed.len() < 16, "{doomed:?}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let players = 8;
    let acked: std::sync::Arc<std::sync::Mutex<Vec<(u32, u32, u8)>>> = Default::default();
    let timings: std::sync::Arc<std::sync::Mutex<Vec<PlacementTiming>>> = Default::default();
    let mut painters = Vec::new();
    for i in 0..players {
        let edge = (i % 2) as usize;
        let cookie = guest(&cluster.edges[edge].0).await;
        let client = cluster.client(edge, &cookie).await;
        painters.push(paint(
            client,
            i,
            players,
            stop.clone(),
            acked.clone(),
            timings.clone(),
        ));
    }
    let viewer = {
        let cookie = guest(&cluster.edges[0].0).await;
        note_deltas(cluster.client(0, &cookie).await, stop.clone())
    };
    // Nobody on edge 2 watches a tile: its hub has no copy of the doomed ones to answer from.
    let mut late = {
        let cookie = guest(&cluster.edges[1].0).await;
        cluster.client(1, &cookie).await
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let killed_at = tokio::time::Instant::now();
    cluster.shards[1]
        .take()
        .expect("shard-2 runs")
        .crash()
        .await;
    late.send(&ClientMessage::Subscribe {
        tiles: doomed
            .iter()
            .map(|&tile| TileRequest { tile, seq: None })
            .collect(),
    })
    .await;
    let mut answered = std::collections::HashMap::new();
    while answered.len() < doomed.len() {
        let within = (killed_at + Duration::from_secs(20))
            .saturating_duration_since(tokio::time::Instant::now());
        match late.try_recv(within).await {
            Some(ServerMessage::Tile { tile, .. }) => {
                answered.entry(tile).or_insert_with(|| killed_at.elapsed());
            }
            Some(_) => {}
            None => panic!("subscriptions unanswered 20 s after the kill: {answered:?}"),
        }
    }
    // Let every tile take placements for a while from its new owner.
    let settled = killed_at + Duration::from_secs(8);
    tokio::time::sleep(settled.saturating_duration_since(tokio::time::Instant::now())).await;
    let ring = store.require().await.expect("ring");
    assert!(ring.shard("shard-2").is_none(), "shard-2 was failed over");
    assert_eq!(
        ring.failed_over()
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["shard-2"],
        "and remembered as failed over"
    );

    // Started again, it rejoins by itself and owns its tiles again.
    let restarted_at = tokio::time::Instant::now();
    let node = cluster.start_shard(1).await;
    cluster.shards[1] = Some(node);
    let rejoined = loop {
        assert!(
            restarted_at.elapsed() < Duration::from_secs(20),
            "shard-2 did not rejoin"
        );
        let (Ok(ring), Ok(reports)) = (store.require().await, store.reports().await) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let settled = ring.shard("shard-2").is_some()
            && ring.shards().iter().all(|s| {
                reports
                    .get(&s.id)
                    .is_some_and(|r| r.epoch == ring.epoch() && r.acquiring == 0)
            });
        if settled {
            break ring;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rejoin_took = restarted_at.elapsed();
    assert!(rejoined.failed_over().is_empty());
    assert_eq!(
        rejoined.tiles_of("shard-2", geometry).collect::<Vec<_>>(),
        doomed
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = Vec::new();
    for p in painters {
        refused.extend(p.await.expect("painter"));
    }
    let arrivals = viewer.await.expect("viewer");

    // The window of each doomed tile, from the kill: to its first acknowledged placement sent
    // after it, and to the first delta its viewer got at least 250 ms after it (what arrives
    // sooner may still be the dead shard's last batch on its way).
    let timings = std::mem::take(&mut *timings.lock().expect("lock"));
    let mut windows = Vec::new();
    for tile in &doomed {
        let acked_again = timings
            .iter()
            .filter(|t| t.tile == *tile && t.acked && t.sent >= killed_at)
            .map(|t| t.sent + t.took - killed_at)
            .min()
            .unwrap_or_else(|| panic!("tile {tile} never acknowledged a placement again"));
        let delta_again = arrivals
            .get(tile)
            .into_iter()
            .flatten()
            .map(|at| at.saturating_duration_since(killed_at))
            .filter(|since| *since >= Duration::from_millis(250))
            .min()
            .unwrap_or_else(|| panic!("tile {tile}'s viewer never got a delta again"));
        windows.push((*tile, acked_again, delta_again, answered[tile]));
    }
    let slowest = windows
        .iter()
        .map(|(_, a, d, s)| *a.max(d).max(s))
        .max()
        .unwrap_or_default();
    println!(
        "kill -9 of shard-2 ({} tiles), failover after {failover_after:?} of silence: slowest \
         tile back after {slowest:?}; rejoined {rejoin_took:?} after its restart",
        doomed.len()
    );
    for (tile, acked_again, delta_again, subscribed) in &windows {
        println!(
            "  tile {tile}: placement acknowledged after {acked_again:?}, delta after \
             {delta_again:?}, pending subscription answered after {subscribed:?}"
        );
    }
    assert!(
        slowest <= Duration::from_secs(5) + LOADED_MACHINE_SLACK,
        "{windows:?}"
    );
    // Only UNAVAILABLE, and those refused unsent (the shard unreachable) say when to retry.
    assert!(
        refused.iter().all(|e| e.code == ErrorCode::Unavailable),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|e| e.retry_after == Some(1000)),
        "{refused:?}"
    );

    let acked = acked.lock().expect("lock").clone();
    let canvas = reqwest::get(format!("{}/api/v1/canvas", cluster.edges[0].0))
        .await
        .expect("canvas")
        .bytes()
        .await
        .expect("body");
    for (x, y, color) in &acked {
        assert_eq!(
            canvas[(y * 256 + x) as usize],
            *color,
            "pixel ({x},{y}) lost"
        );
    }
    let pool = sqlx::PgPool::connect(&cluster.settings("x").database_url)
        .await
        .expect("pg");
    let twice: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT 1 FROM {}.pixel_events GROUP BY x, y HAVING count(*) > 1) d",
        cluster.name
    ))
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(twice, 0, "no placement was applied twice");
    cluster.assert_canvas_equals_log(&cluster.edges[0].0).await;
}

#[tokio::test]
async fn templates_are_kept_in_postgresql_and_followed_through_any_edge() {
    let cluster = TestCluster::start(2, 2, 0).await;
    let bases: Vec<String> = cluster.edges.iter().map(|(base, _)| base.clone()).collect();
    crate::common::templates::templates_made_read_and_followed(&bases).await;
    cluster.remove().await;
}

/// A child process that is killed when the test lets go of it, even by a failed assertion (a
/// leaked child would keep the test runner's output open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
