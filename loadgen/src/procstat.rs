//! CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/status` (Linux), and
//! of the server's processes read together: one `place serve`, or a cluster's nodes with the
//! PostgreSQL and Redis they use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parking_lot::Mutex;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

impl Sample {
    /// Several processes as one: CPU and RSS added up (the peak is the sum of each one's
    /// peak, an upper bound of the group's).
    pub fn sum(samples: &[Sample]) -> Sample {
        samples.iter().fold(Sample::default(), |a, s| Sample {
            cpu: a.cpu + s.cpu,
            rss_kib: a.rss_kib + s.rss_kib,
            peak_rss_kib: a.peak_rss_kib + s.peak_rss_kib,
        })
    }
}

/// The server's processes (`--server-pid`, once or more), each with the name it runs under.
#[derive(Debug, Clone)]
pub struct ServerProcesses {
    members: Arc<[Member]>,
}

#[derive(Debug)]
struct Member {
    pid: u32,
    name: String,
    process: Process,
    /// The last reading: what a process that has exited since (a database backend whose
    /// client left) counts with.
    last: Mutex<Sample>,
}

impl ServerProcesses {
    /// The processes `pids`; `None` when there are none. Fails when one cannot be read.
    pub fn pids(pids: &[u32]) -> anyhow::Result<Option<Self>> {
        if pids.is_empty() {
            return Ok(None);
        }
        let mut members = Vec::with_capacity(pids.len());
        for &pid in pids {
            let process = Process::pid(pid)?;
            members.push(Member {
                pid,
                name: command_name(pid),
                last: Mutex::new(process.sample()?),
                process,
            });
        }
        Ok(Some(Self {
            members: members.into(),
        }))
    }

    /// Each process's pid and name, in the order given.
    pub fn members(&self) -> impl Iterator<Item = (u32, &str)> {
        self.members.iter().map(|m| (m.pid, m.name.as_str()))
    }

    /// Reads every process now, in the order given. A process that has exited reads as it
    /// did last.
    pub fn sample(&self) -> Vec<Sample> {
        self.members
            .iter()
            .map(|m| {
                let mut last = m.last.lock();
                if let Ok(now) = m.process.sample() {
                    *last = now;
                }
                *last
            })
            .collect()
    }
}

/// What a process runs, for a report: its command line with the program's directory cut off,
/// at most [`NAME_CHARS`] characters (PostgreSQL's backends write their state there).
fn command_name(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    name_of_cmdline(&cmdline)
}

const NAME_CHARS: usize = 60;

fn name_of_cmdline(cmdline: &[u8]) -> String {
    let text = String::from_utf8_lossy(cmdline);
    let mut args = text.split('\0').filter(|a| !a.is_empty());
    let program = args.next().unwrap_or("?");
    // A path loses its directory; a title a process wrote itself (with spaces) stays whole.
    let program = if program.contains(' ') {
        program
    } else {
        program.rsplit('/').next().unwrap_or(program)
    };
    let name: String = std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    name.trim().chars().take(NAME_CHARS).collect()
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
    fn processes_add_up_and_are_named_by_their_command() {
        let a = Sample {
            cpu: Duration::from_millis(1500),
            rss_kib: 10,
            peak_rss_kib: 20,
        };
        let b = Sample {
            cpu: Duration::from_millis(500),
            rss_kib: 1,
            peak_rss_kib: 2,
        };
        assert_eq!(
            Sample::sum(&[a, b]),
            Sample {
                cpu: Duration::from_secs(2),
                rss_kib: 11,
                peak_rss_kib: 22
            }
        );
        assert_eq!(Sample::sum(&[]), Sample::default());
        assert_eq!(
            name_of_cmdline(b"/work/target/release/place\0shard\0--id\0shard-1\0"),
            "place shard --id shard-1"
        );
        // PostgreSQL rewrites its title into one argument padded with spaces.
        assert_eq!(
            name_of_cmdline(b"postgres: 15/main: postgres test 127.0.0.1(40000) idle    "),
            "postgres: 15/main: postgres test 127.0.0.1(40000) idle"
        );
        assert_eq!(name_of_cmdline(b""), "?");
        assert_eq!(name_of_cmdline(&[b'x'; 100]).len(), NAME_CHARS);
    }

    #[test]
    fn the_server_may_be_several_processes() {
        let me = std::process::id();
        let group = ServerProcesses::pids(&[me, me])
            .expect("readable")
            .expect("some");
        assert_eq!(group.members().count(), 2);
        assert!(group
            .members()
            .all(|(pid, name)| pid == me && !name.is_empty()));
        assert_eq!(group.sample().len(), 2);
        assert!(ServerProcesses::pids(&[])
            .expect("nothing to read")
            .is_none());
        assert!(ServerProcesses::pids(&[u32::MAX]).is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let s = Process::current().sample().expect("readable");
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib);
    }
}
