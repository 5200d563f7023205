//! What the timelapse keeps and reads, as queries of [`Store`] written once for both engines:
//! canvas snapshots at exact positions of the log, the events of a time window, and render jobs.
//!
//! - **Reading the canvas for a snapshot** ([`Store::read_canvas`]) is the restore of
//!   start-up (the shards' tile checkpoints, then the events after them), run inside one read
//!   transaction together with `MAX(placed_at)`: so the pixels are exactly every event up to each
//!   tile's seq, and `covers_until` is the latest time among them. Nothing is read from a
//!   shard's memory, so the snapshot is exact whatever races the live canvas.
//! - **Events of a window** ([`Store::visit_events`]): those placed in `(after, until]`
//!   inside a rectangle, through the `placed_at` index, streamed to a callback (never collected),
//!   in no particular order: the renderer applies them by tile seq itself.
//! - **Jobs** (`timelapse_jobs`): admitted with the per-owner and queue limits checked in one
//!   step, claimed by whoever renders them (a claim counts an attempt; a job redelivered after a
//!   worker died is claimed again and restarts), and finished with the result in the row, so any
//!   edge serves the download. Progress and results are fenced by the attempt, so a renderer
//!   that lost its job to another cannot overwrite it.

use futures_util::TryStreamExt;
use place_tiles::{CanvasGeometry, TILE_SIZE};

use crate::moderation::Rect;
use crate::store::{on_engine, Engine};
use crate::types::{RestoredCanvas, StoreError};
use crate::Store;

/// The canvas at one position of the log, as [`Store::read_canvas`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanvasRead {
    /// `width * height` palette indices, row-major.
    pub pixels: Vec<u8>,
    /// For each tile (in `CanvasGeometry::tile_index` order), the seq of its last event included.
    pub tile_seqs: Vec<u64>,
    /// The latest `placed_at` among the events included (`None` for an empty log).
    pub covers_until: Option<i64>,
    /// Events included (the sum of the tile seqs).
    pub event_count: u64,
}

/// A snapshot to store: the fields of [`SnapshotRecord`] without its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    /// When it was taken, epoch ms.
    pub taken_at: i64,
    /// The latest `placed_at` among the events it includes.
    pub covers_until: i64,
    /// Events it includes.
    pub event_count: u64,
    /// Canvas width.
    pub width: u32,
    /// Canvas height.
    pub height: u32,
    /// Tile seqs, u64 little-endian in tile index order, raw DEFLATE.
    pub tile_seqs: Vec<u8>,
    /// Pixels, row-major palette indices, raw DEFLATE.
    pub pixels: Vec<u8>,
}

/// A stored snapshot, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: i64,
    /// When it was taken, epoch ms.
    pub taken_at: i64,
    /// The latest `placed_at` among the events it includes: it serves frames at or after this.
    pub covers_until: i64,
    /// Events it includes.
    pub event_count: u64,
}

/// A stored snapshot with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// What the listing shows.
    pub info: SnapshotInfo,
    /// Canvas width.
    pub width: u32,
    /// Canvas height.
    pub height: u32,
    /// See [`NewSnapshot::tile_seqs`].
    pub tile_seqs: Vec<u8>,
    /// See [`NewSnapshot::pixels`].
    pub pixels: Vec<u8>,
}

/// One event as a frame needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedEvent {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Palette index.
    pub color: u8,
    /// The seq it gave its tile: among a pixel's events, the highest wins.
    pub tile_seq: u64,
}

/// Where a render job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for a renderer.
    Queued,
    /// Being rendered (or its renderer died and it waits to be delivered again).
    Running,
    /// Rendered; the result is stored.
    Done,
    /// Gave up; `error` says why.
    Failed,
}

impl JobStatus {
    /// As stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("job status {other:?}"))),
        })
    }
}

/// A job to admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Its id (random, unguessable: whoever has it may read the job).
    pub id: String,
    /// Who asked.
    pub owner_id: i64,
    /// What to render, as JSON.
    pub params: String,
    /// Frames it will have.
    pub frames_total: u32,
    /// Now, epoch ms.
    pub created_at: i64,
}

