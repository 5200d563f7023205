//! Measures [`PgStore`] against a real PostgreSQL: `append_events` for batches of 1, 100, 1,000
//! and 8,192 events, and `load_canvas` of a 1,024-tile canvas with about a million events after
//! its snapshots (and as many before them, which the load must skip).
//!
//! ```text
//! cargo run --release -p place-store --example pg_throughput [DATABASE_URL]
//! ```
//!
//! The URL defaults to `$PLACE_TEST_DATABASE_URL`, then `postgres://postgres@127.0.0.1:5432/test`.
//! Everything happens in a schema of its own, dropped at the end. It prints; it asserts nothing.

use std::error::Error;

use place_store::{NewEvent, PgStore, TileSnapshotRecord};
use place_tiles::{compress_tile, CanvasGeometry, PixelChange, Tile, TileId};
use tokio::time::Instant;

/// Events per tile before the snapshots, and again after them.
const EVENTS_PER_TILE: u64 = 1024;
/// How many batches of each size the append measurement writes.
const APPEND_ROUNDS: [(usize, usize); 4] = [(1, 500), (100, 200), (1000, 50), (8192, 20)];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PLACE_TEST_DATABASE_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("place_bench_{}", std::process::id());
    let store = PgStore::connect(&url, &schema).await?;
    let admin = sqlx::PgPool::connect(&url).await?;
    let result = measure(&store, &admin).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await?;
    result
}

async fn measure(store: &PgStore, admin: &sqlx::PgPool) -> Result<(), Box<dyn Error>> {
    let geometry = CanvasGeometry::new(2048, 2048)?;
    let mut canvas = Canvas::new(geometry);

    println!("append_events (one transaction per batch; synchronous_commit as the server has it)");
    for (batch, rounds) in APPEND_ROUNDS {
        let started = Instant::now();
        for _ in 0..rounds {
            store.append_events(&canvas.next_batch(batch)).await?;
        }
        let elapsed = started.elapsed();
        let per_batch = elapsed / rounds as u32;
        let events_per_s = (batch * rounds) as f64 / elapsed.as_secs_f64();
        println!("  batch {batch:>5}: {per_batch:>10.2?} per batch, {events_per_s:>9.0} events/s");
    }

    // Fill every tile up to EVENTS_PER_TILE, snapshot all of them, then as many again.
    let target = geometry.tile_count() as u64 * EVENTS_PER_TILE;
    let started = Instant::now();
    while canvas.written < target {
        store.append_events(&canvas.next_batch(8192)).await?;
    }
    let snapshots = canvas.snapshots();
    let checkpoint_started = Instant::now();
    store.write_checkpoint(&snapshots, 0, 0).await?;
    let checkpoint = checkpoint_started.elapsed();
    let after_snapshots = canvas.written;
    while canvas.written < after_snapshots + target {
        store.append_events(&canvas.next_batch(8192)).await?;
    }
    println!(
        "filled: {} events in {:.1?}; checkpoint of {} tiles ({} KiB) in {checkpoint:.2?}",
        canvas.written,
        started.elapsed(),
        snapshots.len(),
        snapshots.iter().map(|s| s.data.len()).sum::<usize>() / 1024,
    );

    // Right after writing, the index does not yet know the new rows are visible to all, so the
    // load reads them from the table; autovacuum soon marks them.
    load(store, &canvas, "right after writing").await?;
    let started = Instant::now();
    let vacuum = format!("VACUUM \"{}\".pixel_events", store.schema());
    sqlx::query(&vacuum).execute(admin).await?;
    println!("vacuum (as autovacuum does): {:.2?}", started.elapsed());
    load(store, &canvas, "after a vacuum").await
}

/// Loads all tiles, then a third of them, and checks them.
async fn load(store: &PgStore, canvas: &Canvas, when: &str) -> Result<(), Box<dyn Error>> {
    let geometry = canvas.geometry;
    let all = |_| true;
    let a_third = |t: TileId| (t.tx + t.ty) % 3 == 0;
    let cases: [(&str, &(dyn Fn(TileId) -> bool + Sync)); 2] =
        [("all 1024 tiles", &all), ("a third of them", &a_third)];
    for (name, owned) in cases {
        let started = Instant::now();
        let restored = store.load_canvas(geometry, owned).await?;
        println!(
            "load_canvas, {name}, {when}: {} events replayed in {:.2?}",
            restored.events_replayed,
            started.elapsed()
        );
        let wrong = geometry
            .tiles()
            .filter(|&t| owned(t))
            .filter(|&t| {
                let i = geometry.tile_index(t);
                restored.tiles[i] != canvas.tiles[i]
            })
            .count();
        if wrong > 0 {
            return Err(format!("{wrong} tiles restored wrong").into());
        }
    }
    Ok(())
}

/// The canvas as written so far, to make events with the right seqs and check the restore.
struct Canvas {
    geometry: CanvasGeometry,
    tiles: Vec<Tile>,
    rng: u64,
    written: u64,
}

impl Canvas {
    fn new(geometry: CanvasGeometry) -> Self {
        Self {
            geometry,
            tiles: (0..geometry.tile_count()).map(|_| Tile::new()).collect(),
            rng: 0x2545_f491_4f6c_dd1d,
            written: 0,
        }
    }

    /// Random pixels all over the canvas, as players place them.
    fn next_batch(&mut self, size: usize) -> Vec<NewEvent> {
        (0..size)
            .map(|_| {
                let r = self.random();
                let (x, y) = (
                    (r as u32) % self.geometry.width(),
                    ((r >> 32) as u32) % self.geometry.height(),
                );
                let color = (r >> 20) as u8 & 31;
                let (tile, lx, ly) = self.geometry.locate(x, y).expect("on the canvas");
                let tile_seq =
                    self.tiles[self.geometry.tile_index(tile)].apply(PixelChange { lx, ly, color });
                self.written += 1;
                NewEvent {
                    x,
                    y,
                    color,
                    user_id: (r % 10_000) as i64,
                    placed_at: self.written as i64,
                    tile_seq,
                    action_id: None,
                }
            })
            .collect()
    }

    fn snapshots(&self) -> Vec<TileSnapshotRecord> {
        self.geometry
            .tiles()
            .map(|tile| {
                let t = &self.tiles[self.geometry.tile_index(tile)];
                TileSnapshotRecord {
                    tile,
                    seq: t.seq(),
                    data: compress_tile(t.pixels()),
                }
            })
            .collect()
    }

    /// xorshift64*: enough for spreading pixels.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
