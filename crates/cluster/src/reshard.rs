//! Changing the ring while the cluster serves: one change at a time, which tiles move where, the
//! shards' reports of their progress, and waiting until the handoff is complete.
//!
//! A change is: take the change lock in Redis (a second change while one runs is refused, naming
//! the holder), store the next ring (epoch + 1), then wait until every shard of the new ring
//! reports that it works at the new epoch with no tile still loading. The handoff itself needs no
//! orchestration beyond that: each shard follows the ring, and a shard gaining a tile raises the
//! tile's fence in PostgreSQL (which waits for the old owner's writes under way and refuses its
//! later ones) before loading it. The old owner stops taking the tile's placements when it sees
//! the ring, and edges route them again (see `ClusterClient::place`).
//!
//! Shards report themselves under `{prefix}shard:{id}` every [`REPORT_EVERY`], with a time to
//! live of [`REPORT_TTL`](crate::ring_store::REPORT_TTL): a missing report is a shard that is down (what the failover watchdog
//! of [`crate::failover`] acts on, see [`SilenceWatch`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use place_tiles::CanvasGeometry;
use thiserror::Error;
use tokio::time::Instant;

use crate::ring::{Ring, RingError, ShardInfo};
use crate::ring_store::{RingStore, RingStoreError, ShardReport, REPORT_EVERY};
use crate::tls::NodeIdentity;

/// How long a new shard may take to show up in Redis before it is refused.
const REPORT_WAIT: Duration = Duration::from_secs(5);

/// How long a shard of the new ring may have no report before the wait for a handoff gives up
/// (the handoff cannot complete without it, and the change lock must be free for the failover
/// that takes it out).
const HANDOFF_SILENCE: Duration = Duration::from_secs(1);

/// Why a ring change failed.
#[derive(Debug, Error)]
pub enum ReshardError {
    /// The change itself is invalid (the last shard, an id that exists, ...).
    #[error(transparent)]
    Ring(#[from] RingError),
    /// Redis.
    #[error(transparent)]
    Store(#[from] RingStoreError),
    /// The new shard's address does not answer as a shard of this cluster.
    #[error("{addr} does not answer as a shard of this cluster (QUIC with a certificate of its authority): {reason}")]
    Unreachable {
        /// The address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The new shard answers but does not report itself under its id.
    #[error("shard {0} answers but does not report in Redis: is it running with --id {0} and this cluster's name and Redis?")]
    NotReporting(String),
    /// Another change is under way.
    #[error(
        "another ring change is under way ({0}); changes go one at a time: wait for it to finish"
    )]
    Busy(String),
    /// The ring changed, but the shards did not all finish the handoff in time.
    #[error(
        "epoch {epoch} is stored, but after {waited:?} the handoff is not complete: {waiting}"
    )]
    Incomplete {
        /// The new epoch.
        epoch: u64,
        /// How long it waited.
        waited: Duration,
        /// Who it still waits for, and why.
        waiting: String,
    },
}

/// Tiles that change owner between two rings: by `(from, to)` shard ids, the tiles.
pub type Moves = BTreeMap<(String, String), Vec<place_tiles::TileId>>;

/// The tiles that change owner from `before` to `after` (tiles a growth of the canvas adds
/// are new, not moved: they are on `after`'s canvas only).
pub fn moves(before: &Ring, after: &Ring, geometry: CanvasGeometry) -> Moves {
    let mut moves = Moves::new();
    for tile in before.geometry(geometry).tiles() {
        let (from, to) = (&before.owner(tile).id, &after.owner(tile).id);
        if from != to {
            moves
                .entry((from.clone(), to.clone()))
                .or_default()
                .push(tile);
        }
    }
    moves
}

/// How a change is going.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The new ring is stored; these tiles move.
    Stored {
        /// The new ring.
        ring: Ring,
        /// What moves.
        moves: Moves,
    },
    /// Tiles loaded by their new owners so far, of all that move; shards not done yet.
    Loading {
        /// Tiles loaded.
        loaded: usize,
        /// Tiles moving.
        total: usize,
        /// Shards that have not finished, and why.
        waiting: Vec<String>,
    },
    /// The handoff is complete: how long the tiles of each move paused.
    Complete {
        /// By move, the longest first.
        pauses: Vec<HandoffPause>,
    },
}

/// How long the tiles moving from one shard to another could take no placement, as the shards
/// saw it: from the first of the two to work at the new epoch (the old owner stops taking the
/// tiles' placements, or the new one raises their fences) to the new owner serving them. Edges
/// follow the ring within one poll of it, so a player may wait up to that much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffPause {
    /// The old owner.
    pub from: String,
    /// The new owner.
    pub to: String,
    /// How many tiles moved.
    pub tiles: usize,
    /// The pause.
    pub pause: Duration,
}

