//! A run from start to report: validate, ramp the players up, hold the steady phase, drain the
//! placements, wait out the grace period, close, and gather the figures.
//!
//! ```text
//! Ramp ──(all players connected or failed)──> Steady ──(--duration)──> Drain
//!      ──(placements answered, then --grace)──> Close ──> Report
//! ```
//! Latencies count only placements sent in the steady phase; the delivery checks cover the
//! whole run.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use place_tiles::TileId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::{Args, Settled, WireFormat};
use crate::counting::Counter;
use crate::ledger::Ledger;
use crate::metrics::{get, Metrics};
use crate::net::{self, FdLimit, FD_RESERVE};
use crate::procstat::{self, Process, Sample, ServerProcesses};
use crate::progress::Progress;
use crate::report::{self, Report, Summary};
use crate::target::Target;
use crate::viewport::{canvas_extent, Scene};
use crate::{metrics::Kind, player};

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Players are connecting.
    Ramp,
    /// Everyone is connected; latencies are measured.
    Steady,
    /// No new placements; the last ones are answered and delivered.
    Drain,
    /// Players settle their checks and close.
    Close,
}

/// How long the ramp may overrun its schedule before the run goes on without the stragglers.
const RAMP_SLACK: Duration = Duration::from_secs(30);
/// How long the drain waits for placements still unanswered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Players getting a session or opening their WebSocket at once: a server slower than the ramp
/// sees a queue at loadgen, not thousands of half-open requests.
const MAX_CONNECTING: usize = 256;
/// How long closing players get before they are abandoned.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// What every player of a run shares.
pub struct Shared {
    /// Endpoints and their addresses.
    pub targets: Vec<(Target, SocketAddr)>,
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The flags, settled against the canvas.
    pub settled: Settled,
    /// Where players look.
    pub scene: Scene,
    /// Every placement and event.
    pub ledger: Ledger,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Number of players.
    pub clients: usize,
    /// Protocol.
    pub format: WireFormat,
    /// Time between pans (0: never).
    pub pan_every: Duration,
    /// `--global`.
    pub global: bool,
    /// Every tile of the canvas, with `--global`.
    pub global_tiles: Option<Vec<TileId>>,
    /// Grace period for deliveries.
    pub grace: Duration,
    /// Random seed.
    pub seed: u64,
    /// Spread source addresses over 127.0.0.0/8.
    pub source_spread: bool,
    /// Players reconnect after a dropped connection (`--reconnect`).
    pub reconnect: bool,
    /// Bounds the players getting a session and connecting at once.
    pub connecting: tokio::sync::Semaphore,
    /// Players besides the placers whose every delivery is checked (`--check-players`).
    pub check_players: usize,
    /// Reads the sockets of unchecked players after their first paint (`None`: they read
    /// their own, `--count-every 0s`).
    pub counter: Option<Counter>,
    measure_from: OnceLock<Instant>,
}

impl Shared {
    /// The server player `index` talks to: placers and the others each go round the `--url`s
    /// (see [`crate::schedule::PlacePlan::rank_in_kind`]).
    pub fn target_of(&self, index: usize) -> &(Target, SocketAddr) {
        let rank = self.settled.place.rank_in_kind(index, self.clients);
        &self.targets[rank % self.targets.len()]
    }

    /// When the steady phase began, once it has.
    pub fn measure_from(&self) -> Option<Instant> {
        self.measure_from.get().copied()
    }
}

