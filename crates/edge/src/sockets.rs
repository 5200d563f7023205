//! The edge's open WebSockets, and the one keeper that looks after all of them.
//!
//! A connection task waits only on its socket and its [`Inbox`](crate::outbox::Inbox): it has
//! no timer of its own and watches no shared channel. Everything that concerns every connection
//! is done here, once per edge, and reaches a connection through its outbox:
//!
//! - pings: every connection is pinged each ping interval; one that sent nothing (not even a
//!   pong) for twice the interval and a second is closed (4002);
//! - stalled writes: a connection whose write has waited for the client to read for
//!   [`WRITE_STALL`] is closed (4000) and its memory released;
//! - shutdown: every connection, and any that opens later, is closed (1001);
//! - live changes: a session that ended closes its connections (4401); a new cooldown is sent
//!   to every connection with the player's new wait; a grown canvas's size is sent to every
//!   connection (one `canvas` frame, the same bytes for all).
//!
//! One timer for all of them (a tick of at most a second) replaces a timer and three shared
//! channel waiters per connection, which were polled at every frame a connection wrote.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use place_protocol::{close_code, ServerMessage};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::debug;

use crate::frame::SharedFrame;
use crate::hub::ConnId;
use crate::outbox::{Ending, Outbound};
use crate::Edge;

/// A write (a flush of queued frames, or a ping) that cannot complete in this time means the
/// client stopped reading: it is closed (4000) and its memory released.
pub const WRITE_STALL: Duration = Duration::from_secs(8);
/// The keeper's tick, at most: stalled writes and silent clients are found within it.
const MAX_TICK: Duration = Duration::from_secs(1);
/// Players told a new cooldown at once.
const COOLDOWN_FAN_OUT: usize = 64;

