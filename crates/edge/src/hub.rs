//! The tile hub: an edge's copy of every tile its clients watch, and the fan-out to them.
//!
//! The hub subscribes to a tile at its shard once, however many clients watch it, and
//! unsubscribes when the last one leaves. It keeps a mirror of each such tile (pixels, seq and
//! recent history) built from the shard's snapshot and batches, so a client joining a watched
//! tile, or coming back with the seq it holds, is answered from the mirror without asking the
//! shard. Each batch from the shard is applied to the mirror and sent to the tile's clients as one
//! shared frame.
//!
//! Ordering: every change to the hub's tables happens under one lock, and the commands to the
//! shard are queued under that same lock, so the shard sees subscribe and unsubscribe in the
//! order the hub decided them.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use place_cluster::wire::TileFrame;
use place_cluster::ClusterClient;
use place_protocol::ServerMessage;
use place_shard::{ShardHandle, ShardMessage, SubscriberId, TileBatch, TileSnapshot};
use place_tiles::{Catchup, PixelChange, Tile, TileId};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::frame::SharedFrame;
use crate::outbox::{Enqueued, Outbound};

/// Identifies a client connection.
pub type ConnId = u64;

enum ShardCommand {
    Subscribe(TileId, Option<u64>),
    Unsubscribe(TileId),
}

struct Waiting {
    conn: ConnId,
    known: Option<u64>,
    outbound: Outbound,
    since: Instant,
}

/// A client holding a later seq than the mirror waits this long for the mirror to catch up;
/// then it gets the mirror's snapshot (its seq was not one this canvas ever had).
const MAX_WAIT_FOR_MIRROR: Duration = Duration::from_secs(1);

/// A tile's changes held back while its watchers are behind, sent as one frame when `due`.
struct Held {
    first_seq: u64,
    changes: Vec<PixelChange>,
    /// When the first of them was applied at the shard (epoch ms; 0: unknown).
    applied_at_ms: i64,
    due: Instant,
}

/// The narrowest widened window: a tile whose watchers fall behind holds its batches at least
/// this long (on top of the shard's batch window)...
const MIN_WIDENED: Duration = Duration::from_millis(20);
/// ...and at most this long: with the shard's window and the writes, p99 stays under 250 ms.
pub const MAX_WIDENED: Duration = Duration::from_millis(100);
/// A tile's watchers are behind when more than one in this many of them have not yet written
/// the tile's previous frame when the next batch arrives.
const BEHIND_ONE_IN: usize = 8;
/// How often held batches are looked at.
const HELD_TICK: Duration = Duration::from_millis(5);

#[derive(Default)]
struct TileEntry {
    /// Subscribed at the shard. An entry that is not is dormant: nobody watches it, but its
    /// mirror is kept so a returning client can be answered with just the changes it missed.
    watched: bool,
    /// `None` until the shard's first answer.
    mirror: Option<Tile>,
    /// Clients waiting for the mirror: none yet, or the client holds a later seq than the mirror
    /// (the mirror is catching up). With the seq they hold and since when they wait.
    waiting: Vec<Waiting>,
    clients: HashMap<ConnId, Outbound>,
    /// The encoded snapshot of the mirror at its current seq, made when first needed.
    snapshot: Option<Arc<SharedFrame>>,
    /// How long this tile's batches are held and merged into one frame: zero while its
    /// watchers keep up, widened (up to [`MAX_WIDENED`]) while they fall behind, so each socket
    /// gets fewer, larger frames instead of a growing queue.
    widened: Duration,
    /// Changes held back (already applied to the mirror), sent before anything else goes to
    /// the tile's clients or a client joins.
    held: Option<Held>,
    /// The last frame of changes sent to the clients: those still holding it have not written it.
    last_frame: Weak<SharedFrame>,
}

impl TileEntry {
    /// Widens the window while the watchers are behind, narrows it back as they catch up.
    fn pace(&mut self) {
        let unwritten = self.last_frame.strong_count();
        if unwritten > 0 && unwritten > self.clients.len() / BEHIND_ONE_IN {
            self.widened = (self.widened * 2).clamp(MIN_WIDENED, MAX_WIDENED);
        } else if !self.widened.is_zero() {
            self.widened /= 2;
            if self.widened < MIN_WIDENED {
                self.widened = Duration::ZERO;
            }
        }
    }

    /// Queues `frame` (a batch of changes) for every client; those first in line to write it
    /// are added to `writes`, for [`FanoutWriters::write_all`] once the hub's lock is let go.
    fn send_changes(&mut self, frame: Arc<SharedFrame>, writes: &mut Vec<Outbound>) {
        self.last_frame = Arc::downgrade(&frame);
        self.clients
            .retain(|_, out| match out.enqueue(Arc::clone(&frame)) {
                Enqueued::Gone => false,
                Enqueued::Queued => true,
                Enqueued::WriteNeeded => {
                    writes.push(out.clone());
                    true
                }
            });
    }

