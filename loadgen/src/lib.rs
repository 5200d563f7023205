//! `loadgen`: simulated players for place, and the checks that keep a load test honest.
//!
//! Each player gets its own guest session, opens a WebSocket (binary or JSON), subscribes to the
//! tiles of its viewport (or, with `--global`, to the whole canvas), places pixels on its
//! cooldown or at the run's `--place-rate`, and pans now and then. Every frame it receives is
//! checked: per tile, seqs arrive in order with no gap and no duplicate, and every acknowledged
//! placement reaches every player watching its tile. Latencies go into HDR histograms.
//!
//! `main.rs` only parses the flags and prints; tests call [`run`] directly against an
//! in-process server.
//!
//! # Layout
//! - [`cli`]: the flags and their validation.
//! - [`run`]: one run from ramp to report; [`run::Shared`] is what players share.
//! - [`player`]: one simulated player.
//! - [`counting`]: the thread that reads unchecked players' sockets in sweeps, and
//!   [`aligned`], which lets a player hand its socket over between two frames.
//! - [`tracks`]: a player's per-tile seq checks (gaps, duplicates).
//! - [`ledger`]: the run-wide record of placements and events (missing deliveries, wrong
//!   colours, broadcast latency).
//! - [`viewport`]: viewports, their tiles, hot spots.
//! - [`schedule`]: who places, how often.
//! - [`net`]: HTTP calls, WebSockets from spread source addresses, the descriptor limit.
//! - [`target`]: `--url` to HTTP and WebSocket endpoints.
//! - [`metrics`], [`report`]: counters, histograms and the final figures.
//! - [`procstat`]: CPU and memory of the server (and of loadgen) from `/proc`.
//! - [`progress`]: the live progress bar.

pub mod aligned;
pub mod cli;
pub mod counting;
pub mod ledger;
pub mod metrics;
pub mod net;
pub mod player;
pub mod procstat;
pub mod progress;
pub mod report;
pub mod run;
pub mod schedule;
pub mod target;
pub mod tracks;
pub mod viewport;

pub use cli::Args;
pub use report::Report;
pub use run::run;
