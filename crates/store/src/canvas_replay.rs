//! Reading the whole canvas out of the embedded store: the latest tile snapshots, then every
//! event of the log after them, in one read transaction on a connection of its own (rusqlite),
//! on a blocking thread.
//!
//! Why not through the pool: sqlx hands each row of a query from its worker thread to the task
//! over a channel, with an allocation, a lock and a wake-up per row. Replaying a log of 10 million
//! events that way took 34 s on the project's 2-core machine, with half the samples of a
//! `perf record` in that machinery and 2.7% in SQLite itself.

use std::path::Path;
use std::time::Duration;

use place_tiles::{decompress_tile, CanvasGeometry, PixelChange, Tile, TileId};
use rusqlite::{Connection, OpenFlags};

use crate::timelapse::COVERS_UNTIL;
use crate::types::{RestoredCanvas, StoreError};

/// How long the read waits for a writer holding a lock it needs (only a WAL restart can).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The canvas as the log has it, and the latest `placed_at` of the log (epoch ms; `None`: an
/// empty log), both from one read transaction of the database at `path`.
pub(crate) fn read_canvas(
    path: &Path,
    geometry: CanvasGeometry,
) -> Result<(RestoredCanvas, Option<i64>), StoreError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(replay_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(replay_error)?;
    let tx = conn.transaction().map_err(replay_error)?;
    let read = read_in(&tx, geometry);
    // Only read: ending the transaction either way leaves the database as it was.
    drop(tx);
    read
}

fn read_in(
    tx: &rusqlite::Transaction<'_>,
    geometry: CanvasGeometry,
) -> Result<(RestoredCanvas, Option<i64>), StoreError> {
    let mut tiles: Vec<Tile> = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    let mut snapshots = tx
        .prepare("SELECT tx, ty, seq, data FROM tile_snapshots")
        .map_err(replay_error)?;
    let mut rows = snapshots.query([]).map_err(replay_error)?;
    while let Some(row) = rows.next().map_err(replay_error)? {
        let (tx, ty, seq): (i64, i64, i64) = (
            row.get(0).map_err(replay_error)?,
            row.get(1).map_err(replay_error)?,
            row.get(2).map_err(replay_error)?,
        );
        let tile = TileId::new(tx as u16, ty as u16);
        if !geometry.contains_tile(tile) {
            return Err(StoreError::Corrupt(format!(
                "snapshot of tile {tile} outside the canvas"
            )));
        }
        let data = row.get_ref(3).map_err(replay_error)?;
        let data = data
            .as_blob()
            .map_err(|e| StoreError::Corrupt(format!("snapshot of tile {tile}: {e}")))?;
        let pixels = decompress_tile(data)
            .map_err(|e| StoreError::Corrupt(format!("snapshot of tile {tile}: {e}")))?;
        tiles[geometry.tile_index(tile)] = Tile::from_pixels(seq as u64, pixels);
    }
    let through: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(through_event_id), 0) FROM checkpoints",
            [],
            |row| row.get(0),
        )
        .map_err(replay_error)?;
    let mut replayed = 0u64;
    let mut last_event_id = through;
    let mut events = tx
        .prepare("SELECT id, x, y, color, tile_seq FROM pixel_events WHERE id > ? ORDER BY id")
        .map_err(replay_error)?;
    let mut rows = events.query([through]).map_err(replay_error)?;
    while let Some(row) = rows.next().map_err(replay_error)? {
        let (id, x, y, color, tile_seq): (i64, i64, i64, i64, i64) = (
            row.get(0).map_err(replay_error)?,
            row.get(1).map_err(replay_error)?,
            row.get(2).map_err(replay_error)?,
            row.get(3).map_err(replay_error)?,
            row.get(4).map_err(replay_error)?,
        );
        let (tile_id, lx, ly) = geometry.locate(x as u32, y as u32).ok_or_else(|| {
            StoreError::Corrupt(format!("event {id} at ({x},{y}) is outside the canvas"))
        })?;
        let tile = &mut tiles[geometry.tile_index(tile_id)];
        let tile_seq = tile_seq as u64;
        if tile_seq <= tile.seq() {
            // Already in the snapshot (a checkpoint written while this batch was in flight).
            last_event_id = id;
            continue;
        }
        if tile_seq != tile.seq() + 1 {
            return Err(StoreError::Corrupt(format!(
                "event {id} has seq {tile_seq} but tile {tile_id} is at {}",
                tile.seq()
            )));
        }
        tile.apply(PixelChange {
            lx,
            ly,
            color: color as u8,
        });
        replayed += 1;
        last_event_id = id;
    }
    let covers_until: Option<i64> = tx
        .query_row(COVERS_UNTIL, [], |row| row.get(0))
        .map_err(replay_error)?;
    Ok((
        RestoredCanvas {
            tiles,
            last_event_id,
            events_replayed: replayed,
        },
        covers_until,
    ))
}

fn replay_error(e: rusqlite::Error) -> StoreError {
    StoreError::Replay(e.to_string())
}
