//! Runs a [`ShardCore`] on tokio: commands in through a [`ShardHandle`], events and checkpoints
//! out to the store through one writer task, delta batches out to subscribers through bounded
//! channels.
//!
//! The driver makes no decisions: it feeds the core its inputs (commands, write results, a tick
//! every batch window, the time with each write result) and carries out the core's outputs.
//!
//! It records the shard's own figures through the `metrics` facade (seen at `/metrics` wherever
//! the process installed a recorder): [`WRITE_DURATION`] and [`WRITE_BATCH_SIZE`] per group
//! commit; and keeps totals for [`ShardStatus`], which a cluster shard reports in Redis.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use place_store::{NewEvent, StoreError, TileSnapshotRecord};
use place_tiles::{compress_tile, CanvasGeometry, TileId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::core::{
    CheckpointPolicy, Input, Output, PlaceError, PlaceRequest, Placed, ShardCore, ShardMessage,
    SubscriberId, TileSnapshot, Token, WriteFailure,
};
use place_store::Store;

/// Histogram: how long one group commit (one write of a batch of events) took, in seconds.
pub const WRITE_DURATION: &str = "rplace_shard_write_duration_seconds";
/// Histogram: placements per group commit.
pub const WRITE_BATCH_SIZE: &str = "rplace_shard_write_batch_size";

/// Messages a subscriber may have queued before it counts as too slow and is dropped (it then
/// re-attaches and catches up by seq).
pub const SUBSCRIBER_QUEUE: usize = 65_536;
const COMMAND_QUEUE: usize = 65_536;

/// How a shard runs.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The canvas.
    pub geometry: CanvasGeometry,
    /// Palette size: colours `0..color_count` are valid.
    pub color_count: usize,
    /// How long changes of a tile are gathered before they are sent as one batch.
    pub batch_window: Duration,
    /// How long an idle shard waits after a placement before it writes, so that placements
    /// close behind it share its commit (zero: it writes at once). A busy shard never waits: it
    /// writes what has queued as soon as its last write is done.
    pub commit_linger: Duration,
    /// When to write checkpoints.
    pub checkpoint: CheckpointPolicy,
}

enum Command {
    Place {
        request: PlaceRequest,
        reply: oneshot::Sender<Result<Placed, PlaceError>>,
    },
    Attach {
        subscriber: SubscriberId,
        sender: mpsc::Sender<ShardMessage>,
    },
    Detach(SubscriberId),
    Subscribe {
        subscriber: SubscriberId,
        tile: TileId,
        known_seq: Option<u64>,
    },
    Unsubscribe {
        subscriber: SubscriberId,
        tile: TileId,
    },
    ReadTiles(oneshot::Sender<Vec<TileSnapshot>>),
    ReadTile(TileId, oneshot::Sender<Option<TileSnapshot>>),
    SetOwnership {
        epoch: u64,
        owned: Option<HashSet<TileId>>,
    },
    Grow(CanvasGeometry, oneshot::Sender<()>),
    Status(oneshot::Sender<ShardStatus>),
    Shutdown(oneshot::Sender<()>),
}

/// What a shard is doing, for the ring's operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardStatus {
    /// The ring epoch it works at.
    pub epoch: u64,
    /// How many tiles it owns (`None`: all of them).
    pub owned: Option<usize>,
    /// How many of them are still being loaded after a ring change.
    pub acquiring: usize,
    /// Placements made durable since the shard started.
    pub placed_total: u64,
    /// When it began to work at `epoch` (epoch ms): the tiles it lost stopped taking placements
    /// then, and the loading of those it gained began.
    pub epoch_since_ms: i64,
    /// When every tile gained at `epoch` was loaded and serving (epoch ms); `None` while some
    /// still load.
    pub ready_at_ms: Option<i64>,
    /// Placements waiting to be written (queued, or held for a tile being loaded).
    pub queue_depth: usize,
    /// Group commits written since the shard started.
    pub writes_total: u64,
    /// How long a group commit takes lately, in seconds: a moving average (each write weighs
    /// [`WRITE_AVERAGE_WEIGHT`]).
    pub write_seconds: f64,
}

/// The weight of the newest write in [`ShardStatus::write_seconds`].
pub const WRITE_AVERAGE_WEIGHT: f64 = 0.1;