    /// Queues the held changes, if any (see [`TileEntry::send_changes`]).
    fn release_held(&mut self, tile: TileId, writes: &mut Vec<Outbound>) {
        let Some(held) = self.held.take() else {
            return;
        };
        let stamp = if self.clients.is_empty() {
            0
        } else {
            held.applied_at_ms
        };
        let message = ServerMessage::Pixels {
            tile,
            first_seq: held.first_seq,
            changes: held.changes,
        };
        self.send_changes(SharedFrame::stamped(message, stamp), writes);
    }

    fn is_unwatched(&self) -> bool {
        self.waiting.is_empty() && self.clients.is_empty()
    }

    fn is_dormant(&self) -> bool {
        !self.watched && self.mirror.is_some()
    }
}

/// The frame that brings a holder of `known` (or a newcomer, `None`) up to date with `mirror`:
/// the changes it missed (possibly none), or the snapshot, cached in `snapshot` for the next one.
fn catchup_frame(
    tile: TileId,
    mirror: &Tile,
    snapshot: &mut Option<Arc<SharedFrame>>,
    known: Option<u64>,
) -> Arc<SharedFrame> {
    match known.map(|seq| mirror.since(seq)) {
        Some(Catchup::Events { first_seq, changes }) => SharedFrame::new(ServerMessage::Pixels {
            tile,
            first_seq,
            changes,
        }),
        Some(Catchup::Snapshot) | None => Arc::clone(snapshot.get_or_insert_with(|| {
            SharedFrame::new(ServerMessage::Tile {
                tile,
                seq: mirror.seq(),
                pixels: Box::new(*mirror.pixels()),
            })
        })),
    }
}

/// Who writes large fan-outs into their sockets: the edge's own workers (the default), or
/// writer threads of their own (`--fanout-threads N`, a tokio runtime apart from the edge's).
///
/// On the edge's workers a batch for thousands of sockets is cut into tasks both workers share:
/// while the machine keeps up it reaches every socket soonest. Past the knee those tasks queue
/// ahead of placements and acknowledgements on the same workers. On writer threads the fan-out
/// never delays a placement, and one writer, by being one, lets each socket's frames gather for
/// one `writev`. Measured on 2 cores against the edge's workers (`bench/RESULTS.md`, section 15):
/// one writer thread at 13,000 players over 8 hot spots gave p99 broadcast 225 to 296 ms against
/// 306 to 356, p99 ack 0.6x, 15% less CPU per message; but one area watched by 10,000 players
/// (every placement to every socket) p99 89 to 141 ms against 47 to 66, and two writer threads
/// collapsed over hot spots (each socket drained sooner, fewer frames per `writev`). Since the hub
/// drains its backlog (`TileHub::apply_drained`), the edge's workers batch as well: at twice the
/// knee over hot spots one writer thread gave the same tail at 0.86 to 0.88x the CPU (section 16).
pub struct FanoutWriters {
    runtime: Option<tokio::runtime::Runtime>,
}

