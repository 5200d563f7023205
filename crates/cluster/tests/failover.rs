//! A shard's supervisor ([`place_cluster::failover::supervise`]) against the real Redis of this
//! machine (127.0.0.1:6379, or `PLACE_TEST_REDIS_URL`; `scripts/services` starts it), with shards
//! on an embedded store each, talking real QUIC on loopback. **Needs Redis**: every test here
//! fails with its name when Redis is down. Each test uses a key prefix of its own and removes it.
//!
//! What a placement sees of a failover (no acknowledged pixel lost, the tiles back within 5 s) is
//! tested with PostgreSQL and edges in `crates/place/tests/place/cluster.rs`; here, the supervisor's own
//! decisions: who is taken out, who is spared, who comes back.

use std::net::SocketAddr;
use std::time::Duration;

use place_cluster::failover::{supervise, Supervisor, REJOIN_AFTER};
use place_cluster::tls::{write_certs, NodeIdentity};
use place_cluster::{Ring, RingStore, ShardInfo, ShardServer};
use place_shard::{CheckpointPolicy, Ownership, ShardConfig, ShardHandle, ShardTask};
use place_store::EmbeddedStore;
use place_tiles::CanvasGeometry;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a silent shard waits, past its report's expiry, before it is taken out.
const FAILOVER_AFTER: Duration = Duration::from_millis(500);

/// Shards of one test, their certificates, the ring's home in Redis.
struct Cluster {
    prefix: String,
    redis_url: String,
    certs: tempfile::TempDir,
    geometry: CanvasGeometry,
    addrs: Vec<SocketAddr>,
    shards: Vec<Option<Node>>,
}

/// A running shard: its store, its task, its QUIC server and its supervisor.
struct Node {
    _dir: tempfile::TempDir,
    shard: ShardHandle,
    endpoint: quinn::Endpoint,
    tasks: Vec<JoinHandle<()>>,
    supervisor: JoinHandle<()>,
}

fn id(i: usize) -> String {
    format!("shard-{}", i + 1)
}

impl Cluster {
    /// `n` shards in a ring stored under a fresh prefix, each supervised.
    async fn start(n: usize) -> Cluster {
        let redis_url = std::env::var("PLACE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("place:failover{:08x}:", rand::random::<u32>());
        let certs = tempfile::tempdir().expect("tempdir");
        write_certs(certs.path(), &(0..n).map(id).collect::<Vec<_>>()).expect("certs");
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|_| {
                std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .expect("a free UDP port")
            })
            .collect();
        let infos = (0..n)
            .map(|i| ShardInfo {
                id: id(i),
                addr: addrs[i].to_string(),
            })
            .collect();
        let mut cluster = Cluster {
            prefix,
            redis_url,
            certs,
            geometry: CanvasGeometry::new(256, 256).expect("size"),
            addrs,
            shards: Vec::new(),
        };
        cluster
            .ring_store()
            .await
            .init(&Ring::new(1, infos).expect("ring"), true)
            .await
            .expect("store the ring");
        for i in 0..n {
            let node = cluster.start_shard(i).await;
            cluster.shards.push(Some(node));
        }
        cluster
    }

    async fn ring_store(&self) -> RingStore {
        let client = redis::Client::open(self.redis_url.as_str()).expect("Redis URL");
        let redis = client
            .get_connection_manager()
            .await
            .expect("Redis must be running on 127.0.0.1:6379 (scripts/services starts it)");
        RingStore::new(redis, &self.prefix).following_announcements(client)
    }

    /// Starts shard `i` at its address, owning its tiles of the stored ring.
    async fn start_shard(&self, i: usize) -> Node {
        let store = self.ring_store().await;
        let ring = store.watch().await.expect("watch the ring");
        let current = ring.borrow().clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ShardConfig {
            geometry: self.geometry,
            color_count: 16,
            batch_window: Duration::from_millis(5),
            commit_linger: Duration::ZERO,
            checkpoint: CheckpointPolicy::default(),
        };
        let owned = Ownership {
            epoch: current.epoch(),
            tiles: current.tiles_of(&id(i), self.geometry).collect(),
        };
        let embedded = EmbeddedStore::open(dir.path()).await.expect("store");
        let (shard, task) =
            ShardTask::start(config, place_store::Store::from(embedded), Some(owned))
                .await
                .expect("shard");
        let identity = NodeIdentity::load(self.certs.path(), &id(i)).expect("identity");
        let endpoint = quinn::Endpoint::server(
            identity.server_config().expect("server config"),
            self.addrs[i],
        )
        .expect("bind QUIC");
        let server = ShardServer::new(id(i), shard.clone(), ring.clone(), self.geometry);
        let server = tokio::spawn(server.run(endpoint.clone()));
        let supervisor = tokio::spawn(supervise(Supervisor {
            id: id(i),
            shard: shard.clone(),
            store,
            ring,
            geometry: self.geometry,
            quic: identity.liveness_config().expect("liveness config"),
            failover_after: Some(FAILOVER_AFTER),
        }));
        Node {
            _dir: dir,
            shard,
            endpoint,
            tasks: vec![task, server],
            supervisor,
        }
    }

