//! The shard as a plain state machine: `handle(input) -> outputs`, no I/O, no clock.
//!
//! It owns the authoritative tiles and decides everything about a placement's life:
//!
//! 1. `Place` joins the pending queue.
//! 2. When no write is in flight, the whole queue (up to [`MAX_BATCH`]) becomes one
//!    [`Output::WriteEvents`] job with each placement's tile seq assigned: group commit. The
//!    driver may hold writes back for a moment ([`ShardCore::hold_writes`], until
//!    `ReleaseWrites`) so that placements close together share a commit.
//! 3. `WriteDone(Ok)`: only now are the placements applied to the tiles, answered
//!    ([`Output::Reply`]) and added to their tile's delta window. So the tiles hold exactly what is
//!    durable: a crash can never take back a seq a client has seen. `WriteDone(Err)`: every
//!    placement of the job is answered `Unavailable`, the tiles are untouched.
//! 4. `Tick`: each tile's delta window is sent, once, to every subscriber of that tile; a
//!    checkpoint (snapshots of the tiles changed since the last one) is written when due.
//!
//! Subscribers are edges (in `place serve`, the one in-process edge). A subscriber joining a tile
//! first gets the tile's pending window flushed to the others, then a snapshot or exactly the
//! events it missed, so every subscriber sees every seq once, in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use place_store::NewEvent;
use place_tiles::{CanvasGeometry, Catchup, PixelChange, Tile, TileId, TILE_AREA};

/// The most placements one write job carries.
pub const MAX_BATCH: usize = 8192;
/// Placements waiting beyond this are refused as overloaded rather than queued without bound.
pub const MAX_PENDING: usize = 100_000;

/// Placements still queued this long after they arrived (because the store is slow or away)
/// are refused as `Unavailable` instead of being written: the edge that sent them has given up
/// waiting by then, and a late write would surprise the player it told so.
pub const MAX_QUEUE_WAIT_MS: i64 = 1_000;

/// Identifies a subscriber (an edge connection) of this shard.
pub type SubscriberId = u64;
/// Identifies a placement request so its answer can be routed back.
pub type Token = u64;

/// A placement as the shard receives it (validated again: the shard trusts no edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceRequest {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Palette index.
    pub color: u8,
    /// Who places.
    pub user_id: i64,
    /// When (epoch ms), as the edge stamped it.
    pub placed_at: i64,
    /// The moderation action (audit log id) this placement carries out, when it restores a pixel
    /// for a rollback or a reset (placed by the acting administrator); `None` for a player's.
    pub action_id: Option<i64>,
    /// The placement's correlation id (0: none), named by every log line it causes, on the
    /// edge and, carried over the wire, on the shard.
    pub placement_id: u64,
}

/// A placement that is applied and durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The tile's seq after this placement.
    pub seq: u64,
}

/// Why a placement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// Outside the canvas.
    #[error("pixel outside the canvas")]
    InvalidCoords,
    /// Not a palette colour.
    #[error("colour outside the palette")]
    InvalidColor,
    /// This shard does not own the tile (at its current ring epoch).
    #[error("tile not owned by this shard")]
    NotOwner,
    /// The store failed, or the shard is overloaded or stopping: nothing was placed.
    #[error("the placement could not be made durable now")]
    Unavailable,
    /// The tile's shard was sent the placement but gave no answer in time (it died, or is
    /// paused or cut off): it may have been applied, so it must not be sent again blindly.
    #[error("no answer from the tile's shard in time; the placement may have been applied")]
    NoAnswer,
}

/// A tile's pixels at a seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSnapshot {
    /// The tile.
    pub tile: TileId,
    /// Its seq.
    pub seq: u64,
    /// Its pixels.
    pub pixels: Box<[u8; TILE_AREA]>,
}

/// Consecutive changes of one tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileBatch {
    /// The tile.
    pub tile: TileId,
    /// The seq of the first change.
    pub first_seq: u64,
    /// The changes (possibly none: "you are current").
    pub changes: Vec<PixelChange>,
    /// When the first of these changes was applied (made durable) at the shard, epoch ms of the
    /// shard's clock; 0 when not known (a catch-up of older changes). Edges time the fan-out
    /// from it (the broadcast latency).
    pub applied_at_ms: i64,
}

