//! One player's WebSocket, from welcome to close.
//!
//! Two halves run side by side: the reader decodes each frame (binary or JSON by the frame's
//! kind), throttles floods and acts on the message; the writer sends the client's queue of frames
//! in the client's format, pings, and closes the socket when asked (flood, lag, shutdown).
//! Every bad frame gets an error answer and leaves the connection usable.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use place_protocol::{
    binary, json, ClientMessage, ErrorCode, ErrorMessage, RequestId, ServerMessage, TileRequest,
    Welcome,
};
use place_shard::{PlaceError, PlaceRequest};
use place_store::User;
use place_tiles::TileId;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info_span, Instrument};

use crate::accounts::{Admission, Origin};
use crate::frame::{Format, SharedFrame};
use crate::hub::{ConnId, LagSignal, Outbound};
use crate::{now_ms, Edge};

/// Frames a client may have queued before it counts as lagging (closed with 4000).
pub const OUTBOUND_QUEUE: usize = 1024;
/// Sustained frames per second a client may send...
const FRAMES_PER_SECOND: u32 = 50;
/// ...with bursts of this many.
const FRAME_BURST: u32 = 100;
/// Dropped frames within [`FLOOD_WINDOW`] after which a flooding client is disconnected (1008).
const MAX_DROPPED: u32 = 200;
/// The window in which dropped frames are counted.
const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// A write (a flush of queued frames, or a ping) that cannot complete in this time means the
/// client stopped reading: it is closed (4000) and its memory released.
pub const WRITE_STALL: Duration = Duration::from_secs(8);
/// The most time spent writing a close frame or the answers queued before it.
const CLOSE_WRITE: Duration = Duration::from_secs(1);
/// How long a closing connection waits for the other side of the close handshake.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);
/// After how long a client may send again a placement refused as `UNAVAILABLE` with nothing
/// placed (`retryAfter`): about the time a failover takes to give a dead shard's tiles new
/// owners, so a page retrying every second sees its pixel placed within a few tries.
pub const RETRY_UNAVAILABLE_AFTER: Duration = Duration::from_secs(1);

/// Close codes (see `docs/PROTOCOL.md`).
pub mod close_code {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Flood.
    pub const POLICY: u16 = 1008;
    /// The client fell too far behind.
    pub const LAGGING: u16 = 4000;
    /// A message over the hard size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Nothing heard from the client (not even a pong) for too long.
    pub const UNRESPONSIVE: u16 = 4002;
    /// No valid session.
    pub const UNAUTHORIZED: u16 = 4401;
}

