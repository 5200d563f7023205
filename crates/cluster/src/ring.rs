//! The shard ring: which shard owns which tile, by consistent hashing with virtual nodes.
//!
//! A [`Ring`] is a list of shards (id and QUIC address) with an **epoch** that rises with every
//! change. Every edge and shard computes tile ownership from the same ring with the same
//! deterministic hash (SipHash 1-3 with fixed keys, from `consistent_hash`), so they agree
//! without asking anyone. Adding a shard to `n` moves about `1/(n+1)` of the tiles, all of them
//! to the new shard; removing one moves only its own tiles.
//!
//! The ring also carries the canvas size once an administrator has grown the canvas: a growth is
//! a ring change like any other (epoch + 1, same shards), so every shard and edge follows it
//! by the same path, the new tiles go to their owners by the same hash (no existing tile moves:
//! ownership hashes a tile's column and row, never the canvas width), and the change completes
//! when every shard serves its new tiles. A node's canvas is the larger of the size it started
//! with (PostgreSQL's) and the ring's, side by side: sizes only grow.
//!
//! The ring also remembers the shards a failover took out (with their addresses), so that such a
//! shard can put itself back when it runs again (see [`crate::failover`]); a shard an operator
//! removed is not remembered, and stays out.

use std::collections::BTreeMap;

use consistent_hash::{DefaultHash, Node, StaticHashRing};
use place_tiles::{CanvasGeometry, TileId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Virtual nodes per shard: enough for an even spread of a thousand tiles over a few shards.
pub const VIRTUAL_NODES: usize = 256;

/// One shard as the ring knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// The shard's id (also the name in its certificate).
    pub id: String,
    /// Where it listens for QUIC: `host:port`, resolved when an edge connects (so a container
    /// name works, and a restarted shard with a new IP is found again).
    pub addr: String,
}

/// Why a ring change was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RingError {
    /// A ring needs at least one shard.
    #[error("a ring needs at least one shard")]
    Empty,
    /// Two shards with one id.
    #[error("shard id {0:?} is already in the ring")]
    DuplicateId(String),
    /// No shard with that id.
    #[error("shard id {0:?} is not in the ring")]
    UnknownId(String),
    /// An address without a port.
    #[error("shard address {0:?} is not host:port")]
    BadAddr(String),
    /// An id that is not 1 to 64 of letters, digits, `-` and `_`.
    #[error("shard id {0:?} must be 1 to 64 letters, digits, '-' or '_'")]
    BadId(String),
    /// A stored canvas size outside `1..=65536` a side.
    #[error("the ring's canvas {0}x{1} is not a valid size")]
    BadCanvas(u32, u32),
}

/// The shards and the epoch of this arrangement.
#[derive(Serialize, Deserialize)]
#[serde(try_from = "RingData", into = "RingData")]
pub struct Ring {
    epoch: u64,
    shards: Vec<ShardInfo>,
    failed_over: Vec<ShardInfo>,
    canvas: Option<CanvasGeometry>,
    hash: StaticHashRing<'static, String, usize, DefaultHash>,
}

#[derive(Serialize, Deserialize)]
struct RingData {
    epoch: u64,
    shards: Vec<ShardInfo>,
    /// Absent in a ring stored before failovers were remembered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failed_over: Vec<ShardInfo>,
    /// Absent until the canvas was grown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    canvas: Option<CanvasSize>,
}

/// The canvas size as the ring stores it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CanvasSize {
    width: u32,
    height: u32,
}

impl TryFrom<RingData> for Ring {
    type Error = RingError;
    fn try_from(data: RingData) -> Result<Self, RingError> {
        let mut ring = Ring::new(data.epoch, data.shards)?;
        ring.failed_over = data.failed_over;
        ring.canvas = match data.canvas {
            Some(c) => Some(
                CanvasGeometry::new(c.width, c.height)
                    .map_err(|_| RingError::BadCanvas(c.width, c.height))?,
            ),
            None => None,
        };
        Ok(ring)
    }
}

