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

use place_store::StoreError;

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

/// Now as Unix epoch milliseconds (the wall clock of [`place_tiles::clock`]).
pub use place_tiles::clock::now_ms;
