//! The tile model of place: pure data, no I/O, no async.
//!
//! # Layout
//! - [`clock`]: the wall clock, the one reader of the system's time of day.
//! - [`geometry`]: the canvas size, tile ids and the mapping between pixels and tiles.
//! - [`palette`]: the colours a pixel may take.
//! - [`tile`]: one 64x64 tile with its sequence number, its recent history and last-write-wins
//!   placement.
//! - [`snapshot`]: compact (DEFLATE-compressed) tile snapshots.
//!
//! Everything that stores, sends or shows pixels builds on these types: the shard keeps the
//! authoritative [`Tile`]s, edges keep mirrors of the tiles their clients watch, and the codecs turn
//! [`PixelChange`] batches and snapshots into bytes.

pub mod clock;
pub mod geometry;
pub mod palette;
pub mod snapshot;
pub mod tile;

pub use geometry::{CanvasGeometry, GeometryError, TileId, TILE_AREA, TILE_SIZE};
pub use palette::{Palette, PaletteError};
pub use snapshot::{compress_tile, decompress_tile, SnapshotError};
pub use tile::{Catchup, PixelChange, SeqGap, Tile, TILE_HISTORY};
