//! One player's WebSocket, from welcome to close.
//!
//! One task owns the socket, reading and writing it in a single poll loop (no `split()` lock):
//! it decodes each frame the client sends (binary or JSON by the frame's kind), throttles floods
//! and acts on the message; it writes the frames queued in the client's
//! [`Inbox`](crate::outbox::Inbox) in the client's format, every frame ready at once followed by
//! one flush (one `send` system call); and it closes the socket when asked (flood, lag, a stalled
//! write, silence, a session that ended, shutdown). The task has no timer and waits on nothing
//! but its socket and its inbox: pings, write deadlines, shutdown and live changes come from
//! the edge's one keeper ([`crate::sockets`]). Every bad frame gets an error answer and leaves
//! the connection usable.

use std::collections::{HashSet, VecDeque};
use std::future::poll_fn;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use place_protocol::{
    binary, close_code, json, ClientMessage, ErrorCode, ErrorMessage, RequestId, ServerMessage,
    TileRequest, Welcome,
};
use place_shard::{PlaceError, PlaceRequest};
use place_store::User;
use place_tiles::TileId;
use tracing::{debug, info_span, Instrument};

use crate::accounts::{Admission, Origin};
use crate::frame::{Format, SharedFrame};
use crate::hub::ConnId;
use crate::outbox::{self, Ending, Inbox, Outbound};
use crate::sockets::Heard;
use crate::Edge;

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
pub use crate::sockets::WRITE_STALL;
/// The most time spent writing a close frame or the answers queued before it.
const CLOSE_WRITE: Duration = Duration::from_secs(1);
/// How long a closing connection waits for the other side of the close handshake.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);
/// After how long a client may send again a placement refused as `UNAVAILABLE` with nothing
/// placed (`retryAfter`): about the time a failover takes to give a dead shard's tiles new
/// owners, so a page retrying every second sees its pixel placed within a few tries.
pub const RETRY_UNAVAILABLE_AFTER: Duration = Duration::from_secs(1);
/// Most frames written with one flush (one `send` system call).
const FRAMES_PER_FLUSH: usize = 64;