impl FanoutWriters {
    /// `threads` writer threads of their own write; with 0, the edge's own workers do. Should
    /// the system refuse the threads, the edge's workers write, and the refusal is logged.
    pub fn start(threads: usize) -> Self {
        if threads == 0 {
            return Self { runtime: None };
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("fanout")
            .build()
            .inspect_err(|error| {
                warn!(%error, threads, "cannot start the fan-out threads; the edge's workers write");
            })
            .ok();
        Self { runtime }
    }

    /// Writes the frames queued for `writes` into their sockets, each with a non-blocking
    /// `send`, after the hub's lock is let go (see [`crate::outbox`]). A small fan-out is
    /// written here, by the caller; a large one is cut into tasks of [`WRITES_PER_TASK`]
    /// sockets for the writers, and the caller goes on to the next batch meanwhile. A socket
    /// that gets more frames before its task runs gets them in the same system call: its queue
    /// grows and the task writes all of it (later frames of a socket first in line are only
    /// queued, never written ahead).
    fn write_all(&self, mut writes: Vec<Outbound>) {
        let runtime = match &self.runtime {
            _ if writes.len() <= WRITES_PER_TASK => None,
            Some(writers) => Some(writers.handle().clone()),
            None => tokio::runtime::Handle::try_current().ok(),
        };
        let Some(runtime) = runtime else {
            writes.iter().for_each(Outbound::write);
            return;
        };
        while !writes.is_empty() {
            let chunk = writes.split_off(writes.len().saturating_sub(WRITES_PER_TASK));
            runtime.spawn(async move { chunk.iter().for_each(Outbound::write) });
        }
    }
}

impl Drop for FanoutWriters {
    fn drop(&mut self) {
        // The hub may be dropped on the edge's runtime, where a runtime may not block.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sockets written by the caller at once; a fan-out to more is cut into tasks of this many
/// sockets each for the [`FanoutWriters`].
const WRITES_PER_TASK: usize = 128;

/// Messages from the shard applied at most before the sockets they touched are written.
const MAX_DRAINED: usize = 256;

/// Frames of every tile stream a cluster edge follows, waiting to be applied. When it is full,
/// the streams wait, and a shard that has queued [`place_cluster::shard_server::TILE_STREAM_QUEUE`]
/// messages for one of them resets it (the edge resubscribes from its mirror's seq).
const CLUSTER_FRAMES_QUEUE: usize = 65_536;

/// Dormant mirrors kept at most; beyond this, dormant entries are dropped (their clients then
/// get a snapshot when they return).
const MAX_DORMANT: usize = 4096;

/// The edge's tiles and who watches them.
pub struct TileHub {
    tiles: Mutex<HashMap<TileId, TileEntry>>,
    /// Tiles with held changes (locked after `tiles`, never before).
    held: Mutex<Vec<TileId>>,
    commands: mpsc::UnboundedSender<ShardCommand>,
    writers: FanoutWriters,
}

impl TileHub {
    fn new(writers: FanoutWriters) -> (Arc<Self>, mpsc::UnboundedReceiver<ShardCommand>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Self {
            writers,
            tiles: Mutex::new(HashMap::new()),
            held: Mutex::new(Vec::new()),
            commands,
        });
        tokio::spawn(sweep_waiting(Arc::downgrade(&hub)));
        tokio::spawn(release_held(Arc::downgrade(&hub)));
        (hub, command_rx)
    }

    /// Starts a hub subscribed to the in-process `shard` as `subscriber`, writing large
    /// fan-outs on `writers`.
    pub fn start_local(
        shard: ShardHandle,
        subscriber: SubscriberId,
        writers: FanoutWriters,
    ) -> Arc<Self> {
        let (hub, commands) = Self::new(writers);
        tokio::spawn(run_shard_link(
            Arc::downgrade(&hub),
            shard,
            subscriber,
            commands,
        ));
        hub
    }

    /// Starts a hub that follows each watched tile over its own QUIC stream from the tile's
    /// owner in the cluster, writing large fan-outs on `writers`.
    pub fn start_cluster(client: Arc<ClusterClient>, writers: FanoutWriters) -> Arc<Self> {
        let (hub, commands) = Self::new(writers);
        tokio::spawn(run_cluster_link(Arc::downgrade(&hub), client, commands));
        hub
    }

    /// Subscribes a client to a tile; it holds the tile at `known` if `Some`. The answer (a
    /// snapshot, or the changes after `known`) and every later change go to `outbound`.
    pub fn subscribe(&self, conn: ConnId, outbound: &Outbound, tile: TileId, known: Option<u64>) {
        let mut writes = Vec::new();
        let mut tiles = self.tiles.lock();
        let entry = tiles.entry(tile).or_default();
        if !entry.watched {
            // A dormant mirror is served at once and caught up by the shard's answer, which the
            // hub forwards like any batch: the client still sees every seq once, in order.
            entry.watched = true;
            let known = entry.mirror.as_ref().map(Tile::seq);
            let _ = self.commands.send(ShardCommand::Subscribe(tile, known));
        }
        entry.clients.remove(&conn);
        entry.waiting.retain(|w| w.conn != conn);
        // The answer comes from the mirror, which holds the held changes: they go out first.
        entry.release_held(tile, &mut writes);
        match &entry.mirror {
            Some(mirror) if known.is_none_or(|k| k <= mirror.seq()) => {
                let answer = catchup_frame(tile, mirror, &mut entry.snapshot, known);
                if outbound.enqueue(answer) == Enqueued::WriteNeeded {
                    writes.push(outbound.clone());
                }
                entry.clients.insert(conn, outbound.clone());
            }
            _ => entry.waiting.push(Waiting {
                conn,
                known,
                outbound: outbound.clone(),
                since: Instant::now(),
            }),
        }
        drop(tiles);
        self.writers.write_all(writes);
    }

    /// Unsubscribes a client from tiles.
    pub fn unsubscribe(&self, conn: ConnId, tiles_to_leave: impl IntoIterator<Item = TileId>) {
        let mut tiles = self.tiles.lock();
        for tile in tiles_to_leave {
            let Some(entry) = tiles.get_mut(&tile) else {
                continue;
            };
            entry.clients.remove(&conn);
            entry.waiting.retain(|w| w.conn != conn);
            if entry.is_unwatched() {
                entry.watched = false;
                let _ = self.commands.send(ShardCommand::Unsubscribe(tile));
                if entry.mirror.is_none() {
                    tiles.remove(&tile);
                }
            }
        }
        if tiles.len() > MAX_DORMANT {
            let dormant: Vec<TileId> = tiles
                .iter()
                .filter(|(_, e)| e.is_dormant())
                .map(|(t, _)| *t)
                .collect();
            for tile in dormant
                .iter()
                .take(dormant.len().saturating_sub(MAX_DORMANT))
            {
                tiles.remove(tile);
            }
        }
    }

    /// How many tiles the hub watches, and how many client subscriptions it serves.
    pub fn stats(&self) -> (usize, usize) {
        let tiles = self.tiles.lock();
        let subscriptions = tiles
            .values()
            .map(|e| e.clients.len() + e.waiting.len())
            .sum();
        (tiles.len(), subscriptions)
    }

    /// The hub's copy of a watched tile.
    pub fn mirror(&self, tile: TileId) -> Option<(u64, Box<[u8; place_tiles::TILE_AREA]>)> {
        let tiles = self.tiles.lock();
        let entry = tiles.get(&tile).filter(|e| e.watched)?;
        let mirror = entry.mirror.as_ref()?;
        Some((mirror.seq(), Box::new(*mirror.pixels())))
    }

    #[cfg(test)]
    fn on_snapshot(&self, snapshot: &TileSnapshot) {
        let mut writes = Vec::new();
        self.apply_snapshot(snapshot, &mut writes);
        self.writers.write_all(writes);
    }

    #[cfg(test)]
    fn on_batch(&self, batch: &TileBatch) {
        let mut writes = Vec::new();
        self.apply_batch(batch, &mut writes);
        self.writers.write_all(writes);
    }

    /// A tile's snapshot from its shard: the mirror starts again from it. The sockets to write
    /// are added to `writes`, for the caller to write once the hub's lock is let go.
    fn apply_snapshot(&self, snapshot: &TileSnapshot, writes: &mut Vec<Outbound>) {
        let mut tiles = self.tiles.lock();
        let Some(entry) = tiles.get_mut(&snapshot.tile).filter(|e| e.watched) else {
            return;
        };
        let mirror = Tile::from_pixels(snapshot.seq, snapshot.pixels.clone());
        entry.snapshot = None;
        entry.release_held(snapshot.tile, writes);
        if !entry.clients.is_empty() {
            // A resync (after a gap or a re-attach): everyone gets the new state.
            let frame = catchup_frame(snapshot.tile, &mirror, &mut entry.snapshot, None);
            entry.send_changes(frame, writes);
        }
        entry.mirror = Some(mirror);
        Self::serve_waiting(snapshot.tile, entry, writes);
    }

    /// A batch of a tile's changes from its shard: applied to the mirror, and sent (or held).
    /// The sockets to write are added to `writes`, as in [`TileHub::apply_snapshot`].
    fn apply_batch(&self, batch: &TileBatch, writes: &mut Vec<Outbound>) {
        let mut tiles = self.tiles.lock();
        let Some(entry) = tiles.get_mut(&batch.tile).filter(|e| e.watched) else {
            return;
        };
        let Some(mirror) = entry.mirror.as_mut() else {
            // Waiting for the snapshot, which will include this batch.
            return;
        };
        match mirror.apply_batch(batch.first_seq, &batch.changes) {
            Ok(0) => {}
            Ok(applied) => {
                entry.snapshot = None;
                let skip = batch.changes.len() - applied;
                let first_seq = batch.first_seq + skip as u64;
                let changes = &batch.changes[skip..];
                if let Some(held) = &mut entry.held {
                    held.changes.extend_from_slice(changes);
                } else {
                    entry.pace();
                    if entry.widened.is_zero() {
                        // Timed only when someone watches: the fan-out is what is measured.
                        let stamp = if entry.clients.is_empty() {
                            0
                        } else {
                            batch.applied_at_ms
                        };
                        let message = ServerMessage::Pixels {
                            tile: batch.tile,
                            first_seq,
                            changes: changes.to_vec(),
                        };
                        entry.send_changes(SharedFrame::stamped(message, stamp), writes);
                    } else {
                        metrics::counter!(crate::telemetry::FANOUT_HELD_WINDOWS).increment(1);
                        entry.held = Some(Held {
                            first_seq,
                            changes: changes.to_vec(),
                            applied_at_ms: batch.applied_at_ms,
                            due: Instant::now() + entry.widened,
                        });
                        self.held.lock().push(batch.tile);
                    }
                }
            }
            Err(gap) => {
                let seq = mirror.seq();
                entry.release_held(batch.tile, writes);
                warn!(tile = %batch.tile, %gap, "gap in a tile's batches; resubscribing from the mirror's seq");
                let _ = self
                    .commands
                    .send(ShardCommand::Subscribe(batch.tile, Some(seq)));
            }
        }
        Self::serve_waiting(batch.tile, entry, writes);
    }

    /// Applies `first` and every message already waiting behind it (up to [`MAX_DRAINED`]),
    /// then writes once into each socket they touched. While the hub keeps up, that is one
    /// message; once it falls behind, a socket's frames of every drained window go out in one
    /// `writev` and a large set of sockets is shared among the writers, so the cost of a
    /// delivery falls as the backlog grows instead of the backlog growing for seconds.
    fn apply_drained(&self, first: ShardMessage, messages: &mut mpsc::Receiver<ShardMessage>) {
        let mut writes = Vec::new();
        let mut next = Some(first);
        let mut drained = 0;
        while let Some(message) = next.take() {
            match message {
                ShardMessage::Snapshot(snapshot) => self.apply_snapshot(&snapshot, &mut writes),
                ShardMessage::Batch(batch) => self.apply_batch(&batch, &mut writes),
            }
            drained += 1;
            if drained < MAX_DRAINED {
                next = messages.try_recv().ok();
            }
        }
        self.writers.write_all(writes);
    }

    /// Answers the waiting clients the mirror can answer now.
    fn serve_waiting(tile: TileId, entry: &mut TileEntry, writes: &mut Vec<Outbound>) {
        if entry.waiting.is_empty() {
            return;
        }
        // The answers come from the mirror, which holds the held changes: they go out first.
        entry.release_held(tile, writes);
        let Some(mirror) = &entry.mirror else {
            return;
        };
        for w in std::mem::take(&mut entry.waiting) {
            let caught_up = w.known.is_none_or(|k| k <= mirror.seq());
            if !caught_up && w.since.elapsed() < MAX_WAIT_FOR_MIRROR {
                entry.waiting.push(w);
                continue;
            }
            let known = w.known.filter(|_| caught_up);
            match w
                .outbound
                .enqueue(catchup_frame(tile, mirror, &mut entry.snapshot, known))
            {
                Enqueued::Gone => {}
                Enqueued::Queued => {
                    entry.clients.insert(w.conn, w.outbound);
                }
                Enqueued::WriteNeeded => {
                    writes.push(w.outbound.clone());
                    entry.clients.insert(w.conn, w.outbound);
                }
            }
        }
    }

    /// The seq of the hub's mirror of a watched tile.
    fn mirror_seq(&self, tile: TileId) -> Option<u64> {
        let tiles = self.tiles.lock();
        tiles
            .get(&tile)
            .filter(|e| e.watched)?
            .mirror
            .as_ref()
            .map(Tile::seq)
    }

    /// Sends the held changes whose widened window has closed.
    fn release_due(&self) {
        if self.held.lock().is_empty() {
            return;
        }
        let mut writes = Vec::new();
        let mut tiles = self.tiles.lock();
        let mut held = self.held.lock();
        let now = Instant::now();
        held.retain(|tile| {
            let Some(entry) = tiles.get_mut(tile) else {
                return false;
            };
            match &entry.held {
                Some(h) if h.due <= now => {
                    entry.release_held(*tile, &mut writes);
                    false
                }
                Some(_) => true,
                None => false,
            }
        });
        drop((held, tiles));
        self.writers.write_all(writes);
    }

    /// Serves clients that waited too long for a mirror to reach their seq.
    fn serve_overdue(&self) {
        let mut writes = Vec::new();
        let mut tiles = self.tiles.lock();
        for (tile, entry) in tiles.iter_mut().filter(|(_, e)| !e.waiting.is_empty()) {
            Self::serve_waiting(*tile, entry, &mut writes);
        }
        drop(tiles);
        self.writers.write_all(writes);
    }

    /// After the link to the shard was re-established: resubscribe every watched tile with the
    /// seq its mirror holds.
    fn resubscribe_all(&self) {
        let tiles = self.tiles.lock();
        for (tile, entry) in tiles.iter().filter(|(_, e)| e.watched) {
            let known = entry.mirror.as_ref().map(Tile::seq);
            let _ = self.commands.send(ShardCommand::Subscribe(*tile, known));
        }
    }
}

/// Carries the hub's commands to the shard in order, and the shard's messages to the hub;
/// re-attaches when the shard dropped the hub for being slow.
async fn run_shard_link(
    hub: Weak<TileHub>,
    shard: ShardHandle,
    subscriber: SubscriberId,
    mut commands: mpsc::UnboundedReceiver<ShardCommand>,
) {
    loop {
        let Some(mut messages) = shard.attach(subscriber).await else {
            debug!("shard is gone; tile hub stops");
            return;
        };
        if let Some(hub) = hub.upgrade() {
            hub.resubscribe_all();
        }
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(ShardCommand::Subscribe(tile, known)) => { shard.subscribe(subscriber, tile, known).await; }
                    Some(ShardCommand::Unsubscribe(tile)) => shard.unsubscribe(subscriber, tile).await,
                    None => {
                        shard.detach(subscriber).await;
                        return;
                    }
                },
                message = messages.recv() => {
                    let Some(hub) = hub.upgrade() else { return };
                    let Some(message) = message else {
                        warn!("the shard dropped this edge's subscription (too slow, or stopping); re-attaching");
                        break;
                    };
                    hub.apply_drained(message, &mut messages);
                }
            }
        }
    }
}