/// The pauses of a complete handoff to `epoch`, by move, longest first; a move whose new owner's
/// report lacks the times is left out. An old owner without a report (down) counts from when the
/// new owner began.
pub fn handoff_pauses(
    moved: &Moves,
    reports: &BTreeMap<String, ShardReport>,
    epoch: u64,
) -> Vec<HandoffPause> {
    let since = |id: &str| {
        reports
            .get(id)
            .filter(|r| r.epoch == epoch)
            .and_then(|r| r.epoch_since_ms)
    };
    let mut pauses: Vec<HandoffPause> = moved
        .iter()
        .filter_map(|((from, to), tiles)| {
            let ready = reports
                .get(to)
                .filter(|r| r.epoch == epoch)
                .and_then(|r| r.ready_at_ms)?;
            let began = match (since(from), since(to)) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b)?,
            };
            Some(HandoffPause {
                from: from.clone(),
                to: to.clone(),
                tiles: tiles.len(),
                pause: Duration::from_millis(ready.saturating_sub(began).max(0) as u64),
            })
        })
        .collect();
    pauses.sort_by_key(|p| std::cmp::Reverse(p.pause));
    pauses
}

/// The ring as operators see it: each shard with its share of the tiles and its latest report,
/// and the shards that report but are not in the ring.
#[derive(Debug, Clone)]
pub struct RingView {
    /// The ring's epoch.
    pub epoch: u64,
    /// The ring's shards, in ring order.
    pub shards: Vec<ShardView>,
    /// Shards that report themselves but are not in the ring (started, not added yet; or
    /// removed, not stopped yet).
    pub outside: Vec<String>,
}

/// One shard of a [`RingView`].
#[derive(Debug, Clone)]
pub struct ShardView {
    /// Its id and address.
    pub info: ShardInfo,
    /// How many tiles the ring gives it.
    pub tiles: usize,
    /// Its latest report; `None` when it has not reported lately (down?).
    pub report: Option<ShardReport>,
}

/// What [`RingView`] shows of `ring`, with the shards' reports from `store`.
pub async fn ring_view(
    store: &RingStore,
    ring: &Ring,
    geometry: CanvasGeometry,
) -> Result<RingView, RingStoreError> {
    let mut reports = store.reports().await?;
    let spread = ring.spread(geometry);
    let shards = ring
        .shards()
        .iter()
        .map(|s| ShardView {
            info: s.clone(),
            tiles: spread.get(&s.id).copied().unwrap_or(0),
            report: reports.remove(&s.id),
        })
        .collect();
    Ok(RingView {
        epoch: ring.epoch(),
        shards,
        outside: reports.into_keys().collect(),
    })
}

/// Checks a shard before it joins: it is not in the ring yet, it answers at its address over
/// QUIC with a certificate of the cluster's authority (connecting as `identity`), and it reports
/// itself in Redis under its id (so it runs, as that id, in this cluster).
pub async fn check_new_shard(
    store: &RingStore,
    identity: &NodeIdentity,
    shard: &ShardInfo,
) -> Result<(), ReshardError> {
    store.require().await?.with_shard(shard.clone())?;
    crate::client::probe(identity, &shard.addr)
        .await
        .map_err(|e| ReshardError::Unreachable {
            addr: shard.addr.clone(),
            reason: e.to_string(),
        })?;
    let started = Instant::now();
    while started.elapsed() < REPORT_WAIT {
        if store.reports().await?.contains_key(&shard.id) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ReshardError::NotReporting(shard.id.clone()))
}

/// Changes the ring by `change` (one change at a time, cluster-wide), then waits up to `timeout`
/// for the handoff to complete, telling `progress` how it goes. `holder` names who changes it,
/// for the message a concurrent change gets.
pub async fn change_ring(
    store: &RingStore,
    geometry: CanvasGeometry,
    holder: &str,
    change: impl FnOnce(&Ring) -> Result<Ring, RingError>,
    timeout: Duration,
    mut progress: impl FnMut(&Progress),
) -> Result<Ring, ReshardError> {
    let lock = store
        .lock_changes(holder, timeout + Duration::from_secs(30))
        .await?
        .map_err(ReshardError::Busy)?;
    let result = async {
        let before = store.require().await?;
        let after = change(&before)?;
        if let Err(error) = store.replace(&lock, &after).await {
            // A Redis timeout may come after the write: look before calling it a failure.
            let stored = store.load().await.ok().flatten();
            if stored.as_ref() != Some(&after) {
                return Err(error.into());
            }
            tracing::warn!(%error, "storing the ring timed out, but it is stored");
        }
        let moved = moves(&before, &after, geometry);
        progress(&Progress::Stored {
            ring: after.clone(),
            moves: moved.clone(),
        });
        wait_for_handoff(store, &before, &after, &moved, timeout, &mut progress).await?;
        Ok(after)
    }
    .await;
    if let Err(error) = store.unlock_changes(&lock).await {
        // It expires by itself.
        tracing::warn!(%error, "could not release the ring change lock");
    }
    result
}