enum Control {
    Close(u16, &'static str),
    Stop,
}

/// Runs one connection to its end. `session` is the id the user was found by, so that the
/// connection closes when that session ends.
/// `network` is the client's network, for its per-network placement budget.
pub async fn run(
    edge: Arc<Edge>,
    socket: WebSocket,
    user: Option<User>,
    session: String,
    format: Format,
    network: std::net::IpAddr,
) {
    let (mut sink, stream) = socket.split();
    let Some(user) = user else {
        let error = ErrorMessage::new(
            ErrorCode::Unauthorized,
            "no valid session: POST /api/v1/auth/guest first",
        );
        let _ = sink
            .send(SharedFrame::new(ServerMessage::Error(error)).to_ws(format))
            .await;
        let _ = sink
            .send(close(close_code::UNAUTHORIZED, "unauthorized"))
            .await;
        return;
    };
    let conn = edge.next_conn_id();
    let user_id = user.id;
    edge.count_online(user_id, true);
    let span = info_span!("connection", conn, user_id = user.id);
    let (outbound, frames, lag) = Outbound::channel(OUTBOUND_QUEUE);
    let (control_tx, control_rx) = mpsc::channel(2);

    let welcome = Welcome {
        user_id: user.id.to_string(),
        cooldown: (edge.cooldown_ms() / 1000) as u32,
        cooldown_remaining: edge
            .accounts
            .cooldown_remaining(user.id, now_ms(), edge.cooldown_ms())
            .await
            .unwrap_or(0) as u64,
        canvas_info: edge.canvas_info(),
    };
    outbound.send(SharedFrame::new(ServerMessage::Welcome(welcome)));

    let live = follow_live(
        Arc::clone(&edge),
        user.id,
        session,
        outbound.clone(),
        control_tx.clone(),
    );
    let heard = Arc::new(Heard::new());
    let origin = Origin {
        network,
        budget_per_minute: edge.config.limits.placements_per_address_per_minute,
    };
    let mut reader = Reader {
        origin,
        heard: Arc::clone(&heard),
        edge: Arc::clone(&edge),
        conn,
        user,
        outbound,
        subscribed: HashSet::new(),
        limiter: RateLimiter::direct(
            Quota::per_second(NonZeroU32::new(FRAMES_PER_SECOND).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(FRAME_BURST).unwrap_or(NonZeroU32::MIN)),
        ),
        dropped: 0,
        dropped_since: std::time::Instant::now(),
        control: control_tx,
    };
    async move {
        debug!("connected");
        {
            let writer = write_frames(Writer {
                sink,
                frames,
                lag,
                control: control_rx,
                shutdown: edge.shutdown.clone(),
                format,
                heard: Arc::clone(&heard),
                ping_every: edge.config.limits.ping_interval,
            });
            let reading = async {
                // Live changes are followed while the client is read; both end together.
                tokio::select! {
                    _ = reader.read_frames(stream) => {}
                    _ = live => {}
                }
            };
            tokio::pin!(writer);
            tokio::pin!(reading);
            // Whichever half ends first, give the other a moment: the writer to send its close frame,
            // the reader to see the client's answer to it (closing with unread input would reset
            // the connection before the client reads the close frame).
            tokio::select! {
                _ = &mut writer => {
                    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, &mut reading).await;
                }
                _ = &mut reading => {
                    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, &mut writer).await;
                }
            }
        }
        edge.hub.unsubscribe(conn, reader.subscribed.drain());
        edge.count_online(user_id, false);
        debug!("disconnected");
    }
    .instrument(span)
    .await;
}

/// Tells the client when the cooldown changes (its new wait under the new cooldown), and closes
/// the connection (4401) when its session ends. Returns only when it has closed it.
async fn follow_live(
    edge: Arc<Edge>,
    user_id: i64,
    session: String,
    outbound: Outbound,
    control: mpsc::Sender<Control>,
) {
    let mut cooldown = edge.live.watch_cooldown();
    cooldown.borrow_and_update();
    let mut ended = edge.live.watch_sessions_ended();
    loop {
        tokio::select! {
            changed = cooldown.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
                let cooldown_ms = *cooldown.borrow_and_update();
                let remaining = edge
                    .accounts
                    .cooldown_remaining(user_id, now_ms(), cooldown_ms as i64)
                    .await
                    .unwrap_or(0);
                outbound.send(SharedFrame::new(ServerMessage::Cooldown {
                    cooldown: (cooldown_ms / 1000) as u32,
                    cooldown_remaining: remaining as u64,
                }));
            }
            id = ended.recv() => {
                let ours = match id {
                    Ok(id) => *id == *session,
                    // Too many ended at once to follow one by one: ask the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => matches!(
                        edge.accounts.session_user(&session, now_ms()).await,
                        Ok(None)
                    ),
                    Err(broadcast::error::RecvError::Closed) => {
                        return std::future::pending().await;
                    }
                };
                if ours {
                    let _ = control
                        .send(Control::Close(close_code::UNAUTHORIZED, "session ended"))
                        .await;
                    return;
                }
            }
        }
    }
}

/// A read failed because the client sent a message or frame over the hard limit.
fn is_too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// What the writing half of a connection works with.
struct Writer {
    sink: SplitSink<WebSocket, Message>,
    frames: mpsc::Receiver<Arc<SharedFrame>>,
    lag: Arc<LagSignal>,
    control: mpsc::Receiver<Control>,
    shutdown: tokio_util::sync::CancellationToken,
    format: Format,
    heard: Arc<Heard>,
    ping_every: Duration,
}

