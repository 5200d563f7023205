//! Turns the files of one `bench/run` (loadgen `--json` reports, the exact command lines, seed
//! and restart timings) into `bench/RESULTS.md` and its plots.
//!
//! Runs are recognised by file name: `fanout-hot-<players>`, `fanout-one-<players>`,
//! `ingest-<rate>`, `memory-<players>`, `traffic-<viewport|global>-<hot|uniform>`,
//! `coldstart-paint`, each `<name>.json` with `<name>.cmd` (the loadgen command) and
//! `<name>.server` (the server command); plus `seed.json`, `restart-replay.json` and
//! `restart-checkpoint.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::machine::Machine;
use crate::plots::{Chart, Series};

/// Broadcast p99 bound of the fan-out scenarios, ms.
pub const FANOUT_P99_MS: f64 = 100.0;
/// Ack p99 bound of the ingest scenario, ms.
pub const INGEST_P99_MS: f64 = 50.0;
/// Placements per second during the fan-out scenarios.
pub const FANOUT_RATE: f64 = 1000.0;
const GOAL_PLAYERS: f64 = 50_000.0;
const GOAL_INGEST: f64 = 10_000.0;
const GOAL_KIB_PER_PLAYER: f64 = 40.0;
const GOAL_TRAFFIC_RATIO: f64 = 10.0;
const GOAL_COLD_SECS: f64 = 2.0;

/// One loadgen run.
#[derive(Debug, Clone)]
pub struct Run {
    /// File stem, e.g. `fanout-hot-5000`.
    pub name: String,
    /// The loadgen report.
    pub report: Value,
    /// The loadgen command line.
    pub command: String,
    /// The server command line.
    pub server: String,
}

impl Run {
    fn f(&self, pointer: &str) -> f64 {
        self.report
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    }