/// Serves, now and then, clients that waited too long for a mirror.
async fn sweep_waiting(hub: Weak<TileHub>) {
    let mut every = tokio::time::interval(MAX_WAIT_FOR_MIRROR / 2);
    loop {
        every.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        hub.serve_overdue();
    }
}

/// Sends held changes when their window closes, for as long as the hub lives.
async fn release_held(hub: Weak<TileHub>) {
    let mut every = tokio::time::interval(HELD_TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        hub.release_due();
    }
}

/// The cluster link: one task per watched tile, each following the tile's stream from its owner
/// and, when the stream breaks (the shard died, restarted, or dropped us for being slow),
/// reopening it from the mirror's seq with exponential backoff and jitter. The followers pass
/// what they read to one task that applies it in drains, as the local link does: a shard sends
/// a tick's batches of many tiles together, and a socket watching several of them gets them in
/// one write.
async fn run_cluster_link(
    hub: Weak<TileHub>,
    client: Arc<ClusterClient>,
    mut commands: mpsc::UnboundedReceiver<ShardCommand>,
) {
    let (frames, frames_rx) = mpsc::channel(CLUSTER_FRAMES_QUEUE);
    let applier = tokio::spawn(apply_frames(hub.clone(), frames_rx));
    let mut followers: HashMap<TileId, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(command) = commands.recv().await {
        match command {
            ShardCommand::Subscribe(tile, known) => {
                if let Some(old) = followers.remove(&tile) {
                    old.abort();
                }
                let task = tokio::spawn(follow_tile(
                    hub.clone(),
                    Arc::clone(&client),
                    tile,
                    known,
                    frames.clone(),
                ));
                followers.insert(tile, task);
            }
            ShardCommand::Unsubscribe(tile) => {
                if let Some(task) = followers.remove(&tile) {
                    task.abort();
                }
            }
        }
        followers.retain(|_, task| !task.is_finished());
    }
    for task in followers.values() {
        task.abort();
    }
    applier.abort();
}