/// How a writer ends: with a close frame (its code, reason, and the label it is counted by), or
/// quietly because the socket is gone.
struct Ending {
    close: Option<(u16, &'static str)>,
    why: &'static str,
}

impl Ending {
    const GONE: Ending = Ending {
        close: None,
        why: "gone",
    };

    fn close(code: u16, reason: &'static str, why: &'static str) -> Self {
        Ending {
            close: Some((code, reason)),
            why,
        }
    }

    fn shutdown() -> Self {
        Self::close(close_code::GOING_AWAY, "server shutting down", "shutdown")
    }

    fn lagging() -> Self {
        Self::close(
            close_code::LAGGING,
            "too far behind: reconnect and resubscribe",
            "lagging",
        )
    }
}

/// What the writer does next.
enum Work {
    Frames(Arc<SharedFrame>),
    Ping,
}

/// Sends the client's frames, pings it, and closes the socket when asked (flood, session ended),
/// at shutdown, when the client falls behind, when a write cannot complete within
/// [`WRITE_STALL`] (a client that stopped reading), or when nothing was heard from it for
/// twice the ping interval. A write in progress never holds those back: it is raced against them.
async fn write_frames(writer: Writer) {
    let Writer {
        mut sink,
        mut frames,
        lag,
        mut control,
        shutdown,
        format,
        heard,
        ping_every,
    } = writer;
    let mut ping = tokio::time::interval(ping_every);
    ping.reset();
    // A client not heard from (no frame, no pong) for this long is closed (4002).
    let silence_limit = ping_every * 2 + Duration::from_secs(1);
    let mut written = Vec::with_capacity(FRAMES_PER_FLUSH);
    let ending = loop {
        let work = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ending::shutdown(),
            _ = lag.wait() => break Ending::lagging(),
            command = control.recv() => break on_control(command, &mut sink, &mut frames, format).await,
            frame = frames.recv() => match frame {
                Some(frame) => Work::Frames(frame),
                None => break Ending::GONE,
            },
            _ = ping.tick() => {
                if heard.silent_for() > silence_limit {
                    break Ending::close(close_code::UNRESPONSIVE, "no answer to pings", "unresponsive");
                }
                Work::Ping
            }
        };
        let write = async {
            match work {
                Work::Frames(frame) => {
                    send_ready(&mut sink, &mut frames, frame, format, &mut written).await
                }
                Work::Ping => sink.send(Message::Ping(Default::default())).await,
            }
        };
        let interrupted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => Some(Ending::shutdown()),
            _ = lag.wait() => Some(Ending::lagging()),
            command = control.recv() => Some(match command {
                Some(Control::Close(code, reason)) => Ending::close(code, reason, reason),
                Some(Control::Stop) | None => Ending::GONE,
            }),
            result = tokio::time::timeout(WRITE_STALL, write) => match result {
                Ok(Ok(())) => None,
                Ok(Err(_)) => Some(Ending::GONE),
                Err(_) => Some(Ending::close(close_code::LAGGING, "not reading: reconnect and resubscribe", "stalled")),
            },
        };
        // Frames are released once flushed: a batch's broadcast latency is taken when the last
        // socket it went to has written it.
        written.clear();
        if let Some(ending) = interrupted {
            break ending;
        }
    };
    metrics::counter!(crate::telemetry::WEBSOCKETS_CLOSED, "why" => ending.why).increment(1);
    if let Some((code, reason)) = ending.close {
        // A client that stopped reading may never take the close frame: bounded, then dropped.
        let _ = tokio::time::timeout(CLOSE_WRITE, sink.send(close(code, reason))).await;
    }
    let _ = tokio::time::timeout(CLOSE_WRITE, sink.close()).await;
}