/// What the shard sends a subscriber: shared, so a batch is built once for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMessage {
    /// The whole tile.
    Snapshot(Arc<TileSnapshot>),
    /// Changes following on from what the subscriber holds.
    Batch(Arc<TileBatch>),
}

/// What the shard is told.
#[derive(Debug)]
pub enum Input {
    /// A placement to apply.
    Place {
        /// Routes the answer.
        token: Token,
        /// The placement.
        request: PlaceRequest,
    },
    /// A subscriber wants a tile, holding it at `known_seq` if it holds it.
    Subscribe {
        /// Who.
        subscriber: SubscriberId,
        /// Which tile.
        tile: TileId,
        /// The seq it holds.
        known_seq: Option<u64>,
    },
    /// A subscriber no longer wants a tile.
    Unsubscribe {
        /// Who.
        subscriber: SubscriberId,
        /// Which tile.
        tile: TileId,
    },
    /// A subscriber is gone: drop all its subscriptions.
    SubscriberGone(SubscriberId),
    /// The events job finished: the id of the last event written, or why it failed.
    EventsWritten(Result<i64, WriteFailure>),
    /// Tiles read back from the store after a conflict, replacing the shard's copies.
    TilesReloaded(Vec<(TileId, Tile)>),
    /// The ring changed: this shard now owns `owned` (`None`: every tile) at ring `epoch`.
    /// Tiles it gains are acquired ([`Output::AcquireTiles`]) before they serve; tiles it loses
    /// stop taking placements at once.
    Ownership {
        /// The ring's epoch.
        epoch: u64,
        /// The tiles owned from now on.
        owned: Option<HashSet<TileId>>,
    },
    /// Tiles gained at `epoch`, loaded from the store after their fences were raised.
    TilesAcquired {
        /// The epoch [`Output::AcquireTiles`] named.
        epoch: u64,
        /// The tiles as stored.
        tiles: Vec<(TileId, Tile)>,
    },
    /// The checkpoint job finished.
    CheckpointWritten(Result<(), String>),
    /// Time passes: flush delta windows, start a checkpoint when due.
    Tick {
        /// Now, epoch ms.
        now_ms: i64,
    },
    /// Writes held back by [`ShardCore::hold_writes`] may start again.
    ReleaseWrites,
}

/// Why an events job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// What the store said.
    pub reason: String,
    /// The store already holds one of the batch's (tile, seq): another writer, or an earlier
    /// attempt of ours that committed without our knowing. The batch's tiles must be read back
    /// before they take placements again.
    pub conflict: bool,
    /// Tiles of the batch that moved to another shard at a newer ring epoch (their fences are
    /// raised): nothing was written; the batch's other placements can be written again.
    pub fenced: Vec<TileId>,
}

impl From<&str> for WriteFailure {
    fn from(reason: &str) -> Self {
        Self {
            reason: reason.to_owned(),
            conflict: false,
            fenced: Vec::new(),
        }
    }
}

/// What the shard asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Append these events durably, as a shard of ring `epoch` (the store refuses tiles whose
    /// fences are newer), then answer `EventsWritten`.
    WriteEvents {
        /// The events.
        events: Vec<NewEvent>,
        /// The shard's ring epoch.
        epoch: u64,
    },
    /// Raise the fences of these tiles to `epoch` and load them from the store, then answer
    /// `TilesAcquired`.
    AcquireTiles {
        /// The epoch at which they were gained.
        epoch: u64,
        /// The tiles.
        tiles: Vec<TileId>,
    },
    /// Save these tile states as covering every event up to `through_event_id`, then answer
    /// `CheckpointWritten`.
    WriteCheckpoint {
        /// Tiles changed since the last checkpoint.
        tiles: Vec<TileSnapshot>,
        /// The last event they reflect.
        through_event_id: i64,
    },
    /// Answer a placement.
    Reply {
        /// The placement's token.
        token: Token,
        /// The answer.
        result: Result<Placed, PlaceError>,
    },
    /// Read these tiles back from the store, then answer `TilesReloaded`.
    ReloadTiles(Vec<TileId>),
    /// Send a message to a subscriber.
    Send {
        /// To whom.
        subscriber: SubscriberId,
        /// What.
        message: ShardMessage,
    },
}

