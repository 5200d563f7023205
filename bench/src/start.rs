//! Times a server start: from spawning `place serve` to its `listening on` line, then stops it
//! with SIGTERM (so it writes its last checkpoint) and times that too.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

/// A timed start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    /// Spawn to `listening on`, seconds.
    pub secs: f64,
    /// SIGTERM to exit, seconds.
    pub stop_secs: f64,
    /// Events the server said it replayed (from its `canvas restored` log line).
    pub events_replayed: Option<u64>,
    /// The command.
    pub command: String,
}

/// Starts `command` (with `RUST_LOG=info` so the restore is logged), waits for its listening
/// line, then stops it.
pub fn time_start(command: &[String]) -> anyhow::Result<Started> {
    let (program, args) = command.split_first().context("no command given")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let stderr = child.stderr.take().context("stderr")?;
    let logs = std::thread::spawn(move || {
        let mut replayed = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("canvas restored") {
                replayed = number_after(&line, "events_replayed");
            }
        }
        replayed
    });
    let stdout = child.stdout.take().context("stdout")?;
    let mut listening = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("listening on") {
            listening = Some(started.elapsed());
            break;
        }
    }
    let Some(secs) = listening else {
        let status = child.wait()?;
        bail!("{program} exited ({status}) without a listening line");
    };
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .context("sending SIGTERM")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            bail!("{program} did not stop within 2 minutes of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop_secs = stopping.elapsed().as_secs_f64();
    Ok(Started {
        secs: secs.as_secs_f64(),
        stop_secs,
        events_replayed: logs.join().ok().flatten(),
        command: command.join(" "),
    })
}

/// The first number after `key` in a log line (`key=12` or `"key":12`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_events_are_read_from_either_log_format() {
        assert_eq!(
            number_after(
                "INFO canvas restored events_replayed=1234 last_event_id=9",
                "events_replayed"
            ),
            Some(1234)
        );
        assert_eq!(
            number_after(
                r#"{"fields":{"events_replayed":77,"message":"canvas restored"}}"#,
                "events_replayed"
            ),
            Some(77)
        );
        assert_eq!(number_after("canvas restored", "events_replayed"), None);
    }
}