impl From<Ring> for RingData {
    fn from(ring: Ring) -> Self {
        RingData {
            epoch: ring.epoch,
            shards: ring.shards,
            failed_over: ring.failed_over,
            canvas: ring.canvas.map(|g| CanvasSize {
                width: g.width(),
                height: g.height(),
            }),
        }
    }
}

impl Clone for Ring {
    fn clone(&self) -> Self {
        let mut ring = Ring::build(self.epoch, self.shards.clone());
        ring.failed_over = self.failed_over.clone();
        ring.canvas = self.canvas;
        ring
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("epoch", &self.epoch)
            .field("shards", &self.shards)
            .field("failed_over", &self.failed_over)
            .field("canvas", &self.canvas)
            .finish()
    }
}

impl PartialEq for Ring {
    fn eq(&self, other: &Self) -> bool {
        self.epoch == other.epoch
            && self.shards == other.shards
            && self.failed_over == other.failed_over
            && self.canvas == other.canvas
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Ring {
    /// A ring of these shards at this epoch.
    pub fn new(epoch: u64, shards: Vec<ShardInfo>) -> Result<Self, RingError> {
        if shards.is_empty() {
            return Err(RingError::Empty);
        }
        for (i, s) in shards.iter().enumerate() {
            if !valid_id(&s.id) {
                return Err(RingError::BadId(s.id.clone()));
            }
            let has_port = s
                .addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !has_port {
                return Err(RingError::BadAddr(s.addr.clone()));
            }
            if shards[..i].iter().any(|o| o.id == s.id) {
                return Err(RingError::DuplicateId(s.id.clone()));
            }
        }
        Ok(Ring::build(epoch, shards))
    }

    /// Builds the hash ring of checked shards.
    fn build(epoch: u64, shards: Vec<ShardInfo>) -> Self {
        let nodes = shards
            .iter()
            .enumerate()
            .map(|(i, s)| Node::new(s.id.clone()).value(i).quantity(VIRTUAL_NODES));
        let hash = StaticHashRing::new(DefaultHash, nodes);
        Self {
            epoch,
            shards,
            failed_over: Vec::new(),
            canvas: None,
            hash,
        }
    }

    /// The canvas size an administrator grew the canvas to, if ever.
    pub fn canvas(&self) -> Option<CanvasGeometry> {
        self.canvas
    }

    /// The canvas: `at_least` (the size a node started with) grown to the ring's, side by side.
    pub fn geometry(&self, at_least: CanvasGeometry) -> CanvasGeometry {
        self.canvas.map_or(at_least, |c| at_least.union(c))
    }

    /// The next ring, with the same shards, on a canvas grown to `canvas`.
    pub fn with_canvas(&self, canvas: CanvasGeometry) -> Ring {
        let mut next = self.clone();
        next.epoch += 1;
        next.canvas = Some(self.canvas.map_or(canvas, |c| c.union(canvas)));
        next
    }

    /// The epoch: every change makes a ring with a higher one.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The shards, in the order they were added.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// A shard by id.
    pub fn shard(&self, id: &str) -> Option<&ShardInfo> {
        self.shards.iter().find(|s| s.id == id)
    }

    /// The shard that owns a tile.
    pub fn owner(&self, tile: TileId) -> &ShardInfo {
        let index = self
            .hash
            .calc_candidates(&(tile.tx, tile.ty))
            .next()
            .map_or(0, |node| node.value);
        &self.shards[index]
    }

    /// The tiles that `shard` owns, of `geometry` grown to the ring's canvas.
    pub fn tiles_of<'a>(
        &'a self,
        shard: &'a str,
        geometry: CanvasGeometry,
    ) -> impl Iterator<Item = TileId> + 'a {
        self.geometry(geometry)
            .tiles()
            .filter(move |t| self.owner(*t).id == shard)
    }

    /// How many tiles each shard owns, of `geometry` grown to the ring's canvas.
    pub fn spread(&self, geometry: CanvasGeometry) -> BTreeMap<String, usize> {
        let mut spread: BTreeMap<String, usize> =
            self.shards.iter().map(|s| (s.id.clone(), 0)).collect();
        for tile in self.geometry(geometry).tiles() {
            *spread.entry(self.owner(tile).id.clone()).or_default() += 1;
        }
        spread
    }