/// When to write a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// After this many events since the last checkpoint...
    pub max_events: u64,
    /// ...or this long since it (with at least one event).
    pub max_interval_ms: i64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            max_events: 200_000,
            max_interval_ms: 30_000,
        }
    }
}

struct Pending {
    token: Token,
    /// The shard's clock (the last tick) when the placement arrived.
    queued_at_ms: i64,
    request: PlaceRequest,
    tile: TileId,
    change: PixelChange,
}

enum Job {
    Events(Vec<Pending>),
    Checkpoint { tiles: Vec<TileId> },
}

/// The shard state machine.
pub struct ShardCore {
    geometry: CanvasGeometry,
    color_count: usize,
    tiles: Vec<Tile>,
    /// Tiles this shard owns; `None` means all of them (`place serve`).
    owned: Option<HashSet<TileId>>,
    pending: VecDeque<Pending>,
    in_flight: Option<Job>,
    windows: HashMap<TileId, TileBatch>,
    subscribers: HashMap<TileId, HashSet<SubscriberId>>,
    subscriptions: HashMap<SubscriberId, HashSet<TileId>>,
    last_event_id: i64,
    dirty: HashSet<TileId>,
    events_since_checkpoint: u64,
    last_checkpoint_ms: Option<i64>,
    checkpoint_policy: CheckpointPolicy,
    checkpoint_requested: bool,
    /// Tiles being read back after a conflict: their placements are refused meanwhile.
    reloading: HashSet<TileId>,
    /// The ring epoch of [`ShardCore::owned`].
    epoch: u64,
    /// Tiles gained at a ring change and still being loaded, with the epoch of their load:
    /// placements and subscriptions wait for the load (placements at most `MAX_QUEUE_WAIT_MS`).
    acquiring: HashMap<TileId, u64>,
    /// Placements made durable since the shard started.
    placed_total: u64,
    /// Placements of acquiring tiles, queued once the tile is loaded.
    parked: HashMap<TileId, Vec<Pending>>,
    /// Subscriptions to tiles not owned or still acquiring, answered once the tile is owned and
    /// loaded; dropped when their subscriber unsubscribes or goes (each is one of its streams, so
    /// they are bounded by the streams the edges hold open).
    deferred: HashMap<TileId, Vec<(SubscriberId, Option<u64>)>>,
    /// The time of the last tick (epoch ms).
    now_ms: i64,
    /// No write starts until `ReleaseWrites`.
    holding: bool,
}

impl ShardCore {
    /// A shard holding `tiles` (in `geometry.tile_index` order) whose log ends at `last_event_id`.
    pub fn new(
        geometry: CanvasGeometry,
        color_count: usize,
        tiles: Vec<Tile>,
        last_event_id: i64,
        checkpoint_policy: CheckpointPolicy,
    ) -> Self {
        assert_eq!(
            tiles.len(),
            geometry.tile_count(),
            "one tile per tile of the canvas"
        );
        Self {
            geometry,
            color_count,
            tiles,
            owned: None,
            pending: VecDeque::new(),
            in_flight: None,
            windows: HashMap::new(),
            subscribers: HashMap::new(),
            subscriptions: HashMap::new(),
            last_event_id,
            dirty: HashSet::new(),
            events_since_checkpoint: 0,
            last_checkpoint_ms: None,
            now_ms: 0,
            holding: false,
            checkpoint_policy,
            checkpoint_requested: false,
            reloading: HashSet::new(),
            epoch: 0,
            acquiring: HashMap::new(),
            deferred: HashMap::new(),
            parked: HashMap::new(),
            placed_total: 0,
        }
    }

