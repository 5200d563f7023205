//! `place serve`: the edge and the shard in one process, joined by channels instead of QUIC, on
//! the embedded store. The same placement path as the cluster: edge checks, shard group commit,
//! tile hub fan-out.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use place_edge::accounts::Accounts;
use place_edge::live::LiveBus;
use place_edge::shards::Shards;
use place_edge::Edge;
use place_shard::{ShardHandle, ShardTask};
use place_store::{EmbeddedStore, Store};
use place_timelapse::jobs::{JobContext, LocalRunner};
use place_timelapse::service::{Dispatch, Timelapse};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::ValidConfig;

/// The running parts of `place serve`, before it serves HTTP.
pub struct Services {
    /// The embedded store.
    pub store: Store,
    /// The in-process shard.
    pub shard: ShardHandle,
    /// The edge.
    pub edge: Arc<Edge>,
    shard_task: JoinHandle<()>,
    snapshots: CancellationToken,
}

/// Opens the store, restores the canvas and starts the shard and the edge.
pub async fn start(config: &ValidConfig) -> anyhow::Result<Services> {
    let engine = EmbeddedStore::open(&config.data_dir)
        .await
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    let store = Store::from(engine);
    // The stored size: an administrator may have grown the canvas beyond the configured one.
    let geometry = store.canvas_geometry(config.shard.geometry).await?;
    let shard_config = place_shard::ShardConfig {
        geometry,
        ..config.shard.clone()
    };
    let (shard, shard_task) = ShardTask::start(shard_config, store.clone(), None).await?;
    let accounts = Accounts::embedded(store.clone(), place_edge::now_ms()).await?;
    let mut edge_config = config.edge.clone();
    edge_config.geometry = geometry;
    // A cooldown an administrator set while running outlives restarts.
    if let Some(cooldown_ms) = store.stored_cooldown_ms().await? {
        edge_config.cooldown = std::time::Duration::from_millis(cooldown_ms);
    }
    let edge = Edge::new(
        edge_config,
        accounts,
        Shards::Local(shard.clone()),
        LiveBus::Local,
    );
    // Before the first placement: a region locked before a restart holds from the first moment.
    edge.reload_regions()
        .await
        .context("reading the protected regions")?;
    let snapshots = start_timelapse(config, &store, &edge).await?;
    info!(
        width = geometry.width(),
        height = geometry.height(),
        cooldown_secs = edge.cooldown_ms() / 1000,
        data_dir = %config.data_dir.display(),
        "place serve ready"
    );
    Ok(Services {
        store,
        shard,
        edge,
        shard_task,
        snapshots,
    })
}

/// The timelapse of `place serve`: snapshots taken by this process, render jobs rendered in it
/// one at a time (those a previous run left unfinished first). Returns what stops the snapshots.
async fn start_timelapse(
    config: &ValidConfig,
    store: &Store,
    edge: &Edge,
) -> anyhow::Result<CancellationToken> {
    let ctx = JobContext {
        source: store.clone(),
        geometry: edge.geometry(),
        palette: config.edge.palette.clone(),
        throttle: std::time::Duration::ZERO,
    };
    let runner = LocalRunner::start(ctx.clone());
    for id in store.unfinished_jobs().await? {
        runner.submit(id);
    }
    let stop = CancellationToken::new();
    tokio::spawn(place_timelapse::snapshot::run(
        ctx.source.clone(),
        ctx.geometry,
        config.timelapse_snapshot_interval,
        stop.clone(),
    ));
    edge.enable_timelapse(Arc::new(Timelapse::new(ctx, Dispatch::Local(runner))));
    Ok(stop)
}

impl Services {
    /// Serves on an already-bound listener until `shutdown` resolves; then closes the sockets,
    /// writes what is pending and takes a last checkpoint.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        place_edge::serve(listener, Arc::clone(&self.edge), shutdown)
            .await
            .context("serving HTTP")?;
        self.snapshots.cancel();
        self.shard.shutdown().await;
        let _ = self.shard_task.await;
        self.store.close().await;
        info!("stopped cleanly");
        Ok(())
    }
}

/// Runs `place serve` on an already-bound listener until `shutdown` resolves.
pub async fn run(
    config: ValidConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start(&config).await?.serve(listener, shutdown).await
}
