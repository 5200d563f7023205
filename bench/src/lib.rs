//! `place-bench`: the benchmarks of place. The Criterion benches of the hot paths live in
//! `benches/`; this library holds their fixtures and the helpers `bench/run` calls through the
//! `place-bench` binary.
//!
//! # Layout
//! - [`fixtures`]: deterministic inputs for the Criterion benches.
//! - [`seed`]: writes a long event log straight into a data directory (`place-bench seed-log`).
//! - [`start`]: times a server start up to its listening line (`place-bench time-start`).
//! - [`failover`]: the window each tile of a killed shard goes unserved, as players see it
//!   (`place-bench failover-probe`, the kill step of `bench/reshard`).
//! - [`quiet`]: waits for the machine to be quiet before a measurement (`place-bench quiet`).
//! - [`results`]: writes `bench/RESULTS.md` from a run's files (`place-bench report`), with
//!   [`plots`] (SVG, `plotters`), [`criterion`] (the micro-benchmark table) and [`machine`].

pub mod criterion;
pub mod failover;
pub mod fixtures;
pub mod machine;
pub mod plots;
pub mod quiet;
pub mod results;
pub mod seed;
pub mod start;
