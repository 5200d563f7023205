//! Edges and shards over real QUIC with mutual TLS, on loopback.

use std::sync::Arc;
use std::time::Duration;

use place_cluster::tls::{write_certs, NodeIdentity, Role, TlsError};
use place_cluster::wire::TileFrame;
use place_cluster::{ClusterClient, Ring, ShardInfo, ShardServer};
use place_shard::{CheckpointPolicy, Ownership, PlaceError, PlaceRequest, ShardConfig, ShardTask};
use place_store::EmbeddedStore;
use place_tiles::{CanvasGeometry, TileId};
use tokio::sync::watch;

struct Cluster {
    _dirs: Vec<tempfile::TempDir>,
    /// Kept so the shards' ring receivers stay open (the ring never changes in these tests).
    _rings: Vec<watch::Sender<Arc<Ring>>>,
    certs: tempfile::TempDir,
    ring: Arc<Ring>,
    geometry: CanvasGeometry,
}

async fn start_cluster(shards: usize) -> Cluster {
    let geometry = CanvasGeometry::new(256, 256).expect("valid");
    let certs = tempfile::tempdir().expect("tempdir");
    let mut names: Vec<String> = (1..=shards).map(|i| format!("shard-{i}")).collect();
    names.push("edge-1".into());
    write_certs(certs.path(), &names).expect("certs");

    let mut endpoints = Vec::new();
    let mut infos = Vec::new();
    for name in names.iter().take(shards) {
        let identity = NodeIdentity::load(certs.path(), name).expect("identity");
        let endpoint = quinn::Endpoint::server(
            identity.server_config().expect("server config"),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .expect("bind");
        infos.push(ShardInfo {
            id: name.clone(),
            addr: endpoint.local_addr().expect("addr").to_string(),
        });
        endpoints.push(endpoint);
    }
    let ring = Arc::new(Ring::new(1, infos.clone()).expect("ring"));
    let mut dirs = Vec::new();
    let mut rings = Vec::new();
    for (endpoint, info) in endpoints.into_iter().zip(&infos) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("store");
        let config = ShardConfig {
            geometry,
            color_count: 16,
            batch_window: Duration::from_millis(5),
            commit_linger: Duration::ZERO,
            checkpoint: CheckpointPolicy::default(),
        };
        let owned = Ownership {
            epoch: ring.epoch(),
            tiles: ring.tiles_of(&info.id, geometry).collect(),
        };
        let (handle, _task) =
            ShardTask::start(config, place_store::Store::from(store), Some(owned))
                .await
                .expect("shard");
        let (tx, rx) = watch::channel(Arc::clone(&ring));
        rings.push(tx);
        tokio::spawn(ShardServer::new(info.id.clone(), handle, rx, geometry).run(endpoint));
        dirs.push(dir);
    }
    Cluster {
        _dirs: dirs,
        _rings: rings,
        certs,
        ring,
        geometry,
    }
}

/// An edge's client with a fixed ring; the sender is returned so the ring stays open.
fn client(cluster: &Cluster, ring: Arc<Ring>) -> (ClusterClient, watch::Sender<Arc<Ring>>) {
    let identity = NodeIdentity::load(cluster.certs.path(), "edge-1").expect("identity");
    let (tx, rx) = watch::channel(ring);
    (
        ClusterClient::new(&identity, rx, cluster.geometry).expect("client"),
        tx,
    )
}

fn request(x: u32, y: u32, color: u8) -> PlaceRequest {
    PlaceRequest {
        x,
        y,
        color,
        user_id: 7,
        placed_at: 1000,
        action_id: None,
        placement_id: 0,
    }
}

#[tokio::test]
async fn placements_reach_their_owner_and_stream_to_subscribers() {
    let cluster = start_cluster(2).await;
    let (edge, _ring) = client(&cluster, Arc::clone(&cluster.ring));
    let spread = cluster.ring.spread(cluster.geometry);
    assert!(
        spread.values().all(|n| *n > 0),
        "both shards own tiles: {spread:?}"
    );

    // One tile of each shard.
    for shard in cluster.ring.shards() {
        let tile = cluster
            .ring
            .tiles_of(&shard.id, cluster.geometry)
            .next()
            .expect("a tile");
        let (x0, y0) = tile.origin();
        let mut stream = edge.subscribe(tile, None).await.expect("subscribe");
        match stream.next().await.expect("frame") {
            Some(TileFrame::Snapshot {
                tile: t, seq: 0, ..
            }) => assert_eq!(t, tile),
            other => panic!("expected a blank snapshot, got {other:?}"),
        }
        let placed = edge
            .place(request(x0 + 3, y0 + 4, 5))
            .await
            .expect("placed");
        assert_eq!(placed.seq, 1);
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("in time")
            .expect("frame")
        {
            Some(TileFrame::Batch {
                tile: t,
                first_seq: 1,
                changes,
                applied_at_ms,
            }) => {
                assert_eq!(t, tile);
                let age = place_shard::driver::now_ms() - applied_at_ms;
                assert!(
                    (0..5_000).contains(&age),
                    "stamped when applied, {age} ms ago"
                );
                assert_eq!((changes[0].lx, changes[0].ly, changes[0].color), (3, 4, 5));
            }
            other => panic!("expected the batch, got {other:?}"),
        }
        // Resubscribing with the seq held gets an empty catch-up.
        let mut again = edge.subscribe(tile, Some(1)).await.expect("subscribe");
        assert!(
            matches!(again.next().await.expect("frame"), Some(TileFrame::Batch { first_seq: 2, ref changes, .. }) if changes.is_empty())
        );
    }
    let tiles = edge.read_tiles().await.expect("read");
    assert_eq!(
        tiles.len(),
        cluster.geometry.tile_count(),
        "every tile from exactly one shard"
    );
    assert_eq!(tiles.iter().map(|t| t.seq).sum::<u64>(), 2);
}

