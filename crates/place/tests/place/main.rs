//! The tests of the `place` binary and of what only it wires: one test binary, so that the
//! helpers in [`common`] are each used (`cargo test -p place --test place MODULE::`).
//!
//! # Layout
//! - [`serve`]: `place serve` in this process: restarts, moderation, regions, spikes, growth,
//!   history, timelapse, templates, metrics (the edge's own behaviour is tested in
//!   `crates/edge/tests`). Needs no outside service.
//! - [`process`]: the binary as a process: `kill -9`, SIGTERM, exit status 64, `place admin`.
//!   Needs no outside service.
//! - [`settings`]: every mode's settings, its `place MODE --help` and the README: each mode
//!   takes and lists its own settings and no other.
//!   Needs no outside service.
//! - [`cluster`]: shards and edges in this process. **Needs Redis, PostgreSQL and RabbitMQ**.
//! - [`dev_cluster`]: `scripts/dev-cluster` end to end. **Needs Redis, PostgreSQL, RabbitMQ and
//!   nginx**.
//! - [`common`]: a `place serve` on an ephemeral port, and the scenarios both modes run.

mod cluster;
mod common;
mod dev_cluster;
mod process;
mod serve;
mod settings;
