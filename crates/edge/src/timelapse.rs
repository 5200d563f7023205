//! The timelapse API, `/api/v1/timelapse/...`: the canvas snapshots, the exact canvas at any
//! moment, and render jobs (an animated GIF or APNG of a span of time) that the browser polls and
//! downloads. The work is [`place_timelapse::service::Timelapse`]'s; this module only speaks
//! HTTP. `docs/PROTOCOL.md` has the shapes.
//!
//! Reads need no session, like the canvas; they share the history's per-address rate limit.
//! Starting a render needs a registered account (guests are refused with 403): one job queued or
//! running per user and [`place_timelapse::service::JOBS_PER_USER`] an hour, and
//! [`place_timelapse::service::MAX_ACTIVE_JOBS`] queued or running in all. A result is at most
//! [`place_timelapse::jobs::MAX_RESULT_BYTES`], and its download is streamed chunk by chunk from
//! the store. A job's id is 128 random bits: whoever has it may read the job and download its
//! result.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use place_store::timelapse::{JobRecord, JobStatus};
use place_store::Rect;
use place_timelapse::render::{Format, RenderSpec};
use place_timelapse::service::{Submitted, Timelapse};
use place_timelapse::TimelapseError;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::session::session_user;
use crate::{now_ms, Edge};

/// Frames a render has when none is asked for.
pub const FRAMES_DEFAULT: u32 = 60;
/// Milliseconds a frame is shown when not asked.
pub const DELAY_MS_DEFAULT: u32 = 100;

/// The timelapse routes, behind the history's per-address limit.
pub fn routes(edge: &Arc<Edge>) -> Router<Arc<Edge>> {
    Router::new()
        .route("/api/v1/timelapse/snapshots", get(snapshots))
        .route("/api/v1/timelapse/snapshot/{id}", get(snapshot))
        .route("/api/v1/timelapse/frame", get(frame))
        .route("/api/v1/timelapse/render", post(render))
        .route("/api/v1/timelapse/jobs/{id}", get(job))
        .route("/api/v1/timelapse/jobs/{id}/download", get(download))
        .layer(middleware::from_fn_with_state(
            Arc::clone(edge),
            crate::history::limit,
        ))
}

impl From<TimelapseError> for AppError {
    fn from(e: TimelapseError) -> Self {
        match e {
            TimelapseError::Invalid(message) => AppError::BadRequest(message),
            TimelapseError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "timelapse failed");
                AppError::Unavailable(match other {
                    TimelapseError::Queue(_) => "the job queue is unavailable".into(),
                    _ => "the timelapse is unavailable".into(),
                })
            }
        }
    }
}

fn timelapse(edge: &Edge) -> Result<&Timelapse, AppError> {
    edge.timelapse
        .get()
        .map(Arc::as_ref)
        .ok_or_else(|| AppError::Unavailable("this node serves no timelapse".into()))
}

async fn snapshots(State(edge): State<Arc<Edge>>) -> Result<Json<SnapshotList>, AppError> {
    let (snapshots, range) = timelapse(&edge)?.snapshots().await?;
    let snapshots = snapshots
        .iter()
        .map(|s| SnapshotView {
            id: s.id,
            taken_at: s.taken_at,
            covers_until: s.covers_until,
            events: s.event_count,
            url: format!("/api/v1/timelapse/snapshot/{}", s.id),
        })
        .collect();
    Ok(Json(SnapshotList {
        snapshots,
        first_event_at: range.map(|r| r.0),
        last_event_at: range.map(|r| r.1),
        now: now_ms(),
    }))
}

/// `GET /api/v1/timelapse/snapshots`: the stored snapshots and the span of the log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotList {
    snapshots: Vec<SnapshotView>,
    first_event_at: Option<i64>,
    last_event_at: Option<i64>,
    now: i64,
}

/// A stored snapshot: when it was taken, the last event it covers, and its image.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotView {
    id: i64,
    taken_at: i64,
    covers_until: i64,
    events: u64,
    url: String,
}

fn png(bytes: Vec<u8>, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}

