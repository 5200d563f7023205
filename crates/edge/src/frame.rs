//! Outgoing messages, encoded at most once per format however many clients receive them.

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
}

impl SharedFrame {
    /// Wraps a message for sharing.
    pub fn new(message: ServerMessage) -> Arc<Self> {
        Arc::new(Self {
            message,
            binary: OnceLock::new(),
            json: OnceLock::new(),
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