    fn u(&self, pointer: &str) -> u64 {
        self.report
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// The number after the scenario prefix.
    fn param(&self, prefix: &str) -> Option<f64> {
        self.name.strip_prefix(prefix)?.parse().ok()
    }

    fn delivery_problems(&self) -> u64 {
        [
            "gaps",
            "duplicates",
            "missing",
            "lost",
            "wrong_colours",
            "unmatched",
            "unanswered_subscriptions",
        ]
        .iter()
        .map(|k| self.u(&format!("/delivery/{k}")))
        .sum()
    }

    fn all_connected(&self) -> bool {
        self.u("/players/connected") == self.u("/settings/clients")
            && self.u("/players/dropped") == 0
    }

    fn server_kib_per_player(&self) -> f64 {
        let grown = self.f("/server/rss_steady_kib") - self.f("/server/rss_start_kib");
        grown / (self.u("/players/connected_at_steady").max(1) as f64)
    }
}

/// Reads every run of a results directory.
pub fn load_runs(dir: &Path) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let cmd = path.with_extension("cmd");
        if path.extension().is_none_or(|e| e != "json") || !cmd.exists() {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let report = read_json(&path)?;
        runs.push(Run {
            name,
            report,
            command: read_text(&cmd),
            server: read_text(&path.with_extension("server")),
        });
    }
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

/// Reads one loadgen report as a run named after its file.
pub fn read_run(path: &Path) -> anyhow::Result<Run> {
    Ok(Run {
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string(),
        report: read_json(path)?,
        command: String::new(),
        server: String::new(),
    })
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What the report is written from.
pub struct Inputs {
    /// The results directory.
    pub dir: PathBuf,
    /// Where RESULTS.md goes; plots go to `plots/` beside it.
    pub out: PathBuf,
    /// The git commit benchmarked.
    pub commit: String,
    /// `full` or `quick`.
    pub mode: String,
    /// Criterion's output directory (`target/criterion`), if the micro-benchmarks ran.
    pub criterion: Option<PathBuf>,
    /// Hand-written sections appended to the report, in order (measured by hand, the analysis).
    pub analysis: Vec<PathBuf>,
}

/// Writes RESULTS.md and the plots.
pub fn write(inputs: &Inputs) -> anyhow::Result<()> {
    let runs = load_runs(&inputs.dir)?;
    let plots_dir = inputs.out.parent().unwrap_or(Path::new(".")).join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    let of = |prefix: &str| -> Vec<&Run> {
        let mut v: Vec<&Run> = runs.iter().filter(|r| r.param(prefix).is_some()).collect();
        v.sort_by(|a, b| {
            a.param(prefix)
                .partial_cmp(&b.param(prefix))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        v
    };
    let hot = of("fanout-hot-");
    let one = of("fanout-one-");
    let ingest = of("ingest-");
    let memory = of("memory-");
    let named = |n: &str| runs.iter().find(|r| r.name == n);

    let mut md = String::new();
    header(&mut md, inputs);
    let fanout_best = |set: &[&Run]| {
        set.iter()
            .filter(|r| holds_fanout(r))
            .map(|r| r.u("/players/connected"))
            .max()
    };
    let ingest_best = ingest
        .iter()
        .filter(|r| holds_ingest(r))
        .map(|r| r.f("/placements/acked_per_sec"))
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let kib = memory.last().map(|r| r.server_kib_per_player());
    let traffic_ratio = |kind: &str| {
        let v = named(&format!("traffic-viewport-{kind}"))?;
        let g = named(&format!("traffic-global-{kind}"))?;
        Some((
            g.f("/per_player/bytes_per_sec/p50") / v.f("/per_player/bytes_per_sec/p50"),
            g.f("/per_player/messages_per_sec/p50") / v.f("/per_player/messages_per_sec/p50"),
        ))
    };
    let paint = named("coldstart-paint").map(|r| r.f("/latency_ms/painted/p99") / 1000.0);
    let events = read_json(&inputs.dir.join("seed.json"))
        .ok()
        .and_then(|v| v.get("events").and_then(Value::as_u64))
        .map_or_else(|| "?".to_string(), millions);
    let restart_checkpoint_label = format!(
        "5. Restart of a 2000x2000 canvas with {events} events: last checkpoint + 200,000 events (a crash at worst)"
    );
    let restart_replay_label = format!(
        "5. Restart of that canvas replaying the whole log of {events} events (no checkpoint)"
    );
    let restart = |n: &str| {
        read_json(&inputs.dir.join(format!("restart-{n}.json")))
            .ok()
            .and_then(|v| v.get("secs").and_then(Value::as_f64))
    };

    summary(
        &mut md,
        &[
            goal_row(
                "1. Fan-out over hot spots: players with p99 broadcast < 100 ms at 1,000 placements/s",
                "50,000",
                fanout_best(&hot).map(|n| n as f64),
                GOAL_PLAYERS,
                true,
                |v| format!("{v:.0} players"),
            ),
            goal_row(
                "1. Fan-out, every player on one hot area (worst case)",
                "50,000",
                fanout_best(&one).map(|n| n as f64),
                GOAL_PLAYERS,
                true,
                |v| format!("{v:.0} players"),
            ),
            goal_row(
                "2. Ingest: placements/s acknowledged durably with p99 ack < 50 ms",
                "10,000/s",
                ingest_best,
                GOAL_INGEST,
                true,
                |v| format!("{v:.0}/s"),
            ),
            goal_row(
                "3. Memory: server RSS per idle connected player",
                "< 40 KiB",
                kib,
                GOAL_KIB_PER_PLAYER,
                false,
                |v| format!("{v:.1} KiB"),
            ),
            goal_row(
                "4. Viewport against --global: bytes per player (hot spots)",
                ">= 10x less",
                traffic_ratio("hot").map(|r| r.0),
                GOAL_TRAFFIC_RATIO,
                true,
                |v| format!("{v:.1}x less"),
            ),
            goal_row(
                "4. Viewport against --global: bytes per player (uniform)",
                ">= 10x less",
                traffic_ratio("uniform").map(|r| r.0),
                GOAL_TRAFFIC_RATIO,
                true,
                |v| format!("{v:.1}x less"),
            ),
            goal_row(
                "5. Cold start: connect to a painted 1920x1080 viewport (p99)",
                "< 2 s",
                paint,
                GOAL_COLD_SECS,
                false,
                |v| format!("{v:.2} s"),
            ),
            goal_row(
                &restart_checkpoint_label,
                "< 2 s",
                restart("checkpoint"),
                GOAL_COLD_SECS,
                false,
                |v| format!("{v:.2} s"),
            ),
            goal_row(
                &restart_replay_label,
                "< 2 s",
                restart("replay"),
                GOAL_COLD_SECS,
                false,
                |v| format!("{v:.2} s"),
            ),
        ],
    );

    fanout_section(&mut md, &hot, &one, &plots_dir)?;
    ingest_section(&mut md, &ingest, &plots_dir)?;
    memory_section(&mut md, &memory);
    traffic_section(&mut md, &runs);
    cold_section(&mut md, inputs, named("coldstart-paint"));
    cluster_section(&mut md, &runs);
    if let Some(dir) = &inputs.criterion {
        crate::criterion::section(&mut md, dir);
    }
    for path in &inputs.analysis {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        md.push('\n');
        md.push_str(&text);
    }
    std::fs::write(&inputs.out, md).with_context(|| format!("writing {}", inputs.out.display()))
}

/// `10000000` as `10 M`, `1500000` as `1.5 M`.
fn millions(n: u64) -> String {
    let m = n as f64 / 1e6;
    if m.fract() == 0.0 {
        format!("{m:.0} M")
    } else {
        format!("{m:.1} M")
    }
}

fn header(md: &mut String, inputs: &Inputs) {
    let m = Machine::read();
    let _ = writeln!(md, "# place: benchmark results\n");
    let _ = writeln!(
        md,
        "Written by `bench/run{}` from the runs in this file; every figure below is measured, none \
         is estimated. Re-run it to reproduce (see `bench/README.md`).\n",
        if inputs.mode == "quick" { " --quick" } else { "" }
    );
    let _ = writeln!(
        md,
        "- **Machine**: {} ({} cores), {:.1} GiB memory, Linux {}",
        m.cpu, m.cores, m.memory_gib, m.kernel
    );
    let _ = writeln!(md, "- **Commit**: `{}`", inputs.commit);
    if let Ok(env) = read_json(&inputs.dir.join("env.json")) {
        let n = |k: &str| env.get(k).and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            md,
            "- **Open files**: {} per process (hard limit {}; the OS refuses more to this user), so \
             neither the server nor loadgen can hold more than about {} connections here: larger \
             steps were cut to that.",
            n("fd_soft"),
            n("fd_hard"),
            n("max_players")
        );
    }
    let _ = writeln!(
        md,
        "- **Setup**: one release `place serve` (embedded SQLite store, `synchronous=FULL`) and `loadgen` \
         on the same machine, over loopback: they share the {} cores, so every figure is a lower bound \
         for a server with the machine to itself. Latencies are measured by loadgen (send to receipt), \
         only for placements sent after every player connected. Before each run `bench/run` waits \
         for the machine to be quiet; *other CPU* is what other processes used during the run.\n",
        m.cores
    );
}

fn goal_row(
    what: &str,
    goal: &str,
    measured: Option<f64>,
    target: f64,
    higher_is_better: bool,
    show: impl Fn(f64) -> String,
) -> [String; 4] {
    let (text, verdict) = match measured.filter(|v| v.is_finite()) {
        None => ("not measured".to_string(), "-".to_string()),
        Some(v) => {
            let met = if higher_is_better {
                v >= target
            } else {
                v <= target
            };
            let verdict = if met {
                "met".to_string()
            } else if higher_is_better && v > 0.0 {
                format!(
                    "**missed**: {:.0}% of the goal ({:.1}x short)",
                    v / target * 100.0,
                    target / v
                )
            } else if higher_is_better {
                "**missed**: none held".to_string()
            } else {
                format!("**missed** by {:.1}x", v / target)
            };
            (show(v), verdict)
        }
    };
    [what.to_string(), goal.to_string(), text, verdict]
}

fn summary(md: &mut String, rows: &[[String; 4]]) {
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(md, "| scenario | goal | measured | verdict |");
    let _ = writeln!(md, "| --- | --- | --- | --- |");
    for r in rows {
        let _ = writeln!(md, "| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
    md.push('\n');
}

/// Whether a fan-out step held: everyone connected, none dropped, p99 broadcast under the bound
/// and at least 90% of the placement rate acknowledged.
pub fn holds_fanout(r: &Run) -> bool {
    r.f("/latency_ms/broadcast/p99") < FANOUT_P99_MS
        && r.all_connected()
        && r.f("/placements/acked_per_sec") >= 0.9 * FANOUT_RATE
}

/// Whether an ingest step held: p99 ack under the bound, at least 90% of the target rate
/// acknowledged, everyone connected.
pub fn holds_ingest(r: &Run) -> bool {
    let target = r.f("/settings/place_rate");
    r.f("/latency_ms/ack/p99") < INGEST_P99_MS
        && r.f("/placements/acked_per_sec") >= 0.9 * target
        && r.all_connected()
}

fn load_table(md: &mut String, runs: &[&Run], holds: fn(&Run) -> bool) {
    let _ = writeln!(
        md,
        "| players | connected | acked/s | ack p50 / p99 ms | broadcast p50 / p99 / p99.9 ms | msgs/s per player (p50) | server CPU (cores) | loadgen CPU (cores) | other CPU (cores) | server RSS MiB | delivery problems | holds |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
            r.u("/settings/clients"),
            r.u("/players/connected"),
            r.f("/placements/acked_per_sec"),
            r.f("/latency_ms/ack/p50"),
            r.f("/latency_ms/ack/p99"),
            r.f("/latency_ms/broadcast/p50"),
            r.f("/latency_ms/broadcast/p99"),
            r.f("/latency_ms/broadcast/p999"),
            r.f("/per_player/messages_per_sec/p50"),
            r.f("/server/cpu_cores_steady"),
            r.f("/loadgen/cpu_cores_steady"),
            r.f("/machine/other_cores_steady"),
            r.f("/server/peak_rss_kib") / 1024.0,
            r.delivery_problems(),
            if holds(r) { "yes" } else { "no" }
        );
    }
    md.push('\n');
}

fn commands(md: &mut String, runs: &[&Run]) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(md, "<details><summary>Exact commands</summary>\n\n```sh");
    let mut servers: Vec<&str> = runs.iter().map(|r| r.server.as_str()).collect();
    servers.dedup();
    for s in servers {
        let _ = writeln!(md, "{s}");
    }
    for r in runs {
        let _ = writeln!(md, "{}", r.command);
    }
    let _ = writeln!(md, "```\n</details>\n");
}

fn fanout_section(md: &mut String, hot: &[&Run], one: &[&Run], plots: &Path) -> anyhow::Result<()> {
    let _ = writeln!(md, "## 1. Fan-out\n");
    let _ = writeln!(
        md,
        "Players connect at the ramp rate, watch a 1280x720 viewport at zoom 2 (640x360 canvas pixels, \
         up to 77 tiles) and pan every 30 s, while 1,000 placements/s are made over the hot spots. \
         A step holds when every player connected, none dropped, p99 broadcast latency stayed under \
         {FANOUT_P99_MS} ms and at least 90% of the placement rate was acknowledged. Steps stop at the \
         first that does not hold.\n"
    );
    let _ = writeln!(
        md,
        "**Hot spots** (8 hot spots, viewports within 300 px of theirs):\n"
    );
    load_table(md, hot, holds_fanout);
    let _ = writeln!(
        md,
        "**One hot area** (every player on the same viewport: each placement reaches everyone):\n"
    );
    load_table(md, one, holds_fanout);
    let points = |runs: &[&Run]| {
        runs.iter()
            .filter(|r| r.all_connected())
            .map(|r| {
                (
                    r.u("/players/connected") as f64,
                    r.f("/latency_ms/broadcast/p99"),
                )
            })
            .filter(|p| p.1.is_finite())
            .collect::<Vec<_>>()
    };
    let drawn = Chart {
        title: "Players against p99 broadcast latency (1,000 placements/s)",
        x_label: "connected players",
        y_label: "p99 broadcast latency (ms)",
        series: vec![
            Series {
                label: "hot spots".into(),
                points: points(hot),
            },
            Series {
                label: "one hot area".into(),
                points: points(one),
            },
        ],
        goal: Some((FANOUT_P99_MS, "100 ms bound")),
    }
    .draw(&plots.join("fanout.svg"))?;
    if drawn {
        let _ = writeln!(
            md,
            "![players against p99 broadcast latency](plots/fanout.svg)\n"
        );
    }
    let mut all: Vec<&Run> = hot.to_vec();
    all.extend_from_slice(one);
    commands(md, &all);
    Ok(())
}

fn ingest_section(md: &mut String, runs: &[&Run], plots: &Path) -> anyhow::Result<()> {
    let _ = writeln!(md, "## 2. Ingest\n");
    let _ = writeln!(
        md,
        "Players (one per 5 placements/s of the target, each watching one 64x64 area so fan-out \
         stays small) place uniformly over the canvas; as many of them as needed place at up to 20 \
         placements/s each to hold the target rate. A placement is acknowledged only once it is \
         durable (group commit, one fsync per batch). A step holds when p99 acknowledgement latency \
         is under {INGEST_P99_MS} ms and at least 90% of the target rate is acknowledged.\n"
    );
    let _ = writeln!(
        md,
        "| target/s | acked/s | ack p50 / p90 / p99 / p99.9 ms | errors | server CPU (cores) | loadgen CPU (cores) | other CPU (cores) | holds |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in runs {
        let errors: u64 = r
            .report
            .get("errors")
            .and_then(Value::as_object)
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let _ = writeln!(
            md,
            "| {:.0} | {:.0} | {:.1} / {:.1} / {:.1} / {:.1} | {} | {:.2} | {:.2} | {:.2} | {} |",
            r.f("/settings/place_rate"),
            r.f("/placements/acked_per_sec"),
            r.f("/latency_ms/ack/p50"),
            r.f("/latency_ms/ack/p90"),
            r.f("/latency_ms/ack/p99"),
            r.f("/latency_ms/ack/p999"),
            errors,
            r.f("/server/cpu_cores_steady"),
            r.f("/loadgen/cpu_cores_steady"),
            r.f("/machine/other_cores_steady"),
            if holds_ingest(r) { "yes" } else { "no" }
        );
    }
    md.push('\n');
    let drawn = Chart {
        title: "Placement rate against p99 acknowledgement latency",
        x_label: "target placements/s",
        y_label: "p99 ack latency (ms)",
        series: vec![Series {
            label: "p99 ack".into(),
            points: runs
                .iter()
                .map(|r| (r.f("/settings/place_rate"), r.f("/latency_ms/ack/p99")))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect(),
        }],
        goal: Some((INGEST_P99_MS, "50 ms bound")),
    }
    .draw(&plots.join("ingest.svg"))?;
    if drawn {
        let _ = writeln!(
            md,
            "![placement rate against p99 ack latency](plots/ingest.svg)\n"
        );
    }
    commands(md, runs);
    Ok(())
}

fn memory_section(md: &mut String, runs: &[&Run]) {
    let _ = writeln!(md, "## 3. Memory\n");
    let _ = writeln!(
        md,
        "A fresh server per step; idle players (`--place-rate 0`) connect and subscribe to their \
         viewport (up to 77 tiles). RSS per player = (server RSS with everyone connected - RSS \
         before the first player) / players.\n"
    );
    let _ = writeln!(
        md,
        "| players | connected | RSS before MiB | RSS connected MiB | per player KiB |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            r.u("/settings/clients"),
            r.u("/players/connected_at_steady"),
            r.f("/server/rss_start_kib") / 1024.0,
            r.f("/server/rss_steady_kib") / 1024.0,
            r.server_kib_per_player()
        );
    }
    md.push('\n');
    commands(md, runs);
}

fn traffic_section(md: &mut String, runs: &[Run]) {
    let _ = writeln!(md, "## 4. Viewport subscriptions against `--global`\n");
    let _ = writeln!(
        md,
        "The same players and placements, once with viewport subscriptions and once with every \
         player subscribed to the whole canvas (a global broadcast). Traffic per player per second \
         after its first paint (the initial snapshots are not counted).\n"
    );
    let _ = writeln!(md, "| run | players | acked/s | msgs/s per player p50 | KB/s per player p50 | broadcast p99 ms | server CPU (cores) |");
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
    let chosen: Vec<&Run> = runs
        .iter()
        .filter(|r| r.name.starts_with("traffic-"))
        .collect();
    for r in &chosen {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2} |",
            r.name,
            r.u("/players/connected"),
            r.f("/placements/acked_per_sec"),
            r.f("/per_player/messages_per_sec/p50"),
            r.f("/per_player/bytes_per_sec/p50") / 1000.0,
            r.f("/latency_ms/broadcast/p99"),
            r.f("/server/cpu_cores_steady"),
        );
    }
    md.push('\n');
    commands(md, &chosen);
}

