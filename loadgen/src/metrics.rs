//! What a run counts and times, shared by every player.
//!
//! Counters are atomics. Timings go into HDR histograms; each player buffers its samples in a
//! [`Recorder`] and hands them over in bulk to one of a few histogram shards, so tens of
//! thousands of players do not queue on one lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use place_protocol::ErrorCode;

/// The largest value a histogram holds; larger samples are clamped to it.
const HIGHEST: u64 = 3_600_000_000;
const SHARDS: usize = 8;
const FLUSH_AT: usize = 256;

/// What a histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Placement sent to `success` received (µs).
    Ack,
    /// Placement sent by one player to its event received by another (µs).
    Broadcast,
    /// Connect started to every viewport tile received (µs).
    Painted,
    /// Connect started to `welcome` received (µs).
    Connect,
    /// Guest session request (µs).
    Session,
    /// Messages received per player per second, after the first paint (thousandths).
    MessagesPerSec,
    /// Bytes received per player per second, after the first paint.
    BytesPerSec,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::Ack,
        Kind::Broadcast,
        Kind::Painted,
        Kind::Connect,
        Kind::Session,
        Kind::MessagesPerSec,
        Kind::BytesPerSec,
    ];
}

/// One histogram per [`Kind`].
#[derive(Debug, Clone)]
pub struct Histograms([Histogram<u64>; 7]);

impl Histograms {
    fn new() -> Self {
        Self(std::array::from_fn(|_| {
            Histogram::new_with_bounds(1, HIGHEST, 3).expect("static histogram bounds are valid")
        }))
    }

    /// The histogram of a kind.
    pub fn get(&self, kind: Kind) -> &Histogram<u64> {
        &self.0[kind as usize]
    }

    fn record(&mut self, kind: Kind, value: u64) {
        self.0[kind as usize].saturating_record(value.clamp(1, HIGHEST));
    }

    fn add(&mut self, other: &Histograms) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            // Same bounds on both sides: adding cannot fail.
            let _ = a.add(b);
        }
    }
}

/// Counters of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Players whose guest session could not be made.
    pub sessions_failed: AtomicU64,
    /// Players whose WebSocket could not be opened.
    pub connect_failed: AtomicU64,
    /// Players that got a session and a welcome, or failed to.
    pub connect_attempts_done: AtomicU64,
    /// Players connected now.
    pub connected: AtomicU64,
    /// Players that ever received `welcome`.
    pub welcomed: AtomicU64,
    /// Players whose first viewport was fully painted.
    pub painted: AtomicU64,
    /// Connections closed by the server or lost before the run ended.
    pub dropped: AtomicU64,
    /// Dropped connections a player opened again (`--reconnect`).
    pub reconnects: AtomicU64,
    /// Placements in flight on a connection that dropped: their answer was lost with it (they
    /// may or may not have been applied; the ledger matches them if they were).
    pub placements_cut_off: AtomicU64,
    /// Placements sent.
    pub placements_sent: AtomicU64,
    /// Placements acknowledged (`success`).
    pub placements_acked: AtomicU64,
    /// Placements refused (`error` with their request id).
    pub placements_rejected: AtomicU64,
    /// Players whose every delivery is checked.
    pub checked: AtomicU64,
    /// Messages received.
    pub messages: AtomicU64,
    /// Payload bytes received.
    pub bytes: AtomicU64,
    /// Tile events received (in `pixels` frames).
    pub events: AtomicU64,
    /// Frames that did not follow on from the held seq.
    pub gaps: AtomicU64,
    /// Events skipped by those gaps.
    pub gap_events: AtomicU64,
    /// Events received twice.
    pub duplicates: AtomicU64,
    /// Events due at a player that never reached it.
    pub missing: AtomicU64,
    /// Acknowledged placements that no player received.
    pub lost: AtomicU64,
    /// Events or snapshots contradicting what another player received.
    pub wrong_colours: AtomicU64,
    /// Events matching no placement of this run.
    pub unmatched: AtomicU64,
    /// Snapshots replacing a tile already held (server-side resyncs).
    pub resyncs: AtomicU64,
    /// Frames for tiles not (yet) held: sent before the server saw an (un)subscribe.
    pub strays: AtomicU64,
    /// Subscriptions never answered.
    pub unanswered_subscriptions: AtomicU64,
    /// The slowest acknowledgement of the run and its tile, packed by [`Metrics::slow_ack`]: how
    /// long one tile kept a player waiting at worst (a shard's failure or a handoff shows here).
    pub slowest_ack: AtomicU64,
    /// Frames that could not be decoded.
    pub undecodable: AtomicU64,
}

