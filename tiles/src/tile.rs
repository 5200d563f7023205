//! One tile: 64x64 palette indices, a sequence number and a short history.
//!
//! A [`Tile`] applies placements last-write-wins in the order it is given them; every applied
//! placement raises [`Tile::seq`] by exactly one. The last [`TILE_HISTORY`] changes are kept so the
//! tile can tell a client holding an older seq exactly what it missed ([`Tile::since`]).

use std::collections::VecDeque;

use thiserror::Error;

use crate::geometry::{TILE_AREA, TILE_SIZE};

/// How many recent changes a tile keeps for catch-up.
pub const TILE_HISTORY: usize = 512;

/// Catch-ups longer than this are answered with a snapshot, which is then smaller.
const CATCHUP_CHEAPER_THAN_SNAPSHOT: u64 = 400;

/// One pixel change inside a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelChange {
    /// Column inside the tile, `0..64`.
    pub lx: u8,
    /// Row inside the tile, `0..64`.
    pub ly: u8,
    /// Palette index.
    pub color: u8,
}

/// What a holder of an older version of a tile needs to be current again.
#[derive(Debug, PartialEq, Eq)]
pub enum Catchup {
    /// The changes after the holder's seq, the first of them with seq `first_seq`; empty when the
    /// holder is current.
    Events {
        /// The seq of the first change (the holder's seq + 1).
        first_seq: u64,
        /// The missed changes, in order.
        changes: Vec<PixelChange>,
    },
    /// The changes are gone (or more than a snapshot): send the whole tile.
    Snapshot,
}

/// A batch did not follow on from the tile's seq.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("batch starting at seq {first_seq} does not follow tile seq {tile_seq}")]
pub struct SeqGap {
    /// The tile's seq.
    pub tile_seq: u64,
    /// The batch's first seq.
    pub first_seq: u64,
}

/// A 64x64 tile of palette indices with its sequence number.
///
/// Two tiles are equal when their pixels and seqs are: the history is a cache, not state.
#[derive(Clone)]
pub struct Tile {
    pixels: Box<[u8; TILE_AREA]>,
    seq: u64,
    /// The last changes; `history[i]` has seq `seq - history.len() + 1 + i`.
    history: VecDeque<PixelChange>,
}

impl PartialEq for Tile {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq && self.pixels == other.pixels
    }
}

impl Eq for Tile {}

impl std::fmt::Debug for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let painted = self.pixels.iter().filter(|&&p| p != 0).count();
        f.debug_struct("Tile")
            .field("seq", &self.seq)
            .field("non_zero_pixels", &painted)
            .field("history", &self.history.len())
            .finish()
    }
}

impl Default for Tile {
    fn default() -> Self {
        Self::new()
    }
}

impl Tile {
    /// A blank tile (all colour 0) at seq 0.
    pub fn new() -> Self {
        Self::from_pixels(0, Box::new([0; TILE_AREA]))
    }

    /// A tile restored from a snapshot: these pixels at this seq, with no history.
    pub fn from_pixels(seq: u64, pixels: Box<[u8; TILE_AREA]>) -> Self {
        Self {
            pixels,
            seq,
            history: VecDeque::new(),
        }
    }

    /// The number of changes ever applied.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The pixels, row-major.
    pub fn pixels(&self) -> &[u8; TILE_AREA] {
        &self.pixels
    }

    /// The colour at `(lx, ly)`; both must be below 64.
    pub fn get(&self, lx: u8, ly: u8) -> u8 {
        self.pixels[index(lx, ly)]
    }

    /// Applies one change (last write wins) and returns its seq.
    ///
    /// # Panics
    /// If `lx` or `ly` is 64 or more: callers locate pixels through the canvas geometry first.
    pub fn apply(&mut self, change: PixelChange) -> u64 {
        self.pixels[index(change.lx, change.ly)] = change.color;
        self.seq += 1;
        if self.history.len() == TILE_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(change);
        self.seq
    }

    /// Applies a batch whose first change has seq `first_seq`, skipping changes the tile already
    /// has. Returns how many were applied, or the gap when the batch starts after `seq + 1`.
    pub fn apply_batch(
        &mut self,
        first_seq: u64,
        changes: &[PixelChange],
    ) -> Result<usize, SeqGap> {
        if first_seq > self.seq + 1 {
            return Err(SeqGap {
                tile_seq: self.seq,
                first_seq,
            });
        }
        let skip = (self.seq + 1 - first_seq) as usize;
        let fresh = changes.get(skip..).unwrap_or_default();
        for change in fresh {
            self.apply(*change);
        }
        Ok(fresh.len())
    }

