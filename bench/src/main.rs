//! `place-bench`: the helpers of `bench/run`. See `place-bench --help`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use place_tiles::CanvasGeometry;

#[derive(Parser)]
#[command(name = "place-bench", about = "Helpers of bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write random placements straight into a data directory's event log.
    SeedLog {
        /// The data directory of `place serve`.
        #[arg(long)]
        data_dir: PathBuf,
        /// Canvas width.
        #[arg(long, default_value_t = 2000)]
        width: u32,
        /// Canvas height.
        #[arg(long, default_value_t = 2000)]
        height: u32,
        /// Events to write.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Events per transaction.
        #[arg(long, default_value_t = 100_000)]
        batch: usize,
        /// Also write a checkpoint covering all but the last N events.
        #[arg(long)]
        checkpoint_tail: Option<u64>,
        /// Write what was done as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Time a server start up to its `listening on` line, then stop it with SIGTERM.
    TimeStart {
        /// Write the timing as JSON here.
        #[arg(long)]
        json: PathBuf,
        /// The server command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Kill a shard of a running cluster with `kill -9` while probing its tiles through the load
    /// balancer, and print how long after the kill each tile was served again.
    FailoverProbe {
        /// The load balancer (or an edge).
        #[arg(long)]
        url: String,
        /// The cluster's name.
        #[arg(long)]
        cluster: String,
        /// Redis, where the ring is.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// The shard to kill.
        #[arg(long)]
        shard: String,
        /// Its process id.
        #[arg(long)]
        pid: u32,
        /// Canvas width.
        #[arg(long, default_value_t = 2000)]
        width: u32,
        /// Canvas height.
        #[arg(long, default_value_t = 2000)]
        height: u32,
        /// Seconds of probing before the kill.
        #[arg(long, default_value_t = 2)]
        before_secs: u64,
        /// Seconds after the kill to wait for every tile at most.
        #[arg(long, default_value_t = 20)]
        within_secs: u64,
        /// Write the windows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Wait until the machine is quiet (other work would be measured as server slowness).
    Quiet {
        /// Busy cores below which the machine counts as quiet.
        #[arg(long, default_value_t = 0.3)]
        max_busy: f64,
        /// Give up waiting after this many seconds (and say so).
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Exit 0 when a loadgen report holds its scenario's bound (how bench/run steps up).
    Holds {
        /// `fanout` or `ingest`.
        #[arg(long)]
        scenario: String,
        /// The loadgen `--json` report.
        report: PathBuf,
    },
    /// Write RESULTS.md and its plots from a results directory.
    Report {
        /// The results directory of one `bench/run`.
        #[arg(long)]
        dir: PathBuf,
        /// The Markdown file to write (plots go to `plots/` beside it).
        #[arg(long)]
        out: PathBuf,
        /// The commit benchmarked.
        #[arg(long)]
        commit: String,
        /// `full` or `quick`.
        #[arg(long, default_value = "full")]
        mode: String,
        /// Criterion's output directory, to include the micro-benchmarks.
        #[arg(long)]
        criterion: Option<PathBuf>,
        /// Markdown files appended in order (hand-measured sections, the analysis); repeatable.
        #[arg(long)]
        analysis: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::SeedLog {
            data_dir,
            width,
            height,
            events,
            batch,
            checkpoint_tail,
            json,
        } => {
            let geometry = CanvasGeometry::new(width, height)?;
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let seeded = runtime.block_on(place_bench::seed::seed(
                &data_dir,
                geometry,
                events,
                batch.max(1),
                checkpoint_tail,
            ))?;
            eprintln!("seed-log: {} events in {:.1} s", seeded.events, seeded.secs);
            write_json(json.as_ref(), &seeded)
        }
        Command::TimeStart { json, command } => {
            let started = place_bench::start::time_start(&command)?;
            eprintln!(
                "time-start: listening after {:.2} s, stopped in {:.2} s",
                started.secs, started.stop_secs
            );
            write_json(Some(&json), &started)
        }
        Command::FailoverProbe {
            url,
            cluster,
            redis_url,
            shard,
            pid,
            width,
            height,
            before_secs,
            within_secs,
            json,
        } => {
            let probe = place_bench::failover::Probe {
                url,
                redis_url,
                cluster,
                shard,
                pid,
                geometry: CanvasGeometry::new(width, height)?,
                before: std::time::Duration::from_secs(before_secs),
                within: std::time::Duration::from_secs(within_secs),
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let windows = runtime.block_on(place_bench::failover::run(probe))?;
            let mut by_window: Vec<String> = windows
                .tiles
                .iter()
                .map(|t| {
                    let ms = |v: Option<u64>| {
                        v.map_or("-".into(), |v| format!("{:.2}", v as f64 / 1000.0))
                    };
                    format!("{} {}/{}", t.tile, ms(t.acked_ms), ms(t.delta_ms))
                })
                .collect();
            by_window.sort();
            println!(
                "kill -9 {}: {} tiles back (placement acknowledged and delta received) after p50 \
                 {:.2} s, p99 {:.2} s, max {:.2} s; {} not back",
                windows.shard,
                windows.tiles.len() - windows.not_back,
                windows.p50_ms as f64 / 1000.0,
                windows.p99_ms as f64 / 1000.0,
                windows.max_ms as f64 / 1000.0,
                windows.not_back
            );
            println!(
                "per tile, s after the kill (acknowledged/delta): {}",
                by_window.join(", ")
            );
            write_json(json.as_ref(), &windows)
        }
        Command::Quiet {
            max_busy,
            timeout_secs,
        } => {
            let (busy, quiet) =
                place_bench::quiet::wait(max_busy, std::time::Duration::from_secs(timeout_secs))?;
            if quiet {
                eprintln!("quiet: {busy:.2} cores busy");
            } else {
                eprintln!(
                    "quiet: still {busy:.2} cores busy with other work after {timeout_secs} s; \
                     measuring anyway (the report shows it as other CPU)"
                );
            }
            Ok(())
        }
        Command::Holds { scenario, report } => {
            let run = place_bench::results::read_run(&report)?;
            let holds = match scenario.as_str() {
                "fanout" => place_bench::results::holds_fanout(&run),
                "ingest" => place_bench::results::holds_ingest(&run),
                other => anyhow::bail!("unknown scenario {other:?}: fanout or ingest"),
            };
            println!("{}", if holds { "holds" } else { "does not hold" });
            std::process::exit(if holds { 0 } else { 1 });
        }
        Command::Report {
            dir,
            out,
            commit,
            mode,
            criterion,
            analysis,
        } => place_bench::results::write(&place_bench::results::Inputs {
            dir,
            out,
            commit,
            mode,
            criterion,
            analysis,
        }),
    }
}

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