/// Totals of the writer task, read by [`ShardHandle::status`].
#[derive(Debug, Default)]
struct WriteTotals {
    writes: AtomicU64,
    /// The moving average in seconds, as `f64` bits (only the writer task stores it).
    average_bits: AtomicU64,
}

impl WriteTotals {
    fn record(&self, seconds: f64) {
        let first = self.writes.fetch_add(1, Ordering::Relaxed) == 0;
        let before = f64::from_bits(self.average_bits.load(Ordering::Relaxed));
        let average = if first {
            seconds
        } else {
            before + WRITE_AVERAGE_WEIGHT * (seconds - before)
        };
        self.average_bits
            .store(average.to_bits(), Ordering::Relaxed);
    }

    fn average(&self) -> f64 {
        f64::from_bits(self.average_bits.load(Ordering::Relaxed))
    }
}

/// The tiles a cluster shard owns at a ring epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The ring's epoch.
    pub epoch: u64,
    /// The tiles.
    pub tiles: HashSet<TileId>,
}

/// How an edge talks to a shard; cheap to clone.
#[derive(Clone, Debug)]
pub struct ShardHandle {
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl ShardHandle {
    /// Places a pixel; resolves once it is durable (or refused).
    pub async fn place(&self, request: PlaceRequest) -> Result<Placed, PlaceError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Place { request, reply })
            .await
            .map_err(|_| PlaceError::Unavailable)?;
        answer.await.unwrap_or(Err(PlaceError::Unavailable))
    }

    /// Registers a subscriber; its messages arrive on the returned receiver, in order. The
    /// receiver ends if the subscriber falls [`SUBSCRIBER_QUEUE`] messages behind: attach again
    /// and resubscribe with the seqs held.
    pub async fn attach(&self, subscriber: SubscriberId) -> Option<mpsc::Receiver<ShardMessage>> {
        self.attach_bounded(subscriber, SUBSCRIBER_QUEUE).await
    }

    /// Like [`ShardHandle::attach`], with a queue of `capacity` messages.
    pub async fn attach_bounded(
        &self,
        subscriber: SubscriberId,
        capacity: usize,
    ) -> Option<mpsc::Receiver<ShardMessage>> {
        let (sender, receiver) = mpsc::channel(capacity);
        self.commands
            .send(Command::Attach { subscriber, sender })
            .await
            .ok()?;
        Some(receiver)
    }

    /// Drops a subscriber and all its subscriptions.
    pub async fn detach(&self, subscriber: SubscriberId) {
        let _ = self.commands.send(Command::Detach(subscriber)).await;
    }

    /// Subscribes to a tile: the answer (snapshot or catch-up) and every later batch arrive on
    /// the subscriber's receiver.
    pub async fn subscribe(
        &self,
        subscriber: SubscriberId,
        tile: TileId,
        known_seq: Option<u64>,
    ) -> bool {
        self.commands
            .send(Command::Subscribe {
                subscriber,
                tile,
                known_seq,
            })
            .await
            .is_ok()
    }

    /// Unsubscribes from a tile.
    pub async fn unsubscribe(&self, subscriber: SubscriberId, tile: TileId) {
        let _ = self
            .commands
            .send(Command::Unsubscribe { subscriber, tile })
            .await;
    }

    /// The current state of every tile this shard owns.
    pub async fn read_tiles(&self) -> Option<Vec<TileSnapshot>> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::ReadTiles(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Tells the shard it owns `owned` (`None`: all of them) at ring `epoch`: it stops taking
    /// placements for tiles it lost and acquires those it gained (raising their fences, then
    /// loading them from the store) before serving them.
    pub async fn set_ownership(&self, epoch: u64, owned: Option<HashSet<TileId>>) {
        let _ = self
            .commands
            .send(Command::SetOwnership { epoch, owned })
            .await;
    }

    /// Tells the shard the canvas grew to `geometry`; returns once the shard works with it (its
    /// new tiles exist, empty), or has stopped.
    pub async fn grow(&self, geometry: CanvasGeometry) {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Grow(geometry, reply))
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
    }

    /// What the shard is doing; `None` once it has stopped.
    pub async fn status(&self) -> Option<ShardStatus> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Status(reply)).await.ok()?;
        answer.await.ok()
    }

    /// The current state of one tile, if this shard owns it.
    pub async fn read_tile(&self, tile: TileId) -> Option<TileSnapshot> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ReadTile(tile, reply))
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// Stops the shard: pending placements are written, a final checkpoint is taken.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }
}

/// A running shard.
pub struct ShardTask;

