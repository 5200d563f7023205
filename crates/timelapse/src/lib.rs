//! The timelapse of place: the canvas at any moment of its history, exactly, and animations of
//! it.
//!
//! # Layout
//! - [`frame`]: one frame being built, applying events by tile seq (pure).
//! - [`snapshot`]: taking canvas snapshots from the store now and then, and reading them back.
//! - [`render`]: the frames of a time span, each exact: the nearest snapshot before it plus the
//!   events between (the [`render::Renderer`]), and the limits on what may be asked.
//! - [`encode`]: animated GIF, APNG and still PNG, in the canvas's palette.
//! - [`jobs`]: running a render job stored in `timelapse_jobs`, and the local runner of
//!   `place serve`.
//! - [`queue`]: the RabbitMQ queue of the cluster's jobs (`place worker` consumes it).
//! - [`service`]: what an edge asks of all this ([`service::Timelapse`]).
//!
//! # Exactness
//! A frame at time `t` is the log's replay of every event placed at or before `t`, last write
//! winning per tile seq. A snapshot holds every event of each tile up to a seq, and the latest
//! time among them (`covers_until`); a frame at `t >= covers_until` starts from it and applies the
//! events placed in `(covers_until - STRAGGLER_WINDOW_MS, t]` whose seq is beyond the snapshot's
//! for their tile. The window's margin takes in placements that were in flight when the snapshot
//! was read (their time was given by an edge before the shard wrote them); a placement is written
//! within seconds of its time or never (the edge gives up on it after 2 s), far inside the margin.

pub mod encode;
pub mod frame;
pub mod jobs;
pub mod queue;
pub mod render;
pub mod service;
pub mod snapshot;

use place_store::timelapse::{
    Admission, JobLimits, JobRecord, NewJob, NewSnapshot, SnapshotInfo, SnapshotRecord, TimedEvent,
};
use place_store::{EmbeddedStore, PgStore, Rect, StoreError};
use place_tiles::CanvasGeometry;

/// How far before a snapshot's `covers_until` a frame built on it reads events (see the crate
/// documentation).
pub const STRAGGLER_WINDOW_MS: i64 = 60_000;

/// What can go wrong while taking, rendering or encoding.
#[derive(Debug, thiserror::Error)]
pub enum TimelapseError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A request outside the limits; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// A stored snapshot does not fit the canvas or does not inflate.
    #[error("snapshot {0} is corrupt or of another canvas")]
    BadSnapshot(i64),
    /// Encoding an image failed (or writing it out).
    #[error("encoding: {0}")]
    Encode(String),
    /// The job queue failed.
    #[error("job queue: {0}")]
    Queue(#[from] lapin::Error),
}

/// The store the timelapse reads and writes: the embedded one, or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Source {
    /// `place serve`.
    Embedded(EmbeddedStore),
    /// The cluster.
    Postgres(PgStore),
}

/// Calls the same method on whichever store.
macro_rules! both {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Source::Embedded($s) => $call,
            Source::Postgres($s) => $call,
        }
    };
}

impl Source {
    /// The canvas as it is now: `at_least` (the size the process started with) grown to the
    /// stored size, which an administrator may have grown since.
    pub async fn canvas(&self, at_least: CanvasGeometry) -> Result<CanvasGeometry, StoreError> {
        let stored = both!(self, s => s.stored_canvas().await)?;
        Ok(stored.map_or(at_least, |s| at_least.union(s)))
    }

    /// The canvas's size at `t_ms`: `now` unless it has grown since (see
    /// [`EmbeddedStore::canvas_before_growth`]).
    pub async fn canvas_at(
        &self,
        t_ms: i64,
        now: CanvasGeometry,
    ) -> Result<CanvasGeometry, StoreError> {
        Ok(both!(self, s => s.canvas_before_growth(t_ms).await)?.unwrap_or(now))
    }

    /// See [`EmbeddedStore::read_canvas`].
    pub async fn read_canvas(
        &self,
        geometry: CanvasGeometry,
    ) -> Result<place_store::timelapse::CanvasRead, StoreError> {
        both!(self, s => s.read_canvas(geometry).await)
    }

