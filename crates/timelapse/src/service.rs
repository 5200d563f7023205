//! [`Timelapse`]: what an edge's timelapse routes ask for, in either mode: the snapshots and
//! their images, an exact frame at any time, and render jobs (stored, then handed to the local
//! runner in `place serve` or published to RabbitMQ in the cluster).
//!
//! An exact frame costs a snapshot's inflation and at most one snapshot interval's events (plus
//! the straggler margin); it runs on a blocking thread, at most [`FRAMES_AT_ONCE`] per edge, the
//! rest waiting their turn, so scrubbing viewers cannot hold up the players' sockets.

use std::sync::Arc;

use place_store::timelapse::{Admission, JobLimits, JobRecord, NewJob, SnapshotInfo};
use place_store::Rect;
use place_tiles::CanvasGeometry;
use tokio::sync::Semaphore;

use crate::encode::png_image;
use crate::jobs::{run_blocking, JobContext, LocalRunner};
use crate::queue::JobQueue;
use crate::render::{frame_at, RenderSpec};
use crate::{now_ms, snapshot, TimelapseError};

/// Jobs queued or running at once, over the whole deployment.
pub const MAX_ACTIVE_JOBS: i64 = 16;
/// Jobs one user may start in [`QUOTA_WINDOW_MS`] (and only one at a time).
pub const JOBS_PER_USER: i64 = 10;
/// The window of [`JOBS_PER_USER`]: an hour.
pub const QUOTA_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Exact frames one edge renders at once.
pub const FRAMES_AT_ONCE: usize = 2;

/// Where new jobs go.
#[derive(Debug, Clone)]
pub enum Dispatch {
    /// Rendered in this process (`place serve`).
    Local(LocalRunner),
    /// Published for the cluster's workers.
    Queue(Arc<JobQueue>),
}

/// What became of a render request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Stored and handed on.
    Accepted(JobRecord),
    /// The user already has a job queued or running.
    OwnerBusy,
    /// [`MAX_ACTIVE_JOBS`] are queued or running.
    QueueFull,
    /// The user has started [`JOBS_PER_USER`] jobs in the last [`QUOTA_WINDOW_MS`].
    OwnerQuota,
}

/// The timelapse as an edge serves it.
#[derive(Debug)]
pub struct Timelapse {
    ctx: JobContext,
    dispatch: Dispatch,
    frames: Semaphore,
}

impl Timelapse {
    /// The timelapse of `ctx`'s canvas, sending jobs to `dispatch`.
    pub fn new(ctx: JobContext, dispatch: Dispatch) -> Self {
        Self {
            ctx,
            dispatch,
            frames: Semaphore::new(FRAMES_AT_ONCE),
        }
    }

    /// The job context (store, canvas, palette).
    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// The snapshots, and the first and last placement times of the log.
    pub async fn snapshots(
        &self,
    ) -> Result<(Vec<SnapshotInfo>, Option<(i64, i64)>), TimelapseError> {
        let snapshots = self.ctx.source.snapshots().await?;
        let range = self.ctx.source.event_time_range().await?;
        Ok((snapshots, range))
    }

    /// A snapshot as a PNG of the whole canvas; `None` for an unknown id.
    pub async fn snapshot_png(&self, id: i64) -> Result<Option<Vec<u8>>, TimelapseError> {
        let Some(record) = self.ctx.source.snapshot(id).await? else {
            return Ok(None);
        };
        let _turn = self.frames.acquire().await;
        let ctx = self.ctx.clone();
        let png = run_blocking(async move {
            // At its own size: the canvas as it was when the snapshot was taken.
            let g = snapshot::own_geometry(&record)?;
            let base = snapshot::decode(g, &record)?;
            png_image(&base.pixels, g.width(), g.height(), &ctx.palette)
        })
        .await
        .ok_or_else(|| TimelapseError::Encode("the encoder panicked".into()))??;
        Ok(Some(png))
    }