/// Whether a job was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Stored as queued.
    Accepted,
    /// The owner already has a job queued or running.
    OwnerBusy,
    /// As many jobs as allowed are queued or running.
    QueueFull,
    /// The owner has started as many jobs as allowed in the quota's window.
    OwnerQuota,
}

/// The limits a new job is admitted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Jobs queued or running at once, over the whole deployment.
    pub max_active: i64,
    /// Jobs one owner may start since [`JobLimits::window_start_ms`].
    pub max_per_owner: i64,
    /// The start of the per-owner window, epoch ms.
    pub window_start_ms: i64,
}

/// A stored job, without its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// Who asked.
    pub owner_id: i64,
    /// What to render, as JSON.
    pub params: String,
    /// Where it is.
    pub status: JobStatus,
    /// Frames rendered by the current attempt.
    pub frames_done: u32,
    /// Frames in all.
    pub frames_total: u32,
    /// Claims so far (1 while the first renderer works on it).
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// The result's media type, once done.
    pub content_type: Option<String>,
    /// The result's size in bytes, once done.
    pub result_bytes: Option<i64>,
    /// Epoch ms.
    pub created_at: i64,
    /// When the current attempt started.
    pub started_at: Option<i64>,
    /// When it was done or failed.
    pub finished_at: Option<i64>,
}

/// Why a job that was not admitted was refused: the owner's own reasons first.
fn refusal(owner_busy: bool, owner_recent: i64, limits: &JobLimits) -> Admission {
    if owner_busy {
        Admission::OwnerBusy
    } else if owner_recent >= limits.max_per_owner {
        Admission::OwnerQuota
    } else {
        Admission::QueueFull
    }
}

/// A row of [`JOB_COLUMNS`].
type JobRow = (
    String,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
);

fn job_record(r: JobRow) -> Result<JobRecord, StoreError> {
    Ok(JobRecord {
        id: r.0,
        owner_id: r.1,
        params: r.2,
        status: JobStatus::parse(&r.3)?,
        frames_done: r.4 as u32,
        frames_total: r.5 as u32,
        attempts: r.6 as u32,
        error: r.7,
        content_type: r.8,
        result_bytes: r.9,
        created_at: r.10,
        started_at: r.11,
        finished_at: r.12,
    })
}

/// A row of the snapshot listing.
type SnapshotInfoRow = (i64, i64, i64, i64);

fn snapshot_info(r: SnapshotInfoRow) -> SnapshotInfo {
    SnapshotInfo {
        id: r.0,
        taken_at: r.1,
        covers_until: r.2,
        event_count: r.3 as u64,
    }
}

/// The snapshot taken last.
const LATEST_SNAPSHOT: &str = "SELECT id, taken_at, covers_until, event_count \
     FROM timelapse_snapshots ORDER BY taken_at DESC, id DESC LIMIT 1";

/// Snapshots a listing shows at most (the newest): over a year at one per 10 minutes is 52,560.
pub const SNAPSHOT_LIST_MAX: i64 = 100_000;

/// The restored tiles as one row-major canvas, with their seqs.
fn canvas_read(
    geometry: CanvasGeometry,
    restored: RestoredCanvas,
    covers_until: Option<i64>,
) -> CanvasRead {
    let width = geometry.width() as usize;
    let mut pixels = vec![0u8; width * geometry.height() as usize];
    let mut tile_seqs = Vec::with_capacity(geometry.tile_count());
    for tile_id in geometry.tiles() {
        let tile = &restored.tiles[geometry.tile_index(tile_id)];
        tile_seqs.push(tile.seq());
        let (x0, y0) = tile_id.origin();
        let (w, h) = geometry.tile_dims(tile_id);
        for ly in 0..h as usize {
            let row = &tile.pixels()[ly * TILE_SIZE as usize..][..w as usize];
            let at = (y0 as usize + ly) * width + x0 as usize;
            pixels[at..at + w as usize].copy_from_slice(row);
        }
    }
    CanvasRead {
        pixels,
        event_count: tile_seqs.iter().sum(),
        tile_seqs,
        covers_until,
    }
}

