//! The cluster store: PostgreSQL through a sqlx connection pool and one connection for appends,
//! inside one schema.
//!
//! Every shard process of the cluster keeps its tiles' events and snapshots here, so the data is
//! organised by tile rather than by process:
//! - each event carries its tile `(tx, ty)` and the seq it gave that tile, and `(tx, ty, tile_seq)`
//!   is unique. That is the fence between shards: two shards can never both write seq N of a tile,
//!   so a shard wrongly presumed dead cannot overwrite history. Its batch fails whole with
//!   [`StoreError::Conflict`].
//! - each tile has at most one snapshot, at a seq, which never moves backwards. Restoring a tile is
//!   "its snapshot at seq S, then its events with `tile_seq > S` in seq order". There is no global
//!   checkpoint marker, because tiles move between shards when the ring changes.
//!
//! A [`PgStore`] works inside one PostgreSQL schema named by the caller (a dev cluster or a test
//! uses its own and never touches other data): [`PgStore::connect`] creates it, points every
//! pooled connection's `search_path` at it and applies the migrations there (sqlx's
//! `_sqlx_migrations` table lives in the schema too, so schemas migrate independently).
//!
//! The queries both engines share are [`crate::Store`]'s; this module keeps what only PostgreSQL
//! does (the fences, `COPY`, restoring by tile).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use place_tiles::{decompress_tile, CanvasGeometry, PixelChange, Tile, TileId, TILE_SIZE};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use tokio::time::Instant;
use tracing::info;

use crate::types::{NewEvent, RestoredCanvas, StoreError, TileSnapshotRecord};

/// Connections in the pool: a checkpoint, the fences, and reads (the appends have their own).
const MAX_CONNECTIONS: u32 = 8;
/// How long a query waits for a connection (or the first connection) before failing, so an
/// unreachable PostgreSQL makes placements fail quickly instead of hanging. It is below the
/// edge's 2 s wait for a shard's answer, so a placement refused for an unreachable database
/// is refused by the shard itself and never written later.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1_500);
/// A connection idle this long is pinged before use (the database may have restarted meanwhile);
/// a busier one is not. sqlx's pool pings before every use by default: a round trip, and a
/// wake-up of its backend, before each query (`bench/RESULTS.md` section 17).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// PostgreSQL's limit on identifier length, in bytes.
const MAX_SCHEMA_NAME: usize = 63;
/// The constraint that fences tile seqs (see the migration).
const TILE_SEQ_CONSTRAINT: &str = "pixel_events_tile_seq";

/// Batches up to this size go as one `INSERT ... SELECT FROM UNNEST` (one round trip), larger ones
/// through `COPY` (five round trips, but a third less time per event). Measured on loopback with
/// `synchronous_commit=off`, so without the fsync that dominates small batches: for 1 event UNNEST
/// 0.24 ms, COPY 0.5 ms; for 100 both 1.2 ms; for 1,000 9-10 ms against 8 ms; for 8,192 71 ms
/// against 52 ms. A multi-row `INSERT ... VALUES` was slower than both at every size.
const UNNEST_MAX_BATCH: usize = 128;

/// Appends a batch in one statement, so one implicit transaction: the columns travel as eight
/// arrays, and the largest id written comes back in the same round trip.
///
/// The batch's tile fences are read `FOR SHARE` (in tile order, as [`RAISE_FENCES`] locks them, so
/// the two never deadlock) and nothing is written if one of them is newer than the writer's
/// epoch (`$10`): then no id comes back.
const INSERT_EVENTS: &str = "\
    WITH fences AS MATERIALIZED ( \
        SELECT f.epoch FROM tile_fences f \
        WHERE (f.tx, f.ty) IN (SELECT * FROM UNNEST($1::int4[], $2::int4[])) \
        ORDER BY f.tx, f.ty FOR SHARE), \
    written AS ( \
        INSERT INTO pixel_events (tx, ty, x, y, color, user_id, placed_at, tile_seq, action_id) \
        SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::int4[], $4::int4[], $5::int2[], \
                             $6::int8[], $7::int8[], $8::int8[], $9::int8[]) \
        WHERE NOT EXISTS (SELECT 1 FROM fences WHERE epoch > $10) \
        RETURNING id) \
    SELECT MAX(id) FROM written";

