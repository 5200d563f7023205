//! The shard ring through the admin API, for a cluster's edges: `GET /api/v1/admin/ring` (epoch,
//! each shard's tiles and report), `POST /api/v1/admin/ring/shards {id, addr}` (add a running
//! shard) and `DELETE /api/v1/admin/ring/shards/{id}` (drain and remove one). A change answers
//! once its handoff is complete, with what moved; it is the same change as `place ring add` and
//! `remove` (one at a time, cluster-wide) and is written to the audit log. `place serve` has no
//! ring: these routes answer 404 there.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use place_cluster::reshard::{change_ring, check_new_shard, ring_view, Progress, ReshardError};
use place_cluster::tls::NodeIdentity;
use place_cluster::{Ring, RingError, RingStore, ShardInfo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::admin::Admin;
use crate::error::AppError;
use crate::Edge;

/// How long a change through the API waits for its handoff.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(60);

/// What an edge needs to change the ring: where it is, and a certificate to check new shards.
pub struct RingAdmin {
    /// The ring in Redis.
    pub store: RingStore,
    /// This edge's identity, presented to a new shard to check its certificate.
    pub identity: NodeIdentity,
}

/// The ring routes.
pub fn routes() -> Router<Arc<Edge>> {
    Router::new()
        .route("/api/v1/admin/ring", get(show))
        .route("/api/v1/admin/ring/shards", axum::routing::post(add))
        .route("/api/v1/admin/ring/shards/{id}", delete(remove))
}

fn ring_admin(edge: &Edge) -> Result<&RingAdmin, AppError> {
    edge.ring_admin.get().ok_or(AppError::NotFound)
}

async fn show(
    State(edge): State<Arc<Edge>>,
    Admin(_): Admin,
) -> Result<Json<RingStatus>, AppError> {
    let admin = ring_admin(&edge)?;
    let ring = admin.store.require().await.map_err(unavailable)?;
    let view = ring_view(&admin.store, &ring, edge.geometry())
        .await
        .map_err(unavailable)?;
    let shards = view
        .shards
        .iter()
        .map(|s| {
            let report = s.report.as_ref();
            ShardStatus {
                id: s.info.id.clone(),
                addr: s.info.addr.clone(),
                tiles: s.tiles,
                reporting: report.is_some(),
                epoch: report.map(|r| r.epoch),
                loading: report.map(|r| r.acquiring),
                placements_per_sec: report.map(|r| r.placements_per_sec),
            }
        })
        .collect();
    Ok(Json(RingStatus {
        epoch: view.epoch,
        shards,
        running_outside_the_ring: view.outside,
    }))
}

/// `GET /api/v1/admin/ring`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RingStatus {
    epoch: u64,
    shards: Vec<ShardStatus>,
    /// Shards that report but are not in the ring (started, not yet added).
    running_outside_the_ring: Vec<String>,
}

/// A shard of the ring, with what it last reported (nothing when it does not report).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShardStatus {
    id: String,
    addr: String,
    /// Tiles the ring gives it.
    tiles: usize,
    reporting: bool,
    /// The ring epoch it works at.
    epoch: Option<u64>,
    /// Tiles it is still loading after a ring change.
    loading: Option<usize>,
    placements_per_sec: Option<f64>,
}

/// The answer to a ring change, once its handoff is complete.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RingChange {
    epoch: u64,
    moves: Vec<TileMove>,
    elapsed_ms: u64,
}

/// Tiles that moved from one shard to another, and for how long they took no placement.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct TileMove {
    from: String,
    to: String,
    tiles: usize,
    tile_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pause_ms: Option<u64>,
}

#[derive(Deserialize)]
struct NewShard {
    id: String,
    addr: String,
}

async fn add(
    State(edge): State<Arc<Edge>>,
    Admin(user): Admin,
    Json(new): Json<NewShard>,
) -> Result<Json<RingChange>, AppError> {
    let admin = ring_admin(&edge)?;
    let shard = ShardInfo {
        id: new.id,
        addr: new.addr,
    };
    check_new_shard(&admin.store, &admin.identity, &shard)
        .await
        .map_err(reshard_error)?;
    let details = json!({"shard": shard.id, "addr": shard.addr});
    let outcome = change(&edge, &user, "ring-add", details, move |r| {
        r.with_shard(shard)
    })
    .await?;
    Ok(Json(outcome))
}

async fn remove(
    State(edge): State<Arc<Edge>>,
    Admin(user): Admin,
    Path(id): Path<String>,
) -> Result<Json<RingChange>, AppError> {
    let details = json!({"shard": id});
    let outcome = change(&edge, &user, "ring-remove", details, move |r| {
        r.without_shard(&id)
    })
    .await?;
    Ok(Json(outcome))
}

/// Makes a change, waits for its handoff, writes the audit log; answers the new epoch, what
/// moved and how long it took.
async fn change(
    edge: &Edge,
    user: &place_store::User,
    action: &str,
    details: Value,
    change: impl FnOnce(&Ring) -> Result<Ring, RingError>,
) -> Result<RingChange, AppError> {
    let admin = ring_admin(edge)?;
    let started = Instant::now();
    let mut moved = Vec::new();
    let holder = format!(
        "{action} by {} through {}",
        user.username, edge.config.node_id
    );
    let ring = change_ring(
        &admin.store,
        edge.geometry(),
        &holder,
        change,
        HANDOFF_TIMEOUT,
        |progress| match progress {
            Progress::Stored { moves, .. } => {
                moved = moves
                    .iter()
                    .map(|((from, to), tiles)| TileMove {
                        from: from.clone(),
                        to: to.clone(),
                        tiles: tiles.len(),
                        tile_ids: tiles.iter().map(|t| t.to_string()).collect(),
                        pause_ms: None,
                    })
                    .collect::<Vec<_>>();
            }
            Progress::Complete { pauses } => {
                for pause in pauses {
                    let this_move = moved
                        .iter_mut()
                        .find(|m| m.from == pause.from && m.to == pause.to);
                    if let Some(m) = this_move {
                        m.pause_ms = Some(pause.pause.as_millis() as u64);
                    }
                }
            }
            Progress::Loading { .. } => {}
        },
    )
    .await
    .map_err(reshard_error)?;
    let mut details = details;
    details["epoch"] = json!(ring.epoch());
    details["moves"] = json!(moved);
    edge.audit(user, action, &details).await?;
    Ok(RingChange {
        epoch: ring.epoch(),
        moves: moved,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn unavailable(e: impl std::fmt::Display) -> AppError {
    AppError::Unavailable(format!("the ring in Redis: {e}"))
}

fn reshard_error(e: ReshardError) -> AppError {
    match e {
        ReshardError::Ring(_)
        | ReshardError::Unreachable { .. }
        | ReshardError::NotReporting(_) => AppError::BadRequest(e.to_string()),
        ReshardError::Busy(_) => AppError::Conflict(e.to_string()),
        ReshardError::Store(_) | ReshardError::Incomplete { .. } => {
            AppError::Unavailable(e.to_string())
        }
    }
}
