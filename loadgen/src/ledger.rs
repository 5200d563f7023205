//! The run's record of every placement and every tile event, shared by all players: what lets
//! one player's placement be checked at every other player.
//!
//! A placement is registered when it is sent (before the server can see it). The first player to
//! receive a tile event with a seq the ledger has not seen matches it to the oldest pending
//! placement with the same pixel and colour: from then on the seq stands for that placement, and
//! every receiver can time its broadcast latency and check its colour. Identical placements in
//! flight at once are interchangeable, so matching the oldest is always right about counts.
//!
//! An event is *due* at a player watching its tile once it was acknowledged or received by
//! anyone, plus the grace period: [`Ledger::owed`] counts the events due that a player's held seq
//! has not reached, which is how missing deliveries are counted. An acknowledged placement that
//! nobody ever received is [`Ledger::lost`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use place_tiles::{CanvasGeometry, PixelChange, TileId, TILE_AREA, TILE_SIZE};
use tokio::time::Instant;

/// Identifies a simulated player.
pub type PlayerId = u32;
/// Identifies a placement of this run.
pub type PlacementId = u64;

#[derive(Debug, Clone, Copy)]
struct Placement {
    id: PlacementId,
    change: PixelChange,
    placer: PlayerId,
    sent_at: Instant,
    acked_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    change: PixelChange,
    first_seen: Instant,
    /// `None`: no placement of this run matches (another client's, or a corrupted event).
    placement: Option<Placement>,
}

impl Seen {
    fn due(&self) -> Instant {
        self.placement
            .and_then(|p| p.acked_at)
            .map_or(self.first_seen, |acked| acked.min(self.first_seen))
    }
}

#[derive(Debug, Default)]
struct TileLedger {
    /// Sent, not yet received by anyone, oldest first.
    pending: Vec<Placement>,
    /// Every seq received by anyone.
    seen: BTreeMap<u64, Seen>,
    /// The seq each matched placement got.
    seq_of: HashMap<PlacementId, u64>,
}

/// What a receiver learnt from one frame.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Events whose pixel or colour differs from what another player received for that seq.
    pub wrong_colours: u64,
    /// Events first seen here that match no placement of this run.
    pub unmatched: u64,
}

/// Every placement and tile event of a run.
#[derive(Debug)]
pub struct Ledger {
    geometry: CanvasGeometry,
    tiles: Vec<Mutex<TileLedger>>,
    next_id: AtomicU64,
    grace: Duration,
}

impl Ledger {
    /// An empty ledger for a canvas; events are due `grace` after their acknowledgement.
    pub fn new(geometry: CanvasGeometry, grace: Duration) -> Self {
        Self {
            geometry,
            tiles: (0..geometry.tile_count())
                .map(|_| Mutex::default())
                .collect(),
            next_id: AtomicU64::new(1),
            grace,
        }
    }

    fn tile(&self, tile: TileId) -> &Mutex<TileLedger> {
        &self.tiles[self.geometry.tile_index(tile)]
    }