/// Locks a batch's tile fences for a `COPY` (which cannot check them itself) and returns the
/// tiles fenced against the writer's epoch (`$3`).
const LOCK_FENCES: &str = "\
    WITH fences AS MATERIALIZED ( \
        SELECT f.tx, f.ty, f.epoch FROM tile_fences f \
        WHERE (f.tx, f.ty) IN (SELECT * FROM UNNEST($1::int4[], $2::int4[])) \
        ORDER BY f.tx, f.ty FOR SHARE) \
    SELECT tx, ty FROM fences WHERE epoch > $3";

/// The tiles of a batch fenced against the writer's epoch (`$3`), after a refused insert.
const FENCED_TILES: &str = "\
    SELECT f.tx, f.ty FROM tile_fences f \
    WHERE (f.tx, f.ty) IN (SELECT * FROM UNNEST($1::int4[], $2::int4[])) AND f.epoch > $3";

/// Locks tiles' fences in tile order (see [`INSERT_EVENTS`]), waiting for the writes under way.
const LOCK_FENCES_FOR_RAISE: &str = "\
    SELECT 1 FROM tile_fences \
    WHERE (tx, ty) IN (SELECT * FROM UNNEST($1::int4[], $2::int4[])) \
    ORDER BY tx, ty FOR UPDATE";

/// Raises tiles' fences to an epoch (never lowers them).
const RAISE_FENCES: &str = "\
    UPDATE tile_fences SET epoch = $3 \
    WHERE (tx, ty) IN (SELECT * FROM UNNEST($1::int4[], $2::int4[])) AND epoch < $3";

/// Ends the transaction's session should its client stall inside it (a writer paused by
/// `kill -STOP`, or frozen with its host), so the fence locks it holds do not hold up the tiles'
/// new owner: PostgreSQL ends a session idle in a transaction this long, and its write rolls back.
/// The writers' transactions wait on nothing but PostgreSQL, so a healthy one is never near it.
const WRITER_STALL_LIMIT: &str = "SET LOCAL idle_in_transaction_session_timeout = '2s'";

/// Creates the fence rows of every tile of a canvas (`$1` by `$2` tiles) that lacks one.
pub(crate) const CREATE_FENCES: &str = "\
    INSERT INTO tile_fences (tx, ty, epoch) \
    SELECT tx, ty, 0 FROM generate_series(0, $1 - 1) AS tx, generate_series(0, $2 - 1) AS ty \
    ON CONFLICT (tx, ty) DO NOTHING";

/// Appends a large batch, in the binary format of [`copy_binary`].
const COPY_EVENTS: &str = "\
    COPY pixel_events (tx, ty, x, y, color, user_id, placed_at, tile_seq, action_id) \
    FROM STDIN WITH (FORMAT binary)";

/// The last id this session drew, after a `COPY`: the largest id of the batch, since a session
/// draws ids in increasing order and `currval` ignores other sessions.
const LAST_COPIED_ID: &str = "SELECT currval('pixel_events_id_seq')";

/// Saves snapshots in one statement; a snapshot only ever replaces an older one.
const UPSERT_SNAPSHOTS: &str = "\
    INSERT INTO tile_snapshots (tx, ty, seq, data, updated_at) \
    SELECT tx, ty, seq, data, $5 \
    FROM UNNEST($1::int4[], $2::int4[], $3::int8[], $4::bytea[]) AS s(tx, ty, seq, data) \
    ON CONFLICT (tx, ty) DO UPDATE \
    SET seq = EXCLUDED.seq, data = EXCLUDED.data, updated_at = EXCLUDED.updated_at \
    WHERE tile_snapshots.seq < EXCLUDED.seq";

