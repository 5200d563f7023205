//! One player's subscriptions, checked frame by frame: per tile, the seq the player holds.
//!
//! A subscribed tile first awaits its snapshot; from then on every `pixels` frame must start at
//! the held seq + 1. A later start is a gap (events never delivered), an earlier one repeats
//! events already held (duplicates). Frames for a tile the player no longer watches, or still
//! awaits the snapshot of, were sent before the server saw the (un)subscribe: they are strays,
//! not errors.

use std::collections::HashMap;

use place_tiles::TileId;
use tokio::time::Instant;

/// Where one subscribed tile stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Subscribed at `since`; the snapshot has not arrived.
    Awaiting {
        /// When the subscribe was sent.
        since: Instant,
    },
    /// The player holds the tile at `seq`.
    Live {
        /// The seq held.
        seq: u64,
    },
}

/// What a snapshot meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// The answer to a subscribe.
    First,
    /// A snapshot replacing a tile already held (a server-side resync). `stale` when it is
    /// older than what the player held.
    Resync {
        /// The snapshot went back in time.
        stale: bool,
    },
    /// For a tile the player does not watch.
    Stray,
}

/// What a `pixels` frame meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelsOutcome {
    /// For a tile not (yet) held: ignored.
    Stray,
    /// Applied: the first `skip` events were already held (duplicates), `gap` events between
    /// the held seq and the frame's first seq never arrived.
    Applied {
        /// Leading events already held.
        skip: usize,
        /// Events missing before the frame.
        gap: u64,
    },
}

/// A player's tiles.
#[derive(Debug, Default)]
pub struct Tracks {
    tiles: HashMap<TileId, Track>,
    awaiting: usize,
}

impl Tracks {
    /// Starts watching a tile; false when it is already watched.
    pub fn subscribe(&mut self, tile: TileId, now: Instant) -> bool {
        if self.tiles.contains_key(&tile) {
            return false;
        }
        self.tiles.insert(tile, Track::Awaiting { since: now });
        self.awaiting += 1;
        true
    }

    /// Stops watching a tile and returns where it stood.
    pub fn unsubscribe(&mut self, tile: TileId) -> Option<Track> {
        let track = self.tiles.remove(&tile)?;
        if matches!(track, Track::Awaiting { .. }) {
            self.awaiting -= 1;
        }
        Some(track)
    }

    /// Applies a snapshot at `seq`.
    pub fn on_snapshot(&mut self, tile: TileId, seq: u64) -> SnapshotOutcome {
        let Some(track) = self.tiles.get_mut(&tile) else {
            return SnapshotOutcome::Stray;
        };
        let outcome = match *track {
            Track::Awaiting { .. } => {
                self.awaiting -= 1;
                SnapshotOutcome::First
            }
            Track::Live { seq: held } => SnapshotOutcome::Resync { stale: seq < held },
        };
        *track = Track::Live { seq };
        outcome
    }

    /// Applies `count` events starting at `first_seq`.
    pub fn on_pixels(&mut self, tile: TileId, first_seq: u64, count: usize) -> PixelsOutcome {
        let Some(Track::Live { seq: held }) = self.tiles.get_mut(&tile) else {
            return PixelsOutcome::Stray;
        };
        let expected = *held + 1;
        let gap = first_seq.saturating_sub(expected);
        let skip = (expected.saturating_sub(first_seq)).min(count as u64) as usize;
        let last = first_seq + count as u64;
        if last > expected {
            *held = last - 1;
        }
        PixelsOutcome::Applied { skip, gap }
    }

    /// How many tiles still await their snapshot.
    pub fn awaiting(&self) -> usize {
        self.awaiting
    }

    /// Whether the tile is watched.
    pub fn contains(&self, tile: TileId) -> bool {
        self.tiles.contains_key(&tile)
    }

    /// Every watched tile and where it stands.
    pub fn iter(&self) -> impl Iterator<Item = (TileId, Track)> + '_ {
        self.tiles.iter().map(|(t, s)| (*t, *s))
    }

    /// How many tiles are watched.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is watched.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TileId = TileId::new(3, 4);

    fn live_at(seq: u64) -> Tracks {
        let mut tracks = Tracks::default();
        assert!(tracks.subscribe(T, Instant::now()));
        assert_eq!(tracks.awaiting(), 1);
        assert_eq!(tracks.on_snapshot(T, seq), SnapshotOutcome::First);
        assert_eq!(tracks.awaiting(), 0);
        tracks
    }

    #[test]
    fn consecutive_frames_apply_cleanly() {
        let mut tracks = live_at(10);
        assert_eq!(
            tracks.on_pixels(T, 11, 3),
            PixelsOutcome::Applied { skip: 0, gap: 0 }
        );
        assert_eq!(
            tracks.on_pixels(T, 14, 1),
            PixelsOutcome::Applied { skip: 0, gap: 0 }
        );
        assert_eq!(tracks.iter().next(), Some((T, Track::Live { seq: 14 })));
        assert_eq!(
            tracks.on_pixels(T, 15, 0),
            PixelsOutcome::Applied { skip: 0, gap: 0 },
            "an empty frame at the next seq is 'you are current'"
        );
    }

    #[test]
    fn a_later_start_is_a_gap() {
        let mut tracks = live_at(10);
        assert_eq!(
            tracks.on_pixels(T, 14, 2),
            PixelsOutcome::Applied { skip: 0, gap: 3 }
        );
        assert_eq!(tracks.iter().next(), Some((T, Track::Live { seq: 15 })));
    }

    #[test]
    fn an_earlier_start_repeats_events() {
        let mut tracks = live_at(10);
        assert_eq!(
            tracks.on_pixels(T, 9, 4),
            PixelsOutcome::Applied { skip: 2, gap: 0 }
        );
        assert_eq!(tracks.iter().next(), Some((T, Track::Live { seq: 12 })));
        assert_eq!(
            tracks.on_pixels(T, 5, 3),
            PixelsOutcome::Applied { skip: 3, gap: 0 },
            "wholly repeated"
        );
        assert_eq!(tracks.iter().next(), Some((T, Track::Live { seq: 12 })));
    }

    #[test]
    fn frames_before_the_snapshot_or_after_leaving_are_strays() {
        let mut tracks = Tracks::default();
        assert_eq!(tracks.on_pixels(T, 1, 1), PixelsOutcome::Stray);
        assert_eq!(tracks.on_snapshot(T, 1), SnapshotOutcome::Stray);
        tracks.subscribe(T, Instant::now());
        assert!(!tracks.subscribe(T, Instant::now()), "already watched");
        assert_eq!(tracks.on_pixels(T, 1, 1), PixelsOutcome::Stray);
        tracks.on_snapshot(T, 5);
        assert_eq!(tracks.unsubscribe(T), Some(Track::Live { seq: 5 }));
        assert_eq!(tracks.on_pixels(T, 6, 1), PixelsOutcome::Stray);
        assert!(tracks.is_empty());
    }

    #[test]
    fn a_second_snapshot_is_a_resync() {
        let mut tracks = live_at(10);
        assert_eq!(
            tracks.on_snapshot(T, 20),
            SnapshotOutcome::Resync { stale: false }
        );
        assert_eq!(
            tracks.on_snapshot(T, 15),
            SnapshotOutcome::Resync { stale: true }
        );
        assert_eq!(tracks.awaiting(), 0);
    }
}
