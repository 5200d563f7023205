//! The figures of a run: one serialisable [`Report`] for `--json`, and the table printed at the
//! end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Spread, WireFormat};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was run.
    pub settings: Settings,
    /// The canvas as the server described it.
    pub canvas: Canvas,
    /// How long each part took, seconds.
    pub timing: Timing,
    /// What became of the players.
    pub players: Players,
    /// Connection failures by kind.
    pub connect_errors: BTreeMap<String, u64>,
    /// Dropped connections by how they ended.
    pub drops: BTreeMap<String, u64>,
    /// Error answers by code.
    pub errors: BTreeMap<String, u64>,
    /// Placements.
    pub placements: Placements,
    /// The delivery checks.
    pub delivery: Delivery,
    /// Latencies in milliseconds.
    pub latency_ms: Latencies,
    /// Traffic per player, after its first paint.
    pub per_player: PerPlayer,
    /// Traffic in all.
    pub totals: Totals,
    /// The server process (with `--server-pid`); several given, their sum.
    pub server: Option<ProcessFigures>,
    /// Each server process on its own, in `--server-pid` order.
    pub server_processes: Vec<ServerProcess>,
    /// This process.
    pub loadgen: ProcessFigures,
    /// The whole machine (from `/proc/stat`).
    pub machine: Option<MachineFigures>,
    /// The file-descriptor limit.
    pub fd_limit: FdFigures,
}

/// The flags of the run, as applied.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Endpoints.
    pub urls: Vec<String>,
    /// Players.
    pub clients: usize,
    /// Players started per second.
    pub ramp_per_sec: f64,
    /// Steady phase, seconds.
    pub duration_secs: f64,
    /// Screen size.
    pub viewport: (u32, u32),
    /// Zoom.
    pub zoom: f64,
    /// Where viewports go.
    pub spread: Spread,
    /// Hot spots.
    pub hotspots: usize,
    /// Radius around hot spots, canvas pixels.
    pub hotspot_radius: u32,
    /// Seconds between pans (0: never).
    pub pan_every_secs: f64,
    /// `--place-rate`.
    pub place_rate: Option<f64>,
    /// Sessions that place.
    pub placers: usize,
    /// `--global`.
    pub global: bool,
    /// Tiles per player at most.
    pub tiles_per_player: usize,
    /// Protocol.
    pub format: WireFormat,
    /// Grace period, seconds.
    pub grace_secs: f64,
    /// Random seed.
    pub seed: u64,
}

/// The canvas.
#[derive(Debug, Clone, Serialize)]
pub struct Canvas {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Cooldown, seconds.
    pub cooldown_secs: u32,
    /// Tiles a player may watch.
    pub max_subscribed_tiles: u32,
}

/// Phase lengths in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Until every player connected or failed.
    pub ramp_secs: f64,
    /// The steady phase, where latencies are measured.
    pub steady_secs: f64,
    /// The whole run.
    pub total_secs: f64,
}

/// What became of the players.
#[derive(Debug, Clone, Serialize)]
pub struct Players {
    /// Asked for.
    pub requested: usize,
    /// Received `welcome`.
    pub connected: u64,
    /// Connected when the steady phase began.
    pub connected_at_steady: u64,
    /// Received their whole first viewport.
    pub painted: u64,
    /// Could not get a guest session.
    pub sessions_failed: u64,
    /// Could not open the WebSocket.
    pub connect_failed: u64,
    /// Lost their connection before the end.
    pub dropped: u64,
    /// Dropped connections opened again (`--reconnect`).
    pub reconnects: u64,
    /// Players whose every delivery was decoded and checked (`--check-players` plus the placing
    /// sessions); the rest checked their first paint and then only counted what they received.
    pub checked: usize,
    /// How often the counter read the other players' sockets after their first paint, in
    /// milliseconds (0: each read its own frames as they came, through tungstenite).
    pub counted_every_ms: u64,
}

/// Placements.
#[derive(Debug, Clone, Serialize)]
pub struct Placements {
    /// Sent.
    pub sent: u64,
    /// Acknowledged.
    pub acked: u64,
    /// Refused.
    pub rejected: u64,
    /// Never answered.
    pub unanswered: u64,
    /// In flight on a connection that dropped: the answer went with it.
    pub cut_off: u64,
    /// Acknowledged per second during the steady phase.
    pub acked_per_sec: f64,
    /// The slowest acknowledgement (ms) and its tile: the longest one tile kept a player
    /// waiting.
    pub slowest_ack_ms: Option<f64>,
    /// The tile of the slowest acknowledgement, `tx:ty`.
    pub slowest_ack_tile: Option<String>,
}

