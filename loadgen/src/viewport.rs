//! Viewports: the canvas rectangle a player sees, the tiles it spans, where players look (around
//! hot spots, or uniformly) and where they paint.
//!
//! A screen of `W x H` pixels at zoom `Z` shows `ceil(W/Z) x ceil(H/Z)` canvas pixels (at most
//! the canvas). Players paint in the central half of what they see, so placements gather where
//! the crowd looks, as on the real thing.

use place_tiles::{CanvasGeometry, TileId, TILE_SIZE};
use rand::Rng;

use crate::cli::Spread;

/// A rectangle of canvas pixels, inside the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x0: u32,
    /// Top row.
    pub y0: u32,
    /// Width, at least 1.
    pub w: u32,
    /// Height, at least 1.
    pub h: u32,
}

/// The canvas pixels a screen of `screen` pixels shows at `zoom`, at most the whole canvas.
pub fn canvas_extent(screen: (u32, u32), zoom: f64, geometry: CanvasGeometry) -> (u32, u32) {
    let side = |pixels: u32, limit: u32| ((f64::from(pixels) / zoom).ceil() as u32).clamp(1, limit);
    (
        side(screen.0, geometry.width()),
        side(screen.1, geometry.height()),
    )
}

/// The most tiles a viewport of this screen and zoom can span, however it is aligned.
pub fn max_tiles(screen: (u32, u32), zoom: f64, geometry: CanvasGeometry) -> usize {
    let (w, h) = canvas_extent(screen, zoom, geometry);
    let span = |pixels: u32, tiles: u32| ((pixels - 1).div_ceil(TILE_SIZE) + 1).min(tiles);
    span(w, geometry.tiles_x()) as usize * span(h, geometry.tiles_y()) as usize
}

impl Rect {
    /// The rectangle of `extent` pixels centred as near `(cx, cy)` as the canvas allows.
    pub fn centred(cx: f64, cy: f64, extent: (u32, u32), geometry: CanvasGeometry) -> Self {
        let place = |centre: f64, len: u32, limit: u32| {
            let start = (centre - f64::from(len) / 2.0).round();
            start.clamp(0.0, f64::from(limit - len)) as u32
        };
        Self {
            x0: place(cx, extent.0, geometry.width()),
            y0: place(cy, extent.1, geometry.height()),
            w: extent.0,
            h: extent.1,
        }
    }

    /// The tiles this rectangle touches, row by row.
    pub fn tiles(&self) -> Vec<TileId> {
        let (tx0, tx1) = (self.x0 / TILE_SIZE, (self.x0 + self.w - 1) / TILE_SIZE);
        let (ty0, ty1) = (self.y0 / TILE_SIZE, (self.y0 + self.h - 1) / TILE_SIZE);
        (ty0..=ty1)
            .flat_map(|ty| (tx0..=tx1).map(move |tx| TileId::new(tx as u16, ty as u16)))
            .collect()
    }

    /// Whether the pixel is inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        (self.x0..self.x0 + self.w).contains(&x) && (self.y0..self.y0 + self.h).contains(&y)
    }
}

/// Where the crowd looks: the hot spots of a run, shared by every player.
#[derive(Debug, Clone)]
pub struct Scene {
    geometry: CanvasGeometry,
    extent: (u32, u32),
    hotspots: Vec<(f64, f64)>,
    radius: f64,
}

impl Scene {
    /// Draws `hotspots` hot spots (for `Spread::Hotspots`) with `rng`.
    pub fn new(
        geometry: CanvasGeometry,
        extent: (u32, u32),
        spread: Spread,
        hotspots: usize,
        radius: u32,
        rng: &mut impl Rng,
    ) -> Self {
        let count = if spread == Spread::Hotspots {
            hotspots.max(1)
        } else {
            0
        };
        // Keep hot spots far enough from the edges that their viewports are not all squeezed
        // into the same corner.
        let coord = |rng: &mut dyn rand::RngCore, len: u32, limit: u32| {
            let margin = f64::from(len) / 2.0;
            let span = (f64::from(limit) - 2.0 * margin).max(0.0);
            margin + rng.random::<f64>() * span
        };
        let hotspots = (0..count)
            .map(|_| {
                (
                    coord(rng, extent.0, geometry.width()),
                    coord(rng, extent.1, geometry.height()),
                )
            })
            .collect();
        Self {
            geometry,
            extent,
            hotspots,
            radius: f64::from(radius),
        }
    }

    /// How many hot spots there are (0 with a uniform spread).
    pub fn hotspot_count(&self) -> usize {
        self.hotspots.len()
    }

    /// A viewport for a player of hot spot `home` (ignored with a uniform spread).
    pub fn look(&self, home: usize, rng: &mut impl Rng) -> Rect {
        let (cx, cy) = match self.hotspots.get(home % self.hotspots.len().max(1)) {
            Some(&(hx, hy)) => {
                // Uniform over the disc of the radius around the hot spot.
                let r = self.radius * rng.random::<f64>().sqrt();
                let angle = rng.random::<f64>() * std::f64::consts::TAU;
                (hx + r * angle.cos(), hy + r * angle.sin())
            }
            None => (
                rng.random::<f64>() * f64::from(self.geometry.width()),
                rng.random::<f64>() * f64::from(self.geometry.height()),
            ),
        };
        Rect::centred(cx, cy, self.extent, self.geometry)
    }