impl ShardTask {
    /// Restores the tiles from the store and starts the shard, owning `ownership`'s tiles
    /// (`None`: every tile). A cluster shard first raises the fences of its tiles to its epoch,
    /// so that a shard that owned them before can no longer write them.
    pub async fn start(
        config: ShardConfig,
        store: Store,
        ownership: Option<Ownership>,
    ) -> Result<(ShardHandle, JoinHandle<()>), StoreError> {
        let started = tokio::time::Instant::now();
        if let Some(o) = &ownership {
            let tiles: Vec<TileId> = o.tiles.iter().copied().collect();
            store.raise_fences(&tiles, o.epoch).await?;
        }
        let owned = ownership.as_ref().map(|o| &o.tiles);
        let restored = store
            .load_canvas(config.geometry, &|tile| {
                owned.is_none_or(|o| o.contains(&tile))
            })
            .await?;
        info!(
            events_replayed = restored.events_replayed,
            last_event_id = restored.last_event_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "shard restored its tiles"
        );
        let mut core = ShardCore::new(
            config.geometry,
            config.color_count,
            restored.tiles,
            restored.last_event_id,
            config.checkpoint,
        );
        match ownership {
            Some(o) => core.set_owned(o.epoch, Some(o.tiles)),
            None => core.set_owned(0, None),
        }
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(run(
            core,
            store,
            receiver,
            config.batch_window,
            config.commit_linger,
        ));
        Ok((ShardHandle { commands }, task))
    }
}

enum Job {
    Events {
        events: Vec<NewEvent>,
        epoch: u64,
    },
    Checkpoint {
        tiles: Vec<TileSnapshot>,
        through_event_id: i64,
    },
}

/// A lingering shard writes at once when this many placements have queued.
const LINGER_AT_MOST: usize = 1024;

/// Resolves when a linger ends.
async fn linger_ends(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut core: ShardCore,
    store: Store,
    mut commands: mpsc::Receiver<Command>,
    window: Duration,
    linger: Duration,
) {
    let (job_tx, job_rx) = mpsc::channel::<Job>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<Input>(1);
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<Input>();
    let totals = Arc::new(WriteTotals::default());
    let writer = tokio::spawn(write_jobs(
        store.clone(),
        job_rx,
        done_tx,
        Arc::clone(&totals),
    ));
    let mut tick = tokio::time::interval(window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = DriverState {
        epoch_since_ms: now_ms(),
        ..DriverState::default()
    };
    let mut stopped: Option<oneshot::Sender<()>> = None;
    let mut accepting = true;

    // While an idle shard holds its first placement back (see `ShardConfig::commit_linger`).
    let mut lingering_until: Option<tokio::time::Instant> = None;

    loop {
        let release =
            lingering_until.is_some() && (!accepting || core.queue_depth() >= LINGER_AT_MOST);
        let input = if release {
            lingering_until = None;
            Input::ReleaseWrites
        } else {
            tokio::select! {
            command = commands.recv(), if accepting => match command {
                Some(Command::Shutdown(reply)) => {
                    stopped = Some(reply);
                    accepting = false;
                    core.request_checkpoint();
                    Input::Tick { now_ms: now_ms() }
                }
                Some(command) => {
                    if !linger.is_zero()
                        && lingering_until.is_none()
                        && matches!(command, Command::Place { .. })
                        && core.is_idle()
                    {
                        core.hold_writes();
                        lingering_until = Some(tokio::time::Instant::now() + linger);
                    }
                    match state.command(command, &mut core, &totals) {
                        Some(input) => input,
                        None => continue,
                    }
                }
                None => {
                    accepting = false;
                    core.request_checkpoint();
                    Input::Tick { now_ms: now_ms() }
                }
            },
            Some(done) = done_rx.recv() => {
                // What the write made durable is stamped with now, not with the last tick.
                core.set_clock(now_ms());
                done
            }
            Some(reloaded) = reload_rx.recv() => reloaded,
            _ = tick.tick() => Input::Tick { now_ms: now_ms() },
            () = linger_ends(lingering_until), if lingering_until.is_some() => {
                lingering_until = None;
                Input::ReleaseWrites
            }
            }
        };
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            for output in core.handle(input) {
                match output {
                    Output::ReloadTiles(tiles) => {
                        tokio::spawn(load_tiles(
                            store.clone(),
                            core.geometry(),
                            tiles,
                            None,
                            reload_tx.clone(),
                        ));
                        continue;
                    }
                    Output::AcquireTiles { epoch, tiles } => {
                        tokio::spawn(load_tiles(
                            store.clone(),
                            core.geometry(),
                            tiles,
                            Some(epoch),
                            reload_tx.clone(),
                        ));
                        continue;
                    }
                    _ => {}
                }
                if let Some(follow_up) = state.execute(output, &job_tx).await {
                    inputs.push(follow_up);
                }
            }
        }
        if state.ready_at_ms.is_none() && core.acquiring() == 0 {
            state.ready_at_ms = Some(now_ms());
        }
        if !accepting && core.is_idle() && !core.checkpoint_pending() {
            break;
        }
    }
    drop(job_tx);
    let _ = writer.await;
    info!("shard stopped");
    if let Some(reply) = stopped {
        let _ = reply.send(());
    }
}

