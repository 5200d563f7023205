//! A client's outgoing frames, written straight into its socket by whoever sends them.
//!
//! The tile hub, the keeper's pings and the connection's own answers all send through an
//! [`Outbound`]. A frame sent while nothing is queued is handed to the kernel at once, by the
//! sender, with a non-blocking write (`try_write` on the shared `TcpStream`): a batch fanned out
//! to thousands of sockets costs each one a short lock and one `send` system call, and wakes no
//! task. Only when the kernel's send buffer is full does anything wait: the rest is queued, and
//! the connection task ([`crate::connection`]) is woken to wait for the socket to drain and write
//! the queue; meanwhile senders only queue behind it, so frames always go out whole and in order.
//!
//! The queue is bounded: a client whose queue overflows is marked lagging (closed with 4000; it
//! resyncs by seq when it reconnects) and its frames are freed. A write that waits too long marks
//! the client stalled (the keeper closes it, [`crate::sockets`]). Closes asked by anyone
//! (shutdown, a session that ended, silence) reach the connection task here as well.
//!
//! Frames are kept as [`SharedFrame`]s until written, so a tile batch's broadcast latency is
//! taken when the last socket it went to has handed it to the kernel, and the hub can tell how
//! many of a tile's watchers have not yet written its last frame.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::frame::{Format, SharedFrame};

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

    fn lagging() -> Self {
        Ending::now(
            place_protocol::close_code::LAGGING,
            "too far behind: reconnect and resubscribe",
            "lagging",
        )
    }
}

/// Most queued frames handed to the kernel in one system call.
const FRAMES_PER_WRITE: usize = 64;

/// Something to write: a shared frame (in the client's format) or bytes of the connection's own
/// (pings, and the control frames the WebSocket library answers with).
#[derive(Debug)]
enum Pending {
    Frame(Arc<SharedFrame>),
    Raw(Bytes),
}

impl Pending {
    fn bytes(&self, format: Format) -> &[u8] {
        match self {
            Pending::Frame(frame) => frame.wire(format),
            Pending::Raw(bytes) => bytes,
        }
    }
}

/// The frames waiting for a socket: the first kept inline, beside the lock, since a fan-out to
/// thousands of sockets touches each one's state once per batch and most hold one frame at most.
#[derive(Debug, Default)]
struct Queue {
    front: Option<Pending>,
    rest: VecDeque<Pending>,
}

impl Queue {
    fn len(&self) -> usize {
        usize::from(self.front.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.front.is_none()
    }

    fn push_back(&mut self, pending: Pending) {
        if self.front.is_none() {
            self.front = Some(pending);
        } else {
            self.rest.push_back(pending);
        }
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let front = self.front.take();
        self.front = self.rest.pop_front();
        front
    }

    fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.front.iter().chain(self.rest.iter())
    }

    /// Keeps the first `keep` (0 or 1) and frees the rest.
    fn truncate(&mut self, keep: usize) {
        self.rest.clear();
        if keep == 0 {
            self.front = None;
        }
    }

    fn clear(&mut self) {
        self.truncate(0);
    }
}

/// The fields a send looks at come first, right after the lock.
#[derive(Debug, Default)]
#[repr(C)]
struct State {
    /// The client's socket; `None` in unit tests (frames only queue) and once the connection is
    /// gone (so the socket closes when its task ends, whoever still holds an `Outbound`).
    stream: Option<Arc<TcpStream>>,
    queue: Queue,
    /// Bytes of the front of the queue already written.
    front_written: usize,
    /// The kernel's buffer is full: the connection task waits for it to drain and writes the
    /// queue; senders only queue.
    blocked: bool,
    /// The queue overflowed: the client is closed as lagging.
    lagged: bool,
    /// The connection is gone: nothing more is queued.
    gone: bool,
    /// Someone asked the connection to close, or a write failed.
    close: Option<Ending>,
}