/// Everything a run measures.
#[derive(Debug)]
pub struct Metrics {
    /// The counters.
    pub counters: Counters,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    connect_errors: Mutex<BTreeMap<String, u64>>,
    drops: Mutex<BTreeMap<String, u64>>,
    shards: Vec<Mutex<Histograms>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            counters: Counters::default(),
            errors: Default::default(),
            connect_errors: Mutex::default(),
            drops: Mutex::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Histograms::new())).collect(),
        }
    }
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    /// Notes an acknowledgement that took `took` for a placement on `tile`, keeping the slowest.
    pub fn slow_ack(&self, took: Duration, tile: place_tiles::TileId) {
        // Microseconds above 22 bits of tile (tx, ty below 2,048 each: canvases up to 131,072).
        let micros = (took.as_micros() as u64).min(1 << 41);
        let packed = micros << 22 | u64::from(tile.tx & 0x7ff) << 11 | u64::from(tile.ty & 0x7ff);
        self.counters
            .slowest_ack
            .fetch_max(packed, Ordering::Relaxed);
    }

    /// The slowest acknowledgement and its tile, if any.
    pub fn slowest_ack(&self) -> Option<(Duration, place_tiles::TileId)> {
        let packed = get(&self.counters.slowest_ack);
        (packed > 0).then(|| {
            let tile =
                place_tiles::TileId::new(((packed >> 11) & 0x7ff) as u16, (packed & 0x7ff) as u16);
            (Duration::from_micros(packed >> 22), tile)
        })
    }

    /// Counts an error answer.
    pub fn error(&self, code: ErrorCode) {
        bump(&self.errors[usize::from(code.to_byte()) - 1]);
    }

    /// Error answers by code.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        ErrorCode::ALL
            .iter()
            .zip(&self.errors)
            .map(|(code, n)| (code.as_str().to_string(), get(n)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Counts a failed connection attempt by kind of failure.
    pub fn connect_error(&self, kind: String) {
        bump(&self.counters.connect_failed);
        *self.connect_errors.lock().entry(kind).or_default() += 1;
    }

    /// Connection failures by kind.
    pub fn connect_errors(&self) -> BTreeMap<String, u64> {
        self.connect_errors.lock().clone()
    }

    /// Counts a dropped connection by how it ended (close code or error).
    pub fn dropped(&self, how: String) {
        bump(&self.counters.dropped);
        *self.drops.lock().entry(how).or_default() += 1;
    }

    /// Dropped connections by how they ended.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        self.drops.lock().clone()
    }

    /// All histograms merged.
    pub fn histograms(&self) -> Histograms {
        let mut all = Histograms::new();
        for shard in &self.shards {
            all.add(&shard.lock());
        }
        all
    }
}

/// A player's buffer of samples; flushed when full and when dropped.
pub struct Recorder<'a> {
    metrics: &'a Metrics,
    shard: usize,
    samples: Vec<(Kind, u64)>,
}

impl<'a> Recorder<'a> {
    /// A buffer for player `player`.
    pub fn new(metrics: &'a Metrics, player: u32) -> Self {
        Self {
            metrics,
            shard: player as usize % SHARDS,
            samples: Vec::new(),
        }
    }

    /// Records a duration (as microseconds).
    pub fn time(&mut self, kind: Kind, elapsed: Duration) {
        self.value(kind, elapsed.as_micros().min(u128::from(HIGHEST)) as u64);
    }

    /// Records a value.
    pub fn value(&mut self, kind: Kind, value: u64) {
        self.samples.push((kind, value));
        if self.samples.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Hands the buffered samples over.
    pub fn flush(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let mut shard = self.metrics.shards[self.shard].lock();
        for (kind, value) in self.samples.drain(..) {
            shard.record(kind, value);
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_acknowledgement_keeps_its_tile() {
        let metrics = Metrics::default();
        assert_eq!(metrics.slowest_ack(), None);
        let (a, b) = (
            place_tiles::TileId::new(3, 1000),
            place_tiles::TileId::new(1023, 7),
        );
        metrics.slow_ack(Duration::from_millis(40), a);
        metrics.slow_ack(Duration::from_millis(250), b);
        metrics.slow_ack(Duration::from_millis(90), a);
        assert_eq!(metrics.slowest_ack(), Some((Duration::from_millis(250), b)));
    }

    #[test]
    fn recorders_merge_into_one_set_of_histograms() {
        let metrics = Metrics::default();
        for player in 0..20 {
            let mut r = Recorder::new(&metrics, player);
            for ms in 1..=10 {
                r.time(Kind::Ack, Duration::from_millis(ms));
            }
            r.value(Kind::BytesPerSec, 1000);
        }
        let h = metrics.histograms();
        assert_eq!(h.get(Kind::Ack).len(), 200);
        assert_eq!(h.get(Kind::BytesPerSec).len(), 20);
        assert_eq!(h.get(Kind::Broadcast).len(), 0);
        let p50 = h.get(Kind::Ack).value_at_quantile(0.5);
        assert!((5_000..=5_010).contains(&p50), "{p50}");
    }

    #[test]
    fn errors_are_counted_by_code() {
        let metrics = Metrics::default();
        metrics.error(ErrorCode::RateLimited);
        metrics.error(ErrorCode::RateLimited);
        metrics.error(ErrorCode::Unavailable);
        let errors = metrics.errors();
        assert_eq!(errors.get("RATE_LIMITED"), Some(&2));
        assert_eq!(errors.get("UNAVAILABLE"), Some(&1));
        assert_eq!(errors.len(), 2);
    }
}