/// Applies the cluster link's frames in drains (see [`TileHub::apply_drained`]).
async fn apply_frames(hub: Weak<TileHub>, mut frames: mpsc::Receiver<ShardMessage>) {
    while let Some(first) = frames.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        hub.apply_drained(first, &mut frames);
    }
}

async fn follow_tile(
    hub: Weak<TileHub>,
    client: Arc<ClusterClient>,
    tile: TileId,
    mut known: Option<u64>,
    frames: mpsc::Sender<ShardMessage>,
) {
    const FIRST_RETRY: Duration = Duration::from_millis(50);
    const MAX_RETRY: Duration = Duration::from_secs(2);
    let mut retry = FIRST_RETRY;
    loop {
        match client.subscribe(tile, known).await {
            Ok(mut stream) => loop {
                let frame = match stream.next().await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => {
                        debug!(%tile, %error, "tile stream broke");
                        break;
                    }
                };
                retry = FIRST_RETRY;
                let message = match frame {
                    TileFrame::Snapshot { tile, seq, pixels } => {
                        ShardMessage::Snapshot(Arc::new(TileSnapshot { tile, seq, pixels }))
                    }
                    TileFrame::Batch {
                        tile,
                        first_seq,
                        changes,
                        applied_at_ms,
                    } => ShardMessage::Batch(Arc::new(TileBatch {
                        tile,
                        first_seq,
                        changes,
                        applied_at_ms,
                    })),
                };
                if frames.send(message).await.is_err() {
                    return;
                }
            },
            Err(error) => warn!(%tile, %error, "cannot stream tile from its shard; retrying"),
        }
        // A new ring (a failover, a handoff) names the owner to ask: try it at once, after a
        // little jitter so that the watchers of many tiles do not all ask in the same instant.
        let half = retry.as_millis() as u64 / 2;
        let backoff = Duration::from_millis(half + rand::random_range(0..=half));
        let epoch = client.ring().epoch();
        client.ring_changed(backoff).await;
        if client.ring().epoch() != epoch {
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..=20))).await;
            retry = FIRST_RETRY;
        } else {
            retry = (retry * 2).min(MAX_RETRY);
        }
        let Some(hub) = hub.upgrade() else { return };
        known = hub.mirror_seq(tile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Format;
    use crate::outbox::{self, Inbox};

    fn watched_by(n: usize) -> (TileEntry, Vec<Inbox>) {
        let mut entry = TileEntry::default();
        let inboxes = (0..n as ConnId)
            .map(|conn| {
                let (out, inbox) = outbox::channel(16, Format::Binary, None);
                entry.clients.insert(conn, out);
                inbox
            })
            .collect();
        (entry, inboxes)
    }

    /// What a client was sent, taken out as its connection would after writing it.
    fn written(inbox: &Inbox) -> Vec<Arc<SharedFrame>> {
        inbox.take_queued()
    }

    fn change(color: u8) -> PixelChange {
        PixelChange {
            lx: 1,
            ly: 2,
            color,
        }
    }

    #[test]
    fn a_tile_whose_watchers_fall_behind_widens_its_window_up_to_the_bound_then_narrows() {
        let (mut entry, inboxes) = watched_by(8);
        entry.pace();
        assert_eq!(
            entry.widened,
            Duration::ZERO,
            "nothing sent yet: keeping up"
        );
        // Every watcher still holds the last frame: behind.
        entry.send_changes(SharedFrame::new(ServerMessage::Pong), &mut Vec::new());
        entry.pace();
        assert_eq!(entry.widened, MIN_WIDENED);
        for _ in 0..10 {
            entry.pace();
        }
        assert_eq!(entry.widened, MAX_WIDENED, "bounded");
        // They write it: the window narrows back to nothing.
        for inbox in &inboxes {
            assert_eq!(written(inbox).len(), 1);
        }
        for _ in 0..10 {
            entry.pace();
        }
        assert_eq!(entry.widened, Duration::ZERO);
    }

    #[test]
    fn held_changes_go_out_as_one_frame_that_follows_on_from_the_last() {
        let (mut entry, inboxes) = watched_by(2);
        let tile = TileId::new(3, 4);
        entry.held = Some(Held {
            first_seq: 10,
            changes: vec![change(1), change(2)],
            applied_at_ms: 0,
            due: Instant::now(),
        });
        if let Some(held) = &mut entry.held {
            held.changes.push(change(3));
        }
        entry.release_held(tile, &mut Vec::new());
        entry.release_held(tile, &mut Vec::new());
        for inbox in &inboxes {
            let frames = written(inbox);
            assert_eq!(frames.len(), 1, "one frame, once");
            match frames[0].message() {
                ServerMessage::Pixels {
                    tile: t,
                    first_seq,
                    changes,
                } => {
                    assert_eq!((*t, *first_seq), (tile, 10));
                    assert_eq!(changes, &vec![change(1), change(2), change(3)]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(entry.held.is_none());
    }

    /// A fan-out to more sockets than one task writes is cut into tasks for the writer
    /// threads: every socket gets the frame, whole, and only once, while the caller's runtime
    /// (one thread here, blocked in reads) never runs a write.
    #[tokio::test(flavor = "current_thread")]
    async fn a_large_fan_out_reaches_every_socket_once_on_the_writer_threads() {
        every_socket_gets_the_frame_once(FanoutWriters::start(1)).await;
    }

    /// By default the edge's workers share the tasks (the test's own thread, blocked in reads
    /// here, is not one of them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_fan_out_reaches_every_socket_once_on_the_edge_workers() {
        every_socket_gets_the_frame_once(FanoutWriters::start(0)).await;
    }

    async fn every_socket_gets_the_frame_once(writers: FanoutWriters) {
        use std::io::Read;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let mut entry = TileEntry::default();
        let mut clients = Vec::new();
        let mut inboxes = Vec::new();
        for conn in 0..(3 * WRITES_PER_TASK as ConnId + 5) {
            let client = tokio::net::TcpStream::connect(address);
            let (accepted, client) = tokio::join!(listener.accept(), client);
            let server = Arc::new(accepted.expect("accept").0);
            let (out, inbox) = outbox::channel(16, Format::Binary, Some(server));
            entry.clients.insert(conn, out);
            inboxes.push(inbox);
            let client = client.expect("connect").into_std().expect("std");
            client.set_nonblocking(false).expect("blocking");
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            clients.push(client);
        }
        let frame = SharedFrame::new(ServerMessage::Pong);
        let mut writes = Vec::new();
        entry.send_changes(Arc::clone(&frame), &mut writes);
        assert_eq!(writes.len(), clients.len(), "each socket is first in line");
        writers.write_all(writes);
        let wire = frame.wire(Format::Binary).clone();
        for client in &mut clients {
            let mut got = vec![0; wire.len()];
            client.read_exact(&mut got).expect("the frame, in time");
            assert_eq!(got, wire.to_vec());
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut more = [0u8; 1];
        for client in &mut clients {
            client.set_nonblocking(true).expect("non-blocking");
            assert!(
                client.read(&mut more).is_err(),
                "nothing more than the frame"
            );
        }
        drop(inboxes);
    }

    #[tokio::test]
    async fn messages_waiting_behind_one_are_applied_before_any_socket_is_written() {
        let (hub, _commands) = TileHub::new(FanoutWriters::start(0));
        let (a, b) = (TileId::new(0, 0), TileId::new(1, 0));
        let (one, one_inbox) = outbox::channel(16, Format::Binary, None);
        let (both, both_inbox) = outbox::channel(16, Format::Binary, None);
        hub.subscribe(1, &one, a, None);
        hub.subscribe(2, &both, a, None);
        hub.subscribe(2, &both, b, None);
        for tile in [a, b] {
            hub.on_snapshot(&TileSnapshot {
                tile,
                seq: 0,
                pixels: Box::new([0; place_tiles::TILE_AREA]),
            });
        }
        assert_eq!(written(&one_inbox).len(), 1, "a's snapshot");
        assert_eq!(written(&both_inbox).len(), 2, "both snapshots");
        let batch = |tile, first_seq, color| {
            ShardMessage::Batch(Arc::new(TileBatch {
                tile,
                first_seq,
                changes: vec![change(color)],
                applied_at_ms: 0,
            }))
        };
        let (shard, mut messages) = mpsc::channel(2 * MAX_DRAINED);
        for message in [batch(a, 1, 1), batch(b, 1, 2), batch(a, 2, 3)] {
            shard.try_send(message).expect("room");
        }
        let first = messages.try_recv().expect("a message");
        hub.apply_drained(first, &mut messages);
        assert!(messages.is_empty(), "everything waiting was applied");
        let seqs = |frames: Vec<Arc<SharedFrame>>| -> Vec<(TileId, u64)> {
            frames
                .iter()
                .map(|f| match f.message() {
                    ServerMessage::Pixels {
                        tile, first_seq, ..
                    } => (*tile, *first_seq),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        // Both windows of `a` came in one drain, before its first frame was written: the
        // second is held, to go out merged with what follows once its window closes.
        assert_eq!(seqs(written(&one_inbox)), [(a, 1)]);
        assert_eq!(seqs(written(&both_inbox)), [(a, 1), (b, 1)]);
        assert_eq!(hub.mirror_seq(a), Some(2));

        // A drain is bounded: what arrived beyond it waits for the next one.
        for seq in 2..(MAX_DRAINED as u64 + 8) {
            shard.try_send(batch(b, seq, 4)).expect("room");
        }
        let waiting = messages.len();
        let first = messages.try_recv().expect("a message");
        hub.apply_drained(first, &mut messages);
        assert_eq!(messages.len(), waiting - MAX_DRAINED);
    }

    /// The hold window on tokio's paused time: a batch that arrives while the last frame is
    /// unwritten is held for [`MIN_WIDENED`] and goes out when the window closes, not before.
    #[tokio::test(start_paused = true)]
    async fn a_held_batch_goes_out_when_its_window_closes_and_not_before() {
        let (hub, _commands) = TileHub::new(FanoutWriters::start(0));
        let tile = TileId::new(0, 0);
        let (out, inbox) = outbox::channel(16, Format::Binary, None);
        hub.subscribe(1, &out, tile, None);
        hub.on_snapshot(&TileSnapshot {
            tile,
            seq: 0,
            pixels: Box::new([0; place_tiles::TILE_AREA]),
        });
        assert_eq!(written(&inbox).len(), 1, "the snapshot");
        let batch = |first_seq, color| TileBatch {
            tile,
            first_seq,
            changes: vec![change(color)],
            applied_at_ms: 0,
        };
        // The client keeps up: sent at once.
        hub.on_batch(&batch(1, 1));
        // ...and has not written it when the next one arrives: behind, so that one is held.
        hub.on_batch(&batch(2, 2));
        let first = written(&inbox);
        assert_eq!(first.len(), 1, "only the first batch went out");
        drop(first);
        tokio::time::sleep(MIN_WIDENED - HELD_TICK).await;
        assert!(written(&inbox).is_empty(), "still held inside its window");
        tokio::time::sleep(2 * HELD_TICK).await;
        let released = written(&inbox);
        assert_eq!(released.len(), 1, "sent when the window closed");
        match released[0].message() {
            ServerMessage::Pixels {
                first_seq, changes, ..
            } => assert_eq!((*first_seq, changes.clone()), (2, vec![change(2)])),
            other => panic!("unexpected {other:?}"),
        }
    }
}
