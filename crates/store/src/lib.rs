//! Durable storage for place.
//!
//! # Layout
//! - [`store`]: [`Store`], the one handle every caller holds: each query written once for both
//!   engines, with the accounts, sessions and moderation queries.
//! - [`embedded`]: the store of `place serve`: SQLite in WAL mode with `synchronous=FULL`, in one
//!   data directory, no server needed.
//! - `event_log`: the embedded store's writer of placements: one thread owning one SQLite
//!   connection, one transaction per group commit.
//! - [`postgres`]: the store of the cluster's shards: PostgreSQL, one schema per deployment, events
//!   and snapshots kept per tile so tiles can move between shards.
//! - [`types`]: the records the stores keep (events, users) and [`StoreError`].
//! - [`history`]: the public history (a pixel's, a user's, everyone's placements, by keyset
//!   pages) and the heatmap of recent activity, in both stores.
//! - [`timelapse`]: canvas snapshots at exact positions of the log, the events of a time
//!   window, and timelapse render jobs, in both stores.
//! - [`templates`]: the images players paint by, at a place on the canvas, shared by id, in
//!   both stores.
//! - [`regions`]: protected regions (locked, slow, registered-only rectangles), in both stores.
//! - [`moderation`]: what rollbacks, resets, the audit log and the admin panel read and write,
//!   and the pure "colour before" computation both stores use.
//!
//! Users are guests (made with a session, no password) or registered (a name and an argon2id
//! password hash, made by the edge; the stores never see a password). Names are unique in any
//! letter case; registering a guest keeps its id, so its placements and cooldown stay its own.
//!
//! What is kept: the append-only pixel event log (every acknowledged placement), the latest
//! compressed snapshot of each tile with a checkpoint marker saying which events it covers, users
//! and sessions. Restoring the canvas is "latest snapshots, then replay the events after the
//! checkpoint", so start-up time depends on the events since the last checkpoint, not on the
//! length of the log.

pub mod canvas;
mod canvas_replay;
pub mod embedded;
mod event_log;
pub mod history;
pub mod moderation;
pub mod postgres;
pub mod regions;
pub mod store;
pub mod templates;
pub mod timelapse;
pub mod types;

#[cfg(test)]
mod query_plan;

pub use embedded::EmbeddedStore;
pub use history::{HeatmapCounts, HistoryEntry, HistoryPage, Scope};
pub use moderation::{
    AuditEntry, LoggedEvent, PlacementStats, Planner, Rect, Restore, RevertPlan, Selection,
};
pub use postgres::PgStore;
pub use regions::{RegionMode, RegionRecord};
pub use store::Store;
pub use templates::TemplateRecord;
pub use timelapse::TimedEvent;
pub use types::{NewEvent, RestoredCanvas, StoreError, TileSnapshotRecord, User, UserLogin};