/// Waits until every shard of `after` works at its epoch with nothing left to load, and every
/// shard removed either says the same or is down. Gives up early when a shard of `after` has had
/// no report for [`HANDOFF_SILENCE`]: it died, and only a failover (which needs the change lock)
/// completes the handoff now.
async fn wait_for_handoff(
    store: &RingStore,
    before: &Ring,
    after: &Ring,
    moved: &Moves,
    timeout: Duration,
    progress: &mut impl FnMut(&Progress),
) -> Result<(), ReshardError> {
    let started = Instant::now();
    let total: usize = moved.values().map(Vec::len).sum();
    let mut gaining: HashMap<&str, usize> = HashMap::new();
    for ((_, to), tiles) in moved {
        *gaining.entry(to.as_str()).or_default() += tiles.len();
    }
    let removed: Vec<&str> = before
        .shards()
        .iter()
        .filter(|s| after.shard(&s.id).is_none())
        .map(|s| s.id.as_str())
        .collect();
    let mut last_loaded = None;
    let mut silent_since: HashMap<&str, Instant> = HashMap::new();
    loop {
        let mut waiting = Vec::new();
        let reports = match store.reports().await {
            Ok(reports) => {
                for shard in after.shards() {
                    if reports.contains_key(&shard.id) {
                        silent_since.remove(shard.id.as_str());
                        continue;
                    }
                    let since = *silent_since
                        .entry(shard.id.as_str())
                        .or_insert_with(Instant::now);
                    if since.elapsed() >= HANDOFF_SILENCE {
                        return Err(ReshardError::Incomplete {
                            epoch: after.epoch(),
                            waited: started.elapsed(),
                            waiting: format!(
                                "{} stopped reporting (down?): it is failed over, or rejoins when it runs again",
                                shard.id
                            ),
                        });
                    }
                }
                reports
            }
            Err(error) => {
                // Redis slow or away for a moment: keep waiting (within the timeout).
                waiting.push(format!("Redis ({error})"));
                Default::default()
            }
        };
        let mut loaded = 0;
        for shard in after.shards() {
            let gains = gaining.get(shard.id.as_str()).copied().unwrap_or(0);
            match reports.get(&shard.id) {
                None => waiting.push(format!("{} (no report: is it running?)", shard.id)),
                Some(r) if r.epoch < after.epoch() => {
                    waiting.push(format!("{} (at epoch {})", shard.id, r.epoch))
                }
                Some(r) if r.acquiring > 0 => {
                    loaded += gains.saturating_sub(r.acquiring);
                    waiting.push(format!("{} (loading {} tiles)", shard.id, r.acquiring));
                }
                Some(_) => loaded += gains,
            }
        }
        for id in &removed {
            if let Some(r) = reports.get(*id) {
                if r.epoch < after.epoch() {
                    waiting.push(format!("{id} (draining, at epoch {})", r.epoch));
                }
            }
        }
        if last_loaded != Some(loaded) || waiting.is_empty() {
            progress(&Progress::Loading {
                loaded,
                total,
                waiting: waiting.clone(),
            });
            last_loaded = Some(loaded);
        }
        if waiting.is_empty() {
            progress(&Progress::Complete {
                pauses: handoff_pauses(moved, &reports, after.epoch()),
            });
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(ReshardError::Incomplete {
                epoch: after.epoch(),
                waited: started.elapsed(),
                waiting: waiting.join(", "),
            });
        }
        tokio::time::sleep(REPORT_EVERY / 2).await;
    }
}

/// Shards of `ring` other than `me` without a report: candidates for failover once they have
/// been silent long enough (the caller keeps time).
pub fn silent_shards<'a>(
    ring: &'a Ring,
    reports: &BTreeMap<String, ShardReport>,
    me: &str,
) -> Vec<&'a str> {
    ring.shards()
        .iter()
        .filter(|s| s.id != me && !reports.contains_key(&s.id))
        .map(|s| s.id.as_str())
        .collect()
}

/// Tracks how long shards have been silent, to declare them dead after `after`.
#[derive(Debug, Default)]
pub struct SilenceWatch {
    since: HashMap<String, Instant>,
}