    /// What a holder of this tile at seq `known` is missing.
    pub fn since(&self, known: u64) -> Catchup {
        if known > self.seq {
            return Catchup::Snapshot;
        }
        let missed = self.seq - known;
        if missed > self.history.len() as u64 || missed > CATCHUP_CHEAPER_THAN_SNAPSHOT {
            return Catchup::Snapshot;
        }
        let start = self.history.len() - missed as usize;
        Catchup::Events {
            first_seq: known + 1,
            changes: self.history.range(start..).copied().collect(),
        }
    }
}

fn index(lx: u8, ly: u8) -> usize {
    assert!(
        u32::from(lx) < TILE_SIZE && u32::from(ly) < TILE_SIZE,
        "pixel ({lx},{ly}) is outside a tile"
    );
    usize::from(ly) * TILE_SIZE as usize + usize::from(lx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn change(lx: u8, ly: u8, color: u8) -> PixelChange {
        PixelChange { lx, ly, color }
    }

    #[test]
    fn apply_is_last_write_wins_and_counts_seq() {
        let mut t = Tile::new();
        assert_eq!(t.apply(change(1, 2, 5)), 1);
        assert_eq!(t.apply(change(1, 2, 7)), 2);
        assert_eq!(t.get(1, 2), 7);
        assert_eq!(t.pixels()[2 * 64 + 1], 7);
        assert_eq!(t.seq(), 2);
    }

    #[test]
    fn since_gives_exactly_the_missed_changes() {
        let mut t = Tile::new();
        for i in 0..10 {
            t.apply(change(i, 0, i));
        }
        assert_eq!(
            t.since(7),
            Catchup::Events {
                first_seq: 8,
                changes: vec![change(7, 0, 7), change(8, 0, 8), change(9, 0, 9)]
            }
        );
        assert_eq!(
            t.since(10),
            Catchup::Events {
                first_seq: 11,
                changes: vec![]
            }
        );
        assert_eq!(
            t.since(11),
            Catchup::Snapshot,
            "a holder ahead of the tile needs a snapshot"
        );
    }

    #[test]
    fn since_falls_back_to_a_snapshot_when_history_is_gone() {
        let mut t = Tile::new();
        for i in 0..(TILE_HISTORY as u64 + 10) {
            t.apply(change((i % 64) as u8, 0, 1));
        }
        assert_eq!(t.since(0), Catchup::Snapshot);
        let restored = Tile::from_pixels(t.seq(), Box::new(*t.pixels()));
        assert_eq!(restored.since(t.seq() - 1), Catchup::Snapshot);
        assert!(matches!(restored.since(t.seq()), Catchup::Events { .. }));
    }

    #[test]
    fn apply_batch_skips_duplicates_and_refuses_gaps() {
        let mut t = Tile::new();
        t.apply(change(0, 0, 1));
        let batch = [change(0, 0, 1), change(1, 0, 2), change(2, 0, 3)];
        assert_eq!(t.apply_batch(1, &batch), Ok(2));
        assert_eq!(t.seq(), 3);
        assert_eq!(t.apply_batch(1, &batch), Ok(0), "all already applied");
        assert_eq!(
            t.apply_batch(5, &batch),
            Err(SeqGap {
                tile_seq: 3,
                first_seq: 5
            })
        );
    }

    #[test]
    #[should_panic(expected = "outside a tile")]
    fn apply_outside_the_tile_panics() {
        Tile::new().apply(change(64, 0, 1));
    }

    fn arb_change() -> impl Strategy<Value = PixelChange> {
        (0u8..64, 0u8..64, any::<u8>()).prop_map(|(lx, ly, color)| PixelChange { lx, ly, color })
    }

    proptest! {
        /// A holder at any earlier seq that applies the catch-up (or takes the snapshot) ends up
        /// with exactly the tile.
        #[test]
        fn any_catchup_reproduces_the_tile(
            before in prop::collection::vec(arb_change(), 0..300),
            after in prop::collection::vec(arb_change(), 0..700),
        ) {
            let mut tile = Tile::new();
            for c in &before { tile.apply(*c); }
            let mut holder = tile.clone();
            for c in &after { tile.apply(*c); }
            match tile.since(holder.seq()) {
                Catchup::Events { first_seq, changes } => {
                    prop_assert_eq!(holder.apply_batch(first_seq, &changes), Ok(changes.len()));
                }
                Catchup::Snapshot => holder = Tile::from_pixels(tile.seq(), Box::new(*tile.pixels())),
            }
            prop_assert_eq!(holder.pixels(), tile.pixels());
            prop_assert_eq!(holder.seq(), tile.seq());
        }
    }
}