#[derive(Default)]
struct DriverState {
    next_token: Token,
    replies: HashMap<Token, oneshot::Sender<Result<Placed, PlaceError>>>,
    subscribers: HashMap<SubscriberId, mpsc::Sender<ShardMessage>>,
    /// When the core began to work at its epoch, and when it had loaded every tile gained at it:
    /// the two ends of a handoff, for [`ShardStatus`].
    epoch_since_ms: i64,
    ready_at_ms: Option<i64>,
}

impl DriverState {
    /// Turns a command into the core's input, or handles it here when the core has no part in it.
    fn command(
        &mut self,
        command: Command,
        core: &mut ShardCore,
        totals: &WriteTotals,
    ) -> Option<Input> {
        match command {
            Command::Place { request, reply } => {
                self.next_token += 1;
                self.replies.insert(self.next_token, reply);
                Some(Input::Place {
                    token: self.next_token,
                    request,
                })
            }
            Command::Attach { subscriber, sender } => {
                self.subscribers.insert(subscriber, sender);
                // A re-attach starts from nothing: forget the old subscriptions.
                Some(Input::SubscriberGone(subscriber))
            }
            Command::Detach(subscriber) => {
                self.subscribers.remove(&subscriber);
                Some(Input::SubscriberGone(subscriber))
            }
            Command::Subscribe {
                subscriber,
                tile,
                known_seq,
            } => Some(Input::Subscribe {
                subscriber,
                tile,
                known_seq,
            }),
            Command::Unsubscribe { subscriber, tile } => {
                Some(Input::Unsubscribe { subscriber, tile })
            }
            Command::ReadTiles(reply) => {
                let _ = reply.send(core.snapshot_all());
                None
            }
            Command::ReadTile(tile, reply) => {
                let _ = reply.send(core.snapshot(tile));
                None
            }
            Command::SetOwnership { epoch, owned } => {
                if epoch > core.epoch() {
                    self.epoch_since_ms = now_ms();
                    self.ready_at_ms = None;
                }
                Some(Input::Ownership { epoch, owned })
            }
            Command::Grow(geometry, reply) => {
                core.grow(geometry);
                let _ = reply.send(());
                None
            }
            Command::Status(reply) => {
                let _ = reply.send(ShardStatus {
                    epoch: core.epoch(),
                    owned: core.owned_count(),
                    acquiring: core.acquiring(),
                    placed_total: core.placed_total(),
                    epoch_since_ms: self.epoch_since_ms,
                    ready_at_ms: self.ready_at_ms,
                    queue_depth: core.queue_depth(),
                    writes_total: totals.writes.load(Ordering::Relaxed),
                    write_seconds: totals.average(),
                });
                None
            }
            // The run loop takes shutdowns before they get here.
            Command::Shutdown(_) => None,
        }
    }

    /// Carries out one output; returns an input for the core when the output could not be
    /// delivered (a subscriber that is gone or too slow).
    async fn execute(&mut self, output: Output, jobs: &mpsc::Sender<Job>) -> Option<Input> {
        match output {
            // The run loop starts loads itself (they need the store), before this.
            Output::ReloadTiles(_) | Output::AcquireTiles { .. } => {}
            Output::WriteEvents { events, epoch } => {
                debug!(events = events.len(), "group commit");
                let _ = jobs.send(Job::Events { events, epoch }).await;
            }
            Output::WriteCheckpoint {
                tiles,
                through_event_id,
            } => {
                let _ = jobs
                    .send(Job::Checkpoint {
                        tiles,
                        through_event_id,
                    })
                    .await;
            }
            Output::Reply { token, result } => {
                if let Some(reply) = self.replies.remove(&token) {
                    let _ = reply.send(result);
                }
            }
            Output::Send {
                subscriber,
                message,
            } => {
                let sender = self.subscribers.get(&subscriber)?;
                if sender.try_send(message).is_err() {
                    warn!(subscriber, "subscriber gone or too slow; dropping it");
                    self.subscribers.remove(&subscriber);
                    return Some(Input::SubscriberGone(subscriber));
                }
            }
        }
        None
    }
}