    /// A pixel to paint in `view`: uniform over its central half.
    pub fn pixel(&self, view: &Rect, rng: &mut impl Rng) -> (u32, u32) {
        let pick = |rng: &mut dyn rand::RngCore, start: u32, len: u32| {
            let quarter = len / 4;
            let span = (len - 2 * quarter).max(1);
            start + quarter + rng.random_range(0..span)
        };
        (pick(rng, view.x0, view.w), pick(rng, view.y0, view.h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn canvas(w: u32, h: u32) -> CanvasGeometry {
        CanvasGeometry::new(w, h).expect("valid size")
    }

    #[test]
    fn extent_follows_zoom_and_stops_at_the_canvas() {
        let g = canvas(2000, 2000);
        assert_eq!(canvas_extent((1280, 720), 2.0, g), (640, 360));
        assert_eq!(canvas_extent((1280, 720), 1.0, g), (1280, 720));
        assert_eq!(canvas_extent((1281, 721), 2.0, g), (641, 361));
        assert_eq!(canvas_extent((8000, 8000), 1.0, g), (2000, 2000));
        assert_eq!(canvas_extent((10, 10), 64.0, g), (1, 1));
    }

    #[test]
    fn rect_tiles_cover_exactly_the_touched_tiles() {
        let g = canvas(2000, 2000);
        let r = Rect::centred(96.0, 32.0, (64, 64), g);
        assert_eq!(
            r,
            Rect {
                x0: 64,
                y0: 0,
                w: 64,
                h: 64
            }
        );
        assert_eq!(r.tiles(), vec![TileId::new(1, 0)]);
        let r = Rect {
            x0: 63,
            y0: 0,
            w: 2,
            h: 1,
        };
        assert_eq!(r.tiles(), vec![TileId::new(0, 0), TileId::new(1, 0)]);
        // The cropped last column (2000 = 31 * 64 + 16) is tile 31.
        let r = Rect::centred(5000.0, 5000.0, (100, 100), g);
        assert_eq!((r.x0, r.y0), (1900, 1900));
        assert!(r.tiles().contains(&TileId::new(31, 31)));
        assert!(r.tiles().iter().all(|t| g.contains_tile(*t)));
    }

    #[test]
    fn max_tiles_bounds_every_alignment() {
        let g = canvas(2000, 2000);
        for (screen, zoom) in [((1280, 720), 2.0), ((1920, 1080), 1.0), ((64, 64), 1.0)] {
            let extent = canvas_extent(screen, zoom, g);
            let bound = max_tiles(screen, zoom, g);
            let worst = (0..200u32)
                .map(|i| Rect::centred(f64::from(i * 7), f64::from(i * 3), extent, g))
                .map(|r| r.tiles().len())
                .max()
                .expect("some rects");
            assert_eq!(worst, bound, "{screen:?}@{zoom}: the bound is tight");
        }
        assert_eq!(max_tiles((1280, 720), 2.0, g), 11 * 7);
        assert_eq!(max_tiles((64, 64), 1.0, g), 4);
        assert_eq!(max_tiles((1, 1), 1.0, g), 1);
        assert_eq!(max_tiles((9000, 9000), 1.0, g), 32 * 32);
    }

    #[test]
    fn players_look_near_their_hot_spot_and_paint_where_they_look() {
        let g = canvas(2000, 2000);
        let mut rng = StdRng::seed_from_u64(7);
        let scene = Scene::new(g, (640, 360), Spread::Hotspots, 4, 100, &mut rng);
        assert_eq!(scene.hotspot_count(), 4);
        for i in 0..500 {
            let view = scene.look(i, &mut rng);
            let (hx, hy) = scene.hotspots[i % 4];
            let (cx, cy) = (f64::from(view.x0) + 320.0, f64::from(view.y0) + 180.0);
            assert!(
                (cx - hx).hypot(cy - hy) <= 101.5,
                "view {view:?} far from {hx},{hy}"
            );
            let (x, y) = scene.pixel(&view, &mut rng);
            assert!(view.contains(x, y));
            assert!(
                x >= view.x0 + 160 && x < view.x0 + 480 && y >= view.y0 + 90 && y < view.y0 + 270
            );
        }
    }

    #[test]
    fn radius_zero_puts_a_hot_spots_crowd_on_one_area() {
        let g = canvas(2000, 2000);
        let mut rng = StdRng::seed_from_u64(1);
        let scene = Scene::new(g, (640, 360), Spread::Hotspots, 1, 0, &mut rng);
        let first = scene.look(0, &mut rng);
        assert!((0..50).all(|i| scene.look(i, &mut rng) == first));
        let uniform = Scene::new(g, (640, 360), Spread::Uniform, 8, 0, &mut rng);
        assert_eq!(uniform.hotspot_count(), 0);
        let views: Vec<Rect> = (0..50).map(|i| uniform.look(i, &mut rng)).collect();
        assert!(views.iter().any(|v| *v != views[0]));
    }
}