/// Runs one connection to its end. `session` is the id the user was found by, so that the
/// connection closes when that session ends.
/// `network` is the client's network, for its per-network placement budget.
pub async fn run(
    edge: Arc<Edge>,
    mut socket: WebSocket,
    user: Option<User>,
    session: String,
    format: Format,
    network: std::net::IpAddr,
) {
    let Some(user) = user else {
        let error = ErrorMessage::new(
            ErrorCode::Unauthorized,
            "no valid session: POST /api/v1/auth/guest first",
        );
        let _ = socket
            .send(SharedFrame::new(ServerMessage::Error(error)).to_ws(format))
            .await;
        let _ = socket
            .send(close(close_code::UNAUTHORIZED, "unauthorized"))
            .await;
        return;
    };
    let conn = edge.next_conn_id();
    let user_id = user.id;
    edge.count_online(user_id, true);
    let (outbound, inbox) = outbox::channel(OUTBOUND_QUEUE);
    let heard = Arc::new(Heard::default());

    let welcome = Welcome {
        user_id: user.id.to_string(),
        cooldown: (edge.cooldown_ms() / 1000) as u32,
        cooldown_remaining: edge
            .accounts
            .cooldown_remaining(user.id, edge.now_ms(), edge.cooldown_ms())
            .await
            .unwrap_or(0) as u64,
        canvas_info: edge.canvas_info(),
    };
    outbound.send(SharedFrame::new(ServerMessage::Welcome(welcome)));
    edge.sockets
        .add(&edge, conn, (user_id, &session), &outbound, &heard);

    let origin = Origin {
        network,
        budget_per_minute: edge.config.limits.placements_per_address_per_minute,
    };
    let mut connection = Connection {
        socket,
        inbox,
        format,
        unsent: VecDeque::new(),
        written: Vec::with_capacity(FRAMES_PER_FLUSH),
        flushing: false,
        reader: Reader {
            origin,
            heard,
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
            dropped_since: tokio::time::Instant::now(),
        },
    };
    debug!(conn, user_id, "connected");
    let ending = poll_fn(|cx| connection.poll_serve(cx)).await;
    connection.finish(ending).await;
    edge.sockets.remove(conn);
    edge.hub
        .unsubscribe(conn, connection.reader.subscribed.drain());
    edge.count_online(user_id, false);
    debug!(conn, user_id, why = ending.why, "disconnected");
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

/// One connection: its socket, its queue, and what it read.
struct Connection {
    socket: WebSocket,
    inbox: Inbox,
    format: Format,
    /// Frames taken from the inbox, not yet handed to the socket.
    unsent: VecDeque<Arc<SharedFrame>>,
    /// Frames handed to the socket, kept until their flush is done: a batch's broadcast latency
    /// is taken when the last socket it went to has written it.
    written: Vec<Arc<SharedFrame>>,
    /// Something was handed to the socket and not yet flushed.
    flushing: bool,
    reader: Reader,
}

impl Connection {
    /// Reads and writes until the connection is to end, and says how.
    fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            if let Poll::Ready(ending) = self.poll_read(cx) {
                return Poll::Ready(ending);
            }
            // While frames wait for the socket, only the signals are looked at: the queue
            // behind them fills, and overflows into the lagging signal.
            let max = if self.unsent.is_empty() {
                FRAMES_PER_FLUSH
            } else {
                0
            };
            let mut ping = false;
            if let Poll::Ready(signals) = self.inbox.poll_take(cx, &mut self.unsent, max) {
                if let Some(ending) = signals.ending {
                    return Poll::Ready(ending);
                }
                ping = signals.ping;
            }
            match self.poll_write(cx, ping) {
                Poll::Ready(Ok(true)) => continue,
                Poll::Ready(Ok(false)) | Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(())) => return Poll::Ready(Ending::GONE),
            }
        }
    }

    /// Handles every message the client sent that is ready.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            let message = match self.socket.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ending::GONE),
                Poll::Ready(Some(Err(error))) => {
                    debug!(conn = self.reader.conn, %error, "read failed");
                    return Poll::Ready(if is_too_big(error) {
                        Ending::after_queued(close_code::TOO_BIG, "message too big")
                    } else {
                        Ending::GONE
                    });
                }
                Poll::Ready(Some(Ok(message))) => message,
            };
            self.reader.heard.now();
            if let Some(ending) = self.reader.on_message(message) {
                return Poll::Ready(ending);
            }
        }
    }

    /// Hands the unsent frames (and a ping) to the socket and flushes them. `Ok(true)`: all
    /// flushed and maybe more to take; `Ok(false)`: nothing to do; pending: the socket is full.
    fn poll_write(&mut self, cx: &mut Context<'_>, ping: bool) -> Poll<Result<bool, ()>> {
        if ping {
            // A ping goes out with the next flush, ahead of frames not yet handed over.
            match self.socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    if self
                        .socket
                        .start_send_unpin(Message::Ping(Default::default()))
                        .is_err()
                    {
                        return Poll::Ready(Err(()));
                    }
                    self.flushing = true;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                // The socket is full: the keeper's stall deadline covers this client.
                Poll::Pending => {}
            }
        }
        let had_work = !self.unsent.is_empty() || self.flushing;
        while let Some(frame) = self.unsent.front() {
            match self.socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => break,
            }
            if self
                .socket
                .start_send_unpin(frame.to_ws(self.format))
                .is_err()
            {
                return Poll::Ready(Err(()));
            }
            self.flushing = true;
            if let Some(frame) = self.unsent.pop_front() {
                self.written.push(frame);
            }
        }
        if !self.flushing {
            return Poll::Ready(Ok(false));
        }
        match self.socket.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => {
                self.flushing = false;
                self.written.clear();
                self.inbox.set_blocked(false);
                Poll::Ready(Ok(had_work))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(())),
            Poll::Pending => {
                self.inbox.set_blocked(true);
                Poll::Pending
            }
        }
    }

    /// Closes the connection as `ending` says, each step bounded: the answers queued before a
    /// close asked by the connection itself, the close frame, then the client's answer to it
    /// (closing with unread input would reset the connection before the client reads the
    /// close frame).
    async fn finish(&mut self, ending: Ending) {
        metrics::counter!(crate::telemetry::WEBSOCKETS_CLOSED, "why" => ending.why).increment(1);
        let format = self.format;
        let Some((code, reason)) = ending.close else {
            // The client closed (its close frame is answered by this flush) or is gone.
            let _ = tokio::time::timeout(CLOSE_WRITE, self.socket.close()).await;
            return;
        };
        let queued: Vec<Arc<SharedFrame>> = if ending.flush_queued {
            self.unsent.drain(..).chain(self.inbox.take_all()).collect()
        } else {
            Vec::new()
        };
        let socket = &mut self.socket;
        let write = async {
            for frame in queued {
                socket.feed(frame.to_ws(format)).await?;
            }
            socket.send(close(code, reason)).await
        };
        // A client that stopped reading may never take the close frame: bounded, then dropped.
        if let Ok(Ok(())) = tokio::time::timeout(CLOSE_WRITE, write).await {
            let answer = async {
                while let Some(Ok(message)) = self.socket.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, answer).await;
        }
        let _ = tokio::time::timeout(CLOSE_WRITE, self.socket.close()).await;
    }
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
    dropped_since: tokio::time::Instant,
}

