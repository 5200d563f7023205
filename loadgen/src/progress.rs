//! Live progress on stderr: a bar with the current rates on a terminal, a status line every
//! ten seconds otherwise (logs of `bench/run`), nothing in tests.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::get;
use crate::procstat::{Sample, ServerProcesses};
use crate::run::Shared;

/// How often the plain status line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// The progress display of a run.
pub struct Progress {
    bar: ProgressBar,
    phase: Arc<Mutex<&'static str>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing progress of a run expected to last about `expected` (when `show`).
    pub fn start(
        shared: Arc<Shared>,
        server: Option<ServerProcesses>,
        expected: Duration,
        show: bool,
    ) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(expected.as_secs().max(1)), target);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:20}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let phase = Arc::new(Mutex::new("ramp"));
        let task = show.then(|| {
            tokio::spawn(update(
                bar.clone(),
                Arc::clone(&phase),
                shared,
                server,
                bar.is_hidden(),
            ))
        });
        Self { bar, phase, task }
    }

    /// Names the phase now running.
    pub fn phase(&self, name: &'static str) {
        *self.phase.lock() = name;
    }

    /// Stops the display.
    pub fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.bar.finish_and_clear();
    }
}

async fn update(
    bar: ProgressBar,
    phase: Arc<Mutex<&'static str>>,
    shared: Arc<Shared>,
    server: Option<ServerProcesses>,
    plain: bool,
) {
    let start = Instant::now();
    let c = &shared.metrics.counters;
    let read = || {
        (
            get(&c.placements_acked),
            get(&c.messages),
            get(&c.bytes),
            server.as_ref().map(|s| Sample::sum(&s.sample())),
        )
    };
    let mut last = (Instant::now(), read());
    let mut last_line = Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let now = (Instant::now(), read());
        let secs = (now.0 - last.0).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs;
        let server_text = match (&now.1 .3, &last.1 .3) {
            (Some(n), Some(l)) => format!(
                " | server {:.0}% CPU {} MiB",
                n.cpu.saturating_sub(l.cpu).as_secs_f64() / secs * 100.0,
                n.rss_kib / 1024
            ),
            _ => String::new(),
        };
        let problems = get(&c.gaps) + get(&c.duplicates) + get(&c.missing) + get(&c.wrong_colours);
        let message = format!(
            "{} | {}/{} players | {:.0} acks/s | {:.0} msgs/s {:.1} MB/s | {} dropped, {} failed, {} delivery problems{}",
            *phase.lock(),
            get(&c.connected),
            shared.clients,
            rate(now.1 .0, last.1 .0),
            rate(now.1 .1, last.1 .1),
            rate(now.1 .2, last.1 .2) / 1e6,
            get(&c.dropped),
            get(&c.connect_failed) + get(&c.sessions_failed),
            problems,
            server_text,
        );
        bar.set_position(start.elapsed().as_secs());
        if plain {
            if last_line.elapsed() >= LINE_EVERY {
                eprintln!("[{:>5.0}s] {message}", start.elapsed().as_secs_f64());
                last_line = Instant::now();
            }
        } else {
            bar.set_message(message);
        }
        last = now;
    }
}
