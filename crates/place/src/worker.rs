//! `place worker`: a cluster's timelapse worker. It renders the render jobs the edges publish to
//! RabbitMQ (one at a time, acknowledged only once the result is in PostgreSQL, so a worker that
//! dies leaves its job to another) and takes the timelapse snapshots (one per interval whatever
//! the number of workers; see [`place_timelapse::snapshot`]). No edge or shard renders anything.

use std::time::Duration;

use place_tiles::{CanvasGeometry, Palette};

use anyhow::Context;
use place_timelapse::jobs::JobContext;
use place_timelapse::queue::JobQueue;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Where a worker finds its cluster.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// PostgreSQL.
    pub database_url: String,
    /// The cluster's name (its schema, and its queue `place.NAME.timelapse`).
    pub cluster: String,
    /// RabbitMQ.
    pub amqp_url: String,
    /// This worker's name (its consumer tag).
    pub id: String,
    /// A pause after each frame (tests that kill a worker mid-job); zero otherwise.
    pub throttle: Duration,
    /// The canvas as configured (the stored size wins).
    pub geometry: CanvasGeometry,
    /// Its colours.
    pub palette: Palette,
    /// Time between two timelapse snapshots.
    pub snapshot_interval: Duration,
}

/// Runs a worker until `shutdown`.
pub async fn run(settings: &WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = place_store::Store::connect_postgres(&settings.database_url, &settings.cluster)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", settings.database_url))?;
    let geometry = store.canvas_geometry(settings.geometry).await?;
    let ctx = JobContext {
        source: store,
        geometry,
        palette: settings.palette.clone(),
        throttle: settings.throttle,
    };
    let snapshots = tokio::spawn(place_timelapse::snapshot::run(
        ctx.source.clone(),
        ctx.geometry,
        settings.snapshot_interval,
        shutdown.clone(),
    ));
    let queue = JobQueue::new(&settings.amqp_url, &settings.cluster);
    info!(worker = %settings.id, queue = queue.name(), "timelapse worker ready");
    queue.work(ctx, &settings.id, shutdown).await;
    let _ = snapshots.await;
    info!("worker stopped");
    Ok(())
}