impl State {
    /// Whether the one thing just queued is to be written by its sender now: nothing before it,
    /// and the connection task is not waiting for the socket.
    fn first_in_line(&self) -> bool {
        self.queue.len() == 1 && !self.blocked && self.stream.is_some()
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The connection task.
    waker: AtomicWaker,
    capacity: usize,
    format: Format,
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

/// The connection task's half. Dropping it marks the client gone and lets go of the socket.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
}

/// What [`Outbound::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The client is gone.
    Gone,
    /// Queued, and someone is already on its way to write it.
    Queued,
    /// Queued first in line: the caller is to call [`Outbound::write`].
    WriteNeeded,
}

/// A queue of at most `capacity` frames for a client of `format`, written into `stream` (none:
/// frames only queue, for tests of what is sent).
pub fn channel(
    capacity: usize,
    format: Format,
    stream: Option<Arc<TcpStream>>,
) -> (Outbound, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            stream,
            ..State::default()
        }),
        waker: AtomicWaker::new(),
        capacity,
        format,
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

impl Shared {
    /// Writes as much of the queue as the kernel takes; the caller holds the state's lock and
    /// nobody is blocked. On a full buffer the connection task takes over.
    fn write_locked(&self, state: &mut State, by: Writer) {
        match write_queue(state, self.format, by) {
            Ok(true) => self.set_blocked(false),
            Ok(false) => {
                state.blocked = true;
                self.set_blocked(true);
                self.waker.wake();
            }
            Err(_) => {
                // The client is gone (reset, broken pipe): its frames go nowhere.
                state.queue.clear();
                state.front_written = 0;
                state.close.get_or_insert(Ending::GONE);
                self.waker.wake();
            }
        }
    }

    fn set_blocked(&self, blocked: bool) {
        if !blocked {
            self.blocked_since_ms.store(0, Ordering::Relaxed);
        } else if self.blocked_since_ms.load(Ordering::Relaxed) == 0 {
            let now = (self.epoch.elapsed().as_millis() as u64).max(1);
            self.blocked_since_ms.store(now, Ordering::Relaxed);
        }
    }

    fn push(&self, pending: Pending) -> Enqueued {
        let mut state = self.state.lock();
        let enqueued = Self::enqueue_locked(&mut state, self.capacity, pending);
        if enqueued == Enqueued::WriteNeeded {
            self.write_locked(&mut state, Writer::Sender);
        } else if state.lagged {
            drop(state);
            self.waker.wake();
        }
        enqueued
    }

    fn enqueue_locked(state: &mut State, capacity: usize, pending: Pending) -> Enqueued {
        if state.gone {
            return Enqueued::Gone;
        }
        if state.lagged {
            return Enqueued::Queued;
        }
        if matches!(pending, Pending::Frame(_)) && state.queue.len() >= capacity {
            state.lagged = true;
            drop_unstarted(state);
            return Enqueued::Queued;
        }
        state.queue.push_back(pending);
        if state.first_in_line() {
            Enqueued::WriteNeeded
        } else {
            Enqueued::Queued
        }
    }
}

/// Who writes: a sender, or the connection task draining a socket that had filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Sender,
    Task,
}

/// Writes the queue into the socket until it is empty (`Ok(true)`) or the kernel's buffer is
/// full (`Ok(false)`): one `send` for a single frame, one `writev` for several.
///
/// A sender's single frame is sent on the socket's descriptor directly (`send` with the socket
/// non-blocking, as tokio keeps it), without looking at tokio's readiness of the socket: that
/// look is a cache miss per socket in a fan-out to thousands. A `WouldBlock` there leaves tokio
/// believing the socket writable, which costs the connection task one more try (through tokio,
/// which clears the readiness) before it waits. SIGPIPE is ignored by Rust programs, so a closed
/// peer is an `EPIPE` error.
fn write_queue(state: &mut State, format: Format, by: Writer) -> io::Result<bool> {
    let State {
        stream,
        queue,
        front_written,
        ..
    } = state;
    let Some(stream) = stream.as_deref() else {
        return Ok(queue.is_empty());
    };
    while let Some(front) = &queue.front {
        let result = if queue.rest.is_empty() {
            let bytes = &front.bytes(format)[*front_written..];
            match by {
                Writer::Sender => socket2::SockRef::from(stream).send(bytes),
                Writer::Task => stream.try_write(bytes),
            }
        } else {
            let mut slices = [IoSlice::new(&[]); FRAMES_PER_WRITE];
            let mut count = 0;
            for (slice, pending) in slices.iter_mut().zip(queue.iter()) {
                let skip = if count == 0 { *front_written } else { 0 };
                *slice = IoSlice::new(&pending.bytes(format)[skip..]);
                count += 1;
            }
            stream.try_write_vectored(&slices[..count])
        };
        let written = match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        advance(queue, front_written, format, written);
    }
    Ok(true)
}