    /// See [`EmbeddedStore::insert_snapshot`].
    pub async fn insert_snapshot(
        &self,
        snapshot: &NewSnapshot,
        min_gap_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        both!(self, s => s.insert_snapshot(snapshot, min_gap_ms).await)
    }

    /// See [`EmbeddedStore::latest_snapshot`].
    pub async fn latest_snapshot(&self) -> Result<Option<SnapshotInfo>, StoreError> {
        both!(self, s => s.latest_snapshot().await)
    }

    /// See [`EmbeddedStore::snapshots`].
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        both!(self, s => s.snapshots().await)
    }

    /// See [`EmbeddedStore::snapshot`].
    pub async fn snapshot(&self, id: i64) -> Result<Option<SnapshotRecord>, StoreError> {
        both!(self, s => s.snapshot(id).await)
    }

    /// See [`EmbeddedStore::visit_events`].
    pub async fn visit_events(
        &self,
        after_ms: i64,
        until_ms: i64,
        rect: Rect,
        f: &mut (dyn FnMut(TimedEvent) + Send),
    ) -> Result<u64, StoreError> {
        both!(self, s => s.visit_events(after_ms, until_ms, rect, f).await)
    }

    /// See [`EmbeddedStore::event_time_range`].
    pub async fn event_time_range(&self) -> Result<Option<(i64, i64)>, StoreError> {
        both!(self, s => s.event_time_range().await)
    }

    /// See [`EmbeddedStore::replay_log_until`].
    pub async fn replay_log_until(
        &self,
        geometry: CanvasGeometry,
        until_ms: i64,
    ) -> Result<Vec<u8>, StoreError> {
        both!(self, s => s.replay_log_until(geometry, until_ms).await)
    }

    /// See [`EmbeddedStore::admit_job`].
    pub async fn admit_job(
        &self,
        job: &NewJob,
        limits: &JobLimits,
    ) -> Result<Admission, StoreError> {
        both!(self, s => s.admit_job(job, limits).await)
    }

    /// See [`EmbeddedStore::claim_job`].
    pub async fn claim_job(
        &self,
        id: &str,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<Option<JobRecord>, StoreError> {
        both!(self, s => s.claim_job(id, now_ms, max_attempts).await)
    }

    /// See [`EmbeddedStore::job_progress`].
    pub async fn job_progress(&self, id: &str, attempt: u32, done: u32) -> Result<(), StoreError> {
        both!(self, s => s.job_progress(id, attempt, done).await)
    }

    /// See [`EmbeddedStore::append_job_chunk`].
    pub async fn append_job_chunk(
        &self,
        id: &str,
        attempt: u32,
        n: u32,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        both!(self, s => s.append_job_chunk(id, attempt, n, bytes).await)
    }

    /// See [`EmbeddedStore::finish_job`].
    pub async fn finish_job(
        &self,
        id: &str,
        attempt: u32,
        content_type: &str,
        size: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.finish_job(id, attempt, content_type, size, now_ms).await)
    }

    /// See [`EmbeddedStore::fail_job`].
    pub async fn fail_job(
        &self,
        id: &str,
        attempt: u32,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        both!(self, s => s.fail_job(id, attempt, error, now_ms).await)
    }

    /// See [`EmbeddedStore::job`].
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        both!(self, s => s.job(id).await)
    }

    /// See [`EmbeddedStore::job_result_chunk`].
    pub async fn job_result_chunk(&self, id: &str, n: u32) -> Result<Option<Vec<u8>>, StoreError> {
        both!(self, s => s.job_result_chunk(id, n).await)
    }

    /// See [`EmbeddedStore::prune_jobs`].
    pub async fn prune_jobs(&self, before_ms: i64) -> Result<u64, StoreError> {
        both!(self, s => s.prune_jobs(before_ms).await)
    }
}

/// Now as Unix epoch milliseconds (the wall clock of [`place_tiles::clock`]).
pub use place_tiles::clock::now_ms;
