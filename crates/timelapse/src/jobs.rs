//! Render jobs: a row of `timelapse_jobs` (queued by an edge) rendered into its result.
//!
//! [`run_job`] claims the job (an attempt) and renders it frame by frame (recording progress at
//! most twice a second). The encoder writes into a [`Spool`] that is stored as chunks of
//! [`CHUNK_BYTES`] as it fills, so any edge serves the download chunk by chunk and no process
//! holds a whole animation. A result larger than [`MAX_RESULT_BYTES`] fails the job, saying so. A job redelivered after its renderer died is claimed again and starts over; a job
//! claimed [`MAX_ATTEMPTS`] times is given up (a job that kills every renderer cannot go round
//! for ever). Rendering is CPU work: callers run it on a blocking thread ([`run_blocking`]), never
//! on the async workers that serve players.
//!
//! In `place serve` the [`LocalRunner`] renders jobs one at a time in the server's process; in
//! the cluster `place worker` takes them from RabbitMQ ([`crate::queue`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use place_store::Store;
use place_tiles::{CanvasGeometry, Palette};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::encode::Animation;
use crate::render::{RenderSpec, Renderer};
use crate::{now_ms, TimelapseError};

/// Claims of one job before it is given up.
pub const MAX_ATTEMPTS: u32 = 3;
/// The largest result a job may have.
pub const MAX_RESULT_BYTES: u64 = 64 * 1024 * 1024;
/// Result bytes gathered before they are stored as one chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;
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
    pub source: Store,
    /// The canvas as the process started; [`Store::canvas`] grows it to the stored size.
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
    let geometry = ctx.source.canvas(ctx.geometry).await?;
    let spec = serde_json::from_str::<RenderSpec>(&job.params)
        .map_err(|e| TimelapseError::Invalid(format!("parameters: {e}")))
        .and_then(|spec| spec.validate(geometry).map(|()| spec));
    let rendered = match spec {
        Ok(spec) => render_into(ctx, id, attempt, &spec)
            .await
            .map(|size| size.map(|size| (spec, size))),
        Err(e) => Err(e),
    };
    match rendered {
        Ok(Some((spec, size))) => {
            let stored = ctx
                .source
                .finish_job(id, attempt, spec.format.content_type(), size, now_ms())
                .await?;
            info!(
                job = id,
                attempt,
                bytes = size,
                stored,
                "timelapse job rendered"
            );
            Ok(if stored {
                Outcome::Done
            } else {
                Outcome::Skipped
            })
        }
        // Another renderer claimed the job since: its result will be the job's.
        Ok(None) => Ok(Outcome::Skipped),
        Err(e @ (TimelapseError::Store(_) | TimelapseError::Queue(_))) => Err(e),
        Err(e) => {
            let reason = e.to_string();
            warn!(job = id, attempt, %reason, "timelapse job failed");
            ctx.source.fail_job(id, attempt, &reason, now_ms()).await?;
            Ok(Outcome::Failed(reason))
        }
    }
}

/// Renders `spec` and stores it as chunks of attempt `attempt`; the result's size, or `None`
/// when the attempt stopped being the job's.
async fn render_into(
    ctx: &JobContext,
    id: &str,
    attempt: u32,
    spec: &RenderSpec,
) -> Result<Option<u64>, TimelapseError> {
    let spool = Spool::new(MAX_RESULT_BYTES);
    let mut animation = Animation::new(
        spec.format,
        spool.clone(),
        spec.width,
        spec.height,
        spec.frames,
        spec.delay_ms,
        &ctx.palette,
    )
    .map_err(|e| spool.explain(e))?;
    let mut renderer = Renderer::new(
        ctx.source.clone(),
        ctx.source.canvas(ctx.geometry).await?,
        spec.rect(),
        spec.frame_times(),
    )
    .await?;
    let (mut done, mut reported, mut chunks) = (0u32, Instant::now(), 0u32);
    while let Some((_, frame)) = renderer.next_frame().await? {
        animation.add(frame).map_err(|e| spool.explain(e))?;
        done += 1;
        if let Some(chunk) = spool.take(CHUNK_BYTES) {
            if !ctx
                .source
                .append_job_chunk(id, attempt, chunks, &chunk)
                .await?
            {
                return Ok(None);
            }
            chunks += 1;
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            ctx.source.job_progress(id, attempt, done).await?;
            reported = Instant::now();
        }
        if !ctx.throttle.is_zero() {
            tokio::time::sleep(ctx.throttle).await;
        }
    }
    animation.finish().map_err(|e| spool.explain(e))?;
    if let Some(rest) = spool.take(0) {
        if !ctx
            .source
            .append_job_chunk(id, attempt, chunks, &rest)
            .await?
        {
            return Ok(None);
        }
    }
    Ok(Some(spool.written()))
}

/// Where an animation is written: bytes wait here until they make a chunk, and writing more
/// than the cap in all is an error (the encoder fails, and [`Spool::explain`] says why).
#[derive(Debug, Clone)]
struct Spool(Arc<Mutex<SpoolState>>);

#[derive(Debug)]
struct SpoolState {
    pending: Vec<u8>,
    written: u64,
    cap: u64,
    overflowed: bool,
}

impl Spool {
    fn new(cap: u64) -> Self {
        Self(Arc::new(Mutex::new(SpoolState {
            pending: Vec::new(),
            written: 0,
            cap,
            overflowed: false,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pending bytes, once there are at least `min` of them (and any at all).
    fn take(&self, min: usize) -> Option<Vec<u8>> {
        let mut state = self.state();
        (!state.pending.is_empty() && state.pending.len() >= min)
            .then(|| std::mem::take(&mut state.pending))
    }

    /// Bytes written in all.
    fn written(&self) -> u64 {
        self.state().written
    }

    /// An encoder's error, told as the cap when the cap caused it.
    fn explain(&self, error: TimelapseError) -> TimelapseError {
        let state = self.state();
        if state.overflowed {
            TimelapseError::Invalid(format!(
                "the animation would be larger than {} MiB: render fewer frames or a smaller \
                 rectangle",
                state.cap / (1024 * 1024)
            ))
        } else {
            error
        }
    }
}

impl std::io::Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut state = self.state();
        if state.written + buf.len() as u64 > state.cap {
            state.overflowed = true;
            return Err(std::io::Error::other("the result is over its size cap"));
        }
        state.written += buf.len() as u64;
        state.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_spool_hands_out_chunks_and_refuses_writes_past_its_cap() {
        let mut spool = Spool::new(10);
        spool.write_all(b"abcd").expect("under the cap");
        assert_eq!(spool.take(5), None, "not a chunk yet");
        spool.write_all(b"ef").expect("under the cap");
        assert_eq!(spool.take(5), Some(b"abcdef".to_vec()));
        assert_eq!(spool.take(0), None, "nothing pending");
        spool.write_all(b"ghij").expect("exactly the cap");
        assert!(spool.write_all(b"k").is_err(), "one byte past the cap");
        assert_eq!(spool.written(), 10);
        let told = spool.explain(TimelapseError::Encode("io".into()));
        assert!(
            matches!(&told, TimelapseError::Invalid(m) if m.contains("larger than")),
            "{told:?}"
        );
        let calm = Spool::new(10).explain(TimelapseError::Encode("io".into()));
        assert!(matches!(calm, TimelapseError::Encode(_)), "{calm:?}");
    }
}