/// When a client was last heard from (any frame, pongs included).
#[derive(Debug)]
pub struct Heard {
    since: Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for Heard {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Heard {
    /// The client was heard from now.
    pub fn now(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

struct Socket {
    user_id: i64,
    session: Arc<str>,
    outbound: Outbound,
    heard: Arc<Heard>,
    last_ping: Instant,
}

/// The open WebSockets of an edge.
#[derive(Default)]
pub struct Sockets {
    open: Mutex<HashMap<ConnId, Socket>>,
}

impl Sockets {
    /// Registers an open connection; at shutdown it is asked to close at once.
    pub(crate) fn add(
        &self,
        edge: &Edge,
        conn: ConnId,
        (user_id, session): (i64, &str),
        outbound: &Outbound,
        heard: &Arc<Heard>,
    ) {
        self.open.lock().insert(
            conn,
            Socket {
                user_id,
                session: session.into(),
                outbound: outbound.clone(),
                heard: Arc::clone(heard),
                last_ping: Instant::now(),
            },
        );
        // After the insert: a shutdown that began before it is seen here, one after it by the
        // keeper's walk over every socket.
        if edge.shutdown.is_cancelled() {
            outbound.close(going_away());
        }
    }

    /// Forgets a closed connection.
    pub(crate) fn remove(&self, conn: ConnId) {
        self.open.lock().remove(&conn);
    }

    /// Open connections on this edge.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn close_all(&self, ending: Ending) {
        for socket in self.open.lock().values() {
            socket.outbound.close(ending);
        }
    }

    fn close_session(&self, session: &str) {
        for socket in self.open.lock().values() {
            if *socket.session == *session {
                socket.outbound.close(session_ended());
            }
        }
    }

    /// Pings the connections due a ping, closes the silent and the stalled.
    fn tick(&self, ping_every: Duration) {
        let silence_limit = ping_every * 2 + Duration::from_secs(1);
        let now = Instant::now();
        for socket in self.open.lock().values_mut() {
            if socket.heard.silent_for() > silence_limit {
                socket.outbound.close(Ending::now(
                    close_code::UNRESPONSIVE,
                    "no answer to pings",
                    "unresponsive",
                ));
            } else if socket
                .outbound
                .blocked_for()
                .is_some_and(|blocked| blocked >= WRITE_STALL)
            {
                socket.outbound.close(Ending::now(
                    close_code::LAGGING,
                    "not reading: reconnect and resubscribe",
                    "stalled",
                ));
            } else if now.duration_since(socket.last_ping) >= ping_every {
                socket.last_ping = now;
                socket.outbound.ping();
            }
        }
    }

    fn players(&self) -> Vec<(i64, Arc<str>, Outbound)> {
        self.open
            .lock()
            .values()
            .map(|s| (s.user_id, Arc::clone(&s.session), s.outbound.clone()))
            .collect()
    }
}

fn going_away() -> Ending {
    Ending::now(close_code::GOING_AWAY, "server shutting down", "shutdown")
}

fn session_ended() -> Ending {
    Ending::after_queued(close_code::UNAUTHORIZED, "session ended")
}

/// Looks after the edge's connections for as long as the edge lives.
pub(crate) async fn keep(edge: Weak<Edge>) {
    let (shutdown, mut cooldown, mut canvas, mut ended, tick_every) = {
        let Some(edge) = edge.upgrade() else { return };
        let mut cooldown = edge.live.watch_cooldown();
        cooldown.borrow_and_update();
        let mut canvas = edge.live.watch_canvas();
        canvas.borrow_and_update();
        let tick =
            (edge.config.limits.ping_interval / 2).clamp(Duration::from_millis(100), MAX_TICK);
        (
            edge.shutdown.clone(),
            cooldown,
            canvas,
            edge.live.watch_sessions_ended(),
            tick,
        )
    };
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shut = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled(), if !shut => {
                shut = true;
                let Some(edge) = edge.upgrade() else { return };
                edge.sockets.close_all(going_away());
            }
            _ = tick.tick() => {
                let Some(edge) = edge.upgrade() else { return };
                edge.sockets.tick(edge.config.limits.ping_interval);
            }
            changed = cooldown.changed() => {
                if changed.is_err() {
                    return;
                }
                let cooldown_ms = *cooldown.borrow_and_update();
                let Some(edge) = edge.upgrade() else { return };
                tokio::spawn(tell_cooldown(edge, cooldown_ms));
            }
            changed = canvas.changed() => {
                if changed.is_err() {
                    return;
                }
                let grown = *canvas.borrow_and_update();
                let Some(edge) = edge.upgrade() else { return };
                let frame = SharedFrame::new(ServerMessage::Canvas {
                    width: grown.width(),
                    height: grown.height(),
                });
                let players = edge.sockets.players();
                debug!(players = players.len(), width = grown.width(), height = grown.height(), "telling the grown canvas");
                for (_, _, outbound) in players {
                    outbound.send(Arc::clone(&frame));
                }
            }
            id = ended.recv() => {
                let Some(edge) = edge.upgrade() else { return };
                match id {
                    Ok(id) => edge.sockets.close_session(&id),
                    // Too many ended at once to follow one by one: ask the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        tokio::spawn(close_ended_sessions(edge));
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

/// Tells every connected player its wait under the new cooldown.
async fn tell_cooldown(edge: Arc<Edge>, cooldown_ms: u64) {
    let players = edge.sockets.players();
    debug!(
        players = players.len(),
        cooldown_ms, "telling the new cooldown"
    );
    futures_util::stream::iter(players)
        .for_each_concurrent(COOLDOWN_FAN_OUT, |(user_id, _, outbound)| {
            let edge = &edge;
            async move {
                let remaining = edge
                    .accounts
                    .cooldown_remaining(user_id, edge.now_ms(), cooldown_ms as i64)
                    .await
                    .unwrap_or(0);
                outbound.send(SharedFrame::new(ServerMessage::Cooldown {
                    cooldown: (cooldown_ms / 1000) as u32,
                    cooldown_remaining: remaining as u64,
                }));
            }
        })
        .await;
}

/// Closes the connections whose session no longer exists.
async fn close_ended_sessions(edge: Arc<Edge>) {
    let players = edge.sockets.players();
    let mut checked: HashMap<Arc<str>, bool> = HashMap::new();
    for (_, session, outbound) in players {
        let ended = match checked.get(&session) {
            Some(ended) => *ended,
            None => {
                let ended = matches!(
                    edge.accounts.session_user(&session, edge.now_ms()).await,
                    Ok(None)
                );
                checked.insert(Arc::clone(&session), ended);
                ended
            }
        };
        if ended {
            outbound.close(session_ended());
        }
    }
}