/// The snapshots of the tiles given as two arrays.
const SELECT_SNAPSHOTS: &str = "\
    SELECT s.tx, s.ty, s.seq, s.data \
    FROM UNNEST($1::int4[], $2::int4[]) AS o(tx, ty) \
    JOIN tile_snapshots s ON s.tx = o.tx AND s.ty = o.ty";

/// The events of each given tile after the given seq, one row per tile with the events' columns
/// as arrays (in no particular order: they are sorted by seq in memory). One row per event cost
/// the client more than finding the events cost the database: decoding 1M such rows took 1.5 s,
/// while the whole restore of 1M events this way takes 1.1 to 1.4 s.
const SELECT_EVENTS_AFTER: &str = "\
    SELECT o.tx, o.ty, e.ids, e.seqs, e.xs, e.ys, e.colors \
    FROM UNNEST($1::int4[], $2::int4[], $3::int8[]) AS o(tx, ty, after) \
    CROSS JOIN LATERAL ( \
        SELECT array_agg(id) AS ids, array_agg(tile_seq) AS seqs, array_agg(x) AS xs, \
               array_agg(y) AS ys, array_agg(color) AS colors \
        FROM pixel_events \
        WHERE tx = o.tx AND ty = o.ty AND tile_seq > o.after) AS e \
    WHERE e.ids IS NOT NULL";

/// A row of [`SELECT_EVENTS_AFTER`]: a tile and its events' ids, seqs, x, y and colours.
type TileEventsRow = (i32, i32, Vec<i64>, Vec<i64>, Vec<i32>, Vec<i32>, Vec<i16>);

/// The cluster store (see the module documentation).
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// The connection [`INSERT_EVENTS`] runs on.
    appender: Arc<Appender>,
    schema: String,
}

/// The one connection that appends events (a shard has one write in flight at a time), held
/// outside the pool:
///
/// - sqlx pings every pooled connection when it is returned, so each group commit cost a second
///   round trip and a second wake-up of its backend (5.5% of a busy shard's samples,
///   `bench/RESULTS.md` section 18). This one is pinged only after [`PING_IF_IDLE_FOR`] of rest
///   (the database may have restarted meanwhile).
/// - It plans [`INSERT_EVENTS`] once (`plan_cache_mode = force_generic_plan`): left to choose,
///   PostgreSQL kept a custom plan of it, planned again at every group commit (35% of its CPU at
///   200 placements/s, section 17). The other queries keep custom plans, which their parameters
///   (time windows, a user's history) need.
///
/// It is opened with the store. A use that fails for any reason but the database refusing the
/// statement, or that is abandoned half way, drops it, and the next append opens a fresh one.
#[derive(Debug)]
struct Appender {
    options: PgConnectOptions,
    set_search_path: Arc<str>,
    /// The connection between appends, and when it was last used.
    idle: tokio::sync::Mutex<Option<(PgConnection, Instant)>>,
}

impl Appender {
    /// Runs `query` on the appender's connection, opening one if need be.
    async fn fetch_one<T>(
        &self,
        query: sqlx::query::QueryScalar<'_, sqlx::Postgres, T, sqlx::postgres::PgArguments>,
    ) -> Result<T, sqlx::Error>
    where
        T: Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let mut idle = self.idle.lock().await;
        // Taken out while in use: if this future is dropped half way, so is the connection.
        let mut connection = match idle.take() {
            Some((mut connection, since)) => {
                if since.elapsed() >= PING_IF_IDLE_FOR && connection.ping().await.is_err() {
                    self.open().await?
                } else {
                    connection
                }
            }
            None => self.open().await?,
        };
        let result = query.fetch_one(&mut connection).await;
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            *idle = Some((connection, Instant::now()));
        }
        result
    }

    async fn open(&self) -> Result<PgConnection, sqlx::Error> {
        let mut connection =
            tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&self.options))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
        connection.execute(&*self.set_search_path).await?;
        Ok(connection)
    }

    async fn close(&self) {
        if let Some((connection, _)) = self.idle.lock().await.take() {
            let _ = connection.close().await;
        }
    }
}

