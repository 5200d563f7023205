//! Canvas geometry: how a `width x height` canvas is cut into 64x64 tiles.
//!
//! Sizes that are not a multiple of [`TILE_SIZE`] are allowed: the tiles on the right and bottom
//! edges are cropped, and [`CanvasGeometry::tile_dims`] says by how much.

use thiserror::Error;

/// The side of a tile in pixels.
pub const TILE_SIZE: u32 = 64;
/// The number of pixels (bytes) in a tile.
pub const TILE_AREA: usize = (TILE_SIZE * TILE_SIZE) as usize;
/// The largest canvas side.
pub const MAX_SIDE: u32 = 65_536;

/// Why a canvas size was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GeometryError {
    /// Width or height outside `1..=65536`.
    #[error("canvas {name} must be between 1 and {MAX_SIDE}, got {value}")]
    SideOutOfRange {
        /// `width` or `height`.
        name: &'static str,
        /// The value given.
        value: u32,
    },
    /// A resize that would shrink a side: the canvas only grows, so nothing placed is cut off.
    #[error("the canvas only grows: {name} {value} is less than the current {current}")]
    Shrink {
        /// `width` or `height`.
        name: &'static str,
        /// The value given.
        value: u32,
        /// The current value.
        current: u32,
    },
    /// A resize to the size the canvas already has.
    #[error("the canvas is already {width}x{height}")]
    Unchanged {
        /// The current width.
        width: u32,
        /// The current height.
        height: u32,
    },
}

/// The position of a tile in the tile grid: tile `(tx, ty)` covers pixels
/// `64*tx ..= 64*tx+63` by `64*ty ..= 64*ty+63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Column of the tile.
    pub tx: u16,
    /// Row of the tile.
    pub ty: u16,
}

impl TileId {
    /// Makes a tile id.
    pub const fn new(tx: u16, ty: u16) -> Self {
        Self { tx, ty }
    }

    /// The canvas coordinates of this tile's top-left pixel.
    pub fn origin(self) -> (u32, u32) {
        (
            u32::from(self.tx) * TILE_SIZE,
            u32::from(self.ty) * TILE_SIZE,
        )
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.tx, self.ty)
    }
}

/// The size of the canvas and its tile grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanvasGeometry {
    width: u32,
    height: u32,
}

impl CanvasGeometry {
    /// Checks and makes a geometry; each side must be in `1..=65536`.
    pub fn new(width: u32, height: u32) -> Result<Self, GeometryError> {
        for (name, value) in [("width", width), ("height", height)] {
            if !(1..=MAX_SIDE).contains(&value) {
                return Err(GeometryError::SideOutOfRange { name, value });
            }
        }
        Ok(Self { width, height })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of tile columns.
    pub fn tiles_x(&self) -> u32 {
        self.width.div_ceil(TILE_SIZE)
    }

    /// Number of tile rows.
    pub fn tiles_y(&self) -> u32 {
        self.height.div_ceil(TILE_SIZE)
    }

    /// Number of tiles.
    pub fn tile_count(&self) -> usize {
        (self.tiles_x() * self.tiles_y()) as usize
    }

    /// Whether pixel `(x, y)` lies on the canvas.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height
    }

    /// Whether the tile lies on the canvas.
    pub fn contains_tile(&self, tile: TileId) -> bool {
        u32::from(tile.tx) < self.tiles_x() && u32::from(tile.ty) < self.tiles_y()
    }

    /// The tile holding pixel `(x, y)` and the pixel's position inside it, or `None` off the canvas.
    pub fn locate(&self, x: u32, y: u32) -> Option<(TileId, u8, u8)> {
        if !self.contains(x, y) {
            return None;
        }
        // Both fit: x < 65536 so x / 64 < 1024, and x % 64 < 64.
        let tile = TileId::new((x / TILE_SIZE) as u16, (y / TILE_SIZE) as u16);
        Some((tile, (x % TILE_SIZE) as u8, (y % TILE_SIZE) as u8))
    }

    /// The visible width and height of a tile (64x64 except cropped edge tiles).
    pub fn tile_dims(&self, tile: TileId) -> (u32, u32) {
        let (x0, y0) = tile.origin();
        (
            (self.width.saturating_sub(x0)).min(TILE_SIZE),
            (self.height.saturating_sub(y0)).min(TILE_SIZE),
        )
    }

    /// Every tile of the canvas, row by row.
    pub fn tiles(&self) -> impl Iterator<Item = TileId> {
        let (tiles_x, tiles_y) = (self.tiles_x(), self.tiles_y());
        (0..tiles_y)
            .flat_map(move |ty| (0..tiles_x).map(move |tx| TileId::new(tx as u16, ty as u16)))
    }

