//! The shard ring through the admin API, for a cluster's edges: `GET /api/v1/admin/ring` (epoch,
//! each shard's tiles and report), `POST /api/v1/admin/ring/shards {id, addr}` (add a running
//! shard) and `DELETE /api/v1/admin/ring/shards/{id}` (drain and remove one). A change answers
//! once its handoff is complete, with what moved; it is the same change as `place ring add` and
//! `remove` (one at a time, cluster-wide) and is written to the audit log. `place serve` has no
//! ring: these routes answer 404 there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use place_cluster::reshard::{change_ring, check_new_shard, ring_view, Progress, ReshardError};
use place_cluster::tls::NodeIdentity;
use place_cluster::{Ring, RingError, RingStore, ShardInfo};
use serde::Deserialize;
use serde_json::{json, Value};

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

async fn show(State(edge): State<Arc<Edge>>, Admin(_): Admin) -> Result<Json<Value>, AppError> {
    let admin = ring_admin(&edge)?;
    let ring = admin.store.require().await.map_err(unavailable)?;
    let view = ring_view(&admin.store, &ring, edge.geometry())
        .await
        .map_err(unavailable)?;
    let shards: Vec<Value> = view
        .shards
        .iter()
        .map(|s| {
            let report = s.report.as_ref();
            json!({
                "id": s.info.id,
                "addr": s.info.addr,
                "tiles": s.tiles,
                "reporting": report.is_some(),
                "epoch": report.map(|r| r.epoch),
                "loading": report.map(|r| r.acquiring),
                "placementsPerSec": report.map(|r| r.placements_per_sec),
            })
        })
        .collect();
    Ok(Json(json!({
        "epoch": view.epoch,
        "shards": shards,
        "runningOutsideTheRing": view.outside,
    })))
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
) -> Result<Json<Value>, AppError> {
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
) -> Result<Json<Value>, AppError> {
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
) -> Result<Value, AppError> {
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
                    .map(|((from, to), tiles)| {
                        let ids: Vec<String> = tiles.iter().map(|t| t.to_string()).collect();
                        json!({"from": from, "to": to, "tiles": tiles.len(), "tileIds": ids})
                    })
                    .collect();
            }
            Progress::Complete { pauses } => {
                for pause in pauses {
                    let this_move = moved
                        .iter_mut()
                        .find(|m| m["from"] == pause.from.as_str() && m["to"] == pause.to.as_str());
                    if let Some(m) = this_move {
                        m["pauseMs"] = json!(pause.pause.as_millis() as u64);
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
    Ok(json!({
        "epoch": ring.epoch(),
        "moves": moved,
        "elapsedMs": started.elapsed().as_millis() as u64,
    }))
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