/// The delivery checks: all zero in a healthy run, except `events` and `strays`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Tile events received.
    pub events: u64,
    /// Frames that skipped seqs.
    pub gaps: u64,
    /// Seqs skipped.
    pub gap_events: u64,
    /// Events received twice.
    pub duplicates: u64,
    /// Events due at a watching player that never reached it.
    pub missing: u64,
    /// Acknowledged placements no player received.
    pub lost: u64,
    /// Events or snapshots contradicting what others received.
    pub wrong_colours: u64,
    /// Events matching no placement of this run.
    pub unmatched: u64,
    /// Snapshots replacing a held tile (server resyncs).
    pub resyncs: u64,
    /// Frames for tiles not held (in flight across an (un)subscribe): harmless.
    pub strays: u64,
    /// Subscriptions never answered.
    pub unanswered_subscriptions: u64,
    /// Frames that could not be decoded.
    pub undecodable: u64,
}

impl Delivery {
    /// Whether every check passed.
    pub fn clean(&self) -> bool {
        self.gaps == 0
            && self.duplicates == 0
            && self.missing == 0
            && self.lost == 0
            && self.wrong_colours == 0
            && self.unmatched == 0
            && self.unanswered_subscriptions == 0
            && self.undecodable == 0
    }
}

/// A histogram summarised.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Summarises `h`, dividing every value by `scale`.
    pub fn of(h: &Histogram<u64>, scale: f64) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |quantile| h.value_at_quantile(quantile) as f64 / scale;
        Self {
            count: h.len(),
            mean: h.mean() / scale,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 / scale,
        }
    }
}

/// Latencies, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    /// Placement sent to `success`.
    pub ack: Summary,
    /// Placement sent to its event at each other watching player.
    pub broadcast: Summary,
    /// Connect started to the whole first viewport received.
    pub painted: Summary,
    /// Connect started to `welcome`.
    pub connect: Summary,
    /// Guest session request.
    pub session: Summary,
}

/// Traffic per player per second, after its first paint.
#[derive(Debug, Clone, Serialize)]
pub struct PerPlayer {
    /// Messages per second.
    pub messages_per_sec: Summary,
    /// Payload bytes per second.
    pub bytes_per_sec: Summary,
}

/// Traffic in all.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Messages received.
    pub messages: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Messages received during the steady phase (by every player, checked or not): what the
    /// server's CPU per delivered message is taken over.
    pub messages_steady: u64,
}

/// CPU and memory of a process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessFigures {
    /// Average cores busy during the steady phase.
    pub cpu_cores_steady: f64,
    /// CPU seconds over the whole run.
    pub cpu_secs: f64,
    /// CPU seconds during the steady phase (`utime + stime` from `/proc/PID/stat`).
    pub cpu_secs_steady: f64,
    /// CPU time per message delivered during the steady phase, in microseconds.
    pub cpu_us_per_message_steady: f64,
    /// CPU time per placement acknowledged during the steady phase, in microseconds; `None`
    /// when none was.
    pub cpu_us_per_placement_steady: Option<f64>,
    /// RSS before the first player, KiB.
    pub rss_start_kib: u64,
    /// RSS at the end of the steady phase (everyone connected), KiB.
    pub rss_steady_kib: u64,
    /// Peak RSS of the process's life, KiB.
    pub peak_rss_kib: u64,
}

/// One of the server's processes (`--server-pid`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerProcess {
    /// Its pid.
    pub pid: u32,
    /// Its command line (without the program's directory), cut short.
    pub name: String,
    /// What it used.
    #[serde(flatten)]
    pub figures: ProcessFigures,
}

/// The whole machine during the steady phase.
#[derive(Debug, Clone, Serialize)]
pub struct MachineFigures {
    /// Average cores busy.
    pub busy_cores_steady: f64,
    /// Of which neither the server nor loadgen: other work competing with the run.
    pub other_cores_steady: f64,
}