/// Reads tiles from the store, retrying until the store answers: back after a conflict
/// (`acquired_at` is `None`), or gained at a ring change (`Some(epoch)`: their fences are raised
/// to the epoch first, so their old owner's writes are all in, and no more can come).
async fn load_tiles(
    store: Store,
    geometry: CanvasGeometry,
    tiles: Vec<TileId>,
    acquired_at: Option<u64>,
    done: mpsc::UnboundedSender<Input>,
) {
    let wanted: HashSet<TileId> = tiles.iter().copied().collect();
    let mut wait = Duration::from_millis(100);
    loop {
        let loaded = async {
            let started = tokio::time::Instant::now();
            if let Some(epoch) = acquired_at {
                store.raise_fences(&tiles, epoch).await?;
            }
            let fenced = started.elapsed();
            let restored = store.load_canvas(geometry, &|t| wanted.contains(&t)).await;
            info!(
                tiles = tiles.len(),
                fence_ms = fenced.as_millis() as u64,
                load_ms = (started.elapsed() - fenced).as_millis() as u64,
                "tiles loaded"
            );
            restored
        };
        match loaded.await {
            Ok(restored) => {
                let loaded = tiles
                    .iter()
                    .map(|&t| (t, restored.tiles[geometry.tile_index(t)].clone()))
                    .collect();
                let _ = done.send(match acquired_at {
                    Some(epoch) => Input::TilesAcquired {
                        epoch,
                        tiles: loaded,
                    },
                    None => Input::TilesReloaded(loaded),
                });
                return;
            }
            Err(error) => {
                warn!(%error, "cannot read tiles back yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn write_jobs(
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Input>,
    totals: Arc<WriteTotals>,
) {
    while let Some(job) = jobs.recv().await {
        let result = match job {
            Job::Events { events, epoch } => {
                let started = tokio::time::Instant::now();
                let written = store.append_events_at_epoch(&events, epoch).await;
                let elapsed = started.elapsed();
                metrics::histogram!(WRITE_DURATION).record(elapsed.as_secs_f64());
                metrics::histogram!(WRITE_BATCH_SIZE).record(events.len() as f64);
                totals.record(elapsed.as_secs_f64());
                Input::EventsWritten(written.map_err(|e| WriteFailure {
                    conflict: matches!(e, StoreError::Conflict(_)),
                    reason: e.to_string(),
                    fenced: match e {
                        StoreError::Fenced(tiles) => tiles,
                        _ => Vec::new(),
                    },
                }))
            }
            Job::Checkpoint {
                tiles,
                through_event_id,
            } => {
                let started = tokio::time::Instant::now();
                let count = tiles.len();
                let records = tokio::task::spawn_blocking(move || {
                    tiles
                        .into_iter()
                        .map(|t| TileSnapshotRecord {
                            tile: t.tile,
                            seq: t.seq,
                            data: compress_tile(&t.pixels),
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                let result = store
                    .write_checkpoint(&records, through_event_id, now_ms())
                    .await;
                info!(
                    tiles = count,
                    through_event_id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    ok = result.is_ok(),
                    "checkpoint"
                );
                Input::CheckpointWritten(result.map_err(|e| e.to_string()))
            }
        };
        if done.send(result).await.is_err() {
            break;
        }
    }
}

/// Now as Unix epoch milliseconds (the wall clock of [`place_tiles::clock`]).
pub use place_tiles::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_average_starts_at_the_first_write_and_follows_the_recent_ones() {
        let totals = WriteTotals::default();
        totals.record(0.010);
        assert_eq!(totals.average(), 0.010);
        for _ in 0..100 {
            totals.record(0.002);
        }
        assert!(
            (totals.average() - 0.002).abs() < 1e-6,
            "{}",
            totals.average()
        );
        assert_eq!(totals.writes.load(Ordering::Relaxed), 101);
    }
}