impl PgStore {
    /// Connects to PostgreSQL at `url`, creates `schema` when missing, makes it the only schema of
    /// every pooled connection's `search_path` and applies the migrations in it.
    ///
    /// `schema` must be 1 to 63 ASCII letters, digits and underscores, not starting with `pg_`
    /// ([`StoreError::InvalidSchema`] otherwise). It is used as given, case included.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        validate_schema(schema)?;
        let quoted = format!("\"{schema}\"");
        let set_search_path: Arc<str> = format!("SET search_path TO {quoted}").into();
        // Named in `pg_stat_activity` by their schema: which cluster each connection serves.
        let options = PgConnectOptions::from_str(url)?.application_name(&format!("place:{schema}"));
        let pool = {
            let set_search_path = Arc::clone(&set_search_path);
            PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IF_IDLE_FOR {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(move |conn, _meta| {
                    let statement = Arc::clone(&set_search_path);
                    Box::pin(async move {
                        conn.execute(&*statement).await?;
                        Ok(())
                    })
                })
                .connect_with(options.clone())
                .await?
        };
        create_schema(&pool, &quoted).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let appender = Appender {
            options: options.options([("plan_cache_mode", "force_generic_plan")]),
            set_search_path,
            idle: tokio::sync::Mutex::new(None),
        };
        // Opened now, so a store that connected can append (and its backend is there to see).
        let connection = appender.open().await?;
        *appender.idle.lock().await = Some((connection, Instant::now()));
        let appender = Arc::new(appender);
        info!(schema, "PostgreSQL store ready");
        Ok(Self {
            pool,
            appender,
            schema: schema.to_owned(),
        })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Raises the ownership fence of `tiles` to `epoch` (see the `0004_tile_fences` migration):
    /// waits for the writes of these tiles under way to commit, and from then on refuses every
    /// write of them at an older epoch. A tile's new owner calls it before loading the tile.
    pub async fn raise_fences(&self, tiles: &[TileId], epoch: u64) -> Result<(), StoreError> {
        let (tx, ty) = tile_columns(tiles);
        let mut transaction = self.pool.begin().await?;
        sqlx::query(WRITER_STALL_LIMIT)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(LOCK_FENCES_FOR_RAISE)
            .bind(&tx)
            .bind(&ty)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(RAISE_FENCES)
            .bind(&tx)
            .bind(&ty)
            .bind(epoch_to_db(epoch))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Appends placements to the event log, all or nothing, in one transaction (one commit, one
    /// fsync), and returns the largest id written (0 for an empty batch, which touches nothing).
    /// Each event's tile is derived from its coordinates. Batches up to 128 events go as one
    /// `INSERT` (one round trip), larger ones through `COPY`.
    ///
    /// Ids grow with time but, with several shards writing, are not consecutive, and only the
    /// order of seqs within a tile means anything.
    ///
    /// Fails with [`StoreError::Conflict`] when any `(tile, seq)` of the batch is already stored
    /// (or appears twice in it), and nothing of the batch is written. Usually another shard owns
    /// the tile now; but a batch whose commit succeeded while its answer was lost (the connection
    /// broke) also conflicts when retried, so re-read the tile rather than assume.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<i64, StoreError> {
        self.append_events_at_epoch(events, FENCE_IGNORED).await
    }

    /// [`PgStore::append_events`] for a shard at ring epoch `epoch`: fails with
    /// [`StoreError::Fenced`], writing nothing, when a tile of the batch has moved to another
    /// shard at a newer epoch (its fence was raised, see [`PgStore::raise_fences`]).
    pub async fn append_events_at_epoch(
        &self,
        events: &[NewEvent],
        epoch: u64,
    ) -> Result<i64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let rows: Vec<EventRow> = events.iter().map(EventRow::from).collect();
        let epoch = epoch_to_db(epoch);
        let written = if rows.len() <= UNNEST_MAX_BATCH {
            self.insert_events(&rows, epoch).await
        } else {
            self.copy_events(&rows, epoch).await
        };
        match written.map_err(conflict_or_database)? {
            Written::Last(id) => Ok(id),
            Written::Fenced(tiles) => Err(StoreError::Fenced(tiles)),
        }
    }

    /// Appends a small batch with one `INSERT` of arrays.
    async fn insert_events(&self, rows: &[EventRow], epoch: i64) -> Result<Written, sqlx::Error> {
        let column = |f: fn(&EventRow) -> i32| rows.iter().map(f).collect::<Vec<_>>();
        let column64 = |f: fn(&EventRow) -> i64| rows.iter().map(f).collect::<Vec<_>>();
        let last = sqlx::query_scalar(INSERT_EVENTS)
            .bind(column(|r| r.tx))
            .bind(column(|r| r.ty))
            .bind(column(|r| r.x))
            .bind(column(|r| r.y))
            .bind(rows.iter().map(|r| r.color).collect::<Vec<_>>())
            .bind(column64(|r| r.user_id))
            .bind(column64(|r| r.placed_at))
            .bind(column64(|r| r.tile_seq))
            .bind(rows.iter().map(|r| r.action_id).collect::<Vec<_>>())
            .bind(epoch);
        let last: Option<i64> = self.appender.fetch_one(last).await?;
        match last {
            Some(id) => Ok(Written::Last(id)),
            None => {
                let fenced: Vec<(i32, i32)> = sqlx::query_as(FENCED_TILES)
                    .bind(column(|r| r.tx))
                    .bind(column(|r| r.ty))
                    .bind(epoch)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(Written::Fenced(fenced_tiles(&fenced)))
            }
        }
    }

    /// Appends a large batch with `COPY`, in a transaction that first locks the batch's fences and
    /// afterwards reads the last id.
    async fn copy_events(&self, rows: &[EventRow], epoch: i64) -> Result<Written, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(WRITER_STALL_LIMIT).execute(&mut *tx).await?;
        let fenced: Vec<(i32, i32)> = sqlx::query_as(LOCK_FENCES)
            .bind(rows.iter().map(|r| r.tx).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.ty).collect::<Vec<_>>())
            .bind(epoch)
            .fetch_all(&mut *tx)
            .await?;
        if !fenced.is_empty() {
            tx.rollback().await?;
            return Ok(Written::Fenced(fenced_tiles(&fenced)));
        }
        let mut copy = tx.copy_in_raw(COPY_EVENTS).await?;
        copy.send(copy_binary(rows)).await?;
        copy.finish().await?;
        let last: i64 = sqlx::query_scalar(LAST_COPIED_ID)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Written::Last(last))
    }

    /// Saves tile snapshots, all or nothing. A snapshot replaces a tile's stored one only if its
    /// seq is higher, so a slow or stale writer never moves a tile backwards; of several
    /// snapshots of one tile in `snapshots`, the highest seq counts.
    ///
    /// `through_event_id` is ignored: each snapshot names its tile's seq and restoring replays the
    /// tile's events after that seq, so no global marker is needed. It is taken to keep the shape
    /// of [`crate::EmbeddedStore::write_checkpoint`].
    pub async fn write_checkpoint(
        &self,
        snapshots: &[TileSnapshotRecord],
        through_event_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _ = through_event_id;
        let mut latest: Vec<&TileSnapshotRecord> = snapshots.iter().collect();
        latest.sort_unstable_by_key(|s| (s.tile, std::cmp::Reverse(s.seq)));
        latest.dedup_by_key(|s| s.tile);
        if latest.is_empty() {
            return Ok(());
        }
        let tx: Vec<i32> = latest.iter().map(|s| i32::from(s.tile.tx)).collect();
        let ty: Vec<i32> = latest.iter().map(|s| i32::from(s.tile.ty)).collect();
        let seq: Vec<i64> = latest.iter().map(|s| seq_to_db(s.seq)).collect();
        let data: Vec<&[u8]> = latest.iter().map(|s| s.data.as_slice()).collect();
        sqlx::query(UPSERT_SNAPSHOTS)
            .bind(tx)
            .bind(ty)
            .bind(seq)
            .bind(data)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Restores the tiles `owned` says this process owns: each from its snapshot and its events
    /// after the snapshot's seq, which must follow on without a gap ([`StoreError::Corrupt`]
    /// otherwise). Returns every tile of the canvas in `geometry.tile_index` order, the tiles not
    /// owned blank at seq 0. `last_event_id` is the largest id among the replayed events (0 when
    /// none).
    ///
    /// Two queries, streamed: the owned tiles' snapshots, then their events after those seqs.
    pub async fn load_canvas(
        &self,
        geometry: CanvasGeometry,
        owned: &(dyn Fn(TileId) -> bool + Sync),
    ) -> Result<RestoredCanvas, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let restored = load_canvas_on(&mut conn, geometry, owned).await?;
        info!(
            events_replayed = restored.events_replayed,
            last_event_id = restored.last_event_id,
            "tiles restored"
        );
        Ok(restored)
    }

    /// Closes the pool, waiting for queries in flight.
    pub async fn close(&self) {
        self.appender.close().await;
        self.pool.close().await;
    }
}

