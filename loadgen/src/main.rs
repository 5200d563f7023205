//! `loadgen`: see `loadgen --help`. Parses the flags, runs, prints the table and writes
//! `--json`. Exits 64 on bad flags, 1 when the run failed, 2 when a delivery check failed.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use loadgen::Args;

/// Exit status for bad flags (EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// Exit status when the run completed but a delivery check failed.
const EXIT_CHECKS: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = args.check() {
        eprintln!("loadgen: {error:#}");
        return ExitCode::from(EXIT_USAGE);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(report) if report.delivery.clean() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_CHECKS),
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<loadgen::Report> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime.block_on(loadgen::run(args, !args.quiet))?;
    // Player tasks abandoned at the close timeout must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}