async fn snapshot(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let image = timelapse(&edge)?
        .snapshot_png(id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(png(image, "public, max-age=31536000, immutable"))
}

#[derive(Deserialize)]
struct FrameParams {
    t: Option<String>,
    x: Option<String>,
    y: Option<String>,
    width: Option<String>,
    height: Option<String>,
}

/// A whole number parameter, or 400 naming it.
fn number<T: std::str::FromStr>(name: &str, value: &Option<String>) -> Result<Option<T>, AppError> {
    value
        .as_deref()
        .map(|v| {
            v.parse()
                .map_err(|_| AppError::BadRequest(format!("{name} must be a whole number")))
        })
        .transpose()
}

/// The rectangle asked for (the whole canvas by default), checked against the canvas.
fn rect_of(
    edge: &Edge,
    x: Option<u32>,
    y: Option<u32>,
    w: Option<u32>,
    h: Option<u32>,
) -> Result<Rect, AppError> {
    let g = edge.geometry();
    let (x, y) = (x.unwrap_or(0), y.unwrap_or(0));
    let width = w.unwrap_or_else(|| g.width().saturating_sub(x));
    let height = h.unwrap_or_else(|| g.height().saturating_sub(y));
    let inside = width > 0
        && height > 0
        && u64::from(x) + u64::from(width) <= u64::from(g.width())
        && u64::from(y) + u64::from(height) <= u64::from(g.height());
    if !inside {
        return Err(AppError::BadRequest(format!(
            "the rectangle must lie inside the {}x{} canvas",
            g.width(),
            g.height()
        )));
    }
    Ok(Rect {
        x,
        y,
        width,
        height,
    })
}

async fn frame(
    State(edge): State<Arc<Edge>>,
    Query(q): Query<FrameParams>,
) -> Result<Response, AppError> {
    let t = number::<i64>("t", &q.t)?.unwrap_or_else(now_ms);
    let rect = rect_of(
        &edge,
        number("x", &q.x)?,
        number("y", &q.y)?,
        number("width", &q.width)?,
        number("height", &q.height)?,
    )?;
    let image = timelapse(&edge)?.frame_png(rect, t).await?;
    // A frame of the past never changes (the straggler margin aside), one of now does.
    let cache = if t < now_ms() - 2 * place_timelapse::STRAGGLER_WINDOW_MS {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    Ok(png(image, cache))
}

/// `POST /api/v1/timelapse/render`: the rectangle defaults to the whole canvas.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RenderRequest {
    from: i64,
    to: i64,
    x: Option<u32>,
    y: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    frames: Option<u32>,
    delay_ms: Option<u32>,
    format: Option<Format>,
}

async fn render(
    State(edge): State<Arc<Edge>>,
    jar: CookieJar,
    body: Result<Json<RenderRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let user = session_user(&edge, &jar)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if user.is_guest {
        return Err(AppError::Forbidden(
            "rendering a timelapse needs an account: sign in or register".into(),
        ));
    }
    let r = body
        .map(|Json(b)| b)
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let rect = rect_of(&edge, r.x, r.y, r.width, r.height)?;
    let spec = RenderSpec {
        from: r.from,
        to: r.to,
        x: rect.x,
        y: rect.y,
        width: rect.width,
        height: rect.height,
        frames: r.frames.unwrap_or(FRAMES_DEFAULT),
        delay_ms: r.delay_ms.unwrap_or(DELAY_MS_DEFAULT),
        format: r.format.unwrap_or(Format::Gif),
    };
    match timelapse(&edge)?.submit(user.id, &spec).await? {
        Submitted::Accepted(job) => {
            tracing::info!(job = %job.id, user_id = user.id, frames = spec.frames, "timelapse job queued");
            Ok((StatusCode::ACCEPTED, Json(job_json(&job))).into_response())
        }
        Submitted::OwnerBusy => Err(AppError::Conflict(
            "you already have a timelapse queued or rendering: wait for it".into(),
        )),
        Submitted::QueueFull => Err(AppError::Unavailable(
            "too many timelapses are queued: try again in a minute".into(),
        )),
        Submitted::OwnerQuota => Err(AppError::TooMany(format!(
            "you have rendered {} timelapses in the last hour: try again later",
            place_timelapse::service::JOBS_PER_USER
        ))),
    }
}

/// A render job as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobView {
    job_id: String,
    /// `queued`, `running`, `done` or `failed`.
    status: &'static str,
    frames_done: u32,
    frames_total: u32,
    attempts: u32,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    content_type: Option<String>,
    /// The result's size.
    bytes: Option<i64>,
    /// Where a finished job's result is.
    download_url: Option<String>,
}

fn job_json(job: &JobRecord) -> JobView {
    JobView {
        job_id: job.id.clone(),
        status: job.status.as_str(),
        frames_done: job.frames_done,
        frames_total: job.frames_total,
        attempts: job.attempts,
        error: job.error.clone(),
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        content_type: job.content_type.clone(),
        bytes: job.result_bytes,
        download_url: (job.status == JobStatus::Done)
            .then(|| format!("/api/v1/timelapse/jobs/{}/download", job.id)),
    }
}

/// A job id as we make them: 32 hex digits.
fn job_id(id: &str) -> Result<&str, AppError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(AppError::NotFound)
    }
}

async fn job(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, AppError> {
    let job = timelapse(&edge)?
        .job(job_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(job_json(&job)))
}

/// Streams a done job's result, one stored chunk at a time.
async fn download(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = job_id(&id)?.to_owned();
    let job = timelapse(&edge)?
        .job(&id)
        .await?
        .filter(|job| job.status == JobStatus::Done)
        .ok_or(AppError::NotFound)?;
    let (Some(content_type), Some(size)) = (job.content_type, job.result_bytes) else {
        return Err(AppError::NotFound);
    };
    let extension = if content_type == "image/gif" {
        "gif"
    } else {
        "png"
    };
    let disposition = format!("attachment; filename=\"timelapse-{id}.{extension}\"");
    let header_value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| AppError::Unavailable(e.to_string()));
    let headers = [
        (header::CONTENT_TYPE, header_value(&content_type)?),
        (header::CONTENT_DISPOSITION, header_value(&disposition)?),
        (header::CONTENT_LENGTH, HeaderValue::from(size)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=86400"),
        ),
    ];
    // Each step reads the next chunk; a chunk gone mid-download (the job pruned) ends the
    // stream with an error, so the client sees a cut download, never a short file that looks whole.
    let chunks = futures_util::stream::try_unfold(0u32, move |n| {
        let (edge, id) = (Arc::clone(&edge), id.clone());
        async move {
            let chunk = timelapse(&edge)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .result_chunk(&id, n)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok::<_, std::io::Error>(chunk.map(|bytes| (bytes, n + 1)))
        }
    });
    Ok((headers, Body::from_stream(chunks)).into_response())
}