/// The bounds of a rectangle as SQL parameters: `x >= a AND x < b AND y >= c AND y < d`.
fn rect_bounds(rect: Rect) -> [i64; 4] {
    [
        i64::from(rect.x),
        i64::from(rect.x) + i64::from(rect.width),
        i64::from(rect.y),
        i64::from(rect.y) + i64::from(rect.height),
    ]
}

fn timed_event(x: i64, y: i64, color: i64, seq: i64) -> Result<TimedEvent, StoreError> {
    match (
        u32::try_from(x),
        u32::try_from(y),
        u8::try_from(color),
        u64::try_from(seq),
    ) {
        (Ok(x), Ok(y), Ok(color), Ok(tile_seq)) => Ok(TimedEvent {
            x,
            y,
            color,
            tile_seq,
        }),
        _ => Err(StoreError::Corrupt(format!(
            "event ({x},{y}) colour {color} seq {seq}"
        ))),
    }
}

/// Serialises job admissions in PostgreSQL (a transaction-scoped advisory lock's key); SQLite
/// runs one write transaction at a time by itself.
const ADMISSION_LOCK: i64 = 0x7469_6d65_6c61;

/// The columns of a [`JobRecord`], as [`JobRow`]'s types in both engines.
const JOB_COLUMNS: &str = "id, owner_id, params, status, CAST(frames_done AS BIGINT), \
     CAST(frames_total AS BIGINT), CAST(attempts AS BIGINT), error, content_type, result_size, \
     created_at, started_at, finished_at";

/// The latest `placed_at` of the log.
pub(crate) const COVERS_UNTIL: &str = "SELECT MAX(placed_at) FROM pixel_events";

impl Store {
    /// The whole canvas at one exact position of the log (see the module documentation): one
    /// read transaction (repeatable read in PostgreSQL), so the tiles and `covers_until` see the
    /// same commits.
    pub async fn read_canvas(&self, geometry: CanvasGeometry) -> Result<CanvasRead, StoreError> {
        let (restored, covers_until) = match &self.engine {
            Engine::Sqlite(e) => e.read_canvas(geometry).await?,
            Engine::Postgres(e) => {
                let mut tx = e.pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                let restored =
                    crate::postgres::load_canvas_on(&mut tx, geometry, &|_| true).await?;
                let covers_until: Option<i64> =
                    sqlx::query_scalar(COVERS_UNTIL).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                (restored, covers_until)
            }
        };
        Ok(canvas_read(geometry, restored, covers_until))
    }