/// The file-descriptor limit.
#[derive(Debug, Clone, Serialize)]
pub struct FdFigures {
    /// Needed.
    pub wanted: u64,
    /// In force.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

impl Report {
    /// The human-readable summary printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let p = &self.players;
        let _ = writeln!(
            out,
            "players: {} requested, {} connected, {} painted, {} dropped, {} reconnected, {} failed (session {}, connect {}); every delivery checked at {}, {}",
            p.requested,
            p.connected,
            p.painted,
            p.dropped,
            p.reconnects,
            p.sessions_failed + p.connect_failed,
            p.sessions_failed,
            p.connect_failed,
            p.checked,
            match p.counted_every_ms {
                0 => "the others counted each frame as it came".to_string(),
                ms => format!("the others counted in sweeps every {ms} ms"),
            }
        );
        let t = &self.timing;
        let _ = writeln!(
            out,
            "time: ramp {:.1} s, steady {:.1} s, total {:.1} s",
            t.ramp_secs, t.steady_secs, t.total_secs
        );
        let pl = &self.placements;
        let _ = writeln!(
            out,
            "placements: {} sent, {} acked ({:.0}/s steady), {} refused, {} unanswered, {} cut off by a dropped connection",
            pl.sent, pl.acked, pl.acked_per_sec, pl.rejected, pl.unanswered, pl.cut_off
        );
        if let (Some(ms), Some(tile)) = (pl.slowest_ack_ms, &pl.slowest_ack_tile) {
            let _ = writeln!(out, "slowest acknowledgement: {ms:.1} ms (tile {tile})");
        }
        let d = &self.delivery;
        let _ = writeln!(
            out,
            "delivery: {} events; gaps {} ({} events), duplicates {}, missing {}, lost {}, wrong colours {}, unmatched {}, resyncs {}, unanswered subscriptions {} -> {}",
            d.events, d.gaps, d.gap_events, d.duplicates, d.missing, d.lost, d.wrong_colours,
            d.unmatched, d.resyncs, d.unanswered_subscriptions,
            if d.clean() { "OK" } else { "FAILED" }
        );
        for (label, map) in [
            ("errors", &self.errors),
            ("connect errors", &self.connect_errors),
            ("drops", &self.drops),
        ] {
            if !map.is_empty() {
                let items: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(out, "{label}: {}", items.join(", "));
            }
        }
        let _ = writeln!(
            out,
            "\n{:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let l = &self.latency_ms;
        let rows = [
            ("ack latency (ms)", l.ack),
            ("broadcast latency (ms)", l.broadcast),
            ("painted viewport (ms)", l.painted),
            ("connect (ms)", l.connect),
            ("guest session (ms)", l.session),
            ("msgs/s per player", self.per_player.messages_per_sec),
            (
                "KB/s per player",
                scaled(self.per_player.bytes_per_sec, 1000.0),
            ),
        ];
        for (label, s) in rows {
            let _ = writeln!(
                out,
                "{label:<26} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                s.count, s.p50, s.p90, s.p99, s.p999, s.max
            );
        }
        let _ = writeln!(
            out,
            "\nreceived: {} messages ({} in the steady phase), {:.1} MB",
            self.totals.messages,
            self.totals.messages_steady,
            self.totals.bytes as f64 / 1e6
        );
        if let Some(s) = &self.server {
            let _ = writeln!(
                out,
                "server: {:.2} cores (steady), {:.2} us CPU per delivered message (steady), {:.1} CPU s, RSS {} -> {} MiB (peak {} MiB)",
                s.cpu_cores_steady,
                s.cpu_us_per_message_steady,
                s.cpu_secs,
                s.rss_start_kib / 1024,
                s.rss_steady_kib / 1024,
                s.peak_rss_kib / 1024
            );
            if let Some(us) = s.cpu_us_per_placement_steady {
                let _ = writeln!(
                    out,
                    "server: {us:.1} us CPU per acknowledged placement (steady)"
                );
            }
        }
        if self.server_processes.len() > 1 {
            for p in &self.server_processes {
                let _ = writeln!(
                    out,
                    "  {:>7} {:<60} {:.2} cores, {} us per placement, {:.2} us per message",
                    p.pid,
                    p.name,
                    p.figures.cpu_cores_steady,
                    p.figures
                        .cpu_us_per_placement_steady
                        .map_or("-".to_string(), |us| format!("{us:.1}")),
                    p.figures.cpu_us_per_message_steady,
                );
            }
        }
        let g = &self.loadgen;
        let _ = writeln!(
            out,
            "loadgen: {:.2} cores (steady), {:.2} us CPU per received message (steady), peak RSS {} MiB",
            g.cpu_cores_steady,
            g.cpu_us_per_message_steady,
            g.peak_rss_kib / 1024
        );
        if let Some(m) = &self.machine {
            let _ = writeln!(
                out,
                "machine: {:.2} cores busy (steady), {:.2} of them other processes",
                m.busy_cores_steady, m.other_cores_steady
            );
        }
        out
    }
}

fn scaled(s: Summary, by: f64) -> Summary {
    Summary {
        count: s.count,
        mean: s.mean / by,
        p50: s.p50 / by,
        p90: s.p90 / by,
        p99: s.p99 / by,
        p999: s.p999 / by,
        max: s.max / by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_scale_and_handle_empty_histograms() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for v in 1..=1000u64 {
            h.record(v * 1000).expect("in range");
        }
        let s = Summary::of(&h, 1000.0);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99 - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
        let empty = Histogram::<u64>::new(3).expect("bounds");
        assert_eq!(Summary::of(&empty, 1.0).count, 0);
    }
}