impl SilenceWatch {
    /// Notes who is silent now; returns those silent for at least `after`.
    pub fn dead_shards(&mut self, silent: &[&str], after: Duration) -> Vec<String> {
        let now = Instant::now();
        self.since.retain(|id, _| silent.contains(&id.as_str()));
        for id in silent {
            self.since.entry((*id).to_owned()).or_insert(now);
        }
        self.since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= after)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::test_shard as shard;

    #[test]
    fn adding_a_fourth_shard_moves_a_quarter_of_the_tiles_all_to_it() {
        let g = CanvasGeometry::default();
        let three = Ring::new(1, (1..=3).map(shard).collect()).expect("ring");
        let four = three.with_shard(shard(4)).expect("add");
        let moved = moves(&three, &four, g);
        let total: usize = moved.values().map(Vec::len).sum();
        assert!(moved.keys().all(|(_, to)| to == "shard-4"));
        let ideal = g.tile_count() as f64 / 4.0;
        assert!(
            (total as f64 - ideal).abs() / ideal < 0.2,
            "{total} moved, ideal {ideal}"
        );
        let back = moves(&four, &four.without_shard("shard-4").expect("remove"), g);
        assert_eq!(
            back.values().map(Vec::len).sum::<usize>(),
            total,
            "removing moves them back"
        );
        assert!(back.keys().all(|(from, _)| from == "shard-4"));
    }

    /// On tokio's paused clock: dead exactly when silent for `after`, with no sleep.
    #[tokio::test(start_paused = true)]
    async fn a_shard_is_dead_only_after_being_silent_long_enough() {
        let ring = Ring::new(1, (1..=3).map(shard).collect()).expect("ring");
        let report = |id: &str| ShardReport {
            id: id.into(),
            epoch: 1,
            owned: 1,
            acquiring: 0,
            ..ShardReport::default()
        };
        let reports: BTreeMap<String, ShardReport> = [("shard-2".to_owned(), report("shard-2"))]
            .into_iter()
            .collect();
        let silent = silent_shards(&ring, &reports, "shard-1");
        assert_eq!(silent, vec!["shard-3"]);
        let after = Duration::from_secs(1);
        let mut watch = SilenceWatch::default();
        assert!(watch.dead_shards(&silent, after).is_empty());
        tokio::time::advance(after - Duration::from_millis(1)).await;
        assert!(watch.dead_shards(&silent, after).is_empty(), "not yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(watch.dead_shards(&silent, after), vec!["shard-3"]);
        // Heard from again: the clock starts over.
        assert!(watch.dead_shards(&[], after).is_empty());
        assert!(watch.dead_shards(&silent, after).is_empty());
        tokio::time::advance(after).await;
        assert_eq!(watch.dead_shards(&silent, after), vec!["shard-3"]);
    }

    #[test]
    fn a_handoff_pauses_from_the_first_shard_at_the_new_epoch_to_the_new_owner_serving() {
        let report = |id: &str, epoch: u64, since: i64, ready: Option<i64>| {
            (
                id.to_owned(),
                ShardReport {
                    id: id.into(),
                    epoch,
                    owned: 1,
                    acquiring: 0,
                    placements_per_sec: 0.0,
                    epoch_since_ms: Some(since),
                    ready_at_ms: ready,
                    ..ShardReport::default()
                },
            )
        };
        let tile = |x| place_tiles::TileId::new(x, 0);
        let moved: Moves = [
            (("shard-1".into(), "shard-4".into()), vec![tile(0), tile(1)]),
            (("shard-2".into(), "shard-4".into()), vec![tile(2)]),
            (("shard-3".into(), "shard-4".into()), vec![tile(3)]),
        ]
        .into_iter()
        .collect();
        let reports: BTreeMap<String, ShardReport> = [
            // shard-1 saw the ring before the new owner did: its pause starts there.
            report("shard-1", 2, 1_000, Some(1_000)),
            // shard-2 saw it after: the pause starts when shard-4 raised the fences.
            report("shard-2", 2, 1_030, Some(1_030)),
            // shard-3 is down: no report.
            report("shard-4", 2, 1_010, Some(1_090)),
        ]
        .into_iter()
        .collect();
        let pauses = handoff_pauses(&moved, &reports, 2);
        let summary: Vec<(&str, usize, u64)> = pauses
            .iter()
            .map(|p| (p.from.as_str(), p.tiles, p.pause.as_millis() as u64))
            .collect();
        assert_eq!(
            summary,
            vec![("shard-1", 2, 90), ("shard-2", 1, 80), ("shard-3", 1, 80)]
        );
        // A new owner still at the old epoch has no pause to give yet.
        let stale: BTreeMap<String, ShardReport> = [report("shard-4", 1, 1_010, Some(1_090))]
            .into_iter()
            .collect();
        assert!(handoff_pauses(&moved, &stale, 2).is_empty());
    }
}
