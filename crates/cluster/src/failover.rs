//! A shard's supervisor: it reports the shard in Redis, takes shards that went silent out of the
//! ring, and puts its own shard back after a failover took it out.
//!
//! **Detection.** Every shard reports itself every [`REPORT_EVERY`] (250 ms) under a key that
//! lives [`REPORT_TTL`] (1 s). A shard whose report is missing for `failover_after` more (1 s
//! by default, `--failover-after-secs`) is presumed dead, and the first surviving shard to see it
//! takes it out of the ring through [`change_ring`] (so a failover and an operator's change
//! never overlap), unless the shard still answers a QUIC handshake within [`ALIVE_CHECK`] (then
//! it is slow to report, not dead: a loaded machine or a slow Redis). From a `kill -9` to the new
//! ring: at most 1 s for the report to expire, the silence, one check (250 ms) and the
//! handshake that gets no answer (500 ms): about 2.5 to 3 s; the new owners then raise the
//! tiles' fences and load them from PostgreSQL, and the edges route to them as soon as they read
//! the ring.
//!
//! A short timeout can suspect a shard that was only slow or paused (`kill -STOP`, a long GC of
//! its host, a saturated machine). That costs a handoff, never data: the fences in PostgreSQL
//! refuse every later write of the moved tiles by the presumed-dead shard, and its pending
//! placements are answered `UNAVAILABLE` (by its edges' timeout) or `NotOwner` (routed again).
//!
//! **Rejoin.** The ring remembers a shard a failover took out, with its address
//! ([`Ring::failed_over`]). When that shard runs again (it resumed, or `scripts/dev-cluster
//! restart` started it anew), its supervisor waits until it has reported for [`REJOIN_AFTER`]
//! while out of the ring, then puts it back, with a handoff like `place ring add` (its own tiles
//! come back to it, since ownership follows ids). It comes back by itself because nobody chose
//! to remove it: the failover only guessed it was dead. A shard an operator removed with `place
//! ring remove` is not remembered and stays out; `place ring remove ID` of a failed-over shard
//! forgets it, so it stays out too.

use std::sync::Arc;
use std::time::Duration;

use place_shard::ShardHandle;
use place_tiles::CanvasGeometry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::reshard::{change_ring, silent_shards, SilenceWatch};
use crate::ring::{Ring, RingError};
use crate::ring_store::{RingStore, ShardReport, REPORT_EVERY, REPORT_TTL};

/// How long a failover or a rejoin waits for the shards to load the moving tiles.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a failed-over shard reports, out of the ring, before it puts itself back: long
/// enough to have dropped the tiles it held when it was presumed dead and to show it is steady,
/// short enough that the cluster is balanced again soon after.
pub const REJOIN_AFTER: Duration = Duration::from_secs(2);

/// The default silence, beyond [`REPORT_TTL`], after which a shard is taken out of the ring.
pub const DEFAULT_FAILOVER_AFTER: Duration = Duration::from_secs(1);

/// How long a silent shard has to answer a QUIC handshake to be spared: a killed or paused one
/// never does, so this is added to every failover.
pub const ALIVE_CHECK: Duration = Duration::from_millis(500);

/// What a shard's supervisor needs.
pub struct Supervisor {
    /// The shard's id in the ring.
    pub id: String,
    /// The local shard.
    pub shard: ShardHandle,
    /// The ring and the reports in Redis.
    pub store: RingStore,
    /// The ring as this node follows it.
    pub ring: watch::Receiver<Arc<Ring>>,
    /// The canvas.
    pub geometry: CanvasGeometry,
    /// How to reach another shard over QUIC (the cluster's authority and this node's
    /// certificate), to ask a silent one whether it still answers.
    pub quic: quinn::ClientConfig,
    /// Take another shard out of the ring once it has not reported for this long after its
    /// report expired; `None`: never (and a failed-over shard does not rejoin by itself either).
    pub failover_after: Option<Duration>,
}