    /// Stops shard `i` as `kill -9` would, and waits until its UDP port is free again.
    async fn kill(&mut self, i: usize) {
        let node = self.shards[i].take().expect("running");
        node.endpoint.close(quinn::VarInt::from_u32(1), b"killed");
        node.supervisor.abort();
        for task in node.tasks {
            task.abort();
            let _ = task.await;
        }
        drop(node.endpoint);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::UdpSocket::bind(self.addrs[i]).is_err() {
            assert!(Instant::now() < deadline, "the killed shard's port is free");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits up to `within` for the stored ring to satisfy `done`; returns it.
    async fn ring_when(&self, within: Duration, done: impl Fn(&Ring) -> bool) -> Ring {
        let store = self.ring_store().await;
        let deadline = Instant::now() + within;
        loop {
            let ring = store.require().await.expect("the ring");
            if done(&ring) {
                return ring;
            }
            assert!(
                Instant::now() < deadline,
                "not within {within:?}; the ring is {ring:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the running shards own every tile between them, none still loading.
    async fn assert_tiles_served(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut owned = 0;
            let mut acquiring = 0;
            for node in self.shards.iter().flatten() {
                let status = node.shard.status().await.expect("running");
                owned += status.owned.unwrap_or(0);
                acquiring += status.acquiring;
            }
            if owned == self.geometry.tile_count() && acquiring == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the running shards own {owned} of {} tiles, {acquiring} still loading",
                self.geometry.tile_count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every shard and removes the test's keys.
    async fn remove(mut self) {
        for node in self.shards.drain(..).flatten() {
            node.supervisor.abort();
            node.endpoint.close(quinn::VarInt::from_u32(0), b"done");
            for task in node.tasks {
                task.abort();
            }
        }
        let client = redis::Client::open(self.redis_url.as_str()).expect("Redis URL");
        let mut redis = client.get_connection_manager().await.expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
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

/// A killed shard (no reports, no QUIC answer) is taken out of the ring by a survivor and
/// remembered as failed over; the survivors then own and serve all of its tiles. Started again
/// at its address, it puts itself back after [`REJOIN_AFTER`] and owns its tiles again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_killed_shard_is_failed_over_and_rejoins_when_started_again() {
    let mut cluster = Cluster::start(3).await;
    cluster.assert_tiles_served(Duration::from_secs(5)).await;
    let before = cluster.ring_when(Duration::ZERO, |_| true).await;
    let its_tiles = before.tiles_of("shard-3", cluster.geometry).count();
    assert!(its_tiles > 0, "shard-3 owns tiles");

    cluster.kill(2).await;
    // Report expiry (1 s), the silence (0.5 s), a check (0.25 s), the handshake (0.5 s), and
    // room for a loaded machine.
    let after = cluster
        .ring_when(Duration::from_secs(15), |r| r.shard("shard-3").is_none())
        .await;
    assert!(after.epoch() > before.epoch());
    assert_eq!(
        after
            .failed_over()
            .iter()
            .map(|f| (f.id.as_str(), f.addr.as_str()))
            .collect::<Vec<_>>(),
        vec![("shard-3", cluster.addrs[2].to_string().as_str())],
        "remembered as failed over, with its address"
    );
    assert_eq!(after.shards().len(), 2, "only the dead shard is taken out");
    cluster.assert_tiles_served(Duration::from_secs(10)).await;

    let restarted = Instant::now();
    let node = cluster.start_shard(2).await;
    cluster.shards[2] = Some(node);
    let back = cluster
        .ring_when(Duration::from_secs(20), |r| r.shard("shard-3").is_some())
        .await;
    assert!(
        restarted.elapsed() >= REJOIN_AFTER,
        "it reported for {REJOIN_AFTER:?} before rejoining, rejoined after {:?}",
        restarted.elapsed()
    );
    assert!(back.failed_over().is_empty(), "no longer failed over");
    assert_eq!(
        back.tiles_of("shard-3", cluster.geometry).count(),
        its_tiles
    );
    cluster.assert_tiles_served(Duration::from_secs(10)).await;
    let status = cluster.shards[2]
        .as_ref()
        .expect("running")
        .shard
        .status()
        .await
        .expect("running");
    assert_eq!(status.owned, Some(its_tiles), "it serves its old tiles");
    cluster.remove().await;
}

/// A shard whose reports stop while its process still answers QUIC (a slow Redis, a loaded
/// machine) is spared: no survivor takes it out, however long it stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_silent_shard_that_answers_quic_is_not_failed_over() {
    let mut cluster = Cluster::start(3).await;
    let before = cluster.ring_when(Duration::ZERO, |_| true).await;
    // Its supervisor stops (no more reports); its QUIC server keeps answering.
    let node = cluster.shards[2].as_mut().expect("running");
    node.supervisor.abort();
    // Well past detection: report expiry, the silence and several checks.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = cluster.ring_when(Duration::ZERO, |_| true).await;
    assert_eq!(now.epoch(), before.epoch(), "the ring did not change");
    assert!(now.shard("shard-3").is_some() && now.failed_over().is_empty());

    // The control: once its QUIC server is gone too, it is taken out.
    cluster.kill(2).await;
    cluster
        .ring_when(Duration::from_secs(15), |r| r.shard("shard-3").is_none())
        .await;
    cluster.remove().await;
}