    /// The shards a failover took out and no one has put back or removed since.
    pub fn failed_over(&self) -> &[ShardInfo] {
        &self.failed_over
    }

    /// The next ring with one more shard (no longer remembered as failed over).
    pub fn with_shard(&self, shard: ShardInfo) -> Result<Ring, RingError> {
        if self.shard(&shard.id).is_some() {
            return Err(RingError::DuplicateId(shard.id));
        }
        let mut shards = self.shards.clone();
        shards.push(shard.clone());
        let mut next = Ring::new(self.epoch + 1, shards)?;
        next.failed_over = self.failed_over_except(&shard.id);
        next.canvas = self.canvas;
        Ok(next)
    }

    /// The next ring without a shard, as an operator removes it: it stays out. A shard a failover
    /// took out is only forgotten (it no longer comes back by itself); no tile moves.
    pub fn without_shard(&self, id: &str) -> Result<Ring, RingError> {
        if self.shard(id).is_none() {
            if self.failed_over.iter().any(|s| s.id == id) {
                let mut next = Ring::build(self.epoch + 1, self.shards.clone());
                next.failed_over = self.failed_over_except(id);
                next.canvas = self.canvas;
                return Ok(next);
            }
            return Err(RingError::UnknownId(id.to_owned()));
        }
        let shards: Vec<ShardInfo> = self.shards.iter().filter(|s| s.id != id).cloned().collect();
        let mut next = Ring::new(self.epoch + 1, shards)?;
        next.failed_over = self.failed_over_except(id);
        next.canvas = self.canvas;
        Ok(next)
    }

    /// The next ring without a shard presumed dead: its tiles go to their next owners, and it is
    /// remembered (with its address) so that it can put itself back when it runs again.
    pub fn failing_over(&self, id: &str) -> Result<Ring, RingError> {
        let shard = self
            .shard(id)
            .cloned()
            .ok_or_else(|| RingError::UnknownId(id.to_owned()))?;
        let mut next = self.without_shard(id)?;
        next.failed_over.push(shard);
        Ok(next)
    }

    fn failed_over_except(&self, id: &str) -> Vec<ShardInfo> {
        self.failed_over
            .iter()
            .filter(|s| s.id != id)
            .cloned()
            .collect()
    }
}