    /// Registers a placement about to be sent.
    pub fn sent(
        &self,
        tile: TileId,
        change: PixelChange,
        placer: PlayerId,
        now: Instant,
    ) -> PlacementId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tile(tile).lock().pending.push(Placement {
            id,
            change,
            placer,
            sent_at: now,
            acked_at: None,
        });
        id
    }

    /// The server acknowledged a placement.
    pub fn acked(&self, tile: TileId, id: PlacementId, now: Instant) {
        let mut t = self.tile(tile).lock();
        let placement = match t.seq_of.get(&id).copied() {
            Some(seq) => t.seen.get_mut(&seq).and_then(|s| s.placement.as_mut()),
            None => t.pending.iter_mut().find(|p| p.id == id),
        };
        if let Some(p) = placement {
            p.acked_at = Some(now);
        }
    }

    /// The server refused a placement: it will never be an event.
    pub fn rejected(&self, tile: TileId, id: PlacementId) {
        let mut t = self.tile(tile).lock();
        if let Some(i) = t.pending.iter().position(|p| p.id == id) {
            t.pending.remove(i);
            return;
        }
        // An event was matched to this placement, so it belongs to an identical one still
        // pending (or to none).
        let Some(seq) = t.seq_of.remove(&id) else {
            return;
        };
        let Some(change) = t.seen.get(&seq).map(|s| s.change) else {
            return;
        };
        let heir = t
            .pending
            .iter()
            .position(|p| p.change == change)
            .map(|i| t.pending.remove(i));
        if let Some(heir) = heir {
            t.seq_of.insert(heir.id, seq);
        }
        if let Some(seen) = t.seen.get_mut(&seq) {
            seen.placement = heir;
        }
    }

    /// A player received events `first_seq..` of a tile. `latency` is called with the send
    /// time of each event placed by another player of this run.
    pub fn observe(
        &self,
        tile: TileId,
        first_seq: u64,
        changes: &[PixelChange],
        observer: PlayerId,
        now: Instant,
        mut latency: impl FnMut(Instant),
    ) -> Observed {
        let mut observed = Observed::default();
        let mut t = self.tile(tile).lock();
        for (seq, change) in (first_seq..).zip(changes) {
            let seen = match t.seen.get(&seq) {
                Some(seen) => {
                    if seen.change != *change {
                        observed.wrong_colours += 1;
                    }
                    *seen
                }
                None => {
                    let placement = t
                        .pending
                        .iter()
                        .position(|p| p.change == *change)
                        .map(|i| t.pending.remove(i));
                    match placement {
                        Some(p) => {
                            t.seq_of.insert(p.id, seq);
                        }
                        None => observed.unmatched += 1,
                    }
                    let seen = Seen {
                        change: *change,
                        first_seen: now,
                        placement,
                    };
                    t.seen.insert(seq, seen);
                    seen
                }
            };
            if let Some(p) = seen.placement.filter(|p| p.placer != observer) {
                latency(p.sent_at);
            }
        }
        observed
    }

    /// Checks a snapshot at `seq` against the event that made that seq, when known: its pixel
    /// must show its colour. Returns 1 when it does not.
    pub fn check_snapshot(&self, tile: TileId, seq: u64, pixels: &[u8; TILE_AREA]) -> u64 {
        let t = self.tile(tile).lock();
        let Some(seen) = t.seen.get(&seq) else {
            return 0;
        };
        let index = usize::from(seen.change.ly) * TILE_SIZE as usize + usize::from(seen.change.lx);
        u64::from(pixels[index] != seen.change.color)
    }

    /// How many events of `tile` after `held` were due at a watcher by `now`: the deliveries a
    /// watcher holding the tile at `held` is missing.
    pub fn owed(&self, tile: TileId, held: u64, now: Instant) -> u64 {
        let t = self.tile(tile).lock();
        t.seen
            .range(held + 1..)
            .filter(|(_, s)| now.saturating_duration_since(s.due()) >= self.grace)
            .count() as u64
    }

    /// Placements acknowledged at least the grace period before `now` that no player received.
    pub fn lost(&self, now: Instant) -> u64 {
        self.tiles
            .iter()
            .map(|t| {
                t.lock()
                    .pending
                    .iter()
                    .filter_map(|p| p.acked_at)
                    .filter(|acked| now.saturating_duration_since(*acked) >= self.grace)
                    .count() as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TileId = TileId::new(1, 1);
    const GRACE: Duration = Duration::from_secs(1);

    fn ledger() -> Ledger {
        Ledger::new(CanvasGeometry::new(256, 256).expect("size"), GRACE)
    }

    fn px(lx: u8, color: u8) -> PixelChange {
        PixelChange { lx, ly: 2, color }
    }

    #[test]
    fn events_are_matched_to_placements_and_timed_at_other_players() {
        let l = ledger();
        let t0 = Instant::now();
        let a = l.sent(T, px(1, 5), 7, t0);
        l.acked(T, a, t0 + Duration::from_millis(3));
        let mut times = vec![];
        let o = l.observe(T, 1, &[px(1, 5)], 8, t0 + Duration::from_millis(9), |s| {
            times.push(s)
        });
        assert_eq!(o, Observed::default());
        assert_eq!(times, vec![t0]);
        // The placer's own copy is not a broadcast latency.
        l.observe(T, 1, &[px(1, 5)], 7, t0, |_| panic!("own event timed"));
    }

    #[test]
    fn a_different_event_for_a_seen_seq_is_a_wrong_colour() {
        let l = ledger();
        let now = Instant::now();
        l.sent(T, px(1, 5), 7, now);
        l.observe(T, 1, &[px(1, 5)], 8, now, |_| {});
        let o = l.observe(T, 1, &[px(1, 6)], 9, now, |_| {});
        assert_eq!(o.wrong_colours, 1);
        let o = l.observe(T, 2, &[px(3, 3)], 9, now, |_| {});
        assert_eq!(o.unmatched, 1, "nobody of this run placed it");
    }

    #[test]
    fn snapshots_must_show_the_event_of_their_seq() {
        let l = ledger();
        let now = Instant::now();
        l.sent(T, px(1, 5), 7, now);
        l.observe(T, 1, &[px(1, 5)], 8, now, |_| {});
        let mut pixels = [0u8; TILE_AREA];
        assert_eq!(l.check_snapshot(T, 1, &pixels), 1);
        pixels[2 * 64 + 1] = 5;
        assert_eq!(l.check_snapshot(T, 1, &pixels), 0);
        assert_eq!(l.check_snapshot(T, 9, &pixels), 0, "unknown seq");
    }

    #[test]
    fn events_become_owed_after_the_grace_period() {
        let l = ledger();
        let t0 = Instant::now();
        for lx in 0..3 {
            let id = l.sent(T, px(lx, 1), 7, t0);
            l.acked(T, id, t0);
        }
        l.observe(T, 1, &[px(0, 1), px(1, 1), px(2, 1)], 7, t0, |_| {});
        assert_eq!(l.owed(T, 0, t0), 0, "not yet due");
        assert_eq!(l.owed(T, 0, t0 + GRACE), 3);
        assert_eq!(l.owed(T, 2, t0 + GRACE), 1);
        assert_eq!(l.owed(T, 3, t0 + GRACE), 0);
        assert_eq!(l.owed(TileId::new(0, 0), 0, t0 + GRACE), 0);
    }

    #[test]
    fn acknowledged_placements_nobody_received_are_lost() {
        let l = ledger();
        let t0 = Instant::now();
        let a = l.sent(T, px(1, 1), 7, t0);
        let b = l.sent(T, px(2, 1), 7, t0);
        l.sent(T, px(3, 1), 7, t0);
        l.acked(T, a, t0);
        l.rejected(T, b);
        assert_eq!(l.lost(t0), 0);
        assert_eq!(l.lost(t0 + GRACE), 1, "only the acknowledged one");
        l.observe(T, 1, &[px(1, 1)], 8, t0, |_| {});
        assert_eq!(l.lost(t0 + GRACE), 0);
    }

    #[test]
    fn identical_placements_match_oldest_first_and_survive_a_rejection() {
        let l = ledger();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let a = l.sent(T, px(1, 1), 7, t0);
        let b = l.sent(T, px(1, 1), 8, t1);
        let mut times = vec![];
        l.observe(T, 1, &[px(1, 1)], 9, t1, |s| times.push(s));
        assert_eq!(times, vec![t0], "oldest first");
        // The server refused `a`: the event was `b`'s.
        l.rejected(T, a);
        l.acked(T, b, t1);
        times.clear();
        l.observe(T, 1, &[px(1, 1)], 9, t1, |s| times.push(s));
        assert_eq!(times, vec![t1]);
        assert_eq!(l.lost(t1 + GRACE), 0);
        assert_eq!(l.owed(T, 0, t1 + GRACE), 1);
    }
}