/// Runs `loadgen` with these arguments and returns its figures. `progress` shows a progress
/// bar (or status lines) on stderr.
pub async fn run(args: &Args, progress: bool) -> anyhow::Result<Report> {
    args.check()?;
    let http = net::http_client()?;
    let mut targets = Vec::new();
    for url in &args.urls {
        let target = crate::target::parse(url, args.format)?;
        let addr = target.resolve().await?;
        targets.push((target, addr));
    }
    let info = net::canvas_info(&http, &targets[0].0).await?;
    let settled = args.settle(&info)?;
    let fd = net::raise_fd_limit(args.clients as u64 + FD_RESERVE);
    if let Some(shortfall) = fd.shortfall() {
        eprintln!("loadgen: warning: {shortfall}");
    }
    let server = ServerProcesses::pids(&args.server_pids)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let extent = canvas_extent(args.viewport, args.zoom, settled.geometry);
    let scene = Scene::new(
        settled.geometry,
        extent,
        args.spread,
        args.hotspots,
        args.hotspot_radius,
        &mut rng,
    );
    let (counter, joining) = (!args.count_every.is_zero())
        .then(|| Counter::new(args.count_every))
        .unzip();
    let shared = Arc::new(Shared {
        targets,
        http,
        ledger: Ledger::new(settled.geometry, args.grace),
        global_tiles: args.global.then(|| settled.geometry.tiles().collect()),
        settled,
        scene,
        metrics: Metrics::default(),
        clients: args.clients,
        format: args.format,
        pan_every: args.pan_every,
        global: args.global,
        grace: args.grace,
        seed: args.seed,
        source_spread: !args.no_source_spread,
        reconnect: args.reconnect,
        connecting: tokio::sync::Semaphore::new(MAX_CONNECTING),
        check_players: args.check_players,
        counter,
        measure_from: OnceLock::new(),
    });
    if let Some(joining) = joining {
        Counter::start(&shared, joining).context("starting the counter thread")?;
    }
    let expected = Duration::from_secs_f64(args.clients as f64 / args.ramp_per_sec)
        + args.duration
        + args.grace;
    let bar = Progress::start(Arc::clone(&shared), server.clone(), expected, progress);
    let result = drive(args, &shared, server.as_ref(), &bar).await;
    bar.finish();
    let figures = result?;
    Ok(build_report(
        args,
        &info,
        &shared,
        server.as_ref(),
        figures,
        fd,
    ))
}

struct Figures {
    ramp: Duration,
    steady: Duration,
    total: Duration,
    connected_at_steady: u64,
    acked_steady: u64,
    messages_steady: u64,
    /// Each server process's samples, in `--server-pid` order.
    servers: Vec<[Sample; 4]>,
    loadgen: [Sample; 4],
    /// Machine busy time at the start and end of the steady phase.
    machine: Option<(Duration, Duration)>,
}

async fn drive(
    args: &Args,
    shared: &Arc<Shared>,
    server: Option<&ServerProcesses>,
    bar: &Progress,
) -> anyhow::Result<Figures> {
    let me = Process::current();
    let sample_all = || -> anyhow::Result<(Vec<Sample>, Sample)> {
        let servers = server.map(ServerProcesses::sample);
        Ok((servers.unwrap_or_default(), me.sample()?))
    };
    let counters = &shared.metrics.counters;
    let (phase_tx, phase_rx) = watch::channel(Phase::Ramp);
    let start = Instant::now();
    let s0 = sample_all().context("reading /proc")?;

    let mut players = JoinSet::new();
    ramp(args, shared, &phase_rx, &mut players).await;
    let ramp_time = start.elapsed();

    bar.phase("steady");
    phase_tx.send_replace(Phase::Steady);
    let steady_start = Instant::now();
    let _ = shared.measure_from.set(steady_start);
    let connected_at_steady = get(&counters.connected);
    let acked_before = get(&counters.placements_acked);
    let messages_before = get(&counters.messages);
    let s1 = sample_all()?;
    let m1 = procstat::machine_busy().ok();
    tokio::time::sleep(args.duration).await;
    let s2 = sample_all()?;
    let messages_steady = get(&counters.messages) - messages_before;
    let m2 = procstat::machine_busy().ok();
    let steady = steady_start.elapsed();
    let acked_steady = get(&counters.placements_acked) - acked_before;

    bar.phase("drain");
    phase_tx.send_replace(Phase::Drain);
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while unanswered(&shared.metrics) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(args.grace).await;
    crate::metrics::add(&counters.lost, shared.ledger.lost(Instant::now()));

    bar.phase("close");
    phase_tx.send_replace(Phase::Close);
    let closing = async { while players.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        players.abort_all();
    }
    let s3 = sample_all()?;
    Ok(Figures {
        ramp: ramp_time,
        steady,
        total: start.elapsed(),
        connected_at_steady,
        acked_steady,
        messages_steady,
        servers: (0..s0.0.len())
            .map(|i| [s0.0[i], s1.0[i], s2.0[i], s3.0[i]])
            .collect(),
        loadgen: [s0.1, s1.1, s2.1, s3.1],
        machine: m1.zip(m2),
    })
}

