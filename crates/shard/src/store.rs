//! Where a shard keeps its events and snapshots: the embedded store (`place serve`) or
//! PostgreSQL (a cluster shard, restoring only the tiles it owns).

use place_store::{
    EmbeddedStore, NewEvent, PgStore, RestoredCanvas, StoreError, TileSnapshotRecord,
};
use place_tiles::{CanvasGeometry, TileId};

/// A shard's durable storage.
#[derive(Clone, Debug)]
pub enum ShardStore {
    /// SQLite in a local directory.
    Embedded(EmbeddedStore),
    /// PostgreSQL, shared by the cluster.
    Postgres(PgStore),
}

impl ShardStore {
    /// Appends placements in one transaction, as a shard of ring `epoch`; returns the last event
    /// id. PostgreSQL refuses the batch with [`StoreError::Fenced`] when some of its tiles moved
    /// to another shard at a newer epoch; the embedded store has one shard and no fences.
    pub async fn append_events(&self, events: &[NewEvent], epoch: u64) -> Result<i64, StoreError> {
        match self {
            ShardStore::Embedded(s) => s.append_events(events).await,
            ShardStore::Postgres(s) => s.append_events_at_epoch(events, epoch).await,
        }
    }

    /// Raises the fences of tiles this shard takes over to its ring epoch (PostgreSQL; the
    /// embedded store has nothing to fence).
    pub async fn raise_fences(&self, tiles: &[TileId], epoch: u64) -> Result<(), StoreError> {
        match self {
            ShardStore::Embedded(_) => Ok(()),
            ShardStore::Postgres(s) => s.raise_fences(tiles, epoch).await,
        }
    }

    /// Saves tile snapshots.
    pub async fn write_checkpoint(
        &self,
        snapshots: &[TileSnapshotRecord],
        through_event_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            ShardStore::Embedded(s) => {
                s.write_checkpoint(snapshots, through_event_id, now_ms)
                    .await
            }
            ShardStore::Postgres(s) => {
                s.write_checkpoint(snapshots, through_event_id, now_ms)
                    .await
            }
        }
    }

    /// Restores the tiles `owned` says are this shard's (all of them in the embedded store).
    pub async fn load_canvas(
        &self,
        geometry: CanvasGeometry,
        owned: &(dyn Fn(TileId) -> bool + Sync),
    ) -> Result<RestoredCanvas, StoreError> {
        match self {
            ShardStore::Embedded(s) => s.load_canvas(geometry).await,
            ShardStore::Postgres(s) => s.load_canvas(geometry, owned).await,
        }
    }
}
