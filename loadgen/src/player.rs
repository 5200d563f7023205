//! One simulated player, from guest session to close: it watches a viewport, places pixels on
//! its schedule, pans now and then, and checks every frame it receives against its
//! [`Tracks`] and the run's [`Ledger`](crate::ledger::Ledger).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use place_protocol::{
    binary, json, ClientMessage, ErrorCode, ErrorMessage, RequestId, ServerMessage, TileRequest,
};
use place_tiles::{PixelChange, TileId, TILE_AREA};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::WireFormat;
use crate::counting::Counted;
use crate::ledger::{PlacementId, PlayerId};
use crate::metrics::{add, bump, Kind, Recorder};
use crate::net::{self, Socket};
use crate::run::{Phase, Shared};
use crate::schedule::PlacePlan;
use crate::tracks::{PixelsOutcome, SnapshotOutcome, Track, Tracks};
use crate::viewport::Rect;

/// Resolves when the run's phase changes: `true` if the run is gone.
async fn next_phase(mut phase: watch::Receiver<Phase>) -> bool {
    phase.changed().await.is_err()
}

/// Tiles per subscribe frame: 13 bytes each stays far below the 64 KiB message limit.
const TILES_PER_FRAME: usize = 1000;
/// How long a player waits for `welcome`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(20);
/// A placement not answered within this is given up on (the next one is scheduled anyway).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing player waits for the server's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A player's connection: a WebSocket it reads itself, or, once it only counts, a socket the
/// counter reads.
enum Link {
    Ws(Box<Socket>),
    Counted(Arc<Counted>),
    /// Gone while being handed to the counter.
    Lost,
}

/// What came on a [`Link`].
enum Incoming {
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    /// The counter saw the connection end.
    Ended(String),
}

impl Link {
    async fn next_incoming(&mut self) -> Incoming {
        match self {
            Link::Ws(socket) => Incoming::Frame(socket.next().await),
            Link::Counted(counted) => Incoming::Ended(counted.ended().await),
            Link::Lost => Incoming::Ended("connection lost".into()),
        }
    }
}

struct InFlight {
    tile: TileId,
    id: PlacementId,
    sent_at: Instant,
}

/// Runs player `id` until the run closes or its connection drops.
pub async fn run(shared: Arc<Shared>, id: PlayerId, phase: watch::Receiver<Phase>) {
    let index = id as usize;
    let (target, server) = shared.target_of(index);
    let counters = &shared.metrics.counters;
    // Held until `welcome` (or failure): see `run::MAX_CONNECTING`.
    let Ok(permit) = shared.connecting.acquire().await else {
        return;
    };
    let started = Instant::now();
    let cookie = match net::guest(&shared.http, target).await {
        Ok(cookie) => cookie,
        Err(error) => {
            bump(&counters.sessions_failed);
            bump(&counters.connect_attempts_done);
            tracing::debug!(player = id, "{error:#}");
            return;
        }
    };
    let mut recorder = Recorder::new(&shared.metrics, id);
    recorder.time(Kind::Session, started.elapsed());
    let connect_started = Instant::now();
    let source = net::source_address(index, *server, shared.source_spread);
    let socket = match net::connect(*server, target, &cookie, source).await {
        Ok(socket) => socket,
        Err(error) => {
            shared.metrics.connect_error(error.0);
            bump(&counters.connect_attempts_done);
            return;
        }
    };
    let mut player = Player::new(&shared, id, recorder, connect_started);
    player.cookie = cookie;
    player.play(socket, phase, permit).await;
}

struct Player<'a> {
    id: PlayerId,
    shared: &'a Shared,
    rng: StdRng,
    home: usize,
    view: Rect,
    tracks: Tracks,
    recorder: Recorder<'a>,
    in_flight: HashMap<u32, InFlight>,
    next_request: u32,
    placer: bool,
    scheduled: bool,
    next_place: Option<Instant>,
    next_pan: Option<Instant>,
    last_ack: Option<Instant>,
    connect_started: Instant,
    painted_at: Option<Instant>,
    messages_after_paint: u64,
    bytes_after_paint: u64,
    /// The session, to connect again with (`--reconnect`).
    cookie: String,
    /// Every delivery is decoded and checked (a placer, or one of `--check-players`).
    checked: bool,
    /// An unchecked player, once its first viewport is painted: it only counts what it receives.
    counting: bool,
}