impl Reader {
    /// Acts on one message from the client; `Some` when the connection is to close.
    fn on_message(&mut self, message: Message) -> Option<Ending> {
        if matches!(message, Message::Close(_)) {
            return Some(Ending::GONE);
        }
        if matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return None;
        }
        // A flood is refused before its frames cost a decode.
        if self.limiter.check().is_err() {
            if self.dropped_since.elapsed() > FLOOD_WINDOW {
                self.dropped = 0;
                self.dropped_since = tokio::time::Instant::now();
            }
            self.dropped += 1;
            if self.dropped >= MAX_DROPPED {
                return Some(Ending::after_queued(
                    close_code::POLICY,
                    "too many messages",
                ));
            }
            metrics::counter!(crate::telemetry::RATE_LIMIT_HITS, "why" => "flood").increment(1);
            let error = ErrorMessage::new(ErrorCode::RateLimited, "too many messages: slow down");
            self.reply(ServerMessage::Error(error));
            return None;
        }
        let decoded = match &message {
            Message::Binary(bytes) => binary::decode_client(bytes),
            Message::Text(text) => json::decode_client(text.as_str()),
            Message::Close(_) | Message::Ping(_) | Message::Pong(_) => return None,
        };
        match decoded {
            Ok(message) => self.handle(message),
            Err(e) => self.reply(ServerMessage::Error(e.to_error_message())),
        }
        None
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
        let geometry = self.edge.geometry();
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
        let geometry = self.edge.geometry();
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
        let placer = crate::regions::Placer::of(&self.user);
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
                let started = tokio::time::Instant::now();
                let message = place_checked(
                    &edge,
                    (user_id, placer, origin),
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
fn record_placement(answer: &ServerMessage, color: u8, started: tokio::time::Instant) {
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

/// The protected regions (from memory), the checks that need the shared account state (ban,
/// cooldown, the network's budget), then the placement itself.
async fn place_checked(
    edge: &Edge,
    (user_id, placer, origin): (i64, crate::regions::Placer, Origin),
    (x, y, color): (u32, u32, u8),
    placement_id: u64,
    request_id: Option<RequestId>,
) -> ServerMessage {
    let fail = |code, message: &str, request_id| {
        ServerMessage::Error(ErrorMessage::new(code, message).with_request_id(request_id))
    };
    let now = edge.now_ms();
    let rule = edge.regions().rule(x, y, now, placer);
    let cooldown_ms = match rule.cooldown_ms(edge.cooldown_ms()) {
        Ok(cooldown_ms) => cooldown_ms,
        Err(refusal) => return ServerMessage::Error(refusal.with_request_id(request_id)),
    };
    let next = match edge
        .accounts
        .admit_placement(user_id, origin, now, cooldown_ms)
        .await
    {
        // The next placement outside any slow region.
        Ok(Admission::Admitted { .. }) => now + edge.cooldown_ms(),
        Ok(Admission::Banned) => {
            return fail(
                ErrorCode::Banned,
                "you are banned from placing pixels",
                request_id,
            )
        }
        Ok(Admission::CoolingDown { remaining_ms }) => {
            return ServerMessage::Error(
                rule.cooling_down(remaining_ms).with_request_id(request_id),
            );
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
            edge.spike_alarm().record(x, y);
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