/// [`PgStore::load_canvas`] on one connection (or inside a transaction, for a consistent read:
/// [`PgStore::read_canvas`]).
pub(crate) async fn load_canvas_on(
    conn: &mut sqlx::PgConnection,
    geometry: CanvasGeometry,
    owned: &(dyn Fn(TileId) -> bool + Sync),
) -> Result<RestoredCanvas, StoreError> {
    let mut tiles: Vec<Tile> = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    let owned: Vec<TileId> = geometry.tiles().filter(|&t| owned(t)).collect();
    let owned_tx: Vec<i32> = owned.iter().map(|t| i32::from(t.tx)).collect();
    let owned_ty: Vec<i32> = owned.iter().map(|t| i32::from(t.ty)).collect();

    let mut snapshots = sqlx::query(SELECT_SNAPSHOTS)
        .bind(&owned_tx)
        .bind(&owned_ty)
        .fetch(&mut *conn);
    while let Some(row) = snapshots.try_next().await? {
        let tile = tile_of(row.try_get("tx")?, row.try_get("ty")?, geometry)?;
        let pixels = decompress_tile(row.try_get::<&[u8], _>("data")?)
            .map_err(|e| StoreError::Corrupt(format!("snapshot of tile {tile}: {e}")))?;
        let seq = seq_from_db(row.try_get("seq")?)?;
        tiles[geometry.tile_index(tile)] = Tile::from_pixels(seq, pixels);
    }
    drop(snapshots);

    let after: Vec<i64> = owned
        .iter()
        .map(|&t| seq_to_db(tiles[geometry.tile_index(t)].seq()))
        .collect();
    let mut replayed = 0u64;
    let mut last_event_id = 0;
    let mut rows = sqlx::query_as::<_, TileEventsRow>(SELECT_EVENTS_AFTER)
        .bind(&owned_tx)
        .bind(&owned_ty)
        .bind(&after)
        .fetch(&mut *conn);
    while let Some((tx, ty, ids, seqs, xs, ys, colors)) = rows.try_next().await? {
        let tile_id = tile_of(tx, ty, geometry)?;
        let mut events = stored_changes(geometry, tile_id, &ids, &seqs, &xs, &ys, &colors)?;
        let tile = &mut tiles[geometry.tile_index(tile_id)];
        replayed += replay(tile_id, tile, &mut events)?;
        last_event_id = ids.iter().copied().fold(last_event_id, i64::max);
    }
    drop(rows);
    Ok(RestoredCanvas {
        tiles,
        last_event_id,
        events_replayed: replayed,
    })
}

