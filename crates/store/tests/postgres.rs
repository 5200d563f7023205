//! [`Store`] on PostgreSQL: needs the real PostgreSQL of the machine.
//!
//! The database is `postgres://postgres@127.0.0.1:5432/test` unless `PLACE_TEST_DATABASE_URL`
//! says otherwise. Every test works in a fresh schema of its own and drops it at the end, even
//! when it fails. An unreachable database fails the tests with a message naming it: they are
//! never skipped.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

mod behaviour;

use futures_util::FutureExt;
use place_store::{NewEvent, PgStore, Store, StoreError, TileSnapshotRecord};
use place_tiles::{compress_tile, CanvasGeometry, PixelChange, Tile, TileId};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The environment variable naming the test database.
const DATABASE_URL_VAR: &str = "PLACE_TEST_DATABASE_URL";
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn database_url() -> String {
    std::env::var(DATABASE_URL_VAR).unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A connection outside any test schema, to inspect and drop them; panics (fails the test) with
/// a message naming PostgreSQL when it cannot connect.
async fn admin_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {url} is unreachable ({e}): these tests need it; start it or set \
                 {DATABASE_URL_VAR}"
            )
        })
}

/// A schema name no other test or run uses.
fn fresh_schema(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = place_tiles::clock::since_epoch().subsec_nanos();
    format!(
        "place_test_{test}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `test` with the database URL and fresh schemas (as many as it asks for), then drops the
/// schemas whether it passed or not.
async fn with_schemas<const N: usize, F, Fut>(name: &str, test: F)
where
    F: FnOnce(String, [String; N]) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = database_url();
    let admin = admin_pool(&url).await;
    let schemas: [String; N] = std::array::from_fn(|_| fresh_schema(name));
    let outcome = AssertUnwindSafe(test(url, schemas.clone()))
        .catch_unwind()
        .await;
    for schema in &schemas {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&admin)
            .await
            .expect("drop the test schema");
    }
    admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn connect(url: &str, schema: &str) -> Store {
    Store::connect_postgres(url, schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}, schema {schema}: {e}"))
}

fn event(x: u32, y: u32, color: u8, tile_seq: u64) -> NewEvent {
    NewEvent {
        x,
        y,
        color,
        user_id: 1,
        placed_at: 1000,
        tile_seq,
        action_id: None,
    }
}

/// A snapshot of a tile that had these changes applied from blank.
fn snapshot(tile: TileId, changes: &[(u8, u8, u8)]) -> TileSnapshotRecord {
    let mut t = Tile::new();
    for &(lx, ly, color) in changes {
        t.apply(PixelChange { lx, ly, color });
    }
    TileSnapshotRecord {
        tile,
        seq: t.seq(),
        data: compress_tile(t.pixels()),
    }
}

fn everything(_: TileId) -> bool {
    true
}

/// 4x4 tiles.
fn geometry() -> CanvasGeometry {
    CanvasGeometry::new(256, 256).expect("valid size")
}

#[tokio::test]
async fn events_before_and_after_snapshots_restore_the_tiles() {
    with_schemas("restore", |url, [schema]| async move {
        let g = geometry();
        let store = connect(&url, &schema).await;
        store.canvas_geometry(g).await.expect("first use");
        let first = store
            .append_events(&[event(1, 1, 3, 1), event(70, 1, 4, 1), event(1, 1, 5, 2)])
            .await
            .expect("append");
        assert_eq!(first, 3);
        // Tile 0:0 snapshotted at seq 2, tile 1:0 at seq 1; then more events on both, and on
        // tile 3:3 which has no snapshot.
        store
            .write_checkpoint(
                &[
                    snapshot(TileId::new(0, 0), &[(1, 1, 3), (1, 1, 5)]),
                    snapshot(TileId::new(1, 0), &[(6, 1, 4)]),
                ],
                first,
                2000,
            )
            .await
            .expect("checkpoint");
        let last = store
            .append_events(&[
                event(2, 2, 7, 3),
                event(70, 1, 9, 2),
                event(255, 255, 1, 1),
                event(1, 1, 8, 4),
            ])
            .await
            .expect("append");
        assert!(last > first);
        store.close().await;

        let store = connect(&url, &schema).await; // migrations already applied: a no-op
        store.canvas_geometry(g).await.expect("same size");
        let restored = store.load_canvas(g, &everything).await.expect("load");
        assert_eq!(restored.events_replayed, 4);
        assert_eq!(restored.last_event_id, last);
        assert_eq!(restored.tiles.len(), 16);
        let tile = |tx, ty| &restored.tiles[g.tile_index(TileId::new(tx, ty))];
        assert_eq!(
            (tile(0, 0).seq(), tile(0, 0).get(1, 1), tile(0, 0).get(2, 2)),
            (4, 8, 7)
        );
        assert_eq!((tile(1, 0).seq(), tile(1, 0).get(6, 1)), (2, 9));
        assert_eq!((tile(3, 3).seq(), tile(3, 3).get(63, 63)), (1, 1));
        assert_eq!(tile(2, 2), &Tile::new());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn connections_the_database_ended_are_replaced_once_idle() {
    // A busy connection is not pinged before each use; one idle for a second is, so a database
    // that restarted (here: ended the store's connections) costs no failed write.
    with_schemas("ended", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        store
            .append_events(&[event(0, 0, 1, 1)])
            .await
            .expect("append");
        let admin = admin_pool(&url).await;
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) AS t",
        )
        .bind(format!("place:{schema}"))
        .fetch_one(&admin)
        .await
        .expect("end the store's connections");
        assert!(
            ended >= 1,
            "the store's connections are named by their schema"
        );
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        store
            .append_events(&[event(1, 0, 1, 2)])
            .await
            .expect("written on a fresh connection");
        let restored = store
            .load_canvas(geometry(), &everything)
            .await
            .expect("load");
        assert_eq!(restored.tiles[0].seq(), 2);
        admin.close().await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn an_append_abandoned_half_way_leaves_the_next_one_working() {
    // The appends share one connection. A caller that gives up on an append (a timeout) drops it
    // mid-exchange; the connection must not be reused in that state.
    with_schemas("abandoned", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        // The abandoned appends go to tile 1:0, each with a seq of its own (written or not, it
        // leaves gaps there); the ones after them to tile 0:0, which must hold all of them.
        let mut seq = 0;
        for wait_us in (0..400).step_by(20) {
            let abandoned = tokio::time::timeout(
                Duration::from_micros(wait_us),
                store.append_events(&[event(64, 0, 1, wait_us + 1)]),
            )
            .await;
            if let Ok(written) = abandoned {
                written.expect("an append given time succeeds");
            }
            seq += 1;
            store
                .append_events(&[event(0, 0, 2, seq)])
                .await
                .expect("the append after an abandoned one");
        }
        let restored = store
            .load_canvas(geometry(), &|tile: TileId| tile == TileId::new(0, 0))
            .await
            .expect("load");
        assert_eq!(restored.tiles[0].seq(), seq);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn large_batches_keep_the_same_guarantees() {
    // Batches above 128 events take another path (COPY) than small ones.
    with_schemas("large", |url, [schema]| async move {
        let g = geometry();
        let store = connect(&url, &schema).await;
        let mut expected = [Tile::new(), Tile::new()];
        let batch: Vec<NewEvent> = (0..600u32)
            .map(|i| {
                let (t, lx, ly, color) = (
                    (i % 2) as usize,
                    (i % 64) as u8,
                    (i / 64) as u8,
                    (i % 7) as u8,
                );
                let seq = expected[t].apply(PixelChange { lx, ly, color });
                event(64 * t as u32 + u32::from(lx), u32::from(ly), color, seq)
            })
            .collect();
        assert_eq!(store.append_events(&batch).await.expect("append"), 600);

        // A conflict anywhere in a large batch writes nothing of it either.
        let mut conflicting: Vec<NewEvent> = (1..=499).map(|seq| event(130, 0, 1, seq)).collect();
        conflicting.push(event(0, 0, 1, 300));
        let err = store.append_events(&conflicting).await;
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");

        let restored = store.load_canvas(g, &everything).await.expect("load");
        assert_eq!(restored.events_replayed, 600);
        assert_eq!(restored.tiles[0], expected[0]);
        assert_eq!(restored.tiles[1], expected[1]);
        assert_eq!(restored.tiles[2], Tile::new());
        // Ids keep growing after a failed batch, whichever path a batch takes.
        let next = store
            .append_events(&[event(130, 0, 1, 1)])
            .await
            .expect("append");
        assert!(next > 600);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_gap_in_tile_seqs_is_corruption() {
    with_schemas("gap", |url, [schema]| async move {
        let g = geometry();
        let store = connect(&url, &schema).await;
        store
            .append_events(&[event(1, 1, 3, 1), event(1, 1, 3, 3)])
            .await
            .expect("the fence does not forbid gaps");
        assert!(matches!(
            store.load_canvas(g, &everything).await,
            Err(StoreError::Corrupt(_))
        ));

        // A gap between a snapshot and the first event after it, on another tile.
        let owns_1_0 = |t: TileId| t == TileId::new(1, 0);
        store
            .write_checkpoint(&[snapshot(TileId::new(1, 0), &[(0, 0, 1)])], 0, 1)
            .await
            .expect("checkpoint");
        store
            .append_events(&[event(64, 0, 2, 2)])
            .await
            .expect("append");
        assert_eq!(
            store.load_canvas(g, &owns_1_0).await.expect("load").tiles[1].seq(),
            2
        );
        store
            .append_events(&[event(64, 0, 2, 4)])
            .await
            .expect("append");
        let err = store.load_canvas(g, &owns_1_0).await;
        assert!(matches!(err, Err(StoreError::Corrupt(_))), "{err:?}");

        // An event filed under another tile than its pixel's.
        let admin = admin_pool(&url).await;
        sqlx::query(&format!(
            "INSERT INTO \"{schema}\".pixel_events \
             (tx, ty, x, y, color, user_id, placed_at, tile_seq) VALUES (3, 3, 0, 0, 1, 1, 1, 1)"
        ))
        .execute(&admin)
        .await
        .expect("insert");
        admin.close().await;
        let err = store.load_canvas(g, &|t| t == TileId::new(3, 3)).await;
        assert!(matches!(err, Err(StoreError::Corrupt(_))), "{err:?}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_tile_seq_written_twice_is_a_conflict_and_nothing_of_the_batch_is_written() {
    with_schemas("conflict", |url, [schema]| async move {
        let g = geometry();
        let store = connect(&url, &schema).await;
        store
            .append_events(&[event(1, 1, 3, 1), event(1, 1, 4, 2)])
            .await
            .expect("append");

        // Another shard (wrongly) writes seq 2 of tile 0:0 again, in a batch with a new tile.
        let err = store
            .append_events(&[event(100, 100, 6, 1), event(5, 5, 9, 2)])
            .await;
        assert!(
            matches!(&err, Err(StoreError::Conflict(m)) if m.contains("(0, 0, 2)")),
            "the message names the tile and seq: {err:?}"
        );
        // The same seq twice in one batch.
        let err = store
            .append_events(&[event(130, 1, 6, 1), event(131, 1, 7, 1)])
            .await;
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");

        let restored = store.load_canvas(g, &everything).await.expect("load");
        assert_eq!(restored.events_replayed, 2);
        let t00 = &restored.tiles[g.tile_index(TileId::new(0, 0))];
        assert_eq!((t00.seq(), t00.get(1, 1), t00.get(5, 5)), (2, 4, 0));
        assert_eq!(restored.tiles[g.tile_index(TileId::new(1, 1))], Tile::new());
        assert_eq!(restored.tiles[g.tile_index(TileId::new(2, 0))], Tile::new());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn snapshots_never_move_backwards() {
    with_schemas("snapshots", |url, [schema]| async move {
        let g = geometry();
        let tile = TileId::new(2, 1);
        let store = connect(&url, &schema).await;
        let newer = snapshot(tile, &[(0, 0, 1), (0, 0, 2), (0, 0, 3)]);
        let older = snapshot(tile, &[(0, 0, 1)]);
        store
            .write_checkpoint(&[newer], 0, 1)
            .await
            .expect("checkpoint");
        store
            .write_checkpoint(std::slice::from_ref(&older), 0, 2)
            .await
            .expect("a stale checkpoint is not an error");
        let seq_and_colour = |restored: place_store::RestoredCanvas| {
            let t = &restored.tiles[g.tile_index(tile)];
            (t.seq(), t.get(0, 0))
        };
        let restored = store.load_canvas(g, &everything).await.expect("load");
        assert_eq!(seq_and_colour(restored), (3, 3));

        // Of two snapshots of one tile in a checkpoint, the newer wins, in either order.
        let newest = snapshot(tile, &[(0, 0, 1), (0, 0, 2), (0, 0, 3), (0, 0, 4)]);
        store
            .write_checkpoint(&[newest, older], 0, 3)
            .await
            .expect("checkpoint");
        let restored = store.load_canvas(g, &everything).await.expect("load");
        assert_eq!(seq_and_colour(restored), (4, 4));
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn only_owned_tiles_are_restored() {
    with_schemas("owned", |url, [schema]| async move {
        let g = geometry();
        let store = connect(&url, &schema).await;
        store
            .append_events(&[
                event(0, 0, 1, 1),
                event(64, 0, 2, 1),
                event(128, 128, 3, 1),
                event(128, 128, 4, 2),
            ])
            .await
            .expect("append");
        store
            .write_checkpoint(&[snapshot(TileId::new(1, 0), &[(0, 0, 2)])], 0, 1)
            .await
            .expect("checkpoint");
        let mine = |t: TileId| t.tx == t.ty; // 0:0, 1:1, 2:2, 3:3
        let restored = store.load_canvas(g, &mine).await.expect("load");
        assert_eq!(restored.events_replayed, 3);
        let tile = |tx, ty| &restored.tiles[g.tile_index(TileId::new(tx, ty))];
        assert_eq!((tile(0, 0).seq(), tile(0, 0).get(0, 0)), (1, 1));
        assert_eq!((tile(2, 2).seq(), tile(2, 2).get(0, 0)), (2, 4));
        assert_eq!(
            tile(1, 0),
            &Tile::new(),
            "not owned, though it has a snapshot"
        );

        let nothing = store.load_canvas(g, &|_| false).await.expect("load");
        assert_eq!((nothing.events_replayed, nothing.last_event_id), (0, 0));
        assert!(nothing.tiles.iter().all(|t| *t == Tile::new()));
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_different_canvas_size_is_refused() {
    with_schemas("size", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        store
            .canvas_geometry(CanvasGeometry::new(100, 100).expect("valid"))
            .await
            .expect("first");
        store
            .canvas_geometry(CanvasGeometry::new(100, 100).expect("valid"))
            .await
            .expect("same again");
        let err = store
            .canvas_geometry(CanvasGeometry::new(200, 100).expect("valid"))
            .await;
        assert!(
            matches!(&err, Err(StoreError::CanvasMismatch { stored, configured })
                if stored == "100x100" && configured == "200x100"),
            "{err:?}"
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_grown_canvas_keeps_its_size_and_fences_its_new_tiles() {
    with_schemas("grow", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        let small = CanvasGeometry::new(100, 100).expect("valid");
        let grown = CanvasGeometry::new(300, 100).expect("valid");
        store.canvas_geometry(small).await.expect("first");
        assert_eq!(store.grow_canvas(grown).await.expect("grow"), Some(small));
        assert_eq!(store.grow_canvas(grown).await.expect("repeat"), None);
        assert!(matches!(
            store.grow_canvas(small).await,
            Err(StoreError::CanvasGrowth(_))
        ));
        // The size at a time comes from the growths recorded after it.
        let details = r#"{"from":{"width":100,"height":100},"to":{"width":300,"height":100}}"#;
        store
            .append_audit(1, "resize-canvas", details, 1_000)
            .await
            .expect("audit");
        assert_eq!(
            store.canvas_before_growth(999).await.expect("before"),
            Some(small)
        );
        assert_eq!(
            store.canvas_before_growth(1_000).await.expect("after"),
            None
        );
        // Restarting with the configured size serves the grown canvas.
        assert_eq!(store.canvas_geometry(small).await.expect("grown"), grown);
        assert_eq!(store.stored_canvas().await.expect("read"), Some(grown));
        // A new tile has its fence: once raised, an older epoch's write is refused.
        let new_tile = TileId::new(4, 0);
        store.raise_fences(&[new_tile], 2).await.expect("raise");
        let err = store
            .append_events_at_epoch(&[event(260, 1, 3, 1)], 1)
            .await;
        assert!(
            matches!(&err, Err(StoreError::Fenced(tiles)) if tiles == &vec![new_tile]),
            "{err:?}"
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn schemas_are_isolated_and_migrate_independently() {
    with_schemas("isolated", |url, [a, b]| async move {
        let g = geometry();
        let (store_a, store_b) = (connect(&url, &a).await, connect(&url, &b).await);
        assert_eq!(store_a.postgres().expect("postgres").schema(), a);
        store_a
            .append_events(&[event(1, 1, 1, 1)])
            .await
            .expect("append");
        store_a.canvas_geometry(g).await.expect("size");
        store_a.create_guest("aa", 0).await.expect("guest");

        // The same seq in the other schema is no conflict, and nothing of `a` shows in `b`.
        store_b
            .append_events(&[event(1, 1, 2, 1)])
            .await
            .expect("append");
        store_b
            .canvas_geometry(CanvasGeometry::new(64, 64).expect("valid"))
            .await
            .expect("another size in another schema");
        let restored = store_b.load_canvas(g, &everything).await.expect("load");
        assert_eq!(restored.tiles[0].get(1, 1), 2);
        assert_eq!(store_b.create_guest("aa", 0).await.expect("guest").id, 1);

        // Each schema has its own migration table.
        let admin = admin_pool(&url).await;
        let mut with_migrations: Vec<String> = sqlx::query_scalar(
            "SELECT table_schema::text FROM information_schema.tables \
             WHERE table_name = '_sqlx_migrations' AND table_schema IN ($1, $2)",
        )
        .bind(&a)
        .bind(&b)
        .fetch_all(&admin)
        .await
        .expect("query");
        with_migrations.sort();
        assert_eq!(with_migrations, vec![a.clone(), b.clone()]);
        admin.close().await;
        store_a.close().await;
        store_b.close().await;
    })
    .await;
}

#[tokio::test]
async fn shards_starting_together_share_one_schema() {
    with_schemas("together", |url, [schema]| async move {
        let starts = (0..3).map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { Store::connect_postgres(&url, &schema).await })
        });
        for start in futures_util::future::join_all(starts).await {
            let store = start.expect("task").expect("connect");
            store.ping().await.expect("ping");
            store.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn bad_schema_names_are_refused_before_connecting() {
    for bad in ["", "a-b", "a;DROP SCHEMA public", "pg_toast", "x\"y"] {
        // An unroutable URL: the name is checked first.
        let err = PgStore::connect("postgres://nobody@127.0.0.1:1/none", bad).await;
        assert!(matches!(err, Err(StoreError::InvalidSchema(_))), "{bad}");
    }
}

#[tokio::test]
async fn guests_bans_and_cooldowns() {
    with_schemas("users", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        let alice = store.create_guest("a1", 10).await.expect("guest");
        let bob = store.create_guest("b2", 11).await.expect("guest");
        assert_eq!(alice.username, "guest-a1");
        assert!(alice.is_guest && !alice.is_admin && !alice.banned);
        assert_ne!(alice.id, bob.id);
        assert_eq!(
            store.user(alice.id).await.expect("query"),
            Some(alice.clone())
        );
        assert_eq!(store.user(-5).await.expect("query"), None);
        assert!(matches!(
            store.create_guest("a1", 12).await,
            Err(StoreError::UsernameTaken)
        ));

        assert!(store.banned_users().await.expect("query").is_empty());
        store.set_banned(bob.id, true).await.expect("ban");
        assert_eq!(store.banned_users().await.expect("query"), vec![bob.id]);
        assert!(
            store
                .user(bob.id)
                .await
                .expect("query")
                .expect("bob")
                .banned
        );
        store.set_banned(bob.id, false).await.expect("unban");
        assert!(store.banned_users().await.expect("query").is_empty());

        let placed = |user_id, placed_at, tile_seq| NewEvent {
            user_id,
            placed_at,
            ..event(1, 1, 1, tile_seq)
        };
        store
            .append_events(&[placed(alice.id, 4000, 1), placed(alice.id, 5000, 2)])
            .await
            .expect("append");
        store
            .append_events(&[placed(bob.id, 3000, 3)])
            .await
            .expect("append");
        assert_eq!(
            store.recent_placements(3500).await.expect("query"),
            vec![(alice.id, 5000)]
        );
        assert!(store
            .recent_placements(6000)
            .await
            .expect("query")
            .is_empty());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn guests_register_in_place_and_names_are_unique_in_any_case() {
    with_schemas("accounts", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        behaviour::guests_register_in_place_and_names_are_unique_in_any_case(&store).await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_raised_fence_refuses_older_epochs_and_waits_for_writes_under_way() {
    with_schemas("fence", |url, [schema]| async move {
        let g = geometry();
        let store = connect(&url, &schema).await;
        store.canvas_geometry(g).await.expect("creates the fences");
        let (a, b) = (TileId::new(0, 0), TileId::new(1, 0));
        store
            .append_events_at_epoch(&[event(1, 1, 3, 1)], 1)
            .await
            .expect("no fence raised yet");

        store.raise_fences(&[a], 2).await.expect("raise");
        // An older epoch is refused for the moved tile, whole batch, small or large (COPY).
        let err = store
            .append_events_at_epoch(&[event(70, 1, 4, 1), event(1, 1, 3, 2)], 1)
            .await;
        assert!(
            matches!(&err, Err(StoreError::Fenced(tiles)) if tiles == &vec![a]),
            "{err:?}"
        );
        let large: Vec<NewEvent> = (1..=200)
            .map(|seq| event(70, 1, 4, seq))
            .chain([event(1, 1, 3, 2)])
            .collect();
        let err = store.append_events_at_epoch(&large, 1).await;
        assert!(matches!(&err, Err(StoreError::Fenced(tiles)) if tiles == &vec![a]));
        let restored = store.load_canvas(g, &everything).await.expect("load");
        assert_eq!(
            restored.events_replayed, 1,
            "nothing of a fenced batch is written"
        );

        // The new epoch writes; other tiles are untouched by the fence; fences never go down.
        store
            .append_events_at_epoch(&[event(1, 1, 5, 2)], 2)
            .await
            .expect("new owner");
        store
            .append_events_at_epoch(&large[..200], 1)
            .await
            .expect("tile b never moved");
        store.raise_fences(&[a], 1).await.expect("no-op");
        assert!(store
            .append_events_at_epoch(&[event(1, 1, 5, 3)], 1)
            .await
            .is_err());

        // Raising waits for a write of the tile that is under way (it holds the fence FOR SHARE).
        let admin = admin_pool(&url).await;
        let mut writer = admin.begin().await.expect("begin");
        sqlx::query(&format!(
            "SELECT 1 FROM \"{schema}\".tile_fences WHERE tx = 1 AND ty = 0 FOR SHARE"
        ))
        .execute(&mut *writer)
        .await
        .expect("lock");
        let raise = tokio::spawn({
            let store = store.clone();
            async move { store.raise_fences(&[b], 3).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!raise.is_finished(), "the raise waits for the write");
        writer.commit().await.expect("commit");
        tokio::time::timeout(Duration::from_secs(5), raise)
            .await
            .expect("the raise goes through once the write commits")
            .expect("join")
            .expect("raise");
        assert!(matches!(
            store
                .append_events_at_epoch(&[event(70, 1, 4, 201)], 2)
                .await,
            Err(StoreError::Fenced(_))
        ));
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn templates_are_kept_and_their_owners_rate_limited() {
    with_schemas("templates", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        let template = |id: &str, created_at: i64| place_store::TemplateRecord {
            id: id.into(),
            owner_id: 7,
            x: 10,
            y: 20,
            width: 3,
            height: 2,
            pixels: vec![1, 2, 3],
            created_at,
        };
        assert!(store
            .admit_template(&template("a", 1_000), 0, 2)
            .await
            .expect("store"));
        assert!(store
            .admit_template(&template("b", 2_000), 0, 2)
            .await
            .expect("store"));
        assert!(
            !store
                .admit_template(&template("c", 3_000), 0, 2)
                .await
                .expect("store"),
            "a third within the window"
        );
        assert!(
            store
                .admit_template(&template("c", 3_000), 1_500, 2)
                .await
                .expect("store"),
            "the first is out of the window"
        );
        assert_eq!(
            store.template("b").await.expect("store"),
            Some(template("b", 2_000))
        );
        assert_eq!(store.template("nope").await.expect("store"), None);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn regions_are_kept_listed_until_they_end_and_deleted_and_alarms_listed() {
    use place_store::{RegionMode, RegionRecord};
    with_schemas("regions", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        let region = |mode, until_ms| RegionRecord {
            id: 0,
            x: 1,
            y: 2,
            width: 3,
            height: 4,
            mode,
            cooldown_ms: None,
            until_ms,
            created_by: 0,
            created_at: 10,
        };
        let registered = store
            .add_region(&region(RegionMode::Registered, None))
            .await
            .expect("add");
        let ending = store
            .add_region(&region(RegionMode::Locked, Some(100)))
            .await
            .expect("add");
        let ids = |list: Vec<RegionRecord>| list.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.active_regions(99).await.expect("list")),
            [registered, ending]
        );
        assert_eq!(
            ids(store.active_regions(100).await.expect("list")),
            [registered]
        );
        let gone = store.delete_region(registered).await.expect("delete");
        assert_eq!(
            gone,
            Some(RegionRecord {
                id: registered,
                ..region(RegionMode::Registered, None)
            })
        );
        assert_eq!(store.delete_region(registered).await.expect("again"), None);
        // The alarms the admin panel lists are the audit log's rows of one action.
        for (action, at) in [
            ("spike-alarm", 100),
            ("region-add", 150),
            ("spike-alarm", 200),
        ] {
            store
                .append_audit(0, action, "{}", at)
                .await
                .expect("audit");
        }
        let alarms = store
            .audit_of_action("spike-alarm", 150, 10)
            .await
            .expect("alarms");
        assert_eq!(
            alarms.iter().map(|e| e.created_at).collect::<Vec<_>>(),
            [200]
        );
        assert_eq!(alarms[0].actor_name, None, "the server is no user");
    })
    .await;
}

#[tokio::test]
async fn admin_lists_and_rollbacks_follow_tile_seqs() {
    with_schemas("order", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        behaviour::admin_lists_and_rollbacks_follow_tile_seqs(&store).await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sessions_settings_and_administrators() {
    with_schemas("sessions", |url, [schema]| async move {
        let store = connect(&url, &schema).await;
        behaviour::sessions_settings_and_administrators(&store).await;
        store.close().await;
    })
    .await;
}