    /// Sets the tiles this shard starts with (`None`: all), already loaded, at ring `epoch`.
    /// Placements for other tiles are refused with [`PlaceError::NotOwner`]. Later changes come
    /// as [`Input::Ownership`].
    pub fn set_owned(&mut self, epoch: u64, owned: Option<HashSet<TileId>>) {
        self.epoch = epoch;
        self.owned = owned;
    }

    /// The canvas as the shard knows it.
    pub fn geometry(&self) -> CanvasGeometry {
        self.geometry
    }

    /// The canvas grew to `geometry`: its new tiles exist from now on, empty. In `place serve`
    /// the shard owns them at once; in the cluster it owns those the ring gives it with the
    /// next [`Input::Ownership`]. A geometry that is not a growth is ignored. The tile table is
    /// laid out again for the new width: tiles keep their ids, only their place in the table
    /// moves.
    pub fn grow(&mut self, geometry: CanvasGeometry) {
        if geometry == self.geometry || !geometry.covers(self.geometry) {
            return;
        }
        let mut old = std::mem::take(&mut self.tiles).into_iter();
        let mut tiles: Vec<Tile> = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
        for tile in self.geometry.tiles() {
            // The old table holds one tile per tile of the old canvas, in this order.
            if let Some(state) = old.next() {
                tiles[geometry.tile_index(tile)] = state;
            }
        }
        tracing::info!(
            width = geometry.width(),
            height = geometry.height(),
            "canvas grew"
        );
        self.tiles = tiles;
        self.geometry = geometry;
    }

    /// The ring epoch the shard works at.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many owned tiles are still being loaded after a ring change.
    pub fn acquiring(&self) -> usize {
        self.acquiring.len()
    }

    /// Placements made durable since the shard started.
    pub fn placed_total(&self) -> u64 {
        self.placed_total
    }

    /// How many tiles the shard owns (`None`: all of them).
    pub fn owned_count(&self) -> Option<usize> {
        self.owned.as_ref().map(HashSet::len)
    }

    fn owns(&self, tile: TileId) -> bool {
        self.owned
            .as_ref()
            .is_none_or(|owned| owned.contains(&tile))
    }

    /// The current state of a tile.
    pub fn tile(&self, tile: TileId) -> Option<&Tile> {
        self.geometry
            .contains_tile(tile)
            .then(|| &self.tiles[self.geometry.tile_index(tile)])
    }

    /// The current state of every tile this shard owns.
    pub fn snapshot_all(&self) -> Vec<TileSnapshot> {
        self.geometry
            .tiles()
            .filter_map(|tile| self.snapshot(tile))
            .collect()
    }

    /// The current state of a tile this shard owns.
    pub fn snapshot(&self, tile: TileId) -> Option<TileSnapshot> {
        if !self.owns(tile) || self.acquiring.contains_key(&tile) {
            return None;
        }
        let t = self.tile(tile)?;
        Some(TileSnapshot {
            tile,
            seq: t.seq(),
            pixels: Box::new(*t.pixels()),
        })
    }

    /// Starts no write (of events or a checkpoint) until [`Input::ReleaseWrites`].
    pub fn hold_writes(&mut self) {
        self.holding = true;
    }

