//! Waits for a quiet machine before a measurement: the benchmarks share the cores with whatever
//! else runs (a build, a test suite), which would be measured as server slowness.
//!
//! Work running at a low priority (`nice -n 19`: it yields the cores to the benchmark, whose
//! processes weigh about 68 times more with the kernel's scheduler) does not count as busy here;
//! every run still reports all other CPU use beside it (`other CPU` in the results).

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

/// How long each reading of the machine's load lasts.
const WINDOW: Duration = Duration::from_secs(3);

/// Busy (not counting niced user time) and total CPU ticks of the machine, from `/proc/stat`.
fn ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user, nice, system, idle, iowait, irq, softirq, steal
    let busy = at(0) + at(2) + at(5) + at(6) + at(7);
    Ok((busy, busy + at(1) + at(3) + at(4)))
}

/// Cores busy over one window.
pub fn busy_cores() -> anyhow::Result<f64> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (b0, t0) = ticks()?;
    std::thread::sleep(WINDOW);
    let (b1, t1) = ticks()?;
    Ok(cores * (b1 - b0) as f64 / (t1 - t0).max(1) as f64)
}

/// Waits until fewer than `max_busy` cores are busy, or `timeout` passes; returns the last
/// reading and whether it was quiet.
pub fn wait(max_busy: f64, timeout: Duration) -> anyhow::Result<(f64, bool)> {
    let deadline = Instant::now() + timeout;
    loop {
        let busy = busy_cores()?;
        if busy < max_busy {
            return Ok((busy, true));
        }
        if Instant::now() >= deadline {
            return Ok((busy, false));
        }
        eprintln!("quiet: {busy:.2} cores busy with other work; waiting");
    }
}
