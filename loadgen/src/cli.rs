//! The command line of `loadgen`, and its validation.
//!
//! Validation happens in two steps, both before any player connects: [`Args::check`] needs only
//! the flags; [`Args::settle`] also needs the canvas the server describes
//! (`GET /api/v1/canvas/info`): whether a viewport fits in `maxSubscribedTiles`, and how many
//! placing sessions `--place-rate` needs under the server's cooldown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use clap::{Parser, ValueEnum};
use place_protocol::CanvasInfo;
use place_tiles::{CanvasGeometry, TILE_SIZE};

use crate::schedule::{PlacePlan, MAX_PLACEMENTS_PER_SESSION_PER_SEC};

/// The longest run `loadgen` accepts: every run is bounded.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The most players one `loadgen` process simulates.
pub const MAX_CLIENTS: usize = 1_000_000;

/// Simulated players for place: each with its own guest session and viewport, placing pixels and
/// checking that every acknowledged placement reaches every player watching its tile.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// Endpoint to drive: `ws://host:port` (an embedded `place serve`, an edge or a load
    /// balancer). Repeat to spread players over several endpoints, round-robin.
    #[arg(long = "url", required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// Number of simulated players.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Players started per second until all are connected.
    #[arg(long, default_value_t = 500.0, value_name = "N")]
    pub ramp_per_sec: f64,
    /// How long the full population runs once ramped up (`30s`, `2m`, `500ms`, plain seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Each player's screen in pixels.
    #[arg(long, default_value = "1280x720", value_parser = parse_size, value_name = "WxH")]
    pub viewport: (u32, u32),
    /// Screen pixels per canvas pixel: the viewport covers `W/zoom x H/zoom` canvas pixels.
    #[arg(long, default_value_t = 2.0)]
    pub zoom: f64,
    /// Number of hot spots players gather around (with `--spread hotspots`).
    #[arg(long, default_value_t = 8, value_name = "K")]
    pub hotspots: usize,
    /// Where viewports go: around hot spots, or uniformly over the canvas.
    #[arg(long, value_enum, default_value_t = Spread::Hotspots)]
    pub spread: Spread,
    /// How far (canvas pixels) a viewport's centre may lie from its hot spot; 0 puts every
    /// player of a hot spot on exactly the same area.
    #[arg(long, default_value_t = 200, value_name = "PX")]
    pub hotspot_radius: u32,
    /// Each player pans to a new position about this often; 0 never pans.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "SECS")]
    pub pan_every: Duration,
    /// Hold this many placements per second over the whole run, spread over as many placing
    /// sessions as the server's cooldown needs. Without it, every player places whenever its
    /// cooldown allows. 0: nobody places.
    #[arg(long, value_name = "R")]
    pub place_rate: Option<f64>,
    /// Subscribe every player to the whole canvas (what a global-broadcast design costs).
    #[arg(long)]
    pub global: bool,
    /// Protocol to speak.
    #[arg(long, value_enum, default_value_t = WireFormat::Binary)]
    pub format: WireFormat,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Process id of the server (when on this machine): report its CPU use and peak RSS. Give
    /// it once per process when the server is several (a cluster's edges and shards, the
    /// PostgreSQL and Redis they use): the report adds them up, and lists each.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,
    /// After the last placement is answered, how long deliveries may still take before a
    /// player that has not received one counts it as missing.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Seed of the players' randomness (hot spots, viewports, pixels), for repeatable runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Connect every player from 127.0.0.1 instead of spreading source addresses over
    /// 127.0.0.0/8 (which is what lets one machine open more than ~28,000 connections).
    #[arg(long)]
    pub no_source_spread: bool,
    /// A player whose connection drops (an edge killed behind the load balancer) connects again
    /// with the same session and resubscribes with the seqs it holds, as the page does; the
    /// report counts reconnects. Without it, a dropped player stops.
    #[arg(long)]
    pub reconnect: bool,
    /// Players whose every delivery is decoded and checked, besides the placing sessions
    /// (always checked: their acknowledgements and the ledger need it). The others check their
    /// first paint, then only count the messages and bytes they receive, so that loadgen's CPU
    /// stays well under the server's. The report says how many were checked.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub check_players: usize,
    /// How often the unchecked players' sockets are read, after their first paint: one thread
    /// reads them all in turn, each socket's frames since the last sweep in one `recv`, and
    /// counts them without decoding. `0s`: each keeps reading every frame as it arrives.
    #[arg(long, default_value = "250ms", value_parser = parse_duration, value_name = "TIME")]
    pub count_every: Duration,
    /// No progress bar (a status line every 10 s instead).
    #[arg(long)]
    pub quiet: bool,
}

/// Where players look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// Around `--hotspots` hot spots.
    Hotspots,
    /// Uniformly over the canvas.
    Uniform,
}

/// The protocol players speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// Binary frames (`/ws`).
    Binary,
    /// JSON text frames (`/ws?format=json`).
    Json,
}

/// What a run does, once the flags and the server's canvas agree.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The canvas.
    pub geometry: CanvasGeometry,
    /// Palette size.
    pub color_count: u32,
    /// Who places, and how often.
    pub place: PlacePlan,
    /// Tiles a viewport spans at most.
    pub viewport_tiles: usize,
}

