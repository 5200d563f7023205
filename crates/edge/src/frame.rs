//! Outgoing messages, encoded at most once per format however many clients receive them.
//!
//! A frame carrying a tile batch is stamped with the time the batch was applied at its shard;
//! when the last socket it was queued for has written it (the last reference is dropped, which
//! each socket's writer does after its flush), the time since is recorded as the broadcast
//! latency ([`crate::telemetry::BROADCAST_DURATION`]).

use std::sync::{Arc, OnceLock};

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use place_protocol::{binary, json, ServerMessage};

/// The format a client chose when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Binary frames (`/ws`).
    Binary,
    /// JSON text frames (`/ws?format=json`).
    Json,
}

/// A server message shared by every client that receives it. Each encoding is made on first use
/// and reused, so a batch fanned out to ten thousand sockets is encoded once (twice if both
/// formats are in use).
#[derive(Debug)]
pub struct SharedFrame {
    message: ServerMessage,
    binary: OnceLock<Bytes>,
    json: OnceLock<Utf8Bytes>,
    /// When the batch it carries was applied at its shard (epoch ms); 0 for other frames.
    applied_at_ms: i64,
}

impl SharedFrame {
    /// Wraps a message for sharing.
    pub fn new(message: ServerMessage) -> Arc<Self> {
        Self::stamped(message, 0)
    }

    /// Wraps a tile batch applied at its shard at `applied_at_ms` (epoch ms, 0: unknown): its
    /// broadcast latency is recorded once every socket it was queued for has written it.
    pub fn stamped(message: ServerMessage, applied_at_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            message,
            binary: OnceLock::new(),
            json: OnceLock::new(),
            applied_at_ms,
        })
    }

    /// The message.
    pub fn message(&self) -> &ServerMessage {
        &self.message
    }

    /// The WebSocket message for a client of this format.
    pub fn to_ws(&self, format: Format) -> Message {
        match format {
            Format::Binary => Message::Binary(
                self.binary
                    .get_or_init(|| binary::encode_server(&self.message))
                    .clone(),
            ),
            Format::Json => Message::Text(
                self.json
                    .get_or_init(|| json::encode_server(&self.message).into())
                    .clone(),
            ),
        }
    }
}

impl Drop for SharedFrame {
    fn drop(&mut self) {
        if self.applied_at_ms > 0 {
            // Wall clocks: in a cluster the shard's and the edge's, which agree only as well as
            // the machines' clocks do (on one machine, exactly). A clock behind counts as 0.
            let ms = (crate::now_ms() - self.applied_at_ms).max(0);
            metrics::histogram!(crate::telemetry::BROADCAST_DURATION).record(ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_encoded_once_and_reused() {
        let frame = SharedFrame::new(ServerMessage::Pong);
        let a = frame.to_ws(Format::Binary);
        let b = frame.to_ws(Format::Binary);
        assert_eq!(a, b);
        match (frame.to_ws(Format::Json), frame.json.get()) {
            (Message::Text(t), Some(cached)) => assert_eq!(t.as_str(), cached.as_str()),
            other => panic!("unexpected {other:?}"),
        }
        assert!(frame.binary.get().is_some());
    }
}
