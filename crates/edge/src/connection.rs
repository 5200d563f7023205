//! One player's WebSocket, from welcome to close.
//!
//! One task reads the socket: it decodes each frame the client sends (binary or JSON by the
//! frame's kind), throttles floods and acts on the message. It does not write: everything the
//! client is sent (answers, tile batches, pings) is written into the socket by its sender through
//! the client's [`Outbound`](crate::outbox::Outbound), and the task is woken only to read, to
//! drain a socket whose kernel buffer had filled, or to close when asked (flood, lag, a stalled
//! write, silence, a session that ended, shutdown). The task has no timer: pings, write
//! deadlines, shutdown and live changes come from the edge's one keeper ([`crate::sockets`]).
//! Every bad frame gets an error answer and leaves the connection usable.

use std::collections::HashSet;
use std::future::poll_fn;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use place_protocol::{
    binary, close_code, json, ClientMessage, ErrorCode, ErrorMessage, RequestId, ServerMessage,
    TileRequest, Welcome,
};
use place_shard::{PlaceError, PlaceRequest};
use place_store::User;
use place_tiles::TileId;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, info_span, Instrument};

use crate::accounts::{Admission, Origin};
use crate::frame::{Format, SharedFrame};
use crate::hub::ConnId;
use crate::outbox::{self, Ending, Inbox, Outbound};
use crate::sockets::Heard;
use crate::websocket::{self, FrameReader, Upgraded};
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

/// Runs one connection to its end. `session` is the id the user was found by, so that the
/// connection closes when that session ends.
/// `network` is the client's network, for its per-network placement budget.
pub async fn run(
    edge: Arc<Edge>,
    upgraded: Upgraded,
    user: Option<User>,
    session: String,
    format: Format,
    network: std::net::IpAddr,
) {
    let (outbound, inbox) =
        outbox::channel(OUTBOUND_QUEUE, format, Some(Arc::clone(&upgraded.stream)));
    let socket = websocket::reader(&upgraded, outbound.clone()).await;
    drop(upgraded);
    let Some(user) = user else {
        let error = ErrorMessage::new(
            ErrorCode::Unauthorized,
            "no valid session: POST /api/v1/auth/guest first",
        );
        outbound.send(SharedFrame::new(ServerMessage::Error(error)));
        let ending = Ending::after_queued(close_code::UNAUTHORIZED, "unauthorized");
        close_socket(socket, &inbox, ending).await;
        return;
    };
    let conn = edge.next_conn_id();
    let user_id = user.id;
    edge.count_online(user_id, true);
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
    let Connection {
        socket,
        inbox,
        mut reader,
    } = connection;
    close_socket(socket, &inbox, ending).await;
    edge.sockets.remove(conn);
    edge.hub.unsubscribe(conn, reader.subscribed.drain());
    edge.count_online(user_id, false);
    debug!(conn, user_id, why = ending.why, "disconnected");
}

/// A read failed because the client sent a message or frame over the hard limit.
fn is_too_big(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Capacity(_))
}

/// One connection: the reading side of its socket, its outbox, and what it read.
struct Connection {
    socket: FrameReader,
    inbox: Inbox,
    reader: Reader,
}

impl Connection {
    /// Reads until the connection is to end, and says how; meanwhile writes the client's queue
    /// whenever its socket had filled and drains.
    fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        if let Poll::Ready(ending) = self.poll_read(cx) {
            return Poll::Ready(ending);
        }
        self.inbox.poll_ending(cx)
    }

    /// Handles every message the client sent that is ready.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            let message = match self.socket.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ending::GONE),
                Poll::Ready(Some(Err(error))) => {
                    debug!(conn = self.reader.conn, %error, "read failed");
                    return Poll::Ready(if is_too_big(&error) {
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
}

/// Closes the connection as `ending` says, each step bounded: the answers queued before a close
/// asked by the connection itself, the close frame, then the client's answer to it (closing with
/// unread input would reset the connection before the client reads the close frame). The socket
/// closes when the last of its holders (the reader here, the outbox once gone) lets go.
async fn close_socket(mut socket: FrameReader, inbox: &Inbox, ending: Ending) {
    metrics::counter!(crate::telemetry::WEBSOCKETS_CLOSED, "why" => ending.why).increment(1);
    let drained = || tokio::time::timeout(CLOSE_WRITE, poll_fn(|cx| inbox.poll_drained(cx)));
    let Some((code, reason)) = ending.close else {
        // The client closed (tungstenite's answer to its close frame is written by this flush)
        // or is gone.
        let _ = futures_util::SinkExt::flush(&mut socket).await;
        let _ = drained().await;
        return;
    };
    if !ending.flush_queued {
        inbox.discard_queued();
    }
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.into(),
    };
    // Written into the outbox, behind what is queued: it cannot block.
    if socket.close(Some(frame)).await.is_err() {
        return;
    }
    // A client that stopped reading may never take the close frame: bounded, then dropped.
    if drained().await.is_ok() {
        let answer = async {
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, answer).await;
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
        if matches!(
            message,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_)
        ) {
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
            Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                return None
            }
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

/// The `color` label of a palette index, made once per index rather than once per placement.
fn color_label(color: u8) -> &'static str {
    static LABELS: std::sync::LazyLock<[String; 256]> =
        std::sync::LazyLock::new(|| std::array::from_fn(|i| i.to_string()));
    &LABELS[usize::from(color)]
}

/// Counts a placement's outcome, and times the acknowledged ones.
fn record_placement(answer: &ServerMessage, color: u8, started: tokio::time::Instant) {
    use crate::telemetry::{
        PIXELS_PLACED, PLACEMENTS_REFUSED, PLACEMENT_DURATION, RATE_LIMIT_HITS,
    };
    match answer {
        ServerMessage::Success { .. } => {
            metrics::counter!(PIXELS_PLACED, "color" => color_label(color)).increment(1);
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