/// Starts the players at `--ramp-per-sec` and waits until each has connected or failed.
async fn ramp(
    args: &Args,
    shared: &Arc<Shared>,
    phase: &watch::Receiver<Phase>,
    players: &mut JoinSet<()>,
) {
    let start = Instant::now();
    let mut started = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started < args.clients {
        tick.tick().await;
        let due =
            ((start.elapsed().as_secs_f64() * args.ramp_per_sec).ceil() as usize).min(args.clients);
        for id in started..due {
            players.spawn(player::run(Arc::clone(shared), id as u32, phase.clone()));
        }
        started = due;
    }
    let deadline = Instant::now() + RAMP_SLACK;
    let done = &shared.metrics.counters.connect_attempts_done;
    while (get(done) as usize) < args.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unanswered(metrics: &Metrics) -> u64 {
    let c = &metrics.counters;
    get(&c.placements_sent).saturating_sub(
        get(&c.placements_acked) + get(&c.placements_rejected) + get(&c.placements_cut_off),
    )
}

fn build_report(
    args: &Args,
    info: &place_protocol::CanvasInfo,
    shared: &Shared,
    server: Option<&ServerProcesses>,
    f: Figures,
    fd: FdLimit,
) -> Report {
    let m = &shared.metrics;
    let c = &m.counters;
    let h = m.histograms();
    let ms = |kind| Summary::of(h.get(kind), 1000.0);
    let server_figures = server_total(&f.servers).map(|s| process_figures(&s, &f));
    let loadgen_figures = process_figures(&f.loadgen, &f);
    let machine = machine_figures(&f, server_figures.as_ref(), &loadgen_figures);
    Report {
        settings: report::Settings {
            urls: args.urls.clone(),
            clients: args.clients,
            ramp_per_sec: args.ramp_per_sec,
            duration_secs: args.duration.as_secs_f64(),
            viewport: args.viewport,
            zoom: args.zoom,
            spread: args.spread,
            hotspots: args.hotspots,
            hotspot_radius: args.hotspot_radius,
            pan_every_secs: args.pan_every.as_secs_f64(),
            place_rate: args.place_rate,
            placers: shared.settled.place.placers(args.clients),
            global: args.global,
            tiles_per_player: shared.settled.viewport_tiles,
            format: args.format,
            grace_secs: args.grace.as_secs_f64(),
            seed: args.seed,
        },
        canvas: report::Canvas {
            width: info.width,
            height: info.height,
            cooldown_secs: info.cooldown_seconds,
            max_subscribed_tiles: info.max_subscribed_tiles,
        },
        timing: report::Timing {
            ramp_secs: f.ramp.as_secs_f64(),
            steady_secs: f.steady.as_secs_f64(),
            total_secs: f.total.as_secs_f64(),
        },
        players: report::Players {
            requested: args.clients,
            connected: get(&c.welcomed),
            connected_at_steady: f.connected_at_steady,
            painted: get(&c.painted),
            sessions_failed: get(&c.sessions_failed),
            connect_failed: get(&c.connect_failed),
            dropped: get(&c.dropped),
            reconnects: get(&c.reconnects),
            checked: get(&c.checked) as usize,
            counted_every_ms: args.count_every.as_millis() as u64,
        },
        connect_errors: m.connect_errors(),
        drops: m.drops(),
        errors: m.errors(),
        placements: report::Placements {
            sent: get(&c.placements_sent),
            acked: get(&c.placements_acked),
            rejected: get(&c.placements_rejected),
            unanswered: unanswered(m),
            cut_off: get(&c.placements_cut_off),
            acked_per_sec: f.acked_steady as f64 / f.steady.as_secs_f64().max(1e-9),
            slowest_ack_ms: m.slowest_ack().map(|(d, _)| d.as_secs_f64() * 1000.0),
            slowest_ack_tile: m.slowest_ack().map(|(_, t)| t.to_string()),
        },
        delivery: report::Delivery {
            events: get(&c.events),
            gaps: get(&c.gaps),
            gap_events: get(&c.gap_events),
            duplicates: get(&c.duplicates),
            missing: get(&c.missing),
            lost: get(&c.lost),
            wrong_colours: get(&c.wrong_colours),
            unmatched: get(&c.unmatched),
            resyncs: get(&c.resyncs),
            strays: get(&c.strays),
            unanswered_subscriptions: get(&c.unanswered_subscriptions),
            undecodable: get(&c.undecodable),
        },
        latency_ms: report::Latencies {
            ack: ms(Kind::Ack),
            broadcast: ms(Kind::Broadcast),
            painted: ms(Kind::Painted),
            connect: ms(Kind::Connect),
            session: ms(Kind::Session),
        },
        per_player: report::PerPlayer {
            messages_per_sec: Summary::of(h.get(Kind::MessagesPerSec), 1000.0),
            bytes_per_sec: Summary::of(h.get(Kind::BytesPerSec), 1.0),
        },
        totals: report::Totals {
            messages: get(&c.messages),
            bytes: get(&c.bytes),
            messages_steady: f.messages_steady,
        },
        server: server_figures,
        server_processes: server
            .map(|group| {
                group
                    .members()
                    .zip(&f.servers)
                    .map(|((pid, name), s)| report::ServerProcess {
                        pid,
                        name: name.to_string(),
                        figures: process_figures(s, &f),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        loadgen: loadgen_figures,
        machine,
        fd_limit: report::FdFigures {
            wanted: fd.wanted,
            soft: fd.soft,
            hard: fd.hard,
        },
    }
}

/// What the whole machine did during the steady phase, and how much of it was neither the
/// server (its figures, when it was read) nor loadgen.
fn machine_figures(
    f: &Figures,
    server: Option<&report::ProcessFigures>,
    loadgen: &report::ProcessFigures,
) -> Option<report::MachineFigures> {
    let (start, end) = f.machine?;
    let busy = end.saturating_sub(start).as_secs_f64() / f.steady.as_secs_f64().max(1e-9);
    let server = server.map_or(0.0, |s| s.cpu_cores_steady);
    Some(report::MachineFigures {
        busy_cores_steady: busy,
        other_cores_steady: (busy - server - loadgen.cpu_cores_steady).max(0.0),
    })
}

/// The server's processes added up at each sample; `None` without `--server-pid`.
fn server_total(servers: &[[Sample; 4]]) -> Option<[Sample; 4]> {
    (!servers.is_empty()).then(|| {
        std::array::from_fn(|i| Sample::sum(&servers.iter().map(|s| s[i]).collect::<Vec<_>>()))
    })
}

/// Samples at: start, steady start, steady end, end; the run's steady phase delivered
/// `f.messages_steady` messages and acknowledged `f.acked_steady` placements in between.
fn process_figures(s: &[Sample; 4], f: &Figures) -> report::ProcessFigures {
    let cpu_steady = s[2].cpu.saturating_sub(s[1].cpu).as_secs_f64();
    let (steady, messages) = (f.steady, f.messages_steady);
    report::ProcessFigures {
        cpu_cores_steady: cpu_steady / steady.as_secs_f64().max(1e-9),
        cpu_us_per_placement_steady: (f.acked_steady > 0)
            .then(|| cpu_steady * 1e6 / f.acked_steady as f64),
        cpu_secs: s[3].cpu.saturating_sub(s[0].cpu).as_secs_f64(),
        cpu_secs_steady: cpu_steady,
        cpu_us_per_message_steady: cpu_steady * 1e6 / messages.max(1) as f64,
        rss_start_kib: s[0].rss_kib,
        rss_steady_kib: s[2].rss_kib,
        peak_rss_kib: s.iter().map(|x| x.peak_rss_kib).max().unwrap_or(0),
    }
}
