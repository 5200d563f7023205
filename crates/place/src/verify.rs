//! `place verify`: does the live canvas equal a replay of the event log, pixel for pixel?
//!
//! It reads the canvas from a running server (`GET /api/v1/canvas`, so through an edge or the
//! load balancer in a cluster) and replays every event of the log from nothing, ignoring
//! snapshots. A difference means an acknowledged pixel was lost, applied twice out of order, or
//! shown without being durable.

use std::path::PathBuf;

use anyhow::{bail, Context};
use place_protocol::CanvasInfo;
use place_store::Store;
use place_tiles::CanvasGeometry;

/// Where the event log is.
#[derive(Debug, Clone)]
pub enum LogSource {
    /// The embedded store of `place serve`.
    DataDir(PathBuf),
    /// A cluster's PostgreSQL schema.
    Postgres {
        /// The database.
        url: String,
        /// The cluster's name (its schema).
        cluster: String,
    },
}

/// What `verify` found.
#[derive(Debug)]
pub struct Report {
    /// Pixels compared.
    pub pixels: usize,
    /// Up to 20 differences: `(x, y, live colour, replayed colour)`.
    pub differences: Vec<(u32, u32, u8, u8)>,
    /// How many pixels differ in all.
    pub differing: usize,
}

/// Compares the live canvas at `base_url` with a replay of the log.
pub async fn verify(base_url: &str, source: &LogSource) -> anyhow::Result<Report> {
    let base = base_url.trim_end_matches('/');
    let info: CanvasInfo = reqwest::get(format!("{base}/api/v1/canvas/info"))
        .await
        .with_context(|| format!("reading {base}/api/v1/canvas/info"))?
        .json()
        .await?;
    let response = reqwest::get(format!("{base}/api/v1/canvas"))
        .await
        .with_context(|| format!("reading {base}/api/v1/canvas"))?;
    // The image says its size: the canvas may have grown since the info was read.
    let side = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
    };
    let geometry = CanvasGeometry::new(
        side("x-canvas-width").unwrap_or(info.width),
        side("x-canvas-height").unwrap_or(info.height),
    )?;
    let status = response.status();
    let live = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "{base}/api/v1/canvas answered {status}: {}",
            String::from_utf8_lossy(&live[..live.len().min(300)])
        );
    }
    let replayed = match source {
        LogSource::DataDir(dir) => Store::open_sqlite(dir).await?.replay_log(geometry).await?,
        LogSource::Postgres { url, cluster } => {
            Store::connect_postgres(url, cluster)
                .await?
                .replay_log(geometry)
                .await?
        }
    };
    if live.len() != replayed.len() {
        bail!(
            "the live canvas has {} bytes, the log's {}",
            live.len(),
            replayed.len()
        );
    }
    let width = geometry.width() as usize;
    let mut differences = Vec::new();
    let mut differing = 0;
    for (i, (a, b)) in live.iter().zip(&replayed).enumerate() {
        if a != b {
            differing += 1;
            if differences.len() < 20 {
                differences.push(((i % width) as u32, (i / width) as u32, *a, *b));
            }
        }
    }
    Ok(Report {
        pixels: live.len(),
        differences,
        differing,
    })
}