impl<'a> Player<'a> {
    fn new(
        shared: &'a Shared,
        id: PlayerId,
        recorder: Recorder<'a>,
        connect_started: Instant,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(shared.seed ^ (u64::from(id) << 20) ^ 0x5eed);
        let home = rng.random_range(0..shared.scene.hotspot_count().max(1));
        let view = shared.scene.look(home, &mut rng);
        let placer = shared.settled.place.is_placer(id as usize, shared.clients);
        let checked = placer || (id as usize) < shared.check_players;
        if checked {
            bump(&shared.metrics.counters.checked);
        }
        Self {
            id,
            shared,
            rng,
            home,
            view,
            tracks: Tracks::default(),
            recorder,
            in_flight: HashMap::new(),
            next_request: 1,
            placer,
            scheduled: false,
            next_place: None,
            next_pan: None,
            last_ack: None,
            connect_started,
            painted_at: None,
            messages_after_paint: 0,
            bytes_after_paint: 0,
            cookie: String::new(),
            checked,
            counting: false,
        }
    }

    async fn play(
        &mut self,
        mut socket: Socket,
        mut phase: watch::Receiver<Phase>,
        connecting: tokio::sync::SemaphorePermit<'_>,
    ) {
        let counters = &self.shared.metrics.counters;
        let welcome = self.welcome(&mut socket).await;
        drop(connecting);
        let cooldown_remaining = match welcome {
            Ok(remaining) => remaining,
            Err(kind) => {
                self.shared.metrics.connect_error(kind);
                bump(&counters.connect_attempts_done);
                return;
            }
        };
        bump(&counters.welcomed);
        bump(&counters.connected);
        bump(&counters.connect_attempts_done);
        self.recorder
            .time(Kind::Connect, self.connect_started.elapsed());
        let mut socket = Link::Ws(Box::new(socket));
        let mut ended = match self.subscribe_view(&mut socket).await {
            Ok(()) => {
                self.serve(&mut socket, &mut phase, cooldown_remaining)
                    .await
            }
            Err(how) => Err(how),
        };
        while ended.is_err() && self.shared.reconnect && *phase.borrow() != Phase::Close {
            let Some(again) = self.reconnect().await else {
                break;
            };
            self.harvest(&socket);
            socket = Link::Ws(Box::new(again));
            bump(&counters.reconnects);
            ended = match self.resubscribe(&mut socket).await {
                Ok(()) => {
                    self.serve(&mut socket, &mut phase, cooldown_remaining)
                        .await
                }
                Err(how) => Err(how),
            };
        }
        self.harvest(&socket);
        self.finish(Instant::now());
        counters
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        match ended {
            Ok(()) => match socket {
                Link::Ws(mut socket) => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, (*socket).close(None)).await;
                }
                Link::Counted(counted) => counted.close(),
                Link::Lost => {}
            },
            Err(how) => self.shared.metrics.dropped(how),
        }
    }

    /// After the connection dropped: the placements in flight lost their answers; connects again
    /// through the same target with the same session, backing off from 100 ms to 2 s, for up to
    /// 30 s. `None`: it could not.
    async fn reconnect(&mut self) -> Option<Socket> {
        add(
            &self.shared.metrics.counters.placements_cut_off,
            self.in_flight.len() as u64,
        );
        self.in_flight.clear();
        let index = self.id as usize;
        let (target, server) = self.shared.target_of(index);
        let source = net::source_address(index, *server, self.shared.source_spread);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut backoff = Duration::from_millis(100);
        while Instant::now() < deadline {
            let jitter =
                Duration::from_millis(self.rng.random_range(0..=backoff.as_millis() as u64 / 2));
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            let Ok(mut socket) = net::connect(*server, target, &self.cookie, source).await else {
                continue;
            };
            if self.welcome(&mut socket).await.is_ok() {
                tracing::debug!(player = self.id, "reconnected");
                return Some(socket);
            }
        }
        None
    }

    /// On a new connection: subscribes to every tile held again, with the seq held (the server
    /// answers with what was missed, or a snapshot), and those still awaited without one.
    async fn resubscribe(&mut self, socket: &mut Link) -> Result<(), String> {
        let tiles: Vec<TileRequest> = self
            .tracks
            .iter()
            .map(|(tile, track)| TileRequest {
                tile,
                seq: match track {
                    Track::Live { seq } => Some(seq),
                    Track::Awaiting { .. } => None,
                },
            })
            .collect();
        for chunk in tiles.chunks(TILES_PER_FRAME) {
            let message = ClientMessage::Subscribe {
                tiles: chunk.to_vec(),
            };
            self.send(socket, &message).await?;
        }
        Ok(())
    }

    /// Waits for `welcome`; returns the cooldown left (ms).
    async fn welcome(&mut self, socket: &mut Socket) -> Result<u64, String> {
        let waiting = async {
            while let Some(frame) = socket.next().await {
                let frame = frame.map_err(|e| format!("before welcome: {e}"))?;
                match self.decode(&frame) {
                    Some(ServerMessage::Welcome(w)) => return Ok(w.cooldown_remaining),
                    Some(ServerMessage::Error(e)) => return Err(format!("welcome: {}", e.code)),
                    _ if matches!(frame, Message::Close(_)) => {
                        return Err(format!("closed before welcome: {}", close_reason(&frame)))
                    }
                    _ => {}
                }
            }
            Err("closed before welcome".to_string())
        };
        tokio::time::timeout(WELCOME_TIMEOUT, waiting)
            .await
            .unwrap_or_else(|_| Err("no welcome in time".to_string()))
    }

    /// The main loop: frames, placements, pans, until the run closes (`Ok`) or the connection
    /// drops (`Err` with how).
    async fn serve(
        &mut self,
        socket: &mut Link,
        phase: &mut watch::Receiver<Phase>,
        cooldown_remaining: u64,
    ) -> Result<(), String> {
        let far = || Instant::now() + Duration::from_secs(86_400);
        let place_timer = tokio::time::sleep_until(far());
        let pan_timer = tokio::time::sleep_until(far());
        tokio::pin!(place_timer, pan_timer);
        let mut placing = match *phase.borrow_and_update() {
            Phase::Close => return Ok(()),
            now => now < Phase::Drain,
        };
        let mut armed = (None, None);
        // Made once and again only when it fires: a `changed()` made at every frame registers
        // with the watch channel and unregisters again, which cost loadgen more than the frame.
        let mut phase_changed = Box::pin(next_phase(phase.clone()));
        loop {
            if self.painted_at.is_some() && !self.scheduled {
                self.scheduled = true;
                self.first_placement(cooldown_remaining);
            }
            if armed != (self.next_place, self.next_pan) {
                armed = (self.next_place, self.next_pan);
                place_timer
                    .as_mut()
                    .reset(self.next_place.unwrap_or_else(far));
                pan_timer.as_mut().reset(self.next_pan.unwrap_or_else(far));
            }
            tokio::select! {
                biased;
                incoming = socket.next_incoming() => match incoming {
                    Incoming::Frame(Some(Ok(frame))) => {
                        self.on_frame(&frame)?;
                        self.hand_over(socket).await?;
                    }
                    Incoming::Frame(Some(Err(e))) => return Err(format!("error: {e}")),
                    Incoming::Frame(None) => return Err("connection lost".into()),
                    Incoming::Ended(how) => return Err(how),
                },
                gone = &mut phase_changed => {
                    // The latest phase, marked seen so the next watch starts after it.
                    let now = *phase.borrow_and_update();
                    if gone || now == Phase::Close {
                        return Ok(());
                    }
                    placing = now < Phase::Drain;
                    phase_changed = Box::pin(next_phase(phase.clone()));
                }
                _ = &mut place_timer, if placing && self.next_place.is_some() => {
                    self.place(socket).await?;
                }
                _ = &mut pan_timer, if self.next_pan.is_some() => self.pan(socket).await?,
            }
        }
    }

    fn on_frame(&mut self, frame: &Message) -> Result<(), String> {
        let size = match frame {
            Message::Binary(b) => b.len(),
            Message::Text(t) => t.len(),
            Message::Close(_) => return Err(close_reason(frame)),
            _ => return Ok(()),
        };
        let counters = &self.shared.metrics.counters;
        bump(&counters.messages);
        add(&counters.bytes, size as u64);
        if self.painted_at.is_some() {
            self.messages_after_paint += 1;
            self.bytes_after_paint += size as u64;
        }
        if self.counting {
            return Ok(());
        }
        match self.decode(frame) {
            Some(message) => self.on_message(message),
            None => bump(&counters.undecodable),
        }
        Ok(())
    }

    fn decode(&self, frame: &Message) -> Option<ServerMessage> {
        match frame {
            Message::Binary(b) => binary::decode_server(b).ok(),
            Message::Text(t) => json::decode_server(t.as_str()).ok(),
            _ => None,
        }
    }

    fn on_message(&mut self, message: ServerMessage) {
        let now = Instant::now();
        match message {
            ServerMessage::Tile { tile, seq, pixels } => self.on_tile(tile, seq, &pixels, now),
            ServerMessage::Pixels {
                tile,
                first_seq,
                changes,
            } => self.on_pixels(tile, first_seq, &changes, now),
            ServerMessage::Success {
                request_id,
                next_placement,
            } => self.on_success(request_id, next_placement, now),
            ServerMessage::Error(error) => self.on_error(error, now),
            ServerMessage::Cooldown {
                cooldown_remaining, ..
            } => self.on_cooldown_changed(cooldown_remaining, now),
            ServerMessage::Welcome(_) | ServerMessage::Pong | ServerMessage::Canvas { .. } => {}
        }
    }

    fn on_tile(&mut self, tile: TileId, seq: u64, pixels: &[u8; TILE_AREA], now: Instant) {
        let counters = &self.shared.metrics.counters;
        match self.tracks.on_snapshot(tile, seq) {
            SnapshotOutcome::Stray => return bump(&counters.strays),
            SnapshotOutcome::First => {}
            SnapshotOutcome::Resync { stale } => {
                bump(&counters.resyncs);
                if stale {
                    bump(&counters.duplicates);
                }
            }
        }
        add(
            &counters.wrong_colours,
            self.shared.ledger.check_snapshot(tile, seq, pixels),
        );
        if self.tracks.awaiting() == 0 && self.painted_at.is_none() {
            self.painted_at = Some(now);
            bump(&counters.painted);
            self.recorder
                .time(Kind::Painted, now - self.connect_started);
            // From here an unchecked player only counts: decoding and checking every delivery
            // of thousands of players would make loadgen, not the server, the limit.
            self.counting = !self.checked;
        }
    }

    fn on_pixels(&mut self, tile: TileId, first_seq: u64, changes: &[PixelChange], now: Instant) {
        let counters = &self.shared.metrics.counters;
        let PixelsOutcome::Applied { skip, gap } =
            self.tracks.on_pixels(tile, first_seq, changes.len())
        else {
            return bump(&counters.strays);
        };
        if gap > 0 {
            bump(&counters.gaps);
            add(&counters.gap_events, gap);
        }
        add(&counters.duplicates, skip as u64);
        let fresh = &changes[skip..];
        add(&counters.events, fresh.len() as u64);
        let measure_from = self.shared.measure_from();
        let recorder = &mut self.recorder;
        let observed = self.shared.ledger.observe(
            tile,
            first_seq + skip as u64,
            fresh,
            self.id,
            now,
            |sent_at| {
                if measure_from.is_some_and(|m| sent_at >= m) {
                    recorder.time(Kind::Broadcast, now - sent_at);
                }
            },
        );
        add(&counters.wrong_colours, observed.wrong_colours);
        add(&counters.unmatched, observed.unmatched);
    }

    fn on_success(&mut self, request_id: Option<RequestId>, next_placement: u64, now: Instant) {
        let Some(placed) = request_id
            .and_then(|r| r.as_u32())
            .and_then(|r| self.in_flight.remove(&r))
        else {
            return;
        };
        bump(&self.shared.metrics.counters.placements_acked);
        self.shared.ledger.acked(placed.tile, placed.id, now);
        self.last_ack = Some(now);
        if self
            .shared
            .measure_from()
            .is_some_and(|m| placed.sent_at >= m)
        {
            self.recorder.time(Kind::Ack, now - placed.sent_at);
            self.shared
                .metrics
                .slow_ack(now - placed.sent_at, placed.tile);
        }
        if let PlacePlan::Cooldown { .. } = self.shared.settled.place {
            let wait = Duration::from_millis(next_placement.saturating_sub(epoch_ms()));
            let jitter = Duration::from_millis(self.rng.random_range(50..500));
            self.next_place = Some(now + wait + jitter);
        }
    }

    /// An administrator changed the cooldown: a player placing by its cooldown follows the new
    /// wait, as a person watching the countdown would.
    fn on_cooldown_changed(&mut self, cooldown_remaining: u64, now: Instant) {
        if self.next_place.is_some()
            && matches!(self.shared.settled.place, PlacePlan::Cooldown { .. })
        {
            let jitter = Duration::from_millis(self.rng.random_range(50..500));
            self.next_place = Some(now + Duration::from_millis(cooldown_remaining) + jitter);
        }
    }

    fn on_error(&mut self, error: ErrorMessage, now: Instant) {
        self.shared.metrics.error(error.code);
        let Some(placed) = error
            .request_id
            .and_then(|r| r.as_u32())
            .and_then(|r| self.in_flight.remove(&r))
        else {
            return;
        };
        bump(&self.shared.metrics.counters.placements_rejected);
        self.shared.ledger.rejected(placed.tile, placed.id);
        if error.code == ErrorCode::RateLimited {
            let wait = Duration::from_millis(error.cooldown_remaining.unwrap_or(1000));
            let retry = now + wait + Duration::from_millis(self.rng.random_range(50..500));
            self.next_place = Some(self.next_place.map_or(retry, |n| n.max(retry)));
        } else if matches!(self.shared.settled.place, PlacePlan::Cooldown { .. }) {
            self.next_place = self.shared.settled.place.interval().map(|i| now + i);
        }
    }

    /// Schedules the first placement once the viewport is painted, and the first pan.
    fn first_placement(&mut self, cooldown_remaining: u64) {
        let now = Instant::now();
        if let (true, Some(interval)) = (self.placer, self.shared.settled.place.interval()) {
            let spread = interval.mul_f64(self.rng.random::<f64>());
            let wait = match self.shared.settled.place {
                PlacePlan::Cooldown { .. } => Duration::from_millis(cooldown_remaining) + spread,
                _ => spread,
            };
            self.next_place = Some(now + wait);
        }
        if !self.shared.pan_every.is_zero() && !self.shared.global {
            self.next_pan = Some(now + self.pan_interval());
        }
    }

    fn pan_interval(&mut self) -> Duration {
        self.shared
            .pan_every
            .mul_f64(self.rng.random_range(0.5..1.5))
    }

    async fn place(&mut self, socket: &mut Link) -> Result<(), String> {
        let now = Instant::now();
        let (x, y) = self.shared.scene.pixel(&self.view, &mut self.rng);
        let color = self
            .rng
            .random_range(0..self.shared.settled.color_count.max(1));
        let Some((tile, lx, ly)) = self.shared.settled.geometry.locate(x, y) else {
            return Ok(());
        };
        let change = PixelChange {
            lx,
            ly,
            color: color as u8,
        };
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        let id = self.shared.ledger.sent(tile, change, self.id, now);
        self.in_flight.insert(
            request,
            InFlight {
                tile,
                id,
                sent_at: now,
            },
        );
        self.next_place = match self.shared.settled.place {
            PlacePlan::Rate { interval, .. } => {
                let due = self.next_place.unwrap_or(now) + interval;
                Some(if due < now { now + interval } else { due })
            }
            // The answer schedules the next one; this is only a fallback.
            _ => Some(now + ANSWER_TIMEOUT),
        };
        bump(&self.shared.metrics.counters.placements_sent);
        let message = ClientMessage::Place {
            x: i64::from(x),
            y: i64::from(y),
            color: i64::from(color),
            request_id: Some(RequestId::Number(request)),
        };
        self.send(socket, &message).await
    }

    /// Moves the viewport, once no placement of this player is still on its way to the others.
    async fn pan(&mut self, socket: &mut Link) -> Result<(), String> {
        let now = Instant::now();
        let settling = self
            .last_ack
            .is_some_and(|a| now.saturating_duration_since(a) < self.shared.grace);
        if !self.in_flight.is_empty() || settling {
            self.next_pan = Some(now + Duration::from_secs(1));
            return Ok(());
        }
        self.next_pan = Some(now + self.pan_interval());
        let before = self.view.tiles();
        self.view = self.shared.scene.look(self.home, &mut self.rng);
        let wanted = self.view.tiles();
        if self.counting {
            return self.pan_unchecked(socket, &before, wanted).await;
        }
        let leaving: Vec<TileId> = self
            .tracks
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !wanted.contains(t))
            .collect();
        for tile in &leaving {
            if let Some(track) = self.tracks.unsubscribe(*tile) {
                self.settle(*tile, track, now);
            }
        }
        for chunk in leaving.chunks(TILES_PER_FRAME) {
            let message = ClientMessage::Unsubscribe {
                tiles: chunk.to_vec(),
            };
            self.send(socket, &message).await?;
        }
        self.subscribe(socket, wanted).await
    }

    /// A pan of a player that only counts: the same subscribe and unsubscribe frames, with no
    /// tracks to keep.
    async fn pan_unchecked(
        &mut self,
        socket: &mut Link,
        before: &[TileId],
        wanted: Vec<TileId>,
    ) -> Result<(), String> {
        let leaving: Vec<TileId> = before
            .iter()
            .copied()
            .filter(|t| !wanted.contains(t))
            .collect();
        let joining: Vec<TileRequest> = wanted
            .iter()
            .filter(|t| !before.contains(t))
            .map(|&tile| TileRequest { tile, seq: None })
            .collect();
        for chunk in leaving.chunks(TILES_PER_FRAME) {
            let message = ClientMessage::Unsubscribe {
                tiles: chunk.to_vec(),
            };
            self.send(socket, &message).await?;
        }
        for chunk in joining.chunks(TILES_PER_FRAME) {
            let message = ClientMessage::Subscribe {
                tiles: chunk.to_vec(),
            };
            self.send(socket, &message).await?;
        }
        Ok(())
    }

    async fn subscribe_view(&mut self, socket: &mut Link) -> Result<(), String> {
        let tiles = match &self.shared.global_tiles {
            Some(all) => all.clone(),
            None => self.view.tiles(),
        };
        self.subscribe(socket, tiles).await
    }

    async fn subscribe(&mut self, socket: &mut Link, tiles: Vec<TileId>) -> Result<(), String> {
        let now = Instant::now();
        let fresh: Vec<TileId> = tiles
            .into_iter()
            .filter(|t| self.tracks.subscribe(*t, now))
            .collect();
        for chunk in fresh.chunks(TILES_PER_FRAME) {
            let message = ClientMessage::Subscribe {
                tiles: chunk
                    .iter()
                    .map(|&tile| TileRequest { tile, seq: None })
                    .collect(),
            };
            self.send(socket, &message).await?;
        }
        Ok(())
    }

    async fn send(&self, socket: &mut Link, message: &ClientMessage) -> Result<(), String> {
        let frame = match self.shared.format {
            WireFormat::Binary => Message::Binary(binary::encode_client(message)),
            WireFormat::Json => Message::Text(json::encode_client(message).into()),
        };
        let sent = match socket {
            Link::Ws(socket) => socket.send(frame).await.map_err(|e| e.to_string()),
            Link::Counted(counted) => {
                let binary = matches!(frame, Message::Binary(_));
                counted
                    .send(frame.into_data().to_vec(), binary)
                    .map_err(|e| e.to_string())
            }
            Link::Lost => return Err("connection lost".into()),
        };
        sent.map_err(|e| format!("send failed: {e}"))
    }

    /// Once an unchecked player only counts, and tungstenite has returned every byte it read,
    /// its socket goes to the shared [`Counter`](crate::counting::Counter).
    async fn hand_over(&mut self, link: &mut Link) -> Result<(), String> {
        let (true, Some(counter), Link::Ws(socket)) =
            (self.counting, &self.shared.counter, &mut *link)
        else {
            return Ok(());
        };
        if !socket.get_ref().at_frame_start() {
            return Ok(());
        }
        // Pongs tungstenite queued go out first.
        socket
            .flush()
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        let Link::Ws(socket) = std::mem::replace(link, Link::Lost) else {
            return Ok(());
        };
        let (stream, unread) = (*socket).into_inner().into_parts();
        let counted = stream
            .into_std()
            .and_then(|stream| counter.count(stream, unread))
            .map_err(|e| format!("error: {e}"))?;
        *link = Link::Counted(counted);
        Ok(())
    }

    /// Adds what the counter counted on `link` to the player's traffic after its paint.
    fn harvest(&mut self, link: &Link) {
        if let Link::Counted(counted) = link {
            self.messages_after_paint += counted.messages();
            self.bytes_after_paint += counted.bytes();
        }
    }

    /// Counts what a watched tile is missing, when the player stops watching it at `now`.
    fn settle(&self, tile: TileId, track: Track, now: Instant) {
        let counters = &self.shared.metrics.counters;
        match track {
            Track::Live { seq } => add(&counters.missing, self.shared.ledger.owed(tile, seq, now)),
            Track::Awaiting { since } => {
                if now.saturating_duration_since(since) >= self.shared.grace {
                    bump(&counters.unanswered_subscriptions);
                }
            }
        }
    }

    /// The end of the player: settles every watched tile and records its traffic rates.
    fn finish(&mut self, now: Instant) {
        // An unchecked player's tracks stopped at its first paint: nothing to settle.
        let tracked: Vec<(TileId, Track)> = if self.counting {
            Vec::new()
        } else {
            self.tracks.iter().collect()
        };
        for (tile, track) in tracked {
            self.settle(tile, track, now);
        }
        if let Some(painted) = self.painted_at {
            let secs = now.saturating_duration_since(painted).as_secs_f64();
            if secs >= 1.0 {
                let per_sec = |n: u64| (n as f64 / secs).round() as u64;
                self.recorder.value(
                    Kind::MessagesPerSec,
                    per_sec(self.messages_after_paint * 1000),
                );
                self.recorder
                    .value(Kind::BytesPerSec, per_sec(self.bytes_after_paint));
            }
        }
        self.recorder.flush();
    }
}

fn close_reason(frame: &Message) -> String {
    match frame {
        Message::Close(Some(close)) => format!("closed {}", u16::from(close.code)),
        Message::Close(None) => "closed".into(),
        _ => "closed".into(),
    }
}

fn epoch_ms() -> u64 {
    place_tiles::clock::now_ms().max(0) as u64
}