/// Drops `written` bytes off the front of the queue.
fn advance(queue: &mut Queue, front_written: &mut usize, format: Format, mut written: usize) {
    while written > 0 {
        let Some(front) = &queue.front else {
            return;
        };
        let left = front.bytes(format).len() - *front_written;
        if written < left {
            *front_written += written;
            return;
        }
        written -= left;
        *front_written = 0;
        queue.pop_front();
    }
}

/// Frees the queue except a frame already partly written (which must be finished, or the
/// client's stream would be cut mid-frame).
fn drop_unstarted(state: &mut State) {
    let keep = usize::from(state.front_written > 0);
    state.queue.truncate(keep);
}

impl Outbound {
    /// Sends a frame: written at once when nothing is queued before it. Returns false when the
    /// client is gone. A full queue marks the client as lagging (it is closed with 4000 and
    /// resyncs by seq) rather than blocking anyone.
    pub fn send(&self, frame: Arc<SharedFrame>) -> bool {
        self.shared.push(Pending::Frame(frame)) != Enqueued::Gone
    }

    /// Queues a frame without writing it, for a sender that holds a lock it must not write
    /// under: on [`Enqueued::WriteNeeded`] it calls [`Outbound::write`] once the lock is let go.
    pub fn enqueue(&self, frame: Arc<SharedFrame>) -> Enqueued {
        let mut state = self.shared.state.lock();
        let enqueued =
            Shared::enqueue_locked(&mut state, self.shared.capacity, Pending::Frame(frame));
        if enqueued == Enqueued::Queued && state.lagged {
            drop(state);
            self.shared.waker.wake();
        }
        enqueued
    }

    /// Writes what is queued, unless the connection task is already waiting to.
    pub fn write(&self) {
        let mut state = self.shared.state.lock();
        if !state.blocked && !state.gone && !state.queue.is_empty() {
            self.shared.write_locked(&mut state, Writer::Sender);
        }
    }

