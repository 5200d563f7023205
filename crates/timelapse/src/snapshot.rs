//! Canvas snapshots for the timelapse: taken from the store (never from a shard's memory) every
//! `interval`, compressed, and read back as the base of frames.
//!
//! One taker at a time is enough and more would waste the store's time: in `place serve` the
//! server takes them, in the cluster every `place worker` runs [`run`] and the store refuses a
//! snapshot taken within nine tenths of the interval after another
//! ([`place_store::Store::insert_snapshot`] locks the table to decide), so with any number of
//! workers there is one per interval. A canvas nobody painted since the last snapshot gets none.

use std::time::Duration;

use place_store::timelapse::{CanvasRead, NewSnapshot, SnapshotRecord};
use place_store::Store;
use place_tiles::CanvasGeometry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{now_ms, TimelapseError};

/// DEFLATE level of snapshot data: 6, the usual balance.
const LEVEL: u8 = 6;
/// How long finished jobs (and their results) are kept.
pub const JOB_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A snapshot read back: the canvas and each tile's seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// Row-major palette indices of the whole canvas.
    pub pixels: Vec<u8>,
    /// Per tile (in tile index order), the seq of its last event included.
    pub tile_seqs: Vec<u64>,
    /// The latest time among the events included.
    pub covers_until: i64,
}

/// Compresses a canvas read into a snapshot to store; `None` for an empty log.
pub fn encode(geometry: CanvasGeometry, read: &CanvasRead, taken_at: i64) -> Option<NewSnapshot> {
    let covers_until = read.covers_until?;
    let seqs: Vec<u8> = read
        .tile_seqs
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    Some(NewSnapshot {
        taken_at,
        covers_until,
        event_count: read.event_count,
        width: geometry.width(),
        height: geometry.height(),
        tile_seqs: miniz_oxide::deflate::compress_to_vec(&seqs, LEVEL),
        pixels: miniz_oxide::deflate::compress_to_vec(&read.pixels, LEVEL),
    })
}

/// The size of the canvas a snapshot was taken of (the size it had then).
pub fn own_geometry(record: &SnapshotRecord) -> Result<CanvasGeometry, TimelapseError> {
    CanvasGeometry::new(record.width, record.height)
        .map_err(|_| TimelapseError::BadSnapshot(record.info.id))
}

/// Inflates a stored snapshot onto a canvas of `geometry`: one taken before the canvas grew
/// keeps every pixel at its coordinates, and the area added since is empty (colour 0, seq 0),
/// as it was then. Refuses a snapshot larger than `geometry` on a side, or that does not
/// inflate to exactly its size.
pub fn decode(geometry: CanvasGeometry, record: &SnapshotRecord) -> Result<Base, TimelapseError> {
    let bad = || TimelapseError::BadSnapshot(record.info.id);
    let own = own_geometry(record)?;
    if !geometry.covers(own) {
        return Err(bad());
    }
    let area = own.width() as usize * own.height() as usize;
    let own_pixels = inflate_exact(&record.pixels, area).ok_or_else(bad)?;
    let seqs = inflate_exact(&record.tile_seqs, own.tile_count() * 8).ok_or_else(bad)?;
    let own_seqs: Vec<u64> = seqs
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    if own == geometry {
        return Ok(Base {
            pixels: own_pixels,
            tile_seqs: own_seqs,
            covers_until: record.info.covers_until,
        });
    }
    let (own_width, width) = (own.width() as usize, geometry.width() as usize);
    let mut pixels = vec![0u8; width * geometry.height() as usize];
    for (row, src) in own_pixels.chunks_exact(own_width).enumerate() {
        pixels[row * width..][..own_width].copy_from_slice(src);
    }
    let mut tile_seqs = vec![0u64; geometry.tile_count()];
    for (tile, seq) in own.tiles().zip(own_seqs) {
        tile_seqs[geometry.tile_index(tile)] = seq;
    }
    Ok(Base {
        pixels,
        tile_seqs,
        covers_until: record.info.covers_until,
    })
}

fn inflate_exact(data: &[u8], len: usize) -> Option<Vec<u8>> {
    miniz_oxide::inflate::decompress_to_vec_with_limit(data, len)
        .ok()
        .filter(|v| v.len() == len)
}