    /// The exact canvas of `rect` at time `t`, as a PNG, drawn at the canvas's size then: the
    /// part of `rect` beyond the canvas of that time (it grew since) is cut off, so the image
    /// may be smaller than `rect`; a `rect` wholly beyond it is refused.
    pub async fn frame_png(&self, rect: Rect, t: i64) -> Result<Vec<u8>, TimelapseError> {
        let _turn = self.frames.acquire().await;
        let ctx = self.ctx.clone();
        run_blocking(async move {
            let geometry = ctx.source.canvas(ctx.geometry).await?;
            let then = ctx.source.canvas_at(t, geometry).await?;
            let rect = clip(rect, then)?;
            let frame = frame_at(&ctx.source, geometry, rect, t).await?;
            png_image(frame.pixels(), rect.width, rect.height, &ctx.palette)
        })
        .await
        .ok_or_else(|| TimelapseError::Encode("the renderer panicked".into()))?
    }

    /// Stores a render job for `owner` (after checking `spec`) and hands it on.
    pub async fn submit(&self, owner: i64, spec: &RenderSpec) -> Result<Submitted, TimelapseError> {
        spec.validate(self.ctx.source.canvas(self.ctx.geometry).await?)?;
        let now = now_ms();
        let job = NewJob {
            id: new_job_id()?,
            owner_id: owner,
            params: serde_json::to_string(spec)
                .map_err(|e| TimelapseError::Invalid(e.to_string()))?,
            frames_total: spec.frames,
            created_at: now,
        };
        let limits = JobLimits {
            max_active: MAX_ACTIVE_JOBS,
            max_per_owner: JOBS_PER_USER,
            window_start_ms: now - QUOTA_WINDOW_MS,
        };
        match self.ctx.source.admit_job(&job, &limits).await? {
            Admission::OwnerBusy => return Ok(Submitted::OwnerBusy),
            Admission::QueueFull => return Ok(Submitted::QueueFull),
            Admission::OwnerQuota => return Ok(Submitted::OwnerQuota),
            Admission::Accepted => {}
        }
        match &self.dispatch {
            Dispatch::Local(runner) => runner.submit(job.id.clone()),
            Dispatch::Queue(queue) => {
                if let Err(e) = queue.publish(&job.id).await {
                    // Claim it to fail it: nobody will ever be handed it.
                    if let Some(claimed) = self.ctx.source.claim_job(&job.id, now_ms(), 1).await? {
                        let reason = "the job queue is unavailable";
                        let source = &self.ctx.source;
                        source
                            .fail_job(&job.id, claimed.attempts, reason, now_ms())
                            .await?;
                    }
                    return Err(e);
                }
            }
        }
        let stored = self.ctx.source.job(&job.id).await?;
        stored
            .map(Submitted::Accepted)
            .ok_or_else(|| TimelapseError::Invalid("the job vanished".into()))
    }

    /// A job.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, TimelapseError> {
        Ok(self.ctx.source.job(id).await?)
    }

    /// Chunk `n` (from 0) of a done job's result; `None` past the last. A download reads
    /// them one after another.
    pub async fn result_chunk(&self, id: &str, n: u32) -> Result<Option<Vec<u8>>, TimelapseError> {
        Ok(self.ctx.source.job_result_chunk(id, n).await?)
    }
}

/// `rect` cut to `canvas`, or why it lies wholly outside.
fn clip(rect: Rect, canvas: CanvasGeometry) -> Result<Rect, TimelapseError> {
    if rect.x >= canvas.width() || rect.y >= canvas.height() {
        return Err(TimelapseError::Invalid(format!(
            "at that time the canvas was {}x{}: the rectangle lies outside it",
            canvas.width(),
            canvas.height()
        )));
    }
    Ok(Rect {
        width: rect.width.min(canvas.width() - rect.x),
        height: rect.height.min(canvas.height() - rect.y),
        ..rect
    })
}

/// A fresh job id: 128 random bits in hex, so only whoever was given it can find the job.
fn new_job_id() -> Result<String, TimelapseError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| TimelapseError::Encode(e.to_string()))?;
    Ok(hex::encode(bytes))
}
