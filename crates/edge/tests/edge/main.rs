//! The edge's behaviour, tested in its own crate: an [`Edge`](place_edge::Edge) over an embedded
//! store and an in-process shard in a temporary directory ([`fixture`]). Needs no outside
//! service: `cargo test -p place-edge` runs it anywhere.
//!
//! # Layout
//! - [`fixture`]: the edge under test, driven with `oneshot` (no socket) or served on port 0.
//! - [`http`]: the HTTP API through `oneshot`: guests, origins, the canvas, renders.
//! - [`websocket`]: players on real sockets: placements, subscriptions, cooldowns, sessions,
//!   accounts, bad input, the reads and readiness.
//! - [`hostile`]: the internet audit's attacks on loopback, each with its bounded outcome.

mod fixture;
mod hostile;
mod http;
mod websocket;
