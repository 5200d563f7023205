//! Seeds a data directory of `place serve` with a long event log, fast: events are written
//! straight into the embedded store with `Store::append_events` in large batches, with the
//! tile seqs the shard would have given them. Used by `bench/run` to time a restart that restores
//! a canvas with millions of events.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use place_store::{NewEvent, Store, TileSnapshotRecord};
use place_tiles::{compress_tile, CanvasGeometry, PixelChange, Tile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// What seeding did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seeded {
    /// Events written.
    pub events: u64,
    /// Events covered by the checkpoint written (0: none, a restart replays the whole log).
    pub checkpointed: u64,
    /// How long it took.
    pub secs: f64,
}

/// Writes `events` random placements (16 colours, 100,000 users, timestamps a day old so no
/// cooldown is restored) to the store in `dir`. With `checkpoint_tail` set, also writes a
/// checkpoint of every tile covering all but the last `checkpoint_tail` events, as the shard's
/// periodic checkpoints would have.
pub async fn seed(
    dir: &Path,
    geometry: CanvasGeometry,
    events: u64,
    batch: usize,
    checkpoint_tail: Option<u64>,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let store = Store::open_sqlite(dir).await?;
    store.canvas_geometry(geometry).await?;
    let mut tiles: Vec<Tile> = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    let mut rng = StdRng::seed_from_u64(2017);
    let day_ago = place_shard::driver::now_ms() - 24 * 3600 * 1000;
    let checkpoint_at = checkpoint_tail.map(|tail| events.saturating_sub(tail));
    let mut written = 0u64;
    let mut last_report = Instant::now();
    while written < events {
        let n = (batch as u64).min(events - written);
        let n = match checkpoint_at {
            Some(at) if written < at => n.min(at - written),
            _ => n,
        };
        let chunk: Vec<NewEvent> = (0..n)
            .map(|i| {
                random_event(
                    geometry,
                    &mut tiles,
                    &mut rng,
                    day_ago + (written + i) as i64,
                )
            })
            .collect();
        let last_id = store.append_events(&chunk).await?;
        written += n;
        if checkpoint_at == Some(written) {
            write_checkpoint(&store, geometry, &tiles, last_id).await?;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("seed-log: {written} of {events} events");
            last_report = Instant::now();
        }
    }
    store.close().await;
    Ok(Seeded {
        events,
        checkpointed: checkpoint_at.unwrap_or(0),
        secs: started.elapsed().as_secs_f64(),
    })
}

fn random_event(
    geometry: CanvasGeometry,
    tiles: &mut [Tile],
    rng: &mut StdRng,
    placed_at: i64,
) -> NewEvent {
    let (x, y) = (
        rng.random_range(0..geometry.width()),
        rng.random_range(0..geometry.height()),
    );
    let color = rng.random_range(0..16u8);
    let (tile, lx, ly) = geometry
        .locate(x, y)
        .expect("coordinates are drawn inside the canvas");
    let tile_seq = tiles[geometry.tile_index(tile)].apply(PixelChange { lx, ly, color });
    NewEvent {
        x,
        y,
        color,
        user_id: rng.random_range(1..=100_000),
        placed_at,
        tile_seq,
        action_id: None,
    }
}

async fn write_checkpoint(
    store: &Store,
    geometry: CanvasGeometry,
    tiles: &[Tile],
    through_event_id: i64,
) -> anyhow::Result<()> {
    let records: Vec<TileSnapshotRecord> = geometry
        .tiles()
        .map(|tile| {
            let t = &tiles[geometry.tile_index(tile)];
            TileSnapshotRecord {
                tile,
                seq: t.seq(),
                data: compress_tile(t.pixels()),
            }
        })
        .collect();
    store
        .write_checkpoint(&records, through_event_id, place_shard::driver::now_ms())
        .await
        .context("writing the checkpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_seeded_log_restores_to_the_same_canvas() {
        let dir = tempfile::tempdir().expect("temp dir");
        let geometry = CanvasGeometry::new(300, 200).expect("size");
        let seeded = seed(dir.path(), geometry, 5000, 700, Some(1234))
            .await
            .expect("seeds");
        assert_eq!((seeded.events, seeded.checkpointed), (5000, 3766));
        let store = Store::open_sqlite(dir.path()).await.expect("opens");
        let restored = store
            .load_canvas(geometry, &|_| true)
            .await
            .expect("restores");
        assert_eq!(restored.events_replayed, 1234);
        assert_eq!(restored.last_event_id, 5000);
        let total: u64 = restored.tiles.iter().map(Tile::seq).sum();
        assert_eq!(total, 5000);
    }
}