#[tokio::test]
async fn placements_sent_together_share_a_lane_and_each_gets_its_own_answer() {
    // Every placement to a shard goes over one stream, answered by id as each completes: many
    // at once, over several tiles of each shard, must each get the seq of their own tile.
    let cluster = start_cluster(2).await;
    let (edge, _ring) = client(&cluster, Arc::clone(&cluster.ring));
    let tiles: Vec<TileId> = cluster
        .ring
        .shards()
        .iter()
        .flat_map(|shard| cluster.ring.tiles_of(&shard.id, cluster.geometry).take(3))
        .collect();
    let per_tile = 100u32;
    let placements = (0..per_tile).flat_map(|i| {
        tiles.iter().map(move |&tile| {
            let (x0, y0) = tile.origin();
            (tile, request(x0 + i % 64, y0 + i / 64, (i % 16) as u8))
        })
    });
    let placed = futures_util::future::join_all(placements.map(|(tile, r)| {
        let edge = &edge;
        async move { (tile, edge.place(r).await) }
    }))
    .await;
    for tile in &tiles {
        let mut seqs: Vec<u64> = placed
            .iter()
            .filter(|(t, _)| t == tile)
            .map(|(_, result)| result.as_ref().expect("placed").seq)
            .collect();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=u64::from(per_tile)).collect::<Vec<_>>(),
            "tile {tile}: each placement answered with its own seq"
        );
    }
    let canvas = edge.read_tiles().await.expect("read");
    assert_eq!(
        canvas.iter().map(|t| t.seq).sum::<u64>(),
        u64::from(per_tile) * tiles.len() as u64
    );
}

#[tokio::test]
async fn a_shard_refuses_tiles_it_does_not_own() {
    let cluster = start_cluster(2).await;
    // An edge with a wrong ring: each id points at the other shard's address.
    let shards = cluster.ring.shards();
    let swapped = vec![
        ShardInfo {
            id: shards[0].id.clone(),
            addr: shards[1].addr.clone(),
        },
        ShardInfo {
            id: shards[1].id.clone(),
            addr: shards[0].addr.clone(),
        },
    ];
    let (edge, _ring) = client(&cluster, Arc::new(Ring::new(1, swapped).expect("ring")));
    let tile: TileId = cluster
        .ring
        .tiles_of(&shards[0].id, cluster.geometry)
        .next()
        .expect("tile");
    let (x, y) = tile.origin();
    assert_eq!(
        edge.place(request(x, y, 1)).await,
        Err(PlaceError::Unavailable),
        "refused, never applied"
    );
    assert!(
        edge.subscribe(tile, None)
            .await
            .expect("open")
            .next()
            .await
            .is_err(),
        "the tile stream is refused"
    );
    let (right, _right_ring) = client(&cluster, Arc::clone(&cluster.ring));
    let tiles = right.read_tiles().await.expect("read");
    assert_eq!(
        tiles.iter().map(|t| t.seq).sum::<u64>(),
        0,
        "nothing was placed"
    );
}

#[tokio::test]
async fn an_edge_certificate_cannot_serve_as_a_shard_nor_a_shard_certificate_connect_as_an_edge() {
    let cluster = start_cluster(1).await;
    let edge = NodeIdentity::load(cluster.certs.path(), "edge-1").expect("identity");
    let shard = NodeIdentity::load(cluster.certs.path(), "shard-1").expect("identity");
    assert_eq!(edge.role(), Role::Edge);
    assert_eq!(shard.role(), Role::Shard);
    assert!(matches!(
        edge.server_config(),
        Err(TlsError::WrongRole {
            have: Role::Edge,
            need: Role::Shard
        })
    ));
    let (_keep, ring) = watch::channel(Arc::clone(&cluster.ring));
    assert!(
        ClusterClient::new(&shard, ring, cluster.geometry).is_err(),
        "a shard's certificate makes no edge client"
    );
    // The edge itself places: its certificate is an edge's, the shard's a shard's.
    let (client, _ring) = client(&cluster, Arc::clone(&cluster.ring));
    client
        .place(request(1, 1, 3))
        .await
        .expect("an edge places at a shard");
}

/// What a shard's supervisor asks of a silent shard before failing it over: a running shard
/// answers (it refuses a shard's certificate, which is an answer), an address where nothing
/// listens does not, within the check's time.
#[tokio::test]
async fn a_running_shard_answers_the_liveness_check_and_a_dead_address_does_not() {
    let cluster = start_cluster(2).await;
    let asking = NodeIdentity::load(cluster.certs.path(), "shard-2").expect("identity");
    let config = asking.liveness_config().expect("config");
    let alive = &cluster.ring.shards()[0].addr;
    assert!(
        place_cluster::client::answers(&config, alive, Duration::from_secs(2)).await,
        "a running shard answers"
    );
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let started = tokio::time::Instant::now();
    assert!(
        !place_cluster::client::answers(&config, &nobody, Duration::from_millis(500)).await,
        "nothing listens there"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "bounded by the check's time"
    );
}