/// A close asked by the reader or the live changes: the answers already queued (the errors
/// that explain the close) go out first, within [`CLOSE_WRITE`].
async fn on_control(
    command: Option<Control>,
    sink: &mut SplitSink<WebSocket, Message>,
    frames: &mut mpsc::Receiver<Arc<SharedFrame>>,
    format: Format,
) -> Ending {
    match command {
        Some(Control::Close(code, reason)) => {
            let flush = async {
                while let Ok(frame) = frames.try_recv() {
                    if sink.send(frame.to_ws(format)).await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_WRITE, flush).await;
            Ending::close(code, reason, reason)
        }
        Some(Control::Stop) | None => Ending::GONE,
    }
}

/// When the client was last heard from (any frame, pongs included).
#[derive(Debug)]
struct Heard {
    since: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Heard {
    fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// Most frames written with one flush (one `send` system call).
const FRAMES_PER_FLUSH: usize = 64;

/// Writes `first` and every frame already queued behind it (up to [`FRAMES_PER_FLUSH`]), then
/// flushes once: under load a socket gets one system call for many small frames instead of one
/// each (a profile of fan-out showed half the server's CPU in `sendto`). The frames written are
/// kept in `written` until the flush is done.
async fn send_ready(
    sink: &mut SplitSink<WebSocket, Message>,
    frames: &mut mpsc::Receiver<Arc<SharedFrame>>,
    first: Arc<SharedFrame>,
    format: Format,
    written: &mut Vec<Arc<SharedFrame>>,
) -> Result<(), axum::Error> {
    sink.feed(first.to_ws(format)).await?;
    written.push(first);
    for _ in 1..FRAMES_PER_FLUSH {
        match frames.try_recv() {
            Ok(frame) => {
                sink.feed(frame.to_ws(format)).await?;
                written.push(frame);
            }
            Err(_) => break,
        }
    }
    sink.flush().await
}

struct Reader {
    origin: Origin,
    heard: Arc<Heard>,
    edge: Arc<Edge>,
    conn: ConnId,
    user: User,
    outbound: Outbound,
    subscribed: HashSet<TileId>,
    limiter: DefaultDirectRateLimiter,
    dropped: u32,
    dropped_since: std::time::Instant,
    control: mpsc::Sender<Control>,
}

impl Reader {
    async fn read_frames(&mut self, mut stream: SplitStream<WebSocket>) {
        while let Some(next) = stream.next().await {
            self.heard.now();
            let message = match next {
                Ok(message) => message,
                Err(error) => {
                    debug!(%error, "read failed");
                    if is_too_big(error) {
                        let _ = self
                            .control
                            .send(Control::Close(close_code::TOO_BIG, "message too big"))
                            .await;
                    }
                    break;
                }
            };
            if matches!(message, Message::Close(_)) {
                break;
            }
            if matches!(message, Message::Ping(_) | Message::Pong(_)) {
                continue;
            }
            // A flood is refused before its frames cost a decode.
            if self.limiter.check().is_err() {
                if self.dropped_since.elapsed() > FLOOD_WINDOW {
                    self.dropped = 0;
                    self.dropped_since = std::time::Instant::now();
                }
                self.dropped += 1;
                if self.dropped >= MAX_DROPPED {
                    let _ = self
                        .control
                        .send(Control::Close(close_code::POLICY, "too many messages"))
                        .await;
                    // Read (and ignore) what the client still sends until it answers the close:
                    // closing with unread input would reset the connection under the close frame.
                    while let Some(message) = stream.next().await {
                        if let Ok(Message::Close(_)) = message {
                            break;
                        }
                    }
                    return;
                }
                metrics::counter!(crate::telemetry::RATE_LIMIT_HITS, "why" => "flood").increment(1);
                let error =
                    ErrorMessage::new(ErrorCode::RateLimited, "too many messages: slow down");
                self.reply(ServerMessage::Error(error));
                continue;
            }
            let decoded = match &message {
                Message::Binary(bytes) => binary::decode_client(bytes),
                Message::Text(text) => json::decode_client(text.as_str()),
                Message::Close(_) | Message::Ping(_) | Message::Pong(_) => continue,
            };
            match decoded {
                Ok(message) => self.handle(message),
                Err(e) => self.reply(ServerMessage::Error(e.to_error_message())),
            }
        }
        let _ = self.control.send(Control::Stop).await;
    }

    fn reply(&self, message: ServerMessage) {
        self.outbound.send(SharedFrame::new(message));
    }

    fn handle(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Subscribe { tiles } => self.subscribe(&tiles),
            ClientMessage::Unsubscribe { tiles } => {
                let leaving: Vec<TileId> = tiles
                    .into_iter()
                    .filter(|t| self.subscribed.remove(t))
                    .collect();
                self.edge.hub.unsubscribe(self.conn, leaving);
            }
            ClientMessage::Place {
                x,
                y,
                color,
                request_id,
            } => self.place(x, y, color, request_id),
            ClientMessage::Ping => self.reply(ServerMessage::Pong),
        }
    }

    fn subscribe(&mut self, tiles: &[TileRequest]) {
        let geometry = self.edge.config.geometry;
        if let Some(bad) = tiles.iter().find(|t| !geometry.contains_tile(t.tile)) {
            let error = ErrorMessage::new(
                ErrorCode::BadRequest,
                format!(
                    "tile {} is outside the canvas ({}x{} tiles)",
                    bad.tile,
                    geometry.tiles_x(),
                    geometry.tiles_y()
                ),
            );
            return self.reply(ServerMessage::Error(error));
        }
        let after: HashSet<TileId> = self
            .subscribed
            .iter()
            .copied()
            .chain(tiles.iter().map(|t| t.tile))
            .collect();
        let max = self.edge.config.max_tiles_per_client;
        if after.len() > max {
            let error = ErrorMessage::new(
                ErrorCode::TooManyTiles,
                format!(
                    "at most {max} tiles per connection; this would make {}",
                    after.len()
                ),
            );
            return self.reply(ServerMessage::Error(error));
        }
        for t in tiles {
            self.edge
                .hub
                .subscribe(self.conn, &self.outbound, t.tile, t.seq);
            self.subscribed.insert(t.tile);
        }
    }

    fn place(&self, x: i64, y: i64, color: i64, request_id: Option<RequestId>) {
        let fail = |code, message: String| {
            self.reply(ServerMessage::Error(
                ErrorMessage::new(code, message).with_request_id(request_id.clone()),
            ));
        };
        let geometry = self.edge.config.geometry;
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
            return fail(
                ErrorCode::InvalidCoords,
                format!("({x},{y}) is outside the canvas"),
            );
        };
        if !geometry.contains(x, y) {
            return fail(
                ErrorCode::InvalidCoords,
                format!(
                    "({x},{y}) is outside the {}x{} canvas",
                    geometry.width(),
                    geometry.height()
                ),
            );
        }
        let palette = &self.edge.config.palette;
        let Some(color) = u8::try_from(color).ok().filter(|c| palette.contains(*c)) else {
            return fail(
                ErrorCode::InvalidColor,
                format!(
                    "colour {color} is not in the {}-colour palette",
                    palette.len()
                ),
            );
        };
        let edge = Arc::clone(&self.edge);
        let outbound = self.outbound.clone();
        let user_id = self.user.id;
        let origin = self.origin;
        // A correlation id per placement (never 0, which means none), on every log line it
        // causes here and, carried over the wire, at the shard that applies it.
        let placement_id = rand::random::<u64>() | 1;
        let span = info_span!(
            "placement",
            placement_id = %format!("{placement_id:016x}"),
            x,
            y,
            color,
            user_id
        );
        self.edge.tasks.spawn(
            async move {
                let started = std::time::Instant::now();
                let message = place_checked(
                    &edge,
                    (user_id, origin),
                    (x, y, color),
                    placement_id,
                    request_id,
                )
                .await;
                record_placement(&message, color, started);
                outbound.send(SharedFrame::new(message));
            }
            .instrument(span),
        );
    }
}

/// Counts a placement's outcome, and times the acknowledged ones.
fn record_placement(answer: &ServerMessage, color: u8, started: std::time::Instant) {
    use crate::telemetry::{
        PIXELS_PLACED, PLACEMENTS_REFUSED, PLACEMENT_DURATION, RATE_LIMIT_HITS,
    };
    match answer {
        ServerMessage::Success { .. } => {
            metrics::counter!(PIXELS_PLACED, "color" => color.to_string()).increment(1);
            metrics::histogram!(PLACEMENT_DURATION).record(started.elapsed().as_secs_f64());
        }
        ServerMessage::Error(error) => {
            if error.code == ErrorCode::RateLimited {
                metrics::counter!(RATE_LIMIT_HITS, "why" => "cooldown").increment(1);
            }
            metrics::counter!(PLACEMENTS_REFUSED, "code" => error.code.as_str()).increment(1);
        }
        _ => {}
    }
}

/// The checks that need the shared account state (ban, cooldown, the network's budget), then
/// the placement itself.
async fn place_checked(
    edge: &Edge,
    (user_id, origin): (i64, Origin),
    (x, y, color): (u32, u32, u8),
    placement_id: u64,
    request_id: Option<RequestId>,
) -> ServerMessage {
    let fail = |code, message: &str, request_id| {
        ServerMessage::Error(ErrorMessage::new(code, message).with_request_id(request_id))
    };
    let now = now_ms();
    let next = match edge
        .accounts
        .admit_placement(user_id, origin, now, edge.cooldown_ms())
        .await
    {
        Ok(Admission::Admitted { next_at_ms }) => next_at_ms,
        Ok(Admission::Banned) => {
            return fail(
                ErrorCode::Banned,
                "you are banned from placing pixels",
                request_id,
            )
        }
        Ok(Admission::CoolingDown { remaining_ms }) => {
            let mut error = ErrorMessage::new(
                ErrorCode::RateLimited,
                format!("cooldown: {:.1} s left", remaining_ms as f64 / 1000.0),
            )
            .with_request_id(request_id);
            error.cooldown_remaining = Some(remaining_ms as u64);
            return ServerMessage::Error(error);
        }
        Ok(Admission::NetworkBusy { retry_ms }) => {
            metrics::counter!(crate::telemetry::RATE_LIMIT_HITS, "why" => "network").increment(1);
            let error = ErrorMessage::new(
                ErrorCode::RateLimited,
                format!(
                    "too many placements from your network this minute: try again in {} s",
                    (retry_ms.max(0) as u64).div_ceil(1000)
                ),
            )
            .with_request_id(request_id)
            .with_retry_after(Duration::from_millis(retry_ms.max(0) as u64));
            return ServerMessage::Error(error);
        }
        Err(error) => {
            tracing::warn!(%error, "placement admission failed");
            let error = ErrorMessage::new(
                ErrorCode::Unavailable,
                "accounts are unavailable; try again",
            )
            .with_request_id(request_id)
            .with_retry_after(RETRY_UNAVAILABLE_AFTER);
            return ServerMessage::Error(error);
        }
    };
    let request = PlaceRequest {
        x,
        y,
        color,
        user_id,
        placed_at: now,
        action_id: None,
        placement_id,
    };
    match edge.shards.place(request).await {
        Ok(placed) => {
            debug!(seq = placed.seq, "placed");
            ServerMessage::Success {
                request_id,
                next_placement: next as u64,
            }
        }
        Err(error) => {
            if let Err(e) = edge.accounts.release_cooldown(user_id, now).await {
                tracing::warn!(error = %e, "could not give a cooldown back");
            }
            let code = match error {
                PlaceError::InvalidCoords => ErrorCode::InvalidCoords,
                PlaceError::InvalidColor => ErrorCode::InvalidColor,
                PlaceError::NotOwner | PlaceError::Unavailable | PlaceError::NoAnswer => {
                    ErrorCode::Unavailable
                }
            };
            let mut answer = ErrorMessage::new(code, error.to_string()).with_request_id(request_id);
            // Nothing was placed: the client may send it again. After `NoAnswer` it may have
            // been, so it gets no `retryAfter` and learns the outcome from the tile's deltas.
            if matches!(error, PlaceError::NotOwner | PlaceError::Unavailable) {
                answer = answer.with_retry_after(RETRY_UNAVAILABLE_AFTER);
            }
            ServerMessage::Error(answer)
        }
    }
}