    /// The canvas grown to `width x height`: each side in `1..=65536`, neither smaller than now,
    /// at least one larger. Tiles are named by their column and row, so every tile of this
    /// canvas keeps its id (and its pixels their coordinates) on the grown one.
    pub fn grown_to(&self, width: u32, height: u32) -> Result<Self, GeometryError> {
        let grown = Self::new(width, height)?;
        for (name, value, current) in [
            ("width", width, self.width),
            ("height", height, self.height),
        ] {
            if value < current {
                return Err(GeometryError::Shrink {
                    name,
                    value,
                    current,
                });
            }
        }
        if grown == *self {
            return Err(GeometryError::Unchanged { width, height });
        }
        Ok(grown)
    }

    /// The smallest canvas holding both: each side the larger of the two. Sizes only grow, so
    /// of two sizes known for one canvas this is the newer.
    pub fn union(self, other: Self) -> Self {
        Self {
            width: self.width.max(other.width),
            height: self.height.max(other.height),
        }
    }

    /// Whether every pixel of `other` lies on this canvas.
    pub fn covers(&self, other: Self) -> bool {
        self.width >= other.width && self.height >= other.height
    }

    /// The dense index of a tile on this canvas (row-major), for tables indexed by tile.
    pub fn tile_index(&self, tile: TileId) -> usize {
        usize::from(tile.ty) * self.tiles_x() as usize + usize::from(tile.tx)
    }
}

impl Default for CanvasGeometry {
    fn default() -> Self {
        Self {
            width: 2000,
            height: 2000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_canvas_has_32_by_32_tiles_with_cropped_edges() {
        let g = CanvasGeometry::default();
        assert_eq!((g.tiles_x(), g.tiles_y()), (32, 32));
        assert_eq!(g.tile_dims(TileId::new(0, 0)), (64, 64));
        assert_eq!(
            g.tile_dims(TileId::new(31, 31)),
            (2000 - 31 * 64, 2000 - 31 * 64)
        );
        assert_eq!(g.tile_dims(TileId::new(31, 0)), (16, 64));
    }

    #[test]
    fn sides_are_checked() {
        assert!(CanvasGeometry::new(0, 10).is_err());
        assert!(CanvasGeometry::new(10, 65_537).is_err());
        let g = CanvasGeometry::new(65_536, 1).expect("largest side is allowed");
        assert_eq!(g.tiles_x(), 1024);
        assert_eq!(g.locate(65_535, 0), Some((TileId::new(1023, 0), 63, 0)));
    }

    #[test]
    fn locate_maps_pixels_to_tiles_and_refuses_the_outside() {
        let g = CanvasGeometry::new(100, 70).expect("valid");
        assert_eq!(g.locate(0, 0), Some((TileId::new(0, 0), 0, 0)));
        assert_eq!(g.locate(99, 69), Some((TileId::new(1, 1), 35, 5)));
        assert_eq!(g.locate(100, 0), None);
        assert_eq!(g.locate(0, 70), None);
        assert!(g.contains_tile(TileId::new(1, 1)));
        assert!(!g.contains_tile(TileId::new(2, 0)));
        assert_eq!(g.tiles().count(), 4);
        assert_eq!(g.tile_index(TileId::new(1, 1)), 3);
    }

    #[test]
    fn a_canvas_only_grows_and_keeps_its_tiles() {
        let g = CanvasGeometry::new(100, 70).expect("valid");
        let grown = g.grown_to(200, 70).expect("wider");
        assert_eq!((grown.tiles_x(), grown.tiles_y()), (4, 2));
        // Pixels keep their tile and place inside it.
        assert_eq!(grown.locate(99, 69), g.locate(99, 69));
        assert!(g.tiles().all(|t| grown.contains_tile(t)));
        assert!(grown.covers(g) && !g.covers(grown));
        assert_eq!(
            g.grown_to(99, 80),
            Err(GeometryError::Shrink {
                name: "width",
                value: 99,
                current: 100
            })
        );
        assert_eq!(
            g.grown_to(100, 70),
            Err(GeometryError::Unchanged {
                width: 100,
                height: 70
            })
        );
        assert!(matches!(
            g.grown_to(65_537, 70),
            Err(GeometryError::SideOutOfRange { name: "width", .. })
        ));
        assert_eq!(
            g.union(CanvasGeometry::new(50, 90).expect("valid"))
                .height(),
            90
        );
    }
}