    /// Stores a snapshot unless another was taken less than `min_gap_ms` before it (in
    /// PostgreSQL the table is locked against other takers meanwhile); its id, or `None` when
    /// skipped.
    pub async fn insert_snapshot(
        &self,
        s: &NewSnapshot,
        min_gap_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        const INSERT: &str = "INSERT INTO timelapse_snapshots \
             (taken_at, covers_until, event_count, width, height, tile_seqs, pixels) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS \
             (SELECT 1 FROM timelapse_snapshots WHERE taken_at > $8) RETURNING id";
        let lock = self.postgres().is_some();
        Ok(on_engine!(self, e => {
            let mut tx = e.pool.begin().await?;
            if lock {
                sqlx::query("LOCK TABLE timelapse_snapshots IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let id: Option<i64> = sqlx::query_scalar(INSERT)
                .bind(s.taken_at)
                .bind(s.covers_until)
                .bind(s.event_count as i64)
                .bind(i64::from(s.width))
                .bind(i64::from(s.height))
                .bind(&s.tile_seqs)
                .bind(&s.pixels)
                .bind(s.taken_at - min_gap_ms)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        }))
    }

    /// The snapshot taken last.
    pub async fn latest_snapshot(&self) -> Result<Option<SnapshotInfo>, StoreError> {
        let row: Option<SnapshotInfoRow> = on_engine!(self, e => sqlx::query_as(LATEST_SNAPSHOT)
            .fetch_optional(&e.pool)
            .await)?;
        Ok(row.map(snapshot_info))
    }

    /// The snapshots, oldest position first (at most [`SNAPSHOT_LIST_MAX`], the newest).
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        const SQL: &str = "SELECT * FROM (SELECT id, taken_at, covers_until, event_count \
             FROM timelapse_snapshots ORDER BY covers_until DESC, id DESC LIMIT $1) s \
             ORDER BY covers_until, id";
        let rows: Vec<SnapshotInfoRow> = on_engine!(self, e => sqlx::query_as(SQL)
            .bind(SNAPSHOT_LIST_MAX)
            .fetch_all(&e.pool)
            .await)?;
        Ok(rows.into_iter().map(snapshot_info).collect())
    }

    /// One snapshot with its data.
    pub async fn snapshot(&self, id: i64) -> Result<Option<SnapshotRecord>, StoreError> {
        const SQL: &str = "SELECT id, taken_at, covers_until, event_count, \
             CAST(width AS BIGINT), CAST(height AS BIGINT), tile_seqs, pixels \
             FROM timelapse_snapshots WHERE id = $1";
        type SnapshotRow = (i64, i64, i64, i64, i64, i64, Vec<u8>, Vec<u8>);
        let row: Option<SnapshotRow> =
            on_engine!(self, e => sqlx::query_as(SQL).bind(id).fetch_optional(&e.pool).await)?;
        Ok(row.map(|r| SnapshotRecord {
            info: snapshot_info((r.0, r.1, r.2, r.3)),
            width: r.4 as u32,
            height: r.5 as u32,
            tile_seqs: r.6,
            pixels: r.7,
        }))
    }

    /// Calls `f` with every event placed in `(after_ms, until_ms]` inside `rect`, streamed, in
    /// no particular order; returns how many.
    pub async fn visit_events(
        &self,
        after_ms: i64,
        until_ms: i64,
        rect: Rect,
        f: &mut (dyn FnMut(TimedEvent) + Send),
    ) -> Result<u64, StoreError> {
        const SQL: &str = "SELECT CAST(x AS BIGINT), CAST(y AS BIGINT), \
             CAST(color AS BIGINT), tile_seq FROM pixel_events \
             WHERE placed_at > $1 AND placed_at <= $2 \
             AND x >= $3 AND x < $4 AND y >= $5 AND y < $6";
        let [x0, x1, y0, y1] = rect_bounds(rect);
        let mut n = 0;
        on_engine!(self, e => {
            let mut rows = sqlx::query_as::<_, (i64, i64, i64, i64)>(SQL)
                .bind(after_ms)
                .bind(until_ms)
                .bind(x0)
                .bind(x1)
                .bind(y0)
                .bind(y1)
                .fetch(&e.pool);
            while let Some((x, y, color, seq)) = rows.try_next().await? {
                f(timed_event(x, y, color, seq)?);
                n += 1;
            }
        });
        Ok(n)
    }

    /// The first and the last `placed_at` of the log.
    pub async fn event_time_range(&self) -> Result<Option<(i64, i64)>, StoreError> {
        const SQL: &str = "SELECT MIN(placed_at), MAX(placed_at) FROM pixel_events";
        let (first, last): (Option<i64>, Option<i64>) =
            on_engine!(self, e => sqlx::query_as(SQL).fetch_one(&e.pool).await)?;
        Ok(first.zip(last))
    }

    /// Stores a job as queued, unless its owner has one queued or running or has used its quota,
    /// or `limits.max_active` jobs are queued or running: one transaction, which in PostgreSQL
    /// first takes an advisory lock, so two edges cannot both admit (SQLite runs one write
    /// transaction at a time).
    pub async fn admit_job(
        &self,
        job: &NewJob,
        limits: &JobLimits,
    ) -> Result<Admission, StoreError> {
        const INSERT: &str = "INSERT INTO timelapse_jobs \
             (id, owner_id, params, status, frames_total, created_at) \
             SELECT $1, $2, $3, 'queued', $4, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM timelapse_jobs \
                               WHERE owner_id = $2 AND status IN ('queued', 'running')) \
             AND (SELECT COUNT(*) FROM timelapse_jobs WHERE owner_id = $2 AND created_at >= $6) < $7 \
             AND (SELECT COUNT(*) FROM timelapse_jobs WHERE status IN ('queued', 'running')) < $8";
        const OWNER: &str = "SELECT COUNT(CASE WHEN status IN ('queued', 'running') THEN 1 END), \
             COUNT(CASE WHEN created_at >= $2 THEN 1 END) \
             FROM timelapse_jobs WHERE owner_id = $1";
        let lock = self.postgres().is_some();
        on_engine!(self, e => {
            let mut tx = e.pool.begin().await?;
            if lock {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ADMISSION_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(INSERT)
                .bind(&job.id)
                .bind(job.owner_id)
                .bind(&job.params)
                .bind(i64::from(job.frames_total))
                .bind(job.created_at)
                .bind(limits.window_start_ms)
                .bind(limits.max_per_owner)
                .bind(limits.max_active)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let admission = if inserted == 1 {
                Admission::Accepted
            } else {
                let (busy, recent): (i64, i64) = sqlx::query_as(OWNER)
                    .bind(job.owner_id)
                    .bind(limits.window_start_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                refusal(busy > 0, recent, limits)
            };
            tx.commit().await?;
            Ok(admission)
        })
    }

    /// Claims a job for rendering: counts an attempt and restarts its progress. `None` when it
    /// is finished (or unknown), or was given up after `max_attempts` (then marked failed).
    pub async fn claim_job(
        &self,
        id: &str,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<Option<JobRecord>, StoreError> {
        const GIVE_UP: &str = "UPDATE timelapse_jobs SET status = 'failed', finished_at = $1, \
             error = 'gave up after ' || attempts || ' attempts' \
             WHERE id = $2 AND status IN ('queued', 'running') AND attempts >= $3";
        // The new attempt starts over: the chunks of earlier ones are dead.
        const DROP_CHUNKS: &str =
            "DELETE FROM timelapse_job_chunks WHERE job_id = $1 AND attempt < $2";
        let claim = format!(
            "UPDATE timelapse_jobs SET status = 'running', attempts = attempts + 1, \
             frames_done = 0, started_at = $1 \
             WHERE id = $2 AND status IN ('queued', 'running') RETURNING {JOB_COLUMNS}"
        );
        on_engine!(self, e => {
            sqlx::query(GIVE_UP)
                .bind(now_ms)
                .bind(id)
                .bind(i64::from(max_attempts))
                .execute(&e.pool)
                .await?;
            let row: Option<JobRow> = sqlx::query_as(&claim)
                .bind(now_ms)
                .bind(id)
                .fetch_optional(&e.pool)
                .await?;
            let Some(job) = row.map(job_record).transpose()? else {
                return Ok(None);
            };
            sqlx::query(DROP_CHUNKS)
                .bind(id)
                .bind(i64::from(job.attempts))
                .execute(&e.pool)
                .await?;
            Ok(Some(job))
        })
    }

    /// Records the frames an attempt has rendered.
    pub async fn job_progress(&self, id: &str, attempt: u32, done: u32) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE timelapse_jobs SET frames_done = $1 \
             WHERE id = $2 AND attempts = $3 AND status = 'running'";
        on_engine!(self, e => sqlx::query(SQL)
            .bind(i64::from(done))
            .bind(id)
            .bind(i64::from(attempt))
            .execute(&e.pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Stores chunk `n` of an attempt's result; false when the attempt is no longer the job's
    /// (another renderer claimed it since, or it was given up).
    pub async fn append_job_chunk(
        &self,
        id: &str,
        attempt: u32,
        n: u32,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO timelapse_job_chunks (job_id, attempt, n, bytes) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM timelapse_jobs \
             WHERE id = $1 AND attempts = $2 AND status = 'running')";
        let stored = on_engine!(self, e => sqlx::query(SQL)
            .bind(id)
            .bind(i64::from(attempt))
            .bind(i64::from(n))
            .bind(bytes)
            .execute(&e.pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(stored == 1)
    }

    /// Marks the job done with the chunks an attempt stored ([`Self::append_job_chunk`]),
    /// `size` bytes in all, and drops any other attempt's; false when the attempt is no longer
    /// the job's (another renderer claimed it since).
    pub async fn finish_job(
        &self,
        id: &str,
        attempt: u32,
        content_type: &str,
        size: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const DONE: &str = "UPDATE timelapse_jobs SET status = 'done', \
             frames_done = frames_total, content_type = $1, result_size = $2, finished_at = $3 \
             WHERE id = $4 AND attempts = $5 AND status = 'running'";
        const DROP_OTHERS: &str =
            "DELETE FROM timelapse_job_chunks WHERE job_id = $1 AND attempt <> $2";
        on_engine!(self, e => {
            let done = sqlx::query(DONE)
                .bind(content_type)
                .bind(i64::try_from(size).unwrap_or(i64::MAX))
                .bind(now_ms)
                .bind(id)
                .bind(i64::from(attempt))
                .execute(&e.pool)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query(DROP_OTHERS)
                .bind(id)
                .bind(i64::from(attempt))
                .execute(&e.pool)
                .await?;
            Ok(true)
        })
    }

    /// Marks an attempt's job failed.
    pub async fn fail_job(
        &self,
        id: &str,
        attempt: u32,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE timelapse_jobs SET status = 'failed', error = $1, \
             finished_at = $2 WHERE id = $3 AND attempts = $4 AND status = 'running'";
        on_engine!(self, e => sqlx::query(SQL)
            .bind(error)
            .bind(now_ms)
            .bind(id)
            .bind(i64::from(attempt))
            .execute(&e.pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A job, without its result.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM timelapse_jobs WHERE id = $1");
        let row: Option<JobRow> =
            on_engine!(self, e => sqlx::query_as(&sql).bind(id).fetch_optional(&e.pool).await)?;
        row.map(job_record).transpose()
    }

    /// Chunk `n` of a done job's result (chunks are numbered from 0); `None` past the last,
    /// or when the job is not done.
    pub async fn job_result_chunk(&self, id: &str, n: u32) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "SELECT c.bytes FROM timelapse_jobs j JOIN timelapse_job_chunks c \
             ON c.job_id = j.id AND c.attempt = j.attempts \
             WHERE j.id = $1 AND j.status = 'done' AND c.n = $2";
        Ok(on_engine!(self, e => sqlx::query_scalar(SQL)
            .bind(id)
            .bind(i64::from(n))
            .fetch_optional(&e.pool)
            .await)?)
    }

    /// The ids of the jobs queued or running (after a restart, to run them again), oldest first.
    pub async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT id FROM timelapse_jobs \
             WHERE status IN ('queued', 'running') ORDER BY created_at";
        Ok(on_engine!(self, e => sqlx::query_scalar(SQL).fetch_all(&e.pool).await)?)
    }

    /// Deletes the jobs finished before `before_ms`, results and all; how many.
    pub async fn prune_jobs(&self, before_ms: i64) -> Result<u64, StoreError> {
        const CHUNKS: &str = "DELETE FROM timelapse_job_chunks WHERE job_id IN \
             (SELECT id FROM timelapse_jobs WHERE status IN ('done', 'failed') \
             AND finished_at < $1)";
        const JOBS: &str =
            "DELETE FROM timelapse_jobs WHERE status IN ('done', 'failed') AND finished_at < $1";
        on_engine!(self, e => {
            let mut tx = e.pool.begin().await?;
            sqlx::query(CHUNKS).bind(before_ms).execute(&mut *tx).await?;
            let pruned = sqlx::query(JOBS)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(pruned)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEvent;

    fn event(x: u32, y: u32, color: u8, placed_at: i64, tile_seq: u64) -> NewEvent {
        NewEvent {
            x,
            y,
            color,
            user_id: 1,
            placed_at,
            tile_seq,
            action_id: None,
        }
    }

    #[tokio::test]
    async fn the_canvas_read_is_the_log_with_its_seqs_and_latest_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let g = CanvasGeometry::new(100, 70).expect("size");
        store
            .append_events(&[
                event(1, 1, 3, 1_000, 1),
                event(99, 69, 5, 900, 1),
                event(1, 1, 4, 1_100, 2),
            ])
            .await
            .expect("append");
        let read = store.read_canvas(g).await.expect("read");
        assert_eq!(read.covers_until, Some(1_100));
        assert_eq!(read.event_count, 3);
        assert_eq!(read.pixels[100 + 1], 4);
        assert_eq!(read.pixels[69 * 100 + 99], 5);
        assert_eq!(read.pixels, store.replay_log(g).await.expect("replay"));
        let last_tile = g.tile_index(place_tiles::TileId::new(1, 1));
        assert_eq!((read.tile_seqs[0], read.tile_seqs[last_tile]), (2, 1));
    }

    #[tokio::test]
    async fn jobs_are_admitted_one_per_owner_within_quota_and_claims_are_fenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let job = |id: &str, owner, created_at| NewJob {
            id: id.into(),
            owner_id: owner,
            params: "{}".into(),
            frames_total: 3,
            created_at,
        };
        let limits = JobLimits {
            max_active: 2,
            max_per_owner: 2,
            window_start_ms: 0,
        };
        let admit = |j: NewJob| {
            let store = store.clone();
            async move { store.admit_job(&j, &limits).await.expect("admit") }
        };
        assert_eq!(admit(job("a", 1, 5)).await, Admission::Accepted);
        assert_eq!(admit(job("b", 1, 5)).await, Admission::OwnerBusy);
        assert_eq!(admit(job("c", 2, 5)).await, Admission::Accepted);
        assert_eq!(admit(job("d", 3, 5)).await, Admission::QueueFull);
        let first = store
            .claim_job("a", 10, 3)
            .await
            .expect("claim")
            .expect("queued");
        assert_eq!((first.status, first.attempts), (JobStatus::Running, 1));
        assert!(store
            .append_job_chunk("a", 1, 0, b"OLD")
            .await
            .expect("chunk"));
        let second = store
            .claim_job("a", 11, 3)
            .await
            .expect("claim")
            .expect("again");
        assert_eq!(second.attempts, 2);
        // The first renderer is fenced off: its chunks and its finish are refused.
        assert!(!store
            .append_job_chunk("a", 1, 1, b"OLD")
            .await
            .expect("stale chunk"));
        assert!(!store
            .finish_job("a", 1, "image/gif", 3, 12)
            .await
            .expect("stale"));
        assert!(store
            .append_job_chunk("a", 2, 0, b"GI")
            .await
            .expect("chunk"));
        assert!(store
            .append_job_chunk("a", 2, 1, b"F")
            .await
            .expect("chunk"));
        assert_eq!(
            store.job_result_chunk("a", 0).await.expect("not done"),
            None
        );
        assert!(store
            .finish_job("a", 2, "image/gif", 3, 12)
            .await
            .expect("finish"));
        let done = store.job("a").await.expect("job").expect("exists");
        assert_eq!(
            (done.status, done.frames_done, done.result_bytes),
            (JobStatus::Done, 3, Some(3))
        );
        let chunk = |n| store.job_result_chunk("a", n);
        assert_eq!(chunk(0).await.expect("0"), Some(b"GI".to_vec()));
        assert_eq!(chunk(1).await.expect("1"), Some(b"F".to_vec()));
        assert_eq!(chunk(2).await.expect("2"), None);
        assert!(store.claim_job("a", 13, 3).await.expect("claim").is_none());
        for _ in 0..3 {
            store.claim_job("c", 14, 3).await.expect("claim");
        }
        assert!(store.claim_job("c", 15, 3).await.expect("claim").is_none());
        let given_up = store.job("c").await.expect("job").expect("exists");
        assert_eq!(given_up.status, JobStatus::Failed);
        assert_eq!(
            store.unfinished_jobs().await.expect("unfinished"),
            Vec::<String>::new()
        );
        // Owner 1 has nothing running but a job in the window: a quota of one is used up; a
        // window that starts after it lets the owner in again.
        let one = JobLimits {
            max_per_owner: 1,
            ..limits
        };
        assert_eq!(
            store.admit_job(&job("e", 1, 20), &one).await.expect("e"),
            Admission::OwnerQuota
        );
        let later = JobLimits {
            window_start_ms: 6,
            ..one
        };
        assert_eq!(
            store.admit_job(&job("f", 1, 20), &later).await.expect("f"),
            Admission::Accepted
        );
        assert_eq!(store.prune_jobs(100).await.expect("prune"), 2);
        assert_eq!(chunk(0).await.expect("pruned"), None);
    }
}