/// Runs the supervisor until the shard stops: reports every [`REPORT_EVERY`], takes silent
/// shards out of the ring one at a time, and puts this shard back after a failover.
pub async fn supervise(s: Supervisor) {
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(Instant, u64)> = None;
    let mut silence = SilenceWatch::default();
    let mut change: Option<JoinHandle<()>> = None;
    let mut out_since: Option<Instant> = None;
    loop {
        every.tick().await;
        let Some(status) = s.shard.status().await else {
            return;
        };
        let now = Instant::now();
        let rate = last.map_or(0.0, |(at, placed)| {
            (status.placed_total - placed) as f64 / now.duration_since(at).as_secs_f64()
        });
        last = Some((now, status.placed_total));
        let report = ShardReport {
            id: s.id.clone(),
            epoch: status.epoch,
            owned: status.owned.unwrap_or(0),
            acquiring: status.acquiring,
            placements_per_sec: (rate * 10.0).round() / 10.0,
            epoch_since_ms: Some(status.epoch_since_ms),
            ready_at_ms: status.ready_at_ms,
            placed_total: status.placed_total,
            queue_depth: status.queue_depth,
            writes_total: status.writes_total,
            write_seconds: status.write_seconds,
        };
        if let Err(error) = s.store.report(&report).await {
            warn!(%error, "cannot report to Redis");
            out_since = None;
            continue;
        }
        let Some(after) = s.failover_after else {
            continue;
        };
        if change.as_ref().is_some_and(|c| !c.is_finished()) {
            continue;
        }
        let ring = s.ring.borrow().clone();
        if ring.shard(&s.id).is_none() {
            let since = *out_since.get_or_insert(now);
            if ring.failed_over().iter().any(|f| f.id == s.id)
                && now.duration_since(since) >= REJOIN_AFTER
            {
                change = Some(tokio::spawn(rejoin(
                    s.store.clone(),
                    s.geometry,
                    s.id.clone(),
                )));
            }
            continue;
        }
        out_since = None;
        let reports = match s.store.reports().await {
            Ok(reports) => reports,
            Err(error) => {
                warn!(%error, "cannot read the shards' reports");
                continue;
            }
        };
        let silent = silent_shards(&ring, &reports, &s.id);
        let Some(dead) = silence.dead_shards(&silent, after).into_iter().next() else {
            continue;
        };
        let Some(addr) = ring.shard(&dead).map(|d| d.addr.clone()) else {
            continue;
        };
        let (store, geometry, quic, me) =
            (s.store.clone(), s.geometry, s.quic.clone(), s.id.clone());
        change = Some(tokio::spawn(async move {
            if crate::client::answers(&quic, &addr, ALIVE_CHECK).await {
                warn!(shard = %dead, "a shard stopped reporting but answers over QUIC: slow, not dead; not failing it over");
                return;
            }
            warn!(shard = %dead, silent_for = ?(after + REPORT_TTL), "a shard stopped reporting and does not answer; taking it out of the ring");
            fail_over(store, geometry, dead, me).await;
        }));
    }
}

/// Takes `dead` out of the ring, remembering it as failed over.
async fn fail_over(store: RingStore, geometry: CanvasGeometry, dead: String, me: String) {
    let holder = format!("failover of {dead} by {me}");
    let started = Instant::now();
    let outcome = change_ring(
        &store,
        geometry,
        &holder,
        |ring| ring.failing_over(&dead),
        HANDOFF_TIMEOUT,
        |progress| info!(?progress, "failover"),
    )
    .await;
    match outcome {
        Ok(ring) => info!(
            shard = %dead,
            epoch = ring.epoch(),
            took = ?started.elapsed(),
            "failover complete"
        ),
        Err(error) => warn!(shard = %dead, %error, "failover did not complete"),
    }
}

/// Puts `me` back into the ring at the address it had before its failover, if the ring still
/// remembers it as failed over (nobody removed it meanwhile).
async fn rejoin(store: RingStore, geometry: CanvasGeometry, me: String) {
    info!(shard = %me, "taken out by a failover and running again: rejoining the ring");
    let holder = format!("rejoin of {me}");
    let outcome = change_ring(
        &store,
        geometry,
        &holder,
        |ring| {
            let info = ring
                .failed_over()
                .iter()
                .find(|f| f.id == me)
                .cloned()
                .ok_or_else(|| RingError::UnknownId(me.clone()))?;
            ring.with_shard(info)
        },
        HANDOFF_TIMEOUT,
        |progress| info!(?progress, "rejoin"),
    )
    .await;
    match outcome {
        Ok(ring) => info!(shard = %me, epoch = ring.epoch(), "rejoined the ring"),
        Err(error) => warn!(shard = %me, %error, "could not rejoin the ring yet"),
    }
}