fn cluster_section(md: &mut String, runs: &[Run]) {
    let named = |n: &str| runs.iter().find(|r| r.name == n);
    let pairs: Vec<(&str, &Run, &Run)> =
        [("ingest", "Ingest"), ("fanout", "Fan-out over hot spots")]
            .into_iter()
            .filter_map(|(key, label)| {
                Some((
                    label,
                    named(&format!("compare-serve-{key}"))?,
                    named(&format!("compare-cluster-{key}"))?,
                ))
            })
            .collect();
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## 6. The cluster against `place serve`
"
    );
    let _ = writeln!(
        md,
        "The same loads against one `place serve` and against `scripts/dev-cluster` (2 edges, 3 \
         shards over QUIC with mutual TLS, Redis for sessions and cooldowns, PostgreSQL for the \
         event log; players spread over both edges), all on this one machine, so the cluster's \
         five processes, Redis and PostgreSQL share its cores with `loadgen`.\n"
    );
    let _ = writeln!(
        md,
        "| load | mode | players | acked/s | ack p50 / p99 ms | broadcast p50 / p99 ms | delivery problems | server CPU per placement (µs) |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, serve, cluster) in &pairs {
        for (mode, r) in [("`place serve`", serve), ("cluster", cluster)] {
            let _ = writeln!(
                md,
                "| {label} | {mode} | {} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {:.0} |",
                r.u("/players/connected"),
                r.f("/placements/acked_per_sec"),
                r.f("/latency_ms/ack/p50"),
                r.f("/latency_ms/ack/p99"),
                r.f("/latency_ms/broadcast/p50"),
                r.f("/latency_ms/broadcast/p99"),
                r.delivery_problems(),
                r.f("/server/cpu_us_per_placement_steady"),
            );
        }
    }
    md.push('\n');
    let cluster_runs: Vec<&Run> = pairs.iter().map(|(_, _, c)| *c).collect();
    roles_table(md, &cluster_runs);
    let all: Vec<&Run> = pairs.iter().flat_map(|(_, s, c)| [*s, *c]).collect();
    commands(md, &all);
}

