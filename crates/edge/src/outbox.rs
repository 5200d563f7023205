//! A client's queue of outgoing frames, written into by the tile hub and everyone else, and read
//! by the client's connection task.
//!
//! It is the only thing the connection task waits on besides its socket: frames, a close asked
//! by anyone (shutdown, a session that ended, a stalled write, silence), a ping that is due, and
//! the mark of a client that fell behind all arrive here, and the task is woken only when the
//! queue goes from empty to not empty or a signal is set. A batch fanned out to thousands of
//! sockets costs each one a short lock, a push and at most one wake-up; a socket that already
//! has frames waiting costs no wake-up at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use crate::frame::SharedFrame;

/// Why and how a connection closes: its close frame (code and reason; none when the socket is
/// gone), the label it is counted by, and whether the frames already queued go out first (the
/// answers that explain the close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// Close code and reason, if a close frame is sent.
    pub close: Option<(u16, &'static str)>,
    /// The `why` label of the closed-WebSockets counter.
    pub why: &'static str,
    /// Whether the queued frames are written before the close frame.
    pub flush_queued: bool,
}

impl Ending {
    /// The socket is gone (or the client closed it): nothing more to send.
    pub const GONE: Ending = Ending {
        close: None,
        why: "gone",
        flush_queued: false,
    };

    /// A close frame, after the frames already queued.
    pub fn after_queued(code: u16, reason: &'static str) -> Self {
        Ending {
            close: Some((code, reason)),
            why: reason,
            flush_queued: true,
        }
    }

    /// A close frame at once, counted as `why`.
    pub fn now(code: u16, reason: &'static str, why: &'static str) -> Self {
        Ending {
            close: Some((code, reason)),
            why,
            flush_queued: false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Arc<SharedFrame>>,
    /// The queue overflowed: the client is closed as lagging.
    lagged: bool,
    /// Someone asked the connection to close.
    close: Option<Ending>,
    /// A ping is due.
    ping: bool,
    /// The connection is gone: nothing more is queued.
    gone: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    waker: AtomicWaker,
    capacity: usize,
    /// Since when (ms after `epoch`) a write of this connection has been waiting for the
    /// socket; 0 when none is.
    blocked_since_ms: AtomicU64,
    epoch: tokio::time::Instant,
}

/// The sending half: cloned by everyone who sends the client something.
#[derive(Debug, Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
}

/// The receiving half, owned by the connection task. Dropping it marks the client gone.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
}

/// What the connection task is to do next, besides writing the frames it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// Close now (a lagging client, or a close asked).
    pub ending: Option<Ending>,
    /// Send a ping.
    pub ping: bool,
}

/// A queue of at most `capacity` frames.
pub fn channel(capacity: usize) -> (Outbound, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        waker: AtomicWaker::new(),
        capacity,
        blocked_since_ms: AtomicU64::new(0),
        epoch: tokio::time::Instant::now(),
    });
    (
        Outbound {
            shared: Arc::clone(&shared),
        },
        Inbox { shared },
    )
}

impl Outbound {
    /// Queues a frame; returns false when the client is gone. A full queue marks the client as
    /// lagging (it is closed with 4000 and resyncs by seq) rather than blocking anyone.
    pub fn send(&self, frame: Arc<SharedFrame>) -> bool {
        let wake = {
            let mut state = self.shared.state.lock();
            if state.gone {
                return false;
            }
            if state.lagged {
                return true;
            }
            if state.frames.len() >= self.shared.capacity {
                state.lagged = true;
                state.frames.clear();
                true
            } else {
                state.frames.push_back(frame);
                // Frames already waiting mean the task is already awake or will be.
                state.frames.len() == 1
            }
        };
        if wake {
            self.shared.waker.wake();
        }
        true
    }

    /// Asks the connection to close; the first ending asked wins.
    pub fn close(&self, ending: Ending) {
        {
            let mut state = self.shared.state.lock();
            if state.gone || state.close.is_some() {
                return;
            }
            state.close = Some(ending);
        }
        self.shared.waker.wake();
    }

    /// Asks the connection to send a ping.
    pub fn ping(&self) {
        {
            let mut state = self.shared.state.lock();
            if state.gone || state.ping {
                return;
            }
            state.ping = true;
        }
        self.shared.waker.wake();
    }

    /// How long a write of this connection has been waiting for the client to read, if one is.
    pub fn blocked_for(&self) -> Option<std::time::Duration> {
        let since = self.shared.blocked_since_ms.load(Ordering::Relaxed);
        (since > 0).then(|| {
            let now = self.shared.epoch.elapsed().as_millis() as u64;
            std::time::Duration::from_millis(now.saturating_sub(since))
        })
    }