    /// Whether nothing is pending or being written.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_none()
    }

    /// Asks for a checkpoint at the next opportunity, due or not (used on shutdown).
    pub fn request_checkpoint(&mut self) {
        self.checkpoint_requested = true;
    }

    /// Whether a requested checkpoint is still to be written.
    pub fn checkpoint_pending(&self) -> bool {
        self.checkpoint_requested || matches!(self.in_flight, Some(Job::Checkpoint { .. }))
    }

    /// Tells the shard the time (epoch ms) between ticks, so that what it stamps (a batch's
    /// `applied_at_ms`) is not a batch window late. The clock never goes back.
    pub fn set_clock(&mut self, now_ms: i64) {
        if self.now_ms == 0 {
            // The first time it is told: what arrived before arrived now.
            for p in &mut self.pending {
                p.queued_at_ms = now_ms;
            }
        }
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Placements waiting: queued for the next write, or held for a tile being loaded.
    pub fn queue_depth(&self) -> usize {
        self.pending.len() + self.parked.values().map(Vec::len).sum::<usize>()
    }

    /// Handles one input and returns what to do.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Place { token, request } => self.on_place(token, request, &mut out),
            Input::Subscribe {
                subscriber,
                tile,
                known_seq,
            } => self.on_subscribe(subscriber, tile, known_seq, &mut out),
            Input::Unsubscribe { subscriber, tile } => self.on_unsubscribe(subscriber, tile),
            Input::SubscriberGone(subscriber) => {
                for tile in self.subscriptions.remove(&subscriber).unwrap_or_default() {
                    self.remove_subscriber(tile, subscriber);
                }
                for waiting in self.deferred.values_mut() {
                    waiting.retain(|(s, _)| *s != subscriber);
                }
            }
            Input::Ownership { epoch, owned } => self.on_ownership(epoch, owned, &mut out),
            Input::TilesAcquired { epoch, tiles } => self.on_tiles_acquired(epoch, tiles, &mut out),
            Input::EventsWritten(result) => self.on_events_written(result, &mut out),
            Input::TilesReloaded(tiles) => self.on_tiles_reloaded(tiles, &mut out),
            Input::CheckpointWritten(result) => {
                if let Some(Job::Checkpoint { tiles }) = self.in_flight.take() {
                    if let Err(reason) = result {
                        tracing::warn!(%reason, "checkpoint failed; its tiles stay dirty for the next one");
                        self.dirty.extend(tiles);
                    }
                }
            }
            Input::Tick { now_ms } => {
                self.set_clock(now_ms);
                self.flush_windows(&mut out);
                self.maybe_checkpoint(now_ms);
            }
            Input::ReleaseWrites => self.holding = false,
        }
        self.start_write(&mut out);
        out
    }

    fn on_place(&mut self, token: Token, request: PlaceRequest, out: &mut Vec<Output>) {
        let refuse = |error| Output::Reply {
            token,
            result: Err(error),
        };
        let Some((tile, lx, ly)) = self.geometry.locate(request.x, request.y) else {
            return out.push(refuse(PlaceError::InvalidCoords));
        };
        if usize::from(request.color) >= self.color_count {
            return out.push(refuse(PlaceError::InvalidColor));
        }
        if !self.owns(tile) {
            return out.push(refuse(PlaceError::NotOwner));
        }
        if self.pending.len() >= MAX_PENDING || self.reloading.contains(&tile) {
            return out.push(refuse(PlaceError::Unavailable));
        }
        let change = PixelChange {
            lx,
            ly,
            color: request.color,
        };
        let placement = Pending {
            token,
            queued_at_ms: self.now_ms,
            request,
            tile,
            change,
        };
        if self.acquiring.contains_key(&tile) {
            // Held until the tile is loaded, then queued.
            return self.parked.entry(tile).or_default().push(placement);
        }
        self.pending.push_back(placement);
    }

    fn start_write(&mut self, out: &mut Vec<Output>) {
        if self.in_flight.is_some() || self.holding {
            return;
        }
        if self.checkpoint_requested {
            self.checkpoint_requested = false;
            return self.start_checkpoint(out);
        }
        while self
            .pending
            .front()
            .is_some_and(|p| self.now_ms - p.queued_at_ms > MAX_QUEUE_WAIT_MS)
        {
            let stale = self.pending.pop_front().expect("front exists");
            out.push(Output::Reply {
                token: stale.token,
                result: Err(PlaceError::Unavailable),
            });
        }
        if self.pending.is_empty() {
            return;
        }
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<Pending> = self.pending.drain(..take).collect();
        let mut next_seq: HashMap<TileId, u64> = HashMap::new();
        let events = batch
            .iter()
            .map(|p| {
                let seq = next_seq
                    .entry(p.tile)
                    .or_insert_with(|| self.tiles[self.geometry.tile_index(p.tile)].seq());
                *seq += 1;
                NewEvent {
                    x: p.request.x,
                    y: p.request.y,
                    color: p.request.color,
                    user_id: p.request.user_id,
                    placed_at: p.request.placed_at,
                    tile_seq: *seq,
                    action_id: p.request.action_id,
                }
            })
            .collect();
        self.in_flight = Some(Job::Events(batch));
        out.push(Output::WriteEvents {
            events,
            epoch: self.epoch,
        });
    }

    fn on_events_written(&mut self, result: Result<i64, WriteFailure>, out: &mut Vec<Output>) {
        let Some(Job::Events(batch)) = self.in_flight.take() else {
            tracing::error!("events written with no events job in flight");
            return;
        };
        match result {
            Ok(last_event_id) => {
                self.last_event_id = last_event_id;
                self.events_since_checkpoint += batch.len() as u64;
                self.placed_total += batch.len() as u64;
                for p in batch {
                    let index = self.geometry.tile_index(p.tile);
                    let seq = self.tiles[index].apply(p.change);
                    self.dirty.insert(p.tile);
                    let window = self.windows.entry(p.tile).or_insert_with(|| TileBatch {
                        tile: p.tile,
                        first_seq: seq,
                        changes: Vec::new(),
                        applied_at_ms: self.now_ms,
                    });
                    window.changes.push(p.change);
                    out.push(Output::Reply {
                        token: p.token,
                        result: Ok(Placed { seq }),
                    });
                }
            }
            Err(failure) if !failure.fenced.is_empty() => {
                tracing::warn!(tiles = ?failure.fenced, "tiles moved to another shard; their placements are refused as not ours, the others written again");
                let fenced: HashSet<TileId> = failure.fenced.iter().copied().collect();
                let (refused, retried): (Vec<Pending>, Vec<Pending>) =
                    batch.into_iter().partition(|p| fenced.contains(&p.tile));
                for p in retried.into_iter().rev() {
                    self.pending.push_front(p);
                }
                out.extend(refused.into_iter().map(|p| Output::Reply {
                    token: p.token,
                    result: Err(PlaceError::NotOwner),
                }));
                if let Some(owned) = &self.owned {
                    let kept = owned.difference(&fenced).copied().collect();
                    self.lose_tiles(&fenced, out);
                    self.owned = Some(kept);
                }
            }
            Err(failure) => {
                tracing::warn!(reason = %failure.reason, conflict = failure.conflict, placements = batch.len(), "event write failed; placements refused");
                if failure.conflict {
                    let mut tiles: Vec<TileId> = batch.iter().map(|p| p.tile).collect();
                    tiles.sort_unstable();
                    tiles.dedup();
                    self.reloading.extend(tiles.iter().copied());
                    // Placements of those tiles still queued would conflict too.
                    let (refused, kept): (Vec<Pending>, Vec<Pending>) = self
                        .pending
                        .drain(..)
                        .partition(|p| self.reloading.contains(&p.tile));
                    self.pending = kept.into();
                    out.extend(refused.into_iter().map(|p| Output::Reply {
                        token: p.token,
                        result: Err(PlaceError::Unavailable),
                    }));
                    out.push(Output::ReloadTiles(tiles));
                }
                out.extend(batch.into_iter().map(|p| Output::Reply {
                    token: p.token,
                    result: Err(PlaceError::Unavailable),
                }));
            }
        }
    }

    fn on_tiles_reloaded(&mut self, tiles: Vec<(TileId, Tile)>, out: &mut Vec<Output>) {
        for (tile, state) in tiles {
            if !self.geometry.contains_tile(tile) {
                continue;
            }
            tracing::info!(%tile, seq = state.seq(), "tile read back from the store");
            self.reloading.remove(&tile);
            self.windows.remove(&tile);
            let snapshot = Arc::new(TileSnapshot {
                tile,
                seq: state.seq(),
                pixels: Box::new(*state.pixels()),
            });
            self.tiles[self.geometry.tile_index(tile)] = state;
            // Subscribers start over from the stored state.
            for &subscriber in self.subscribers.get(&tile).into_iter().flatten() {
                out.push(Output::Send {
                    subscriber,
                    message: ShardMessage::Snapshot(Arc::clone(&snapshot)),
                });
            }
        }
    }

    /// A ring change: refuses what is queued for the tiles lost, starts acquiring those gained.
    fn on_ownership(&mut self, epoch: u64, owned: Option<HashSet<TileId>>, out: &mut Vec<Output>) {
        if epoch < self.epoch {
            return;
        }
        let all = || self.geometry.tiles().collect::<HashSet<TileId>>();
        let before = self.owned.clone().unwrap_or_else(all);
        let after = owned.clone().unwrap_or_else(all);
        let lost: HashSet<TileId> = before.difference(&after).copied().collect();
        let mut gained: Vec<TileId> = after.difference(&before).copied().collect();
        gained.sort_unstable();
        self.epoch = epoch;
        self.owned = owned;
        if !lost.is_empty() {
            tracing::info!(epoch, tiles = lost.len(), "tiles lost to other shards");
            self.lose_tiles(&lost, out);
        }
        if !gained.is_empty() {
            tracing::info!(
                epoch,
                tiles = gained.len(),
                "acquiring tiles from other shards"
            );
            for &tile in &gained {
                self.acquiring.insert(tile, epoch);
            }
            out.push(Output::AcquireTiles {
                epoch,
                tiles: gained,
            });
        }
    }

    /// Stops serving tiles: their queued placements are refused as not ours (the edge routes
    /// them again), their last window goes out, their subscribers are dropped (the edges'
    /// streams of them end with the ring change).
    fn lose_tiles(&mut self, lost: &HashSet<TileId>, out: &mut Vec<Output>) {
        let (refused, kept): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| lost.contains(&p.tile));
        self.pending = kept.into();
        out.extend(refused.into_iter().map(|p| Output::Reply {
            token: p.token,
            result: Err(PlaceError::NotOwner),
        }));
        for &tile in lost {
            self.flush_window(tile, out);
            self.acquiring.remove(&tile);
            out.extend(
                self.parked
                    .remove(&tile)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| Output::Reply {
                        token: p.token,
                        result: Err(PlaceError::NotOwner),
                    }),
            );
            for subscriber in self.subscribers.remove(&tile).unwrap_or_default() {
                if let Some(tiles) = self.subscriptions.get_mut(&subscriber) {
                    tiles.remove(&tile);
                }
            }
        }
    }

    /// Tiles gained at a ring change are loaded: they serve from now on, and the subscriptions
    /// that waited for them are answered. A load for an older acquisition is ignored.
    fn on_tiles_acquired(&mut self, epoch: u64, tiles: Vec<(TileId, Tile)>, out: &mut Vec<Output>) {
        for (tile, state) in tiles {
            if self.acquiring.get(&tile) != Some(&epoch) {
                continue;
            }
            self.acquiring.remove(&tile);
            self.windows.remove(&tile);
            self.dirty.remove(&tile);
            self.tiles[self.geometry.tile_index(tile)] = state;
            for (subscriber, known_seq) in self.deferred.remove(&tile).unwrap_or_default() {
                self.on_subscribe(subscriber, tile, known_seq, out);
            }
            // Their wait counts from their arrival: held past `MAX_QUEUE_WAIT_MS` (a slow load),
            // they are refused unwritten like any placement queued that long.
            self.pending
                .extend(self.parked.remove(&tile).unwrap_or_default());
        }
        if self.acquiring.is_empty() {
            tracing::info!(epoch, "every tile gained is loaded");
        }
    }

    fn on_subscribe(
        &mut self,
        subscriber: SubscriberId,
        tile: TileId,
        known_seq: Option<u64>,
        out: &mut Vec<Output>,
    ) {
        if !self.geometry.contains_tile(tile) {
            return;
        }
        // A tile this shard does not own (yet: the edge may be on a newer ring than this shard),
        // or is still loading, has no copy worth sending: its copy here is empty or stale, and a
        // watcher may already hold a newer seq from the previous owner. The subscription waits
        // until the tile is owned and loaded, or until its stream ends (the edge resubscribes
        // elsewhere when it moves to a ring that gives the tile to another shard).
        if !self.owns(tile) || self.acquiring.contains_key(&tile) {
            let waiting = self.deferred.entry(tile).or_default();
            waiting.retain(|(s, _)| *s != subscriber);
            waiting.push((subscriber, known_seq));
            return;
        }
        // The reply covers whatever the tile's window holds: send the window to the other
        // subscribers first (not to this one, even when it re-subscribes), so that the next batch
        // this subscriber gets follows on from the reply.
        self.remove_subscriber(tile, subscriber);
        self.flush_window(tile, out);
        let current = &self.tiles[self.geometry.tile_index(tile)];
        let reply = match known_seq.map(|seq| current.since(seq)) {
            Some(Catchup::Events { first_seq, changes }) => {
                ShardMessage::Batch(Arc::new(TileBatch {
                    tile,
                    first_seq,
                    changes,
                    applied_at_ms: 0,
                }))
            }
            Some(Catchup::Snapshot) | None => ShardMessage::Snapshot(Arc::new(TileSnapshot {
                tile,
                seq: current.seq(),
                pixels: Box::new(*current.pixels()),
            })),
        };
        self.subscribers.entry(tile).or_default().insert(subscriber);
        self.subscriptions
            .entry(subscriber)
            .or_default()
            .insert(tile);
        out.push(Output::Send {
            subscriber,
            message: reply,
        });
    }

    fn on_unsubscribe(&mut self, subscriber: SubscriberId, tile: TileId) {
        if let Some(waiting) = self.deferred.get_mut(&tile) {
            waiting.retain(|(s, _)| *s != subscriber);
        }
        if let Some(tiles) = self.subscriptions.get_mut(&subscriber) {
            tiles.remove(&tile);
        }
        self.remove_subscriber(tile, subscriber);
    }

    fn remove_subscriber(&mut self, tile: TileId, subscriber: SubscriberId) {
        if let Some(subs) = self.subscribers.get_mut(&tile) {
            subs.remove(&subscriber);
            if subs.is_empty() {
                self.subscribers.remove(&tile);
            }
        }
    }

    fn flush_windows(&mut self, out: &mut Vec<Output>) {
        let tiles: Vec<TileId> = self.windows.keys().copied().collect();
        for tile in tiles {
            self.flush_window(tile, out);
        }
    }

    fn flush_window(&mut self, tile: TileId, out: &mut Vec<Output>) {
        let Some(batch) = self.windows.remove(&tile) else {
            return;
        };
        let Some(subs) = self.subscribers.get(&tile) else {
            return;
        };
        let batch = Arc::new(batch);
        out.extend(subs.iter().map(|&subscriber| Output::Send {
            subscriber,
            message: ShardMessage::Batch(Arc::clone(&batch)),
        }));
    }

    fn maybe_checkpoint(&mut self, now_ms: i64) {
        let last = *self.last_checkpoint_ms.get_or_insert(now_ms);
        let due = self.events_since_checkpoint >= self.checkpoint_policy.max_events
            || (self.events_since_checkpoint > 0
                && now_ms - last >= self.checkpoint_policy.max_interval_ms);
        if due && !self.dirty.is_empty() {
            self.checkpoint_requested = true;
            self.last_checkpoint_ms = Some(now_ms);
        }
    }

    fn start_checkpoint(&mut self, out: &mut Vec<Output>) {
        let dirty: Vec<TileId> = self.dirty.drain().collect();
        let tiles = dirty
            .iter()
            .map(|&tile| {
                let t = &self.tiles[self.geometry.tile_index(tile)];
                TileSnapshot {
                    tile,
                    seq: t.seq(),
                    pixels: Box::new(*t.pixels()),
                }
            })
            .collect();
        self.events_since_checkpoint = 0;
        self.in_flight = Some(Job::Checkpoint { tiles: dirty });
        out.push(Output::WriteCheckpoint {
            tiles,
            through_event_id: self.last_event_id,
        });
    }
}

#[cfg(test)]
mod tests;
