//! The embedded store: SQLite (through sqlx) in WAL mode in a local data directory.
//!
//! Durability: `synchronous=FULL`, so a committed transaction survives a crash of the process and
//! of the machine. The shard batches many placements into one [`EmbeddedStore::append_events`]
//! call (group commit): one transaction and one fsync for the whole batch, written by the event
//! log's own thread and connection (`crate::event_log`); every other query goes through the
//! sqlx pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use place_tiles::CanvasGeometry;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, SqlitePool};
use tracing::info;

use crate::event_log::EventLogWriter;
use crate::types::{NewEvent, RestoredCanvas, StoreError, TileSnapshotRecord};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "place.sqlite3";
/// Rows per INSERT statement of a checkpoint: 4 values each stays far below SQLite's 32,766 bound
/// parameters.
const INSERT_CHUNK: usize = 1000;

/// The embedded store of `place serve`.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    pub(crate) pool: SqlitePool,
    /// Taken by the frequent writes (placements, checkpoints, sessions) so that they queue here,
    /// in order, instead of inside SQLite, where a writer that finds the database locked sleeps
    /// in growing steps (up to 100 ms each) until it is free: a burst of connecting players
    /// (three small writes each) must not make the placements' writer sleep.
    pub(crate) write_gate: Arc<tokio::sync::Mutex<()>>,
    /// The thread that appends placements to the event log, on its own connection.
    event_log: Arc<EventLogWriter>,
    /// The database file, for reads on a connection of their own ([`crate::canvas_replay`]).
    path: Arc<PathBuf>,
}