    /// Whether the connection is gone.
    pub fn is_gone(&self) -> bool {
        self.shared.state.lock().gone
    }
}

impl Inbox {
    /// Moves up to `max` queued frames to `into`, and returns the signals; when there is
    /// nothing at all, the task is woken when something comes.
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<Arc<SharedFrame>>,
        max: usize,
    ) -> Poll<Signals> {
        // Registered before looking, so that a send after the look wakes the task.
        self.shared.waker.register(cx.waker());
        let mut state = self.shared.state.lock();
        let signals = Signals {
            ending: if state.lagged {
                Some(Ending::now(
                    place_protocol::close_code::LAGGING,
                    "too far behind: reconnect and resubscribe",
                    "lagging",
                ))
            } else {
                state.close
            },
            ping: std::mem::take(&mut state.ping),
        };
        let n = state.frames.len().min(max);
        into.extend(state.frames.drain(..n));
        if n == 0 && signals == Signals::default() {
            Poll::Pending
        } else {
            Poll::Ready(signals)
        }
    }

    /// Every frame still queued (for the answers written before a close frame).
    pub fn take_all(&self) -> Vec<Arc<SharedFrame>> {
        self.shared.state.lock().frames.drain(..).collect()
    }

    /// Records that a write waits for the socket (`true`) or went through (`false`).
    pub fn set_blocked(&self, blocked: bool) {
        let value = if blocked {
            (self.shared.epoch.elapsed().as_millis() as u64).max(1)
        } else {
            0
        };
        if !blocked || self.shared.blocked_since_ms.load(Ordering::Relaxed) == 0 {
            self.shared.blocked_since_ms.store(value, Ordering::Relaxed);
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.gone = true;
        state.frames.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;
    use place_protocol::ServerMessage;
    use std::time::Duration;

    fn take(inbox: &Inbox, into: &mut VecDeque<Arc<SharedFrame>>) -> Poll<Signals> {
        inbox.poll_take(&mut Context::from_waker(noop_waker_ref()), into, 64)
    }

    #[test]
    fn frames_come_out_in_order_and_an_empty_queue_is_pending() {
        let (out, inbox) = channel(4);
        let mut got = VecDeque::new();
        assert!(take(&inbox, &mut got).is_pending());
        assert!(out.send(SharedFrame::new(ServerMessage::Pong)));
        assert!(out.send(SharedFrame::new(ServerMessage::Pong)));
        assert_eq!(take(&inbox, &mut got), Poll::Ready(Signals::default()));
        assert_eq!(got.len(), 2);
        assert!(take(&inbox, &mut got).is_pending());
    }

    #[test]
    fn an_overflow_marks_the_client_lagging_and_frees_its_frames() {
        let (out, inbox) = channel(2);
        for _ in 0..3 {
            assert!(out.send(SharedFrame::new(ServerMessage::Pong)));
        }
        let mut got = VecDeque::new();
        let Poll::Ready(signals) = take(&inbox, &mut got) else {
            panic!("lagging is a signal");
        };
        assert_eq!(signals.ending.map(|e| e.why), Some("lagging"));
        assert!(got.is_empty(), "the queue was dropped");
    }

    #[test]
    fn the_first_close_wins_and_a_gone_client_takes_nothing() {
        let (out, inbox) = channel(2);
        out.close(Ending::now(1001, "bye", "shutdown"));
        out.close(Ending::now(4002, "later", "unresponsive"));
        out.ping();
        let mut got = VecDeque::new();
        let Poll::Ready(signals) = take(&inbox, &mut got) else {
            panic!("close is a signal");
        };
        assert_eq!(signals.ending.map(|e| e.why), Some("shutdown"));
        assert!(signals.ping);
        drop(inbox);
        assert!(!out.send(SharedFrame::new(ServerMessage::Pong)));
        assert!(out.is_gone());
    }

    /// On tokio's paused clock: the time a write has been blocked is exact, with no sleep.
    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_is_timed_from_its_start() {
        let (out, inbox) = channel(2);
        assert_eq!(out.blocked_for(), None);
        tokio::time::advance(Duration::from_secs(3)).await;
        inbox.set_blocked(true);
        tokio::time::advance(Duration::from_millis(7_250)).await;
        // Still the same write: the start is not moved.
        inbox.set_blocked(true);
        assert_eq!(out.blocked_for(), Some(Duration::from_millis(7_250)));
        inbox.set_blocked(false);
        assert_eq!(out.blocked_for(), None);
    }
}
