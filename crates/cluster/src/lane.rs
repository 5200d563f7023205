//! Placement lanes: one long-lived QUIC stream per edge and shard that carries every placement
//! between them (the protocol is in [`crate::wire`]).
//!
//! Each side writes through an [`Outgoing`]: senders append whole frames to a buffer and one
//! task writes whatever has gathered in a single write, so placements (or replies) that are
//! ready together share a write, a wake-up of quinn's driver and often a packet. The edge's
//! [`Lane`] matches replies to waiting placements by id; the shard's side is
//! [`crate::shard_server`]'s `serve_lane`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tracing::debug;

use crate::wire::{read_frame, LanePlace, LaneReply, PlaceReply, WireError, WirePlace};

/// Frames waiting to be written to one stream, and the task that writes them.
#[derive(Debug, Default)]
pub struct Outgoing {
    state: Mutex<OutgoingState>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct OutgoingState {
    frames: BytesMut,
    /// No more frames will come: finish the stream once the queued ones are written.
    closing: bool,
    /// The stream failed or finished: frames are refused.
    ended: bool,
}

impl Outgoing {
    /// Queues a frame, written by `put`, unless the stream has ended or is closing.
    pub fn push(&self, put: impl FnOnce(&mut BytesMut)) -> bool {
        {
            let mut state = self.state.lock();
            if state.ended || state.closing {
                return false;
            }
            put(&mut state.frames);
        }
        self.wake.notify_one();
        true
    }

    /// Finishes the stream once the frames queued so far are written.
    pub fn close(&self) {
        self.state.lock().closing = true;
        self.wake.notify_one();
    }

    /// Writes the queued frames to `send` until [`Outgoing::close`] (then finishes the stream)
    /// or a write fails.
    pub async fn run(&self, mut send: quinn::SendStream) -> Result<(), WireError> {
        let result = loop {
            let (frames, closing) = {
                let mut state = self.state.lock();
                (state.frames.split(), state.closing)
            };
            if !frames.is_empty() {
                if let Err(error) = send.write_all(&frames).await {
                    break Err(WireError::Write(error));
                }
            } else if closing {
                let _ = send.finish();
                break Ok(());
            } else {
                self.wake.notified().await;
            }
        };
        let mut state = self.state.lock();
        state.ended = true;
        state.frames = BytesMut::new();
        result
    }
}

/// Why a placement on a lane got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneError {
    /// The lane had ended: nothing was sent (open another and send it there).
    Ended,
    /// It was sent, and the lane ended before its reply came: it may or may not be applied.
    NoAnswer,
}

/// An edge's lane to one shard.
#[derive(Debug)]
pub struct Lane {
    /// The QUIC connection it runs on ([`quinn::Connection::stable_id`]).
    connection: usize,
    outgoing: Arc<Outgoing>,
    /// The placements sent and not yet answered; `None` once the lane has ended.
    waiting: Mutex<Option<HashMap<u64, oneshot::Sender<PlaceReply>>>>,
    next_id: AtomicU64,
}

impl Lane {
    /// A lane on a stream whose opening frame ([`crate::wire::Request::PlaceLane`]) is sent:
    /// starts the tasks that write its placements and read its replies.
    pub fn start(
        connection: &quinn::Connection,
        send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Arc<Lane> {
        let lane = Arc::new(Lane {
            connection: connection.stable_id(),
            outgoing: Arc::default(),
            waiting: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(0),
        });
        let writer = Arc::clone(&lane.outgoing);
        let ended = Arc::clone(&lane);
        tokio::spawn(async move {
            if let Err(error) = writer.run(send).await {
                debug!(%error, "placement lane: writing failed");
            }
            ended.end();
        });
        let reader = Arc::clone(&lane);
        tokio::spawn(async move {
            let result = async {
                while let Some(frame) = read_frame(&mut recv).await? {
                    let LaneReply { id, reply } = LaneReply::decode(&frame)?;
                    reader.answer(id, reply);
                }
                Ok::<_, WireError>(())
            }
            .await;
            if let Err(error) = result {
                debug!(%error, "placement lane: reading failed");
            }
            reader.end();
        });
        lane
    }

    /// Whether placements can still be sent on it, over `connection`.
    pub fn is_open_on(&self, connection: &quinn::Connection) -> bool {
        self.connection == connection.stable_id() && self.waiting.lock().is_some()
    }

    /// Sends a placement and waits for its reply. Dropping the future forgets the placement
    /// (its reply, if it comes, is ignored).
    pub async fn place(&self, place: WirePlace) -> Result<PlaceReply, LaneError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, reply) = oneshot::channel();
        match self.waiting.lock().as_mut() {
            Some(waiting) => waiting.insert(id, answer),
            None => return Err(LaneError::Ended),
        };
        let forget = Forget { lane: self, id };
        if !self
            .outgoing
            .push(|frames| LanePlace { id, place }.put_frame(frames))
        {
            return Err(LaneError::Ended);
        }
        let reply = reply.await.map_err(|_| LaneError::NoAnswer);
        drop(forget);
        reply
    }

    fn answer(&self, id: u64, reply: PlaceReply) {
        let answer = self.waiting.lock().as_mut().and_then(|w| w.remove(&id));
        if let Some(answer) = answer {
            let _ = answer.send(reply);
        }
    }

    /// The lane ended: no more placements are sent on it, and those waiting get no answer.
    fn end(&self) {
        let waiting = self.waiting.lock().take();
        drop(waiting);
        self.outgoing.close();
    }
}

/// Removes a placement from its lane's waiting list when its caller stops waiting.
struct Forget<'a> {
    lane: &'a Lane,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(waiting) = self.lane.waiting.lock().as_mut() {
            waiting.remove(&self.id);
        }
    }
}