    /// Sends bytes of the connection's own, in order with the frames (never refused as lagging:
    /// the close frame of a lagging client goes this way).
    pub fn send_raw(&self, bytes: Bytes) {
        let mut state = self.shared.state.lock();
        if state.gone {
            return;
        }
        state.queue.push_back(Pending::Raw(bytes));
        if state.first_in_line() {
            self.shared.write_locked(&mut state, Writer::Sender);
        }
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

    /// Sends a ping.
    pub fn ping(&self) {
        self.send_raw(crate::frame::ping());
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
    /// Waits until the connection is to close (a close asked, a lagging client, a failed
    /// write), meanwhile writing the queue whenever the socket had been full and drains.
    pub fn poll_ending(&self, cx: &mut Context<'_>) -> Poll<Ending> {
        // Registered before looking, so that a signal set after the look wakes the task.
        self.shared.waker.register(cx.waker());
        loop {
            let stream = {
                let state = self.shared.state.lock();
                if state.lagged {
                    return Poll::Ready(Ending::lagging());
                }
                if let Some(ending) = state.close {
                    return Poll::Ready(ending);
                }
                if !state.blocked {
                    return Poll::Pending;
                }
                match &state.stream {
                    Some(stream) => Arc::clone(stream),
                    None => return Poll::Pending,
                }
            };
            if self.poll_drain_once(cx, &stream).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Waits until everything queued is written (or the socket failed).
    pub fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let stream = {
                let mut state = self.shared.state.lock();
                // A failed write empties the queue.
                if state.queue.is_empty() {
                    return Poll::Ready(());
                }
                let Some(stream) = state.stream.clone() else {
                    return Poll::Ready(());
                };
                if !state.blocked {
                    self.shared.write_locked(&mut state, Writer::Task);
                    continue;
                }
                stream
            };
            if self.poll_drain_once(cx, &stream).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// One wait for the socket to take more, then one write of the queue.
    fn poll_drain_once(&self, cx: &mut Context<'_>, stream: &TcpStream) -> Poll<()> {
        let ready = match stream.poll_write_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(ready) => ready,
        };
        let mut state = self.shared.state.lock();
        state.blocked = false;
        if ready.is_err() {
            state.queue.clear();
            state.front_written = 0;
            state.close.get_or_insert(Ending::GONE);
        } else {
            self.shared.write_locked(&mut state, Writer::Task);
        }
        Poll::Ready(())
    }

    /// Frees the queued frames that have not started (a close that does not wait for them).
    pub fn discard_queued(&self) {
        drop_unstarted(&mut self.shared.state.lock());
    }

    /// Takes every queued frame out without writing it (tests of what was sent).
    #[cfg(test)]
    pub fn take_queued(&self) -> Vec<Arc<SharedFrame>> {
        let mut state = self.shared.state.lock();
        state.front_written = 0;
        let mut taken = Vec::new();
        while let Some(pending) = state.queue.pop_front() {
            if let Pending::Frame(frame) = pending {
                taken.push(frame);
            }
        }
        taken
    }

    /// Whether the queue overflowed (tests).
    #[cfg(test)]
    pub fn is_lagging(&self) -> bool {
        self.shared.state.lock().lagged
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.gone = true;
        state.queue.clear();
        state.stream = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;
    use place_protocol::ServerMessage;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    fn pong() -> Arc<SharedFrame> {
        SharedFrame::new(ServerMessage::Pong)
    }

    fn poll(inbox: &Inbox) -> Poll<Ending> {
        inbox.poll_ending(&mut Context::from_waker(noop_waker_ref()))
    }

    #[test]
    fn frames_queue_in_order_and_nothing_to_do_is_pending() {
        let (out, inbox) = channel(4, Format::Binary, None);
        assert!(poll(&inbox).is_pending());
        let (a, b) = (pong(), pong());
        assert!(out.send(Arc::clone(&a)));
        assert!(out.send(Arc::clone(&b)));
        let queued = inbox.take_queued();
        assert_eq!(queued.len(), 2);
        assert!(Arc::ptr_eq(&queued[0], &a) && Arc::ptr_eq(&queued[1], &b));
        assert!(poll(&inbox).is_pending());
    }

    #[test]
    fn an_overflow_marks_the_client_lagging_and_frees_its_frames() {
        let (out, inbox) = channel(2, Format::Binary, None);
        let frame = pong();
        for _ in 0..3 {
            assert!(out.send(Arc::clone(&frame)));
        }
        assert_eq!(poll(&inbox).map(|e| e.why), Poll::Ready("lagging"));
        assert_eq!(Arc::strong_count(&frame), 1, "the queue was freed");
        assert!(inbox.take_queued().is_empty());
    }

    #[test]
    fn the_first_close_wins_and_a_gone_client_takes_nothing() {
        let (out, inbox) = channel(2, Format::Binary, None);
        out.close(Ending::now(1001, "bye", "shutdown"));
        out.close(Ending::now(4002, "later", "unresponsive"));
        assert_eq!(poll(&inbox).map(|e| e.why), Poll::Ready("shutdown"));
        drop(inbox);
        assert!(!out.send(pong()));
        assert_eq!(out.enqueue(pong()), Enqueued::Gone);
        assert!(out.is_gone());
    }

    #[test]
    fn only_the_first_in_line_is_asked_to_write() {
        let (out, inbox) = channel(4, Format::Binary, None);
        // Without a socket nothing is written, so nothing is ever first in line to write.
        assert_eq!(out.enqueue(pong()), Enqueued::Queued);
        assert_eq!(inbox.take_queued().len(), 1);
    }

    /// A connected pair on loopback: the server's end and the client's.
    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"));
        let (accepted, client) = tokio::join!(listener.accept(), client);
        (
            Arc::new(accepted.expect("accept").0),
            client.expect("connect"),
        )
    }

    #[tokio::test]
    async fn a_frame_is_written_by_its_sender_whole_and_in_order_with_raw_bytes() {
        let (server, mut client) = pair().await;
        let (out, inbox) = channel(8, Format::Json, Some(server));
        let frame = pong();
        out.send(Arc::clone(&frame));
        out.ping();
        out.send(Arc::clone(&frame));
        // Written by the sends themselves: nothing was left queued, no task ran.
        assert!(inbox.take_queued().is_empty());
        assert_eq!(Arc::strong_count(&frame), 1, "written frames are let go");
        let mut expected = frame.wire(Format::Json).to_vec();
        expected.extend_from_slice(&crate::frame::ping());
        expected.extend_from_slice(frame.wire(Format::Json));
        let mut got = vec![0; expected.len()];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got, expected);
    }

    /// A client that does not read: the kernel's buffer fills, the rest queues, the write is
    /// timed as blocked and the queue overflows into lagging; once the client reads, the
    /// connection task's drain writes the rest, whole and in order.
    #[tokio::test]
    async fn a_full_socket_queues_behind_and_the_task_drains_it_in_order() {
        let (server, mut client) = pair().await;
        let big = SharedFrame::new(ServerMessage::Error(place_protocol::ErrorMessage::new(
            place_protocol::ErrorCode::BadRequest,
            "x".repeat(60_000),
        )));
        let (out, inbox) = channel(1024, Format::Json, Some(server));
        let mut sent = 0;
        while out.blocked_for().is_none() {
            out.send(Arc::clone(&big));
            sent += 1;
            assert!(sent < 1000, "a socket nobody reads fills up");
        }
        out.send(Arc::clone(&big));
        sent += 1;
        assert!(Arc::strong_count(&big) > 1, "frames wait in the queue");
        let one = big.wire(Format::Json).len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; one * sent];
            client.read_exact(&mut got).await.map(|_| got)
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| inbox.poll_drained(cx)),
        )
        .await
        .expect("drained once the client reads");
        let got = reader.await.expect("join").expect("read");
        for chunk in got.chunks(one) {
            assert_eq!(chunk, &big.wire(Format::Json)[..]);
        }
        assert_eq!(out.blocked_for(), None);
        assert_eq!(Arc::strong_count(&big), 1);
    }

    #[tokio::test]
    async fn a_socket_that_never_drains_overflows_into_lagging_without_cutting_a_frame() {
        let (server, _client) = pair().await;
        let big = SharedFrame::new(ServerMessage::Error(place_protocol::ErrorMessage::new(
            place_protocol::ErrorCode::BadRequest,
            "x".repeat(60_000),
        )));
        let (out, inbox) = channel(4, Format::Json, Some(server));
        for _ in 0..200 {
            out.send(Arc::clone(&big));
        }
        assert!(inbox.is_lagging());
        assert_eq!(poll(&inbox).map(|e| e.why), Poll::Ready("lagging"));
        // At most the frame the kernel took part of is kept, to be finished before the close.
        assert!(Arc::strong_count(&big) <= 2);
    }

    /// On tokio's paused clock: the time a write has been blocked is exact, with no sleep.
    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_is_timed_from_its_start() {
        let (out, inbox) = channel(2, Format::Binary, None);
        assert_eq!(out.blocked_for(), None);
        tokio::time::advance(Duration::from_secs(3)).await;
        inbox.shared.set_blocked(true);
        tokio::time::advance(Duration::from_millis(7_250)).await;
        // Still the same write: the start is not moved.
        inbox.shared.set_blocked(true);
        assert_eq!(out.blocked_for(), Some(Duration::from_millis(7_250)));
        inbox.shared.set_blocked(false);
        assert_eq!(out.blocked_for(), None);
    }
}
