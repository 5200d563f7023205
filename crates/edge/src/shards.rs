//! Where an edge's shards are: in this process (`place serve`) or across the cluster.

use std::sync::Arc;

use std::time::Duration;

use futures_util::future::join_all;
use place_cluster::wire::TileFrame;
use place_cluster::{ClusterClient, RingStore};
use place_shard::{PlaceError, PlaceRequest, Placed, ShardHandle, TileSnapshot};
use place_tiles::TileId;

use crate::hub::{FanoutWriters, TileHub};
use crate::telemetry::ShardFigures;

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

    /// Each shard's figures: the in-process shard's status, or, in a cluster, the report in
    /// Redis (`reports`) of every shard of the ring (down when it has none) and of any shard
    /// reporting outside it (one joining). `tile_count`: the canvas's tiles, all of which the
    /// in-process shard owns.
    pub async fn figures(
        &self,
        reports: Option<&RingStore>,
        tile_count: usize,
    ) -> Vec<ShardFigures> {
        match self {
            Shards::Local(shard) => {
                let status = tokio::time::timeout(HEALTH_TIMEOUT, shard.status())
                    .await
                    .ok()
                    .flatten();
                let Some(status) = status else {
                    return vec![ShardFigures {
                        id: "serve".into(),
                        ..ShardFigures::default()
                    }];
                };
                vec![ShardFigures {
                    id: "serve".into(),
                    up: true,
                    epoch: status.epoch,
                    tiles_owned: status.owned.unwrap_or(tile_count),
                    tiles_acquiring: status.acquiring,
                    placed_total: status.placed_total,
                    placements_per_sec: None,
                    queue_depth: status.queue_depth,
                    writes_total: status.writes_total,
                    write_seconds: status.write_seconds,
                }]
            }
            Shards::Cluster(client) => {
                let reports = match reports {
                    Some(store) => tokio::time::timeout(HEALTH_TIMEOUT, store.reports())
                        .await
                        .map_err(|_| "timed out".to_owned())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .unwrap_or_else(|error| {
                            tracing::warn!(%error, "cannot read the shards' reports");
                            Default::default()
                        }),
                    None => Default::default(),
                };
                let ring = client.ring();
                let mut ids: Vec<String> = ring.shards().iter().map(|s| s.id.clone()).collect();
                let joining: Vec<String> = reports
                    .keys()
                    .filter(|id| !ids.contains(id))
                    .cloned()
                    .collect();
                ids.extend(joining);
                ids.into_iter()
                    .map(|id| match reports.get(&id) {
                        Some(r) => ShardFigures {
                            id,
                            up: true,
                            epoch: r.epoch,
                            tiles_owned: r.owned,
                            tiles_acquiring: r.acquiring,
                            placed_total: r.placed_total,
                            placements_per_sec: Some(r.placements_per_sec),
                            queue_depth: r.queue_depth,
                            writes_total: r.writes_total,
                            write_seconds: r.write_seconds,
                        },
                        None => ShardFigures {
                            id,
                            ..ShardFigures::default()
                        },
                    })
                    .collect()
            }
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

    /// Starts the tile hub that follows these shards, writing large fan-outs on `writers`.
    pub fn start_hub(&self, writers: FanoutWriters) -> Arc<TileHub> {
        match self {
            Shards::Local(shard) => TileHub::start_local(shard.clone(), 1, writers),
            Shards::Cluster(client) => TileHub::start_cluster(Arc::clone(client), writers),
        }
    }
}