impl Args {
    /// Checks the flags on their own.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "--clients must be between 1 and {MAX_CLIENTS}, got {}",
            self.clients
        );
        ensure!(
            self.ramp_per_sec.is_finite() && self.ramp_per_sec > 0.0,
            "--ramp-per-sec must be a positive number, got {}",
            self.ramp_per_sec
        );
        ensure!(
            !self.duration.is_zero() && self.duration <= MAX_DURATION,
            "--duration must be between 1 ms and 24 h, got {:?}",
            self.duration
        );
        ensure!(
            self.grace <= Duration::from_secs(600),
            "--grace must be at most 10 minutes, got {:?}",
            self.grace
        );
        ensure!(
            self.zoom.is_finite() && (0.01..=64.0).contains(&self.zoom),
            "--zoom must be between 0.01 and 64, got {}",
            self.zoom
        );
        ensure!(
            self.spread == Spread::Uniform || self.hotspots >= 1,
            "--hotspots must be at least 1 (or use --spread uniform)"
        );
        if let Some(rate) = self.place_rate {
            ensure!(
                rate.is_finite() && rate >= 0.0,
                "--place-rate must be 0 or more, got {rate}"
            );
        }
        for url in &self.urls {
            crate::target::parse(url, self.format).with_context(|| format!("--url {url}"))?;
        }
        Ok(())
    }

    /// Checks the flags against the server's canvas and decides who places.
    pub fn settle(&self, info: &CanvasInfo) -> anyhow::Result<Settled> {
        let geometry = CanvasGeometry::new(info.width, info.height)
            .context("the server describes an impossible canvas")?;
        ensure!(
            info.tile_size == TILE_SIZE,
            "the server uses {} pixel tiles; loadgen knows only {TILE_SIZE}",
            info.tile_size
        );
        let max = info.max_subscribed_tiles as usize;
        let viewport_tiles = if self.global {
            geometry.tile_count()
        } else {
            crate::viewport::max_tiles(self.viewport, self.zoom, geometry)
        };
        if viewport_tiles > max {
            if self.global {
                bail!(
                    "--global needs all {viewport_tiles} tiles per player but the server allows \
                     {max}: start it with --max-tiles-per-client {viewport_tiles}"
                );
            }
            bail!(
                "a {}x{} viewport at zoom {} spans up to {viewport_tiles} tiles but the server \
                 allows {max} per player: raise --zoom, shrink --viewport, or start the server \
                 with --max-tiles-per-client {viewport_tiles}",
                self.viewport.0,
                self.viewport.1,
                self.zoom
            );
        }
        let cooldown = Duration::from_secs(u64::from(info.cooldown_seconds));
        let place = PlacePlan::new(self.place_rate, cooldown);
        if let PlacePlan::Rate { placers, rate, .. } = place {
            ensure!(
                placers <= self.clients,
                "--place-rate {rate} needs {placers} placing players (a {}s cooldown, at most \
                 {MAX_PLACEMENTS_PER_SESSION_PER_SEC} placements/s per session) but --clients is {}",
                info.cooldown_seconds,
                self.clients
            );
        }
        Ok(Settled {
            geometry,
            color_count: info.color_count,
            place,
            viewport_tiles,
        })
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or plain seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (ms, s, m, h)")),
    };
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `1280x720`.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not a size like 1280x720");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 || w > 100_000 || h > 100_000 {
        return Err(format!("{text:?}: sides must be between 1 and 100000"));
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["loadgen", "--url", "ws://127.0.0.1:3000"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("parses")
    }

    fn info(cooldown_seconds: u32, max_subscribed_tiles: u32) -> CanvasInfo {
        CanvasInfo {
            width: 2000,
            height: 2000,
            tile_size: 64,
            color_count: 16,
            palette: vec![],
            cooldown_seconds,
            max_subscribed_tiles,
        }
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("0x720").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        let a = args(&[]);
        a.check().expect("defaults pass");
        let s = a.settle(&info(5, 256)).expect("fits");
        assert!(s.viewport_tiles <= 256);
        assert_eq!(a.format, WireFormat::Binary);
    }

    #[test]
    fn bad_flags_are_refused_with_their_name() {
        for (flags, name) in [
            (&["--clients", "0"][..], "--clients"),
            (&["--ramp-per-sec", "0"], "--ramp-per-sec"),
            (&["--duration", "0s"], "--duration"),
            (&["--duration", "25h"], "--duration"),
            (&["--zoom", "0"], "--zoom"),
            (&["--hotspots", "0"], "--hotspots"),
            (&["--place-rate=-3"], "--place-rate"),
            (&["--grace", "1h"], "--grace"),
        ] {
            let error = args(flags).check().expect_err("refused");
            assert!(error.to_string().contains(name), "{flags:?}: {error}");
        }
        let error = args(&["--url", "ftp://x"]).check().expect_err("bad url");
        assert!(format!("{error:#}").contains("ftp://x"));
        assert!(
            Args::try_parse_from(["loadgen"]).is_err(),
            "--url is required"
        );
        assert!(args(&["--hotspots", "0", "--spread", "uniform"])
            .check()
            .is_ok());
    }

    #[test]
    fn viewports_must_fit_the_servers_tile_limit() {
        let a = args(&["--viewport", "1920x1080", "--zoom", "1"]);
        let error = a.settle(&info(5, 256)).expect_err("too many tiles");
        assert!(error.to_string().contains("--max-tiles-per-client"));
        assert!(a.settle(&info(5, 1024)).is_ok());
        let global = args(&["--global"]);
        let error = global.settle(&info(5, 256)).expect_err("global");
        assert!(error.to_string().contains("1024"), "{error}");
    }

    #[test]
    fn a_place_rate_needs_enough_players_for_the_cooldown() {
        let a = args(&["--clients", "100", "--place-rate", "1000"]);
        let error = a.settle(&info(5, 256)).expect_err("needs more players");
        assert!(error.to_string().contains("placing players"), "{error}");
        let a = args(&["--clients", "10000", "--place-rate", "1000"]);
        assert!(a.settle(&info(5, 256)).is_ok());
        let a = args(&["--clients", "100", "--place-rate", "0"]);
        assert!(a.settle(&info(5, 256)).is_ok());
    }
}