/// Refuses schema names that would need escaping, be truncated or are reserved.
fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let valid = (1..=MAX_SCHEMA_NAME).contains(&schema.len())
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !schema.to_ascii_lowercase().starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidSchema(schema.to_owned()))
    }
}

/// `CREATE SCHEMA IF NOT EXISTS`, tolerating another process creating it at the same moment
/// (which PostgreSQL reports as a unique violation on its catalogue).
async fn create_schema(pool: &PgPool, quoted: &str) -> Result<(), StoreError> {
    match pool
        .execute(&*format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
        .await
    {
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("23505" | "42P06")) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

/// An event as its row in `pixel_events`.
#[derive(Debug, Clone, Copy)]
struct EventRow {
    tx: i32,
    ty: i32,
    x: i32,
    y: i32,
    color: i16,
    user_id: i64,
    placed_at: i64,
    tile_seq: i64,
    action_id: Option<i64>,
}

impl From<&NewEvent> for EventRow {
    /// Coordinates are below `place_tiles::MAX_SIDE` (65,536): the caller located them on the
    /// canvas, so they fit an `INT`.
    fn from(e: &NewEvent) -> Self {
        Self {
            tx: (e.x / TILE_SIZE) as i32,
            ty: (e.y / TILE_SIZE) as i32,
            x: e.x as i32,
            y: e.y as i32,
            color: i16::from(e.color),
            user_id: e.user_id,
            placed_at: e.placed_at,
            tile_seq: seq_to_db(e.tile_seq),
            action_id: e.action_id,
        }
    }
}

/// Rows in `COPY`'s binary format: a signature, flags and header extension length (both 0), then
/// per row its field count and each field as its length (-1 for NULL) and big-endian value, then
/// -1.
fn copy_binary(rows: &[EventRow]) -> Vec<u8> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    const ROW_LEN: usize = 2 + 4 * (4 + 4) + (4 + 2) + 4 * (4 + 8);
    let mut out = Vec::with_capacity(SIGNATURE.len() + 8 + rows.len() * ROW_LEN + 2);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&[0; 8]);
    for r in rows {
        out.extend_from_slice(&9i16.to_be_bytes());
        for v in [r.tx, r.ty, r.x, r.y] {
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&2i32.to_be_bytes());
        out.extend_from_slice(&r.color.to_be_bytes());
        for v in [r.user_id, r.placed_at, r.tile_seq] {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        match r.action_id {
            Some(v) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// One stored event of a tile, waiting to be replayed in seq order.
#[derive(Debug, Clone, Copy)]
struct StoredChange {
    seq: u64,
    id: i64,
    change: PixelChange,
}

/// A tile's stored events as changes, checking each lies in the tile.
fn stored_changes(
    geometry: CanvasGeometry,
    tile: TileId,
    ids: &[i64],
    seqs: &[i64],
    xs: &[i32],
    ys: &[i32],
    colors: &[i16],
) -> Result<Vec<StoredChange>, StoreError> {
    let n = ids.len();
    if [seqs.len(), xs.len(), ys.len(), colors.len()] != [n; 4] {
        return Err(StoreError::Corrupt(format!(
            "the events of tile {tile} came back with columns of different lengths"
        )));
    }
    (0..n)
        .map(|i| {
            let (id, x, y, color) = (ids[i], xs[i], ys[i], colors[i]);
            let located = u32::try_from(x)
                .ok()
                .zip(u32::try_from(y).ok())
                .and_then(|(x, y)| geometry.locate(x, y));
            let (lx, ly) = match located {
                Some((t, lx, ly)) if t == tile => (lx, ly),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "event {id} at ({x},{y}) is stored as one of tile {tile}"
                    )))
                }
            };
            let color = u8::try_from(color)
                .map_err(|_| StoreError::Corrupt(format!("event {id} has colour {color}")))?;
            Ok(StoredChange {
                seq: seq_from_db(seqs[i])?,
                id,
                change: PixelChange { lx, ly, color },
            })
        })
        .collect()
}

