//! The commit linger on a real shard and store: an idle shard holds its first placement back
//! so that those close behind it share its commit, and never holds more than a bounded queue.

use std::time::Duration;

use place_shard::{CheckpointPolicy, PlaceRequest, ShardConfig, ShardHandle, ShardTask};
use place_store::{EmbeddedStore, Store};
use place_tiles::CanvasGeometry;

async fn shard(dir: &tempfile::TempDir, commit_linger: Duration) -> ShardHandle {
    let store = EmbeddedStore::open(dir.path()).await.expect("store");
    let config = ShardConfig {
        geometry: CanvasGeometry::new(256, 256).expect("valid"),
        color_count: 16,
        batch_window: Duration::from_millis(5),
        commit_linger,
        checkpoint: CheckpointPolicy::default(),
    };
    let (handle, _task) = ShardTask::start(config, Store::from(store), None)
        .await
        .expect("shard");
    handle
}

fn request(i: u32) -> PlaceRequest {
    PlaceRequest {
        x: i % 256,
        y: i / 256,
        color: 3,
        user_id: i64::from(i),
        placed_at: 1_000,
        action_id: None,
        placement_id: 0,
    }
}

async fn writes(shard: &ShardHandle) -> u64 {
    shard.status().await.expect("running").writes_total
}

#[tokio::test]
async fn placements_close_behind_an_idle_shards_first_share_its_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let linger = Duration::from_millis(300);
    let shard = self::shard(&dir, linger).await;
    let before = writes(&shard).await;
    let started = tokio::time::Instant::now();
    let first = tokio::spawn({
        let shard = shard.clone();
        async move { shard.place(request(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = shard.place(request(2)).await.expect("placed");
    let first = first.await.expect("task").expect("placed");
    assert!(
        started.elapsed() >= linger,
        "the first placement waited for the linger"
    );
    assert_eq!(
        (first.seq, second.seq),
        (1, 2),
        "both on tile 0:0, in order"
    );
    assert_eq!(writes(&shard).await - before, 1, "both in one commit");

    // Without a linger, the same two placements are two commits.
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = self::shard(&dir, Duration::ZERO).await;
    let before = writes(&shard).await;
    shard.place(request(1)).await.expect("placed");
    tokio::time::sleep(Duration::from_millis(30)).await;
    shard.place(request(2)).await.expect("placed");
    assert_eq!(writes(&shard).await - before, 2);
}

#[tokio::test]
async fn a_lingering_shard_writes_at_once_when_its_queue_fills() {
    // A linger far longer than the test: the queue's bound must end it.
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = self::shard(&dir, Duration::from_secs(600)).await;
    let placed = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all((0..2_000).map(|i| shard.place(request(i)))),
    )
    .await
    .expect("written long before the linger ends");
    assert!(placed.iter().all(Result::is_ok));
}