/// Shard `i` of a test ring: `shard-i` on port `7000 + i`.
#[cfg(test)]
pub(crate) fn test_shard(i: usize) -> ShardInfo {
    ShardInfo {
        id: format!("shard-{i}"),
        addr: format!("127.0.0.1:{}", 7000 + i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(i: usize) -> ShardInfo {
        test_shard(i)
    }

    fn ring(n: usize) -> Ring {
        Ring::new(1, (1..=n).map(shard).collect()).expect("valid ring")
    }

    #[test]
    fn ownership_is_deterministic_and_survives_serialisation() {
        let a = ring(3);
        let b: Ring =
            serde_json::from_str(&serde_json::to_string(&a).expect("json")).expect("ring");
        let g = CanvasGeometry::default();
        assert!(g.tiles().all(|t| a.owner(t) == b.owner(t)));
        assert_eq!(a, b);
    }

    #[test]
    fn tiles_spread_evenly_over_three_shards() {
        let spread = ring(3).spread(CanvasGeometry::default());
        let ideal = 1024.0 / 3.0;
        for (id, count) in &spread {
            let off = (*count as f64 - ideal).abs() / ideal;
            assert!(
                off < 0.2,
                "{id} owns {count} tiles, {:.0}% off the ideal {ideal:.0}",
                off * 100.0
            );
        }
        assert_eq!(spread.values().sum::<usize>(), 1024);
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_n_plus_one_tiles_all_to_it() {
        let g = CanvasGeometry::default();
        let before = ring(3);
        let after = before.with_shard(shard(4)).expect("add");
        assert_eq!(after.epoch(), 2);
        let moved: Vec<TileId> = g
            .tiles()
            .filter(|t| before.owner(*t) != after.owner(*t))
            .collect();
        assert!(
            moved.iter().all(|t| after.owner(*t).id == "shard-4"),
            "only moves to the new shard"
        );
        let ideal = 1024.0 / 4.0;
        let off = (moved.len() as f64 - ideal).abs() / ideal;
        assert!(off < 0.2, "{} tiles moved, ideal {ideal}", moved.len());
        let back = after.without_shard("shard-4").expect("remove");
        assert!(
            g.tiles().all(|t| back.owner(t) == before.owner(t)),
            "removing restores the old owners"
        );
    }

    #[test]
    fn a_failed_over_shard_is_remembered_until_it_is_put_back_or_removed() {
        let failed = ring(3).failing_over("shard-2").expect("failover");
        assert_eq!(failed.epoch(), 2);
        assert!(failed.shard("shard-2").is_none());
        assert_eq!(failed.failed_over(), &[shard(2)]);
        let stored: Ring =
            serde_json::from_str(&serde_json::to_string(&failed).expect("json")).expect("ring");
        assert_eq!(stored, failed, "kept across Redis");
        // Back in: its own tiles again, and no longer remembered.
        let back = failed.with_shard(shard(2)).expect("rejoin");
        assert!(back.failed_over().is_empty());
        let g = CanvasGeometry::default();
        assert!(g.tiles().all(|t| back.owner(t) == ring(3).owner(t)));
        // An operator's removal forgets it, and moves nothing.
        let forgotten = failed.without_shard("shard-2").expect("forget");
        assert_eq!(forgotten.epoch(), 3);
        assert!(forgotten.failed_over().is_empty());
        assert_eq!(forgotten.shards(), failed.shards());
        // A ring stored before failovers were remembered still reads.
        let old: Ring = serde_json::from_str(
            r#"{"epoch":4,"shards":[{"id":"shard-1","addr":"127.0.0.1:7001"}]}"#,
        )
        .expect("old ring");
        assert!(old.failed_over().is_empty());
    }

    #[test]
    fn a_grown_canvas_gives_out_its_new_tiles_and_moves_no_old_one() {
        let before = ring(3);
        let small = CanvasGeometry::new(640, 640).expect("valid");
        let grown = before.with_canvas(CanvasGeometry::new(1280, 700).expect("valid"));
        assert_eq!(grown.epoch(), before.epoch() + 1);
        assert_eq!(grown.shards(), before.shards());
        let g = grown.geometry(small);
        assert_eq!((g.width(), g.height()), (1280, 700));
        assert!(small.tiles().all(|t| before.owner(t) == grown.owner(t)));
        let owned: usize = grown.spread(small).values().sum();
        assert_eq!(owned, g.tile_count(), "every new tile has an owner");
        // The canvas survives storage and later changes, and never shrinks.
        let stored: Ring =
            serde_json::from_str(&serde_json::to_string(&grown).expect("json")).expect("ring");
        assert_eq!(stored, grown);
        let next = stored.with_shard(shard(4)).expect("add");
        assert_eq!(next.canvas(), grown.canvas());
        let narrower = next.with_canvas(CanvasGeometry::new(100, 900).expect("valid"));
        let c = narrower.canvas().expect("grown");
        assert_eq!((c.width(), c.height()), (1280, 900));
        // A ring stored before growths existed has none.
        assert_eq!(before.canvas(), None);
        assert_eq!(before.geometry(small), small);
    }

    #[test]
    fn bad_rings_are_refused() {
        assert_eq!(Ring::new(1, vec![]).err(), Some(RingError::Empty));
        assert_eq!(
            Ring::new(1, vec![shard(1), shard(1)]).err(),
            Some(RingError::DuplicateId("shard-1".into()))
        );
        let mut bad = shard(1);
        bad.id = "no spaces".into();
        assert_eq!(
            Ring::new(1, vec![bad]).err(),
            Some(RingError::BadId("no spaces".into()))
        );
        assert_eq!(
            ring(1).without_shard("shard-1").err(),
            Some(RingError::Empty)
        );
        assert!(matches!(
            ring(2).with_shard(shard(2)),
            Err(RingError::DuplicateId(_))
        ));
        assert!(matches!(
            ring(2).without_shard("shard-9"),
            Err(RingError::UnknownId(_))
        ));
    }
}