/// Applies a tile's events after its snapshot, checking they follow on from its seq one by one.
fn replay(
    tile_id: TileId,
    tile: &mut Tile,
    events: &mut [StoredChange],
) -> Result<u64, StoreError> {
    // Usually already in order, which makes this sort linear.
    events.sort_unstable_by_key(|e| e.seq);
    for e in events.iter() {
        if e.seq != tile.seq() + 1 {
            return Err(StoreError::Corrupt(format!(
                "event {} has seq {} but tile {tile_id} is at {}",
                e.id,
                e.seq,
                tile.seq()
            )));
        }
        tile.apply(e.change);
    }
    Ok(events.len() as u64)
}

/// A tile named by a stored row, which must lie on the canvas.
fn tile_of(tx: i32, ty: i32, geometry: CanvasGeometry) -> Result<TileId, StoreError> {
    u16::try_from(tx)
        .ok()
        .zip(u16::try_from(ty).ok())
        .map(|(tx, ty)| TileId::new(tx, ty))
        .filter(|&t| geometry.contains_tile(t))
        .ok_or_else(|| StoreError::Corrupt(format!("tile {tx}:{ty} is outside the canvas")))
}

/// Seqs are `u64` in memory and `BIGINT` in the database; no tile reaches 2^63 placements.
fn seq_to_db(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative tile seq {seq}")))
}