/// A cluster run's server CPU per acknowledged placement, by role: what each kind of process
/// (edges, shards, PostgreSQL, Redis) spends, from loadgen's `server_processes`.
fn roles_table(md: &mut String, runs: &[&Run]) {
    let per_run: Vec<(&Run, Vec<(String, f64)>)> = runs
        .iter()
        .map(|r| (*r, cpu_by_role(&r.report)))
        .filter(|(_, roles)| !roles.is_empty())
        .collect();
    if per_run.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "Where the cluster's CPU goes, in µs per acknowledged placement (each process read from \
         `/proc` over the steady phase; PostgreSQL is every `postgres` process, its backends \
         included):\n"
    );
    let _ = writeln!(md, "| run | role | µs per placement | cores |");
    let _ = writeln!(md, "| --- | --- | --- | --- |");
    for (r, roles) in &per_run {
        let acked = r.f("/placements/acked_per_sec");
        for (role, cores) in roles {
            let _ = writeln!(
                md,
                "| {} | {role} | {:.1} | {cores:.2} |",
                r.name,
                cores * 1e6 / acked
            );
        }
    }
    md.push('\n');
}

/// The role a server process plays, from its command line: `place shard ...` is "shard",
/// every `postgres` process is "PostgreSQL".
fn role_of(name: &str) -> String {
    let mut words = name.split_whitespace();
    match words.next() {
        Some("place") => words.next().unwrap_or("place").to_string(),
        Some(first) if first.starts_with("postgres") => "PostgreSQL".to_string(),
        Some(first) if first.starts_with("redis") => "Redis".to_string(),
        Some(first) => first.to_string(),
        None => "?".to_string(),
    }
}

