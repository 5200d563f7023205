//! The shard of place: owns tiles, applies placements with group commit, and streams each tile's
//! changes to its subscribers.
//!
//! # Layout
//! - [`core`]: the sans-IO state machine ([`ShardCore`]): every decision, tested with simulated
//!   interleavings.
//! - [`driver`]: runs a [`ShardCore`] on tokio against its store (a [`place_store::Store`]:
//!   SQLite in `place serve`, PostgreSQL in the cluster); [`ShardHandle`] is how an edge talks to
//!   it.

pub mod core;
pub mod driver;

pub use crate::core::{
    CheckpointPolicy, PlaceError, PlaceRequest, Placed, ShardCore, ShardMessage, SubscriberId,
    TileBatch, TileSnapshot, WriteFailure,
};
pub use driver::{Ownership, ShardConfig, ShardHandle, ShardStatus, ShardTask};
