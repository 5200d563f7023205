//! CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/status` (Linux).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// A process to read: a pid, or this process.
#[derive(Debug, Clone)]
pub struct Process {
    dir: PathBuf,
    ticks_per_sec: u64,
}

impl Process {
    /// The process `pid`; fails when it cannot be read.
    pub fn pid(pid: u32) -> anyhow::Result<Self> {
        let p = Self {
            dir: PathBuf::from(format!("/proc/{pid}")),
            ticks_per_sec: ticks_per_sec(),
        };
        p.sample()
            .with_context(|| format!("reading /proc/{pid} (--server-pid)"))?;
        Ok(p)
    }

    /// This process.
    pub fn current() -> Self {
        Self {
            dir: PathBuf::from("/proc/self"),
            ticks_per_sec: ticks_per_sec(),
        }
    }

    /// Reads the process now.
    pub fn sample(&self) -> anyhow::Result<Sample> {
        let stat = std::fs::read_to_string(self.dir.join("stat"))?;
        let status = std::fs::read_to_string(self.dir.join("status"))?;
        let ticks = parse_cpu_ticks(&stat).context("unexpected /proc/PID/stat")?;
        Ok(Sample {
            cpu: Duration::from_secs_f64(ticks as f64 / self.ticks_per_sec as f64),
            rss_kib: parse_status_kib(&status, "VmRSS:").unwrap_or(0),
            peak_rss_kib: parse_status_kib(&status, "VmHWM:").unwrap_or(0),
        })
    }
}

/// CPU time the whole machine spent busy (all cores, not idle or waiting for I/O), from the
/// first line of `/proc/stat`: what shows whether something else competed with the run.
pub fn machine_busy() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks = parse_machine_busy(&stat).context("unexpected /proc/stat")?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / ticks_per_sec() as f64,
    ))
}

/// Busy ticks of the `cpu` line: user, nice, system, irq, softirq, steal.
fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; 100 on every Linux we know).
fn ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` from `/proc/PID/stat` (fields 14 and 15; the name in field 2 may hold
/// spaces and parentheses, so fields are counted after its last `)`).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_parse() {
        let stat = "1234 (place (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        let status = "Name:\tplace\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        let machine = "cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_machine_busy(machine), Some(161));
    }

    #[test]
    fn this_process_can_be_read() {
        let s = Process::current().sample().expect("readable");
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib);
    }
}