/// Cores each role used over the steady phase, summed over its processes, largest first.
fn cpu_by_role(report: &Value) -> Vec<(String, f64)> {
    let mut roles: Vec<(String, f64)> = Vec::new();
    for p in report
        .pointer("/server_processes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = role_of(p.get("name").and_then(Value::as_str).unwrap_or(""));
        let cores = p
            .get("cpu_cores_steady")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        match roles.iter_mut().find(|(r, _)| *r == role) {
            Some((_, c)) => *c += cores,
            None => roles.push((role, cores)),
        }
    }
    roles.sort_by(|a, b| b.1.total_cmp(&a.1));
    roles
}

fn cold_section(md: &mut String, inputs: &Inputs, paint: Option<&Run>) {
    let _ = writeln!(md, "## 5. Cold start\n");
    let seed = read_json(&inputs.dir.join("seed.json")).ok();
    if let Some(s) = &seed {
        let _ = writeln!(
            md,
            "The log: {} random placements over the 2000x2000 canvas (each pixel painted {:.1} times \
             on average; random pixels are the worst case for snapshot compression), written straight \
             into the store by `place-bench seed-log` in {:.0} s.\n",
            s.get("events").and_then(Value::as_u64).unwrap_or(0),
            s.get("events").and_then(Value::as_f64).unwrap_or(0.0) / 4e6,
            s.get("secs").and_then(Value::as_f64).unwrap_or(f64::NAN)
        );
    }
    let _ = writeln!(
        md,
        "| restart | events replayed | spawn to `listening on` |"
    );
    let _ = writeln!(md, "| --- | --- | --- |");
    let mut cmds = Vec::new();
    for (name, label) in [
        ("replay", "no checkpoint: the whole log is replayed"),
        (
            "checkpoint",
            "a checkpoint 200,000 events before the end: snapshots, then the log tail",
        ),
    ] {
        if let Ok(v) = read_json(&inputs.dir.join(format!("restart-{name}.json"))) {
            let _ = writeln!(
                md,
                "| {label} | {} | {:.2} s |",
                v.get("events_replayed")
                    .map_or("?".into(), |e| e.to_string()),
                v.get("secs").and_then(Value::as_f64).unwrap_or(f64::NAN)
            );
            if let Some(c) = v.get("command").and_then(Value::as_str) {
                cmds.push(c.to_string());
            }
        }
    }
    md.push('\n');
    if let Some(r) = paint {
        let _ = writeln!(
            md,
            "Time from connect to a fully painted 1920x1080 viewport at zoom 1 ({} tiles) on the \
             checkpointed canvas, {} players one after another: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
             ({:.0} KB received per player on average).\n",
            r.u("/settings/tiles_per_player"),
            r.u("/players/painted"),
            r.f("/latency_ms/painted/p50"),
            r.f("/latency_ms/painted/p90"),
            r.f("/latency_ms/painted/p99"),
            r.f("/latency_ms/painted/max"),
            r.f("/totals/bytes") / 1000.0 / (r.u("/players/painted").max(1) as f64)
        );
    }
    if !cmds.is_empty() || paint.is_some() {
        let _ = writeln!(md, "<details><summary>Exact commands</summary>\n\n```sh");
        for c in cmds {
            let _ = writeln!(md, "{c}");
        }
        if let Some(r) = paint {
            let _ = writeln!(md, "{}\n{}", r.server, r.command);
        }
        let _ = writeln!(md, "```\n</details>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clusters_processes_add_up_by_role() {
        let report = serde_json::json!({ "server_processes": [
            { "name": "place edge --id edge-1 --listen 127.0.0.1:3901", "cpu_cores_steady": 0.25 },
            { "name": "place shard --id shard-1 --certs x", "cpu_cores_steady": 0.125 },
            { "name": "place edge --id edge-2", "cpu_cores_steady": 0.25 },
            { "name": "postgres -D /var/lib/postgresql/15/main", "cpu_cores_steady": 0.0625 },
            { "name": "postgres: 15/main: postgres test 127.0.0.1(40000) idle", "cpu_cores_steady": 0.0625 },
            { "name": "redis-server 127.0.0.1:6379", "cpu_cores_steady": 0.03125 },
        ]});
        assert_eq!(
            cpu_by_role(&report),
            vec![
                ("edge".to_string(), 0.5),
                ("shard".to_string(), 0.125),
                ("PostgreSQL".to_string(), 0.125),
                ("Redis".to_string(), 0.03125),
            ]
        );
        assert!(cpu_by_role(&serde_json::json!({ "server": {} })).is_empty());
        assert_eq!(role_of(""), "?");
    }
}
