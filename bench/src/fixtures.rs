//! Deterministic inputs for the Criterion benches: pixel changes, tiles of typical kinds, and
//! placements spread over a canvas.

use place_shard::PlaceRequest;
use place_tiles::{CanvasGeometry, PixelChange, TILE_AREA, TILE_SIZE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` changes at random pixels of a tile, random colours of 16.
pub fn changes(n: usize, seed: u64) -> Vec<PixelChange> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| PixelChange {
            lx: rng.random_range(0..TILE_SIZE as u8),
            ly: rng.random_range(0..TILE_SIZE as u8),
            color: rng.random_range(0..16),
        })
        .collect()
}

/// Three kinds of tile: `blank` (never painted), `art` (blocks of colour with some noise, like
/// a finished r/place area) and `noise` (every pixel random: the worst case for compression).
pub fn tile_kinds() -> Vec<(&'static str, [u8; TILE_AREA])> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut art = [0u8; TILE_AREA];
    for (i, p) in art.iter_mut().enumerate() {
        let (x, y) = (i % 64, i / 64);
        *p = ((x / 8 + y / 16) % 16) as u8;
        if rng.random_range(0..10) == 0 {
            *p = rng.random_range(0..16);
        }
    }
    let mut noise = [0u8; TILE_AREA];
    for p in noise.iter_mut() {
        *p = rng.random_range(0..16);
    }
    vec![("blank", [0u8; TILE_AREA]), ("art", art), ("noise", noise)]
}

/// `n` placements at random pixels of the canvas, by 1,000 users.
pub fn placements(geometry: CanvasGeometry, n: usize, seed: u64) -> Vec<PlaceRequest> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| PlaceRequest {
            x: rng.random_range(0..geometry.width()),
            y: rng.random_range(0..geometry.height()),
            color: rng.random_range(0..16),
            user_id: (i % 1000) as i64 + 1,
            placed_at: 1_700_000_000_000 + i as i64,
            action_id: None,
            placement_id: 0,
        })
        .collect()
}
