//! Where an edge's shards are: in this process (`place serve`) or across the cluster.

use std::sync::Arc;

use std::time::Duration;

use futures_util::future::join_all;
use place_cluster::wire::TileFrame;
use place_cluster::ClusterClient;
use place_shard::{PlaceError, PlaceRequest, Placed, ShardHandle, TileSnapshot};
use place_tiles::TileId;

use crate::hub::TileHub;

/// How long the in-process shard may take to answer a health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The shards an edge routes to.
#[derive(Clone)]
pub enum Shards {
    /// One shard owning every tile, in this process.
    Local(ShardHandle),
    /// The ring's shards, over QUIC.
    Cluster(Arc<ClusterClient>),
}

impl Shards {
    /// Applies a placement at the tile's owner; resolves once it is durable or refused.
    pub async fn place(&self, request: PlaceRequest) -> Result<Placed, PlaceError> {
        match self {
            Shards::Local(shard) => shard.place(request).await,
            Shards::Cluster(client) => client.place(request).await,
        }
    }

    /// Applies a batch of placements (an administrator's restore), each answered in order: in
    /// this process all at once (the shard's group commit writes them together), in the cluster
    /// one stream per owning shard.
    pub async fn place_batch(&self, requests: &[PlaceRequest]) -> Vec<Result<(), PlaceError>> {
        match self {
            Shards::Local(shard) => {
                let placed = join_all(requests.iter().map(|r| shard.place(*r))).await;
                placed.into_iter().map(|r| r.map(|_| ())).collect()
            }
            Shards::Cluster(client) => client.place_batch(requests).await,
        }
    }

    /// Each shard and whether it answers now: `(id, address, healthy)`.
    pub async fn health(&self) -> Vec<(String, String, bool)> {
        match self {
            Shards::Local(shard) => {
                let answers =
                    tokio::time::timeout(HEALTH_TIMEOUT, shard.read_tile(TileId::new(0, 0)))
                        .await
                        .is_ok_and(|tile| tile.is_some());
                vec![("serve".into(), "in-process".into(), answers)]
            }
            Shards::Cluster(client) => client
                .shard_health()
                .await
                .into_iter()
                .map(|(shard, ok)| (shard.id, shard.addr, ok))
                .collect(),
        }
    }

    /// Every tile of the canvas; `None` when a shard cannot be read.
    pub async fn read_tiles(&self) -> Option<Vec<TileSnapshot>> {
        match self {
            Shards::Local(shard) => shard.read_tiles().await,
            Shards::Cluster(client) => match client.read_tiles().await {
                Ok(tiles) => Some(tiles),
                Err(error) => {
                    tracing::warn!(%error, "could not read the canvas from the shards");
                    None
                }
            },
        }
    }

    /// One tile from its owner.
    pub async fn read_tile(&self, tile: TileId) -> Option<TileSnapshot> {
        match self {
            Shards::Local(shard) => shard.read_tile(tile).await,
            Shards::Cluster(client) => {
                match client.subscribe(tile, None).await.ok()?.next().await {
                    Ok(Some(TileFrame::Snapshot { tile, seq, pixels })) => {
                        Some(TileSnapshot { tile, seq, pixels })
                    }
                    _ => None,
                }
            }
        }
    }

    /// Starts the tile hub that follows these shards.
    pub fn start_hub(&self) -> Arc<TileHub> {
        match self {
            Shards::Local(shard) => TileHub::start_local(shard.clone(), 1),
            Shards::Cluster(client) => TileHub::start_cluster(Arc::clone(client)),
        }
    }
}