/// Takes a snapshot now unless one was taken within `min_gap` or nothing was placed since the
/// last; the new snapshot's id.
pub async fn take(
    source: &Store,
    geometry: CanvasGeometry,
    min_gap: Duration,
) -> Result<Option<i64>, TimelapseError> {
    let now = now_ms();
    let min_gap_ms = min_gap.as_millis() as i64;
    let latest = source.latest_snapshot().await?;
    if let Some(latest) = latest {
        if now - latest.taken_at < min_gap_ms {
            return Ok(None);
        }
        let newest_event = source.event_time_range().await?.map(|(_, last)| last);
        if newest_event == Some(latest.covers_until) {
            return Ok(None);
        }
    }
    // The canvas as it is now (it may have grown since the process started).
    let geometry = source.canvas(geometry).await?;
    let read = source.read_canvas(geometry).await?;
    let Some(snapshot) = encode(geometry, &read, now) else {
        return Ok(None);
    };
    let id = source.insert_snapshot(&snapshot, min_gap_ms).await?;
    if let Some(id) = id {
        info!(
            id,
            events = snapshot.event_count,
            bytes = snapshot.pixels.len(),
            "timelapse snapshot taken"
        );
    }
    Ok(id)
}

/// Takes a snapshot every `interval` (checked every tenth of it, at most every 10 s) and prunes
/// finished jobs older than [`JOB_RETENTION`], until `shutdown`.
pub async fn run(
    source: Store,
    geometry: CanvasGeometry,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let check = (interval / 10).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let mut every = tokio::time::interval(check);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = take(&source, geometry, interval.mul_f64(0.9)).await {
            warn!(%error, "cannot take a timelapse snapshot");
        }
        let before = now_ms() - JOB_RETENTION.as_millis() as i64;
        match source.prune_jobs(before).await {
            Ok(0) => {}
            Ok(n) => info!(jobs = n, "old timelapse jobs pruned"),
            Err(error) => warn!(%error, "cannot prune timelapse jobs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use place_store::timelapse::SnapshotInfo;

    #[test]
    fn snapshots_come_back_as_they_went_and_refuse_other_canvases() {
        let g = CanvasGeometry::new(130, 70).expect("size");
        let read = CanvasRead {
            pixels: (0..130 * 70).map(|i| (i % 7) as u8).collect(),
            tile_seqs: (0..g.tile_count() as u64).collect(),
            covers_until: Some(42),
            event_count: 15,
        };
        let new = encode(g, &read, 50).expect("not empty");
        let record = SnapshotRecord {
            info: SnapshotInfo {
                id: 1,
                taken_at: 50,
                covers_until: 42,
                event_count: 15,
            },
            width: new.width,
            height: new.height,
            tile_seqs: new.tile_seqs,
            pixels: new.pixels,
        };
        let base = decode(g, &record).expect("decode");
        assert_eq!(
            (&base.pixels, &base.tile_seqs),
            (&read.pixels, &read.tile_seqs)
        );
        let other = CanvasGeometry::new(70, 130).expect("size");
        assert!(decode(other, &record).is_err(), "smaller than the snapshot");
        // On a grown canvas, every pixel and tile seq stays where it was; the rest is empty.
        let grown = CanvasGeometry::new(200, 140).expect("size");
        let base = decode(grown, &record).expect("decode on the grown canvas");
        assert_eq!(base.pixels.len(), 200 * 140);
        for (x, y) in [(0, 0), (129, 0), (5, 69), (129, 69)] {
            assert_eq!(
                base.pixels[y * 200 + x],
                read.pixels[y * 130 + x],
                "({x},{y})"
            );
        }
        assert_eq!(base.pixels[130], 0);
        assert_eq!(base.pixels[70 * 200], 0);
        for tile in g.tiles() {
            assert_eq!(
                base.tile_seqs[grown.tile_index(tile)],
                read.tile_seqs[g.tile_index(tile)]
            );
        }
        assert_eq!(
            base.tile_seqs[grown.tile_index(place_tiles::TileId::new(3, 2))],
            0
        );
        let empty = CanvasRead {
            covers_until: None,
            ..read
        };
        assert!(encode(g, &empty, 50).is_none());
    }
}
