//! Render jobs: a row of `timelapse_jobs` (queued by an edge) rendered into its result.
//!
//! [`run_job`] claims the job (an attempt), renders it frame by frame into memory (recording
//! progress at most twice a second) and stores the result with the job, so any edge serves the
//! download. A job redelivered after its renderer died is claimed again and starts over; a job
//! claimed [`MAX_ATTEMPTS`] times is given up (a job that kills every renderer cannot go round
//! for ever). Rendering is CPU work: callers run it on a blocking thread ([`run_blocking`]), never
//! on the async workers that serve players.
//!
//! In `place serve` the [`LocalRunner`] renders jobs one at a time in the server's process; in
//! the cluster `place worker` takes them from RabbitMQ ([`crate::queue`]).

use std::time::{Duration, Instant};

use place_tiles::{CanvasGeometry, Palette};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::encode::Animation;
use crate::render::{RenderSpec, Renderer};
use crate::{now_ms, Source, TimelapseError};

/// Claims of one job before it is given up.
pub const MAX_ATTEMPTS: u32 = 3;
/// How often progress is written, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What rendering a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered and stored.
    Done,
    /// Marked failed, with the reason (bad parameters, or it cannot be encoded).
    Failed(String),
    /// Nothing to do: finished already, unknown, given up, or claimed by another renderer since.
    Skipped,
}

/// Everything a renderer needs besides the job's id.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The store.
    pub source: Source,
    /// The canvas.
    pub geometry: CanvasGeometry,
    /// Its colours.
    pub palette: Palette,
    /// A pause after each frame, to make jobs slow on purpose (tests that kill a renderer
    /// mid-job); zero otherwise.
    pub throttle: Duration,
}

/// Claims, renders and stores job `id`. A store failure comes back as an error and leaves the
/// job to be tried again; anything wrong with the job itself marks it failed.
pub async fn run_job(ctx: &JobContext, id: &str) -> Result<Outcome, TimelapseError> {
    let Some(job) = ctx.source.claim_job(id, now_ms(), MAX_ATTEMPTS).await? else {
        return Ok(Outcome::Skipped);
    };
    let attempt = job.attempts;
    let spec = serde_json::from_str::<RenderSpec>(&job.params)
        .map_err(|e| TimelapseError::Invalid(format!("parameters: {e}")))
        .and_then(|spec| spec.validate(ctx.geometry).map(|()| spec));
    let rendered = match spec {
        Ok(spec) => render_into(ctx, id, attempt, &spec)
            .await
            .map(|bytes| (spec, bytes)),
        Err(e) => Err(e),
    };
    match rendered {
        Ok((spec, bytes)) => {
            let stored = ctx
                .source
                .finish_job(id, attempt, spec.format.content_type(), &bytes, now_ms())
                .await?;
            info!(
                job = id,
                attempt,
                bytes = bytes.len(),
                stored,
                "timelapse job rendered"
            );
            Ok(if stored {
                Outcome::Done
            } else {
                Outcome::Skipped
            })
        }
        Err(e @ (TimelapseError::Store(_) | TimelapseError::Queue(_))) => Err(e),
        Err(e) => {
            let reason = e.to_string();
            warn!(job = id, attempt, %reason, "timelapse job failed");
            ctx.source.fail_job(id, attempt, &reason, now_ms()).await?;
            Ok(Outcome::Failed(reason))
        }
    }
}

async fn render_into(
    ctx: &JobContext,
    id: &str,
    attempt: u32,
    spec: &RenderSpec,
) -> Result<Vec<u8>, TimelapseError> {
    let mut out = Vec::new();
    let mut animation = Animation::new(
        spec.format,
        &mut out,
        spec.width,
        spec.height,
        spec.frames,
        spec.delay_ms,
        &ctx.palette,
    )?;
    let mut renderer = Renderer::new(
        ctx.source.clone(),
        ctx.geometry,
        spec.rect(),
        spec.frame_times(),
    )
    .await?;
    let (mut done, mut reported) = (0u32, Instant::now());
    while let Some((_, frame)) = renderer.next_frame().await? {
        animation.add(frame)?;
        done += 1;
        if reported.elapsed() >= PROGRESS_EVERY {
            ctx.source.job_progress(id, attempt, done).await?;
            reported = Instant::now();
        }
        if !ctx.throttle.is_zero() {
            tokio::time::sleep(ctx.throttle).await;
        }
    }
    animation.finish()?;
    Ok(out)
}

/// Runs `future` on a blocking thread of the current runtime (its I/O still driven by the
/// runtime), so CPU work inside it never holds up the async workers.
pub async fn run_blocking<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(future))
        .await
        .ok()
}

/// Renders the jobs of `place serve`, one at a time, on a blocking thread.
#[derive(Debug, Clone)]
pub struct LocalRunner {
    jobs: mpsc::UnboundedSender<String>,
}

impl LocalRunner {
    /// Starts the runner; it stops when every handle is dropped.
    pub fn start(ctx: JobContext) -> Self {
        let (jobs, mut queue) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(id) = queue.recv().await {
                let ctx = ctx.clone();
                let job = id.clone();
                match run_blocking(async move { run_job(&ctx, &job).await }).await {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => warn!(job = %id, %error, "timelapse job not rendered"),
                    None => warn!(job = %id, "timelapse job panicked"),
                }
            }
        });
        Self { jobs }
    }

    /// Queues a job (already stored as queued).
    pub fn submit(&self, id: String) {
        if self.jobs.send(id).is_err() {
            warn!("the timelapse runner has stopped");
        }
    }
}