/// A write refused by the tile seq fence becomes [`StoreError::Conflict`].
/// The epoch that passes every fence: for writers outside the ring (tools, tests).
const FENCE_IGNORED: u64 = i64::MAX as u64;

/// What an append did.
enum Written {
    /// Wrote the batch; the largest id.
    Last(i64),
    /// Wrote nothing: these tiles are fenced.
    Fenced(Vec<TileId>),
}

/// An epoch as PostgreSQL stores it (epochs never come near `i64::MAX`).
fn epoch_to_db(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// Tiles as two columns of coordinates.
fn tile_columns(tiles: &[TileId]) -> (Vec<i32>, Vec<i32>) {
    tiles
        .iter()
        .map(|t| (i32::from(t.tx), i32::from(t.ty)))
        .unzip()
}

/// Fenced tiles as the database names them.
fn fenced_tiles(rows: &[(i32, i32)]) -> Vec<TileId> {
    rows.iter()
        .map(|&(tx, ty)| TileId::new(tx as u16, ty as u16))
        .collect()
}

fn conflict_or_database(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.constraint() == Some(TILE_SEQ_CONSTRAINT) {
            let detail = db
                .try_downcast_ref::<PgDatabaseError>()
                .and_then(PgDatabaseError::detail)
                .unwrap_or("");
            return StoreError::Conflict(format!(
                "a tile seq of this batch is already stored (another shard owns the tile?): {detail}"
            ));
        }
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["place", "place_dev_1", "T3st", &"a".repeat(63)] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "pg_temp",
            "PG_x",
            "a-b",
            "a b",
            "x\"y",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_schema(bad), Err(StoreError::InvalidSchema(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn replay_refuses_gaps_and_sorts() {
        let change = PixelChange {
            lx: 1,
            ly: 2,
            color: 3,
        };
        let at = |seq| StoredChange {
            seq,
            id: seq as i64,
            change,
        };
        let mut tile = Tile::new();
        let applied = replay(TileId::new(0, 0), &mut tile, &mut [at(2), at(1)]).expect("in order");
        assert_eq!((applied, tile.seq(), tile.get(1, 2)), (2, 2, 3));
        assert!(matches!(
            replay(TileId::new(0, 0), &mut tile, &mut [at(4)]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