impl EmbeddedStore {
    /// Opens (creating when needed) the store in `dir` and applies the schema.
    ///
    /// The directory is made private to the process's user (0700) and so are the database and
    /// its companions (0600: SQLite gives its WAL, shared-memory and journal files the
    /// database's mode), including those of an existing directory made before.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        make_private(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(DATABASE_FILE);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Statement journals (an INSERT of many rows keeps one) stay in memory instead of a
            // temporary file: a profile of ingest put 8% of the server's time in writing them.
            .pragma("temp_store", "memory")
            // 32 MiB of page cache per connection (the default is 2 MiB): the event log's
            // indexes are updated at random places, and pages read again cost a `pread` each.
            .pragma("cache_size", "-32768")
            // The WAL is copied into the database once a second by a background task holding
            // the write gate (`checkpoint_wal`), not by whichever commit crosses 1,000 pages.
            .pragma("wal_autocheckpoint", "0")
            // A WAL that grew (a long read held old frames) is cut back to 512 MiB once copied.
            // Above a second's worth at 10,000 placements/s (about 150 MB): at 64 MiB every
            // restart cut the file and the next second grew it again, block by block, and the
            // first commit after it paid for both (p99 ack 37 to 45 ms instead of 20).
            .pragma("journal_size_limit", "536870912");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file does not drop connections: no ping (a round trip) before each use.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let write_gate = Arc::default();
        let event_log = Arc::new(EventLogWriter::start(&path, Arc::clone(&write_gate))?);
        tokio::spawn(checkpoint_wal(pool.clone(), Arc::clone(&write_gate)));
        Ok(Self {
            pool,
            write_gate,
            event_log,
            path: Arc::new(path),
        })
    }

    /// Appends placements to the event log in one transaction (one fsync) and returns the id of
    /// the last one. Events get consecutive ids in the order given.
    ///
    /// The event log's own thread writes them (`crate::event_log`): a prepared single-row
    /// `INSERT` per event inside one transaction, after the write gate.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<i64, StoreError> {
        self.event_log.append(events.to_vec()).await
    }

    /// Saves tile snapshots and marks them as covering every event up to `through_event_id`.
    pub async fn write_checkpoint(
        &self,
        snapshots: &[TileSnapshotRecord],
        through_event_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.write_gate.lock().await;
        let mut tx = self.pool.begin().await?;
        // Many rows per statement: each statement is a round trip to the connection's thread,
        // which under load waits for a core, and the writer's slot is held meanwhile (a
        // checkpoint of 400 tiles row by row stalled placements for 400 ms under fan-out load).
        for chunk in snapshots.chunks(INSERT_CHUNK) {
            let mut insert =
                QueryBuilder::new("INSERT OR REPLACE INTO tile_snapshots (tx, ty, seq, data) ");
            insert.push_values(chunk, |mut row, s| {
                row.push_bind(i64::from(s.tile.tx))
                    .push_bind(i64::from(s.tile.ty))
                    .push_bind(s.seq as i64)
                    .push_bind(&s.data);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO checkpoints (through_event_id, created_at) VALUES (?, ?)")
            .bind(through_event_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM checkpoints WHERE id < (SELECT MAX(id) FROM checkpoints)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Restores every tile: the latest snapshots, then the events after the last checkpoint.
    pub async fn load_canvas(
        &self,
        geometry: CanvasGeometry,
    ) -> Result<RestoredCanvas, StoreError> {
        let (restored, _) = self.read_canvas(geometry).await?;
        info!(
            events_replayed = restored.events_replayed,
            last_event_id = restored.last_event_id,
            "canvas restored"
        );
        Ok(restored)
    }

    /// The canvas as the log has it (the latest snapshots, then the events after them) and the
    /// latest `placed_at` of the log, from one read transaction, on a blocking thread
    /// ([`crate::canvas_replay`]).
    pub(crate) async fn read_canvas(
        &self,
        geometry: CanvasGeometry,
    ) -> Result<(RestoredCanvas, Option<i64>), StoreError> {
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || crate::canvas_replay::read_canvas(&path, geometry))
            .await
            .map_err(|e| StoreError::Replay(format!("the reading thread failed: {e}")))?
    }

    /// Closes the pool, waiting for queries in flight, and stops the event log's writer.
    pub async fn close(&self) {
        self.event_log.stop();
        self.pool.close().await;
    }
}

/// How often the WAL is copied into the database file.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long a query waits for a lock before it fails with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The files SQLite keeps beside the database: write-ahead log, shared memory, rollback journal.
const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Makes `dir` (created when missing) readable by the process's user only (0700), creates the
/// database file 0600 when missing (SQLite gives its companion files the database's mode) and
/// puts the database and its companions back to 0600 if they were made otherwise (by an earlier
/// version, say).
fn make_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let database = dir.join(DATABASE_FILE);
        // Neither `truncate` nor `create_new`: an existing database is opened untouched.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&database)?;
        let companions = COMPANION_SUFFIXES.map(|suffix| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            std::path::PathBuf::from(name)
        });
        for file in std::iter::once(database).chain(companions) {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Copies the WAL into the database every [`WAL_CHECKPOINT_EVERY`], so that no commit pays for
/// the copy. It holds the write gate meanwhile, so none of the frequent writes runs and the copy
/// completes; the next write then starts the WAL again from its beginning (a copy racing a steady
/// writer never completes, and the WAL grew by gigabytes while the benchmark seeded its log). The
/// rare writes that do not take the gate (accounts, moderation, timelapse jobs) can only delay
/// that restart to the next second. The frequent writes wait for at most one second's worth of
/// WAL. Ends when the pool is closed.
async fn checkpoint_wal(pool: SqlitePool, write_gate: Arc<tokio::sync::Mutex<()>>) {
    let mut every = tokio::time::interval(WAL_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        let _writing = write_gate.lock().await;
        if let Err(e) = checkpoint_and_restart(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; the next one will copy what is left");
        }
    }
}

/// How long the checkpoint waits for readers to leave the WAL, so that the next write starts it
/// again from its beginning. Readers are short queries; a long one (a heatmap) makes the
/// checkpoint give up the restart for this second rather than hold every write back.
const RESTART_PATIENCE_MS: u32 = 20;

/// One checkpoint in `RESTART` mode: every frame is copied, then it waits (at most
/// [`RESTART_PATIENCE_MS`]) for the readers still using the WAL, so the next write starts the
/// WAL again from its beginning. A `PASSIVE` checkpoint copies every frame too, but the next
/// write restarts the WAL only if no reader happens to be in it at that moment; under a steady
/// 10,000 placements/s one often was, and the WAL grew by 150 MB a second, unbounded.
async fn checkpoint_and_restart(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(&format!("PRAGMA busy_timeout = {RESTART_PATIENCE_MS}"))
        .execute(&mut *conn)
        .await?;
    let checkpointed = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .execute(&mut *conn)
        .await;
    let restored = sqlx::query(&format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    ))
    .execute(&mut *conn)
    .await;
    if let Err(e) = restored {
        // Never back into the pool with a patience of milliseconds.
        drop(conn.detach());
        return Err(e);
    }
    checkpointed.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use place_tiles::{PixelChange, Tile, TileId};

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

    #[tokio::test]
    async fn appended_events_get_consecutive_ids_in_order_whatever_the_batch_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        // An empty batch writes nothing and answers the last id so far.
        let sizes = [0, 1, 1000, 1500, 0, 3];
        let mut expected_last = 0;
        let mut seq = 0;
        for size in sizes {
            let events: Vec<NewEvent> = (0..size)
                .map(|_| {
                    seq += 1;
                    event(
                        (seq % 2000) as u32,
                        (seq / 2000) as u32,
                        (seq % 16) as u8,
                        seq,
                    )
                })
                .collect();
            expected_last += size as i64;
            let last = store.append_events(&events).await.expect("append");
            assert_eq!(last, expected_last, "a batch of {size}");
        }
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT id, x, tile_seq FROM pixel_events ORDER BY id")
                .fetch_all(&store.pool)
                .await
                .expect("read");
        assert_eq!(rows.len() as i64, expected_last);
        for (id, x, tile_seq) in rows {
            assert_eq!(
                tile_seq, id,
                "ids follow the order the events were given in"
            );
            assert_eq!(x, id % 2000);
        }
    }

    #[tokio::test]
    async fn events_and_checkpoints_restore_the_canvas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let geometry = CanvasGeometry::new(100, 100).expect("valid");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        Store::from(store.clone())
            .canvas_geometry(geometry)
            .await
            .expect("first use");

        let last = store
            .append_events(&[event(1, 1, 3, 1), event(70, 1, 4, 1), event(1, 1, 5, 2)])
            .await
            .expect("append");
        assert_eq!(last, 3);

        // Checkpoint tile (0,0) at seq 2, then more events after it.
        let mut t00 = Tile::new();
        t00.apply(PixelChange {
            lx: 1,
            ly: 1,
            color: 3,
        });
        t00.apply(PixelChange {
            lx: 1,
            ly: 1,
            color: 5,
        });
        let mut t10 = Tile::new();
        t10.apply(PixelChange {
            lx: 6,
            ly: 1,
            color: 4,
        });
        let records = [(TileId::new(0, 0), &t00), (TileId::new(1, 0), &t10)].map(|(tile, t)| {
            TileSnapshotRecord {
                tile,
                seq: t.seq(),
                data: place_tiles::compress_tile(t.pixels()),
            }
        });
        store
            .write_checkpoint(&records, last, 2000)
            .await
            .expect("checkpoint");
        store
            .append_events(&[event(2, 2, 7, 3)])
            .await
            .expect("append");
        store.close().await;

        let store = EmbeddedStore::open(dir.path()).await.expect("reopen");
        let restored = store.load_canvas(geometry).await.expect("load");
        assert_eq!(restored.events_replayed, 1);
        assert_eq!(restored.last_event_id, 4);
        let tile = &restored.tiles[geometry.tile_index(TileId::new(0, 0))];
        assert_eq!((tile.seq(), tile.get(1, 1), tile.get(2, 2)), (3, 5, 7));
        assert_eq!(
            restored.tiles[geometry.tile_index(TileId::new(1, 0))].get(6, 1),
            4
        );
    }

    #[tokio::test]
    async fn a_gap_in_tile_seqs_is_reported_as_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let geometry = CanvasGeometry::new(64, 64).expect("valid");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        store
            .append_events(&[event(1, 1, 3, 1), event(1, 1, 3, 3)])
            .await
            .expect("append");
        assert!(matches!(
            store.load_canvas(geometry).await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_data_directory_and_its_files_are_private_even_when_made_before() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("data");
        let store = Store::open_sqlite(&dir).await.expect("open");
        let user = store.create_guest("ab12", 0).await.expect("guest");
        store
            .create_session("h", user.id, 0, 1)
            .await
            .expect("write");
        assert_eq!(mode(&dir), 0o700);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
        assert!(files >= 3, "the database, its WAL and shared memory");
        store.close().await;

        // A directory and files left world-readable by an earlier version are made private.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let store = EmbeddedStore::open(&dir).await.expect("open again");
        assert_eq!(mode(&dir), 0o700);
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        store.pool.close().await;
    }

    /// Frames in the WAL (what a checkpoint reports as its log).
    async fn wal_frames(store: &EmbeddedStore) -> i64 {
        let (_, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&store.pool)
            .await
            .expect("checkpoint");
        log
    }

    #[tokio::test]
    async fn a_checkpoint_restarts_the_wal_and_never_waits_long_for_a_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        let batch = |from: u64| -> Vec<NewEvent> {
            (from..from + 500)
                .map(|i| event((i % 2000) as u32, (i / 2000) as u32, 1, i + 1))
                .collect()
        };
        for round in 0..4 {
            store
                .append_events(&batch(round * 500))
                .await
                .expect("append");
        }
        let grown = wal_frames(&store).await;
        assert!(grown > 20, "four commits of 500 events: {grown} frames");

        // No reader: the next write starts the WAL again from its beginning.
        checkpoint_and_restart(&store.pool)
            .await
            .expect("checkpoint");
        store.append_events(&batch(2000)).await.expect("append");
        let restarted = wal_frames(&store).await;
        assert!(
            restarted < grown,
            "the WAL restarted: {restarted} frames after it, {grown} before"
        );

        // A reader inside a transaction that stays: the checkpoint gives up the restart after
        // its patience instead of holding every write back, and the store's settings are intact.
        store.append_events(&batch(2500)).await.expect("append");
        let mut reader = store.pool.begin().await.expect("reader");
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pixel_events")
            .fetch_one(&mut *reader)
            .await
            .expect("read");
        let started = tokio::time::Instant::now();
        checkpoint_and_restart(&store.pool)
            .await
            .expect("checkpoint");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited {:?} for the reader",
            started.elapsed()
        );
        reader.rollback().await.expect("end the read");
        // Every connection the pool has (four at most), held at once so none is asked twice.
        let mut held = Vec::new();
        let mut timeouts: Vec<i64> = Vec::new();
        for _ in 0..4 {
            let mut conn = store.pool.acquire().await.expect("a pooled connection");
            timeouts.push(
                sqlx::query_scalar("PRAGMA busy_timeout")
                    .fetch_one(&mut *conn)
                    .await
                    .expect("busy timeout"),
            );
            held.push(conn);
        }
        assert!(
            timeouts
                .iter()
                .all(|&t| t == BUSY_TIMEOUT.as_millis() as i64),
            "every pooled connection keeps the store's patience: {timeouts:?}"
        );
    }
}
