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
    /// Appends placements in one transaction; returns the last event id.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<i64, StoreError> {
        match self {
            ShardStore::Embedded(s) => s.append_events(events).await,
            ShardStore::Postgres(s) => s.append_events(events).await,
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
