//! The `place` binary's library: configuration and the wiring of each mode. `main.rs` only parses
//! arguments, installs logging and calls in here, so integration tests start the same servers
//! in-process on port 0.
//!
//! # Layout
//! - [`config`]: the settings of each mode (serve, edge, shard, worker), from flags, environment
//!   and TOML, validated before anything binds.
//! - [`serve`]: `place serve`, the whole system in one process on the embedded store.
//! - [`cluster`]: `place shard` and `place edge`, on Redis, PostgreSQL and QUIC.
//! - [`ring_cli`]: `place ring`, showing and changing the shard ring while the cluster serves.
//! - [`verify`]: `place verify`, the live canvas against a replay of the event log.
//! - [`admin`]: `place admin`, operator commands on the stores (the first administrator).
//! - [`timelapse_cli`]: `place timelapse`, a timelapse rendered from a store into a file.
//! - [`worker`]: `place worker`, the cluster's timelapse renderer and snapshot taker.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod resize_cli;
pub mod ring_cli;
pub mod serve;
pub mod timelapse_cli;
pub mod verify;
pub mod worker;
