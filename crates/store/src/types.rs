//! The records the stores keep, and their errors.

use place_tiles::{Tile, TileId};
use thiserror::Error;

/// What can go wrong in a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be made.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The stored canvas has other parameters than the configuration.
    #[error("the stored canvas is {stored}, but the configuration says {configured}: use the same size or another data directory")]
    CanvasMismatch {
        /// What the store holds.
        stored: String,
        /// What was asked for.
        configured: String,
    },
    /// A canvas resize that is not a growth, or past the largest side.
    #[error(transparent)]
    CanvasGrowth(place_tiles::GeometryError),
    /// Stored data contradicts itself.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A write was refused because another writer already wrote the same thing: in the cluster,
    /// another shard already wrote one of these tile seqs. Nothing of the batch was written.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// A write was refused because these tiles moved to another shard at a newer ring epoch than
    /// the writer's (their fences were raised). Nothing of the batch was written.
    #[error("tiles {0:?} moved to another shard at a newer ring epoch")]
    Fenced(Vec<place_tiles::TileId>),
    /// A PostgreSQL schema name that is not 1 to 63 ASCII letters, digits and underscores, or
    /// starts with the reserved `pg_`.
    #[error("PostgreSQL schema name {0:?} is invalid: use 1 to 63 ASCII letters, digits and underscores, not starting with pg_")]
    InvalidSchema(String),
    /// The embedded store's event-log writer failed, or has stopped.
    #[error("event log: {0}")]
    Writer(String),
    /// Reading the embedded store's canvas (its snapshots and log) failed.
    #[error("reading the canvas: {0}")]
    Replay(String),
    /// Another user already has this name (in any letter case).
    #[error("the username is taken")]
    UsernameTaken,
}

impl StoreError {
    /// A failed write of a user's name: a unique violation means the name is taken.
    pub(crate) fn from_user_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::UsernameTaken,
            _ => e.into(),
        }
    }
}

/// A placement to append to the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEvent {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Palette index.
    pub color: u8,
    /// Who placed it.
    pub user_id: i64,
    /// When, in Unix epoch milliseconds.
    pub placed_at: i64,
    /// The seq this placement gave its tile.
    pub tile_seq: u64,
    /// The moderation action (its audit log id) this placement carries out when it restores a
    /// pixel after a rollback or a reset; `None` for a player's placement.
    pub action_id: Option<i64>,
}

/// A tile snapshot to save: its pixels compressed, at its seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSnapshotRecord {
    /// The tile.
    pub tile: TileId,
    /// The tile's seq.
    pub seq: u64,
    /// The compressed pixels (`place_tiles::compress_tile`).
    pub data: Vec<u8>,
}

/// The canvas as a store restored it.
#[derive(Debug)]
pub struct RestoredCanvas {
    /// Every tile, in `CanvasGeometry::tile_index` order.
    pub tiles: Vec<Tile>,
    /// The id of the last event in the log (0 when empty).
    pub last_event_id: i64,
    /// How many events were replayed on top of the snapshots.
    pub events_replayed: u64,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// The id (`userId` on the wire, as a string).
    pub id: i64,
    /// The unique name.
    pub username: String,
    /// A guest has no password.
    pub is_guest: bool,
    /// May use the admin API.
    pub is_admin: bool,
    /// May not place.
    pub banned: bool,
}

/// A user as login needs it: with the password hash (`None` for a guest, who has no password).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserLogin {
    /// The user.
    #[sqlx(flatten)]
    pub user: User,
    /// The argon2id PHC string.
    pub password_hash: Option<String>,
}
