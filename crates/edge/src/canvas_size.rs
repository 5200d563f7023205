//! Growing the canvas while people paint: `PUT /api/v1/admin/canvas/size {"width","height"}`
//! (administrators only), the same growth `place admin resize` makes.
//!
//! Only growth: each side at least what it is, one larger, at most 65,536. Tiles are named by
//! their column and row, so nothing already placed moves, and the new tiles are empty. The order
//! makes every step safe for the placements running meanwhile:
//! 1. **Durable**: the store records the new size (and, in PostgreSQL, the new tiles' fences) in
//!    one transaction.
//! 2. **Shards**: in `place serve` the shard lays out its tile table for the new size. In the
//!    cluster the ring takes the new size (a ring change: epoch + 1, same shards), every shard
//!    acquires the new tiles the hash gives it, and the change completes once all serve them.
//! 3. **Edges**: the size is announced through the live changes (every edge within a second, and
//!    kept in Redis for edges that start later); every open connection is sent a `canvas`
//!    message, and placements are checked against the new bounds.
//! 4. **Audit**: a `resize-canvas` row with both sizes.
//!
//! Each step is idempotent, so repeating a growth that failed half-way completes it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::put;
use axum::{Json, Router};
use place_cluster::reshard::change_ring;
use place_store::{StoreError, User};
use place_tiles::{CanvasGeometry, GeometryError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use crate::admin::Admin;
use crate::error::AppError;
use crate::live::{LiveError, LiveEvent};
use crate::moderation::ModerationError;
use crate::shards::Shards;
use crate::Edge;

/// How long a growth in the cluster waits for every shard to serve the new tiles.
const RING_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a growth failed.
#[derive(Debug, thiserror::Error)]
pub enum GrowError {
    /// Not a growth of the current canvas, or a side past 65,536.
    #[error(transparent)]
    Size(#[from] GeometryError),
    /// The store failed (or refused: the stored size is not smaller).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ring could not take the new size.
    #[error("the ring: {0}")]
    Ring(#[from] place_cluster::reshard::ReshardError),
    /// A cluster edge without the ring (not started as a cluster edge).
    #[error("this edge cannot change the ring")]
    NoRing,
    /// The edges could not be told.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The audit log could not be written.
    #[error(transparent)]
    Audit(#[from] ModerationError),
}

impl From<GrowError> for AppError {
    fn from(e: GrowError) -> Self {
        match e {
            GrowError::Size(_) | GrowError::Store(StoreError::CanvasGrowth(_)) => {
                AppError::BadRequest(e.to_string())
            }
            GrowError::Store(e) => e.into(),
            GrowError::Ring(place_cluster::reshard::ReshardError::Busy(_)) => {
                AppError::Conflict(e.to_string())
            }
            GrowError::Audit(e) => e.into(),
            GrowError::Ring(_) | GrowError::NoRing | GrowError::Live(_) => {
                tracing::error!(error = %e, "growing the canvas failed");
                AppError::Unavailable(format!("{e}; the size is stored: repeat the request"))
            }
        }
    }
}

/// The route.
pub fn routes() -> Router<Arc<Edge>> {
    Router::new().route("/api/v1/admin/canvas/size", put(put_size))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeBody {
    width: u32,
    height: u32,
}

async fn put_size(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    body: Result<Json<SizeBody>, JsonRejection>,
) -> Result<Json<Resized>, AppError> {
    let Json(size) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (from, to) = edge.grow_canvas(&admin, size.width, size.height).await?;
    Ok(Json(Resized {
        from: Size::of(from),
        size: Size::of(to),
    }))
}

/// The answer to a growth: the new size, and the size it grew from.
#[derive(Serialize)]
struct Resized {
    from: Size,
    #[serde(flatten)]
    size: Size,
}

/// A canvas size, also as the audit log keeps a growth (`{"from": size, "to": size}`).
#[derive(Serialize)]
struct Size {
    width: u32,
    height: u32,
}

impl Size {
    fn of(g: CanvasGeometry) -> Self {
        Self {
            width: g.width(),
            height: g.height(),
        }
    }
}

impl Edge {
    /// Grows the canvas to `width x height` (see the module doc) and returns the sizes before
    /// and after.
    pub async fn grow_canvas(
        &self,
        actor: &User,
        width: u32,
        height: u32,
    ) -> Result<(CanvasGeometry, CanvasGeometry), GrowError> {
        let from = self.geometry();
        let to = from.grown_to(width, height)?;
        self.accounts.store().grow_canvas(to).await?;
        match &self.shards {
            Shards::Local(shard) => shard.grow(to).await,
            Shards::Cluster(_) => {
                let ring = self.ring_admin.get().ok_or(GrowError::NoRing)?;
                let holder = format!(
                    "resize-canvas by {} through {}",
                    actor.username, self.config.node_id
                );
                change_ring(
                    &ring.store,
                    from,
                    &holder,
                    |r| Ok(r.with_canvas(to)),
                    RING_TIMEOUT,
                    |_| {},
                )
                .await?;
            }
        }
        self.live_bus
            .announce(
                &self.live,
                LiveEvent::Canvas {
                    width: to.width(),
                    height: to.height(),
                },
            )
            .await?;
        self.audit(
            actor,
            "resize-canvas",
            &json!({"from": Size::of(from), "to": Size::of(to)}),
        )
        .await?;
        info!(
            actor = actor.id,
            from_width = from.width(),
            from_height = from.height(),
            width = to.width(),
            height = to.height(),
            "canvas grown"
        );
        Ok((from, to))
    }
}
