//! Outgoing messages, encoded at most once per format however many clients receive them.
//!
//! Each encoding is the whole WebSocket frame, header included: a server's frames are not masked,
//! so the same bytes go to every socket, and a socket's writer hands them to the kernel as they
//! are ([`crate::outbox`]).
//!
//! A frame carrying a tile batch is stamped with the time the batch was applied at its shard;
//! when the last socket it was queued for has written it (the last reference is dropped, which
//! each socket's writer does once the kernel took it), the time since is recorded as the
//! broadcast latency ([`crate::telemetry::BROADCAST_DURATION`]).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use place_protocol::{binary, json, ServerMessage};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

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
    json: OnceLock<Bytes>,
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

    /// The whole WebSocket frame (header and payload) for a client of this format.
    pub fn wire(&self, format: Format) -> &Bytes {
        match format {
            Format::Binary => self
                .binary
                .get_or_init(|| data_frame(Data::Binary, &binary::encode_server(&self.message))),
            Format::Json => self.json.get_or_init(|| {
                data_frame(Data::Text, json::encode_server(&self.message).as_bytes())
            }),
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

/// One unfragmented, unmasked frame carrying `payload`.
fn data_frame(data: Data, payload: &[u8]) -> Bytes {
    framed(OpCode::Data(data), payload)
}

/// A ping frame with no payload.
pub fn ping() -> Bytes {
    framed(OpCode::Control(Control::Ping), &[])
}

fn framed(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    let length = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(length) + payload.len());
    // Formatting into a Vec cannot fail: its writes do not.
    let _ = header.format(length, &mut out);
    out.extend_from_slice(payload);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Parses `wire` as tungstenite would on the client's side: one final, unmasked frame.
    fn parse(wire: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut cursor = Cursor::new(wire);
        let (header, length) = FrameHeader::parse(&mut cursor)
            .expect("a valid header")
            .expect("a whole header");
        let start = cursor.position() as usize;
        assert_eq!(
            wire.len() - start,
            length as usize,
            "the payload is the rest"
        );
        (header, wire[start..].to_vec())
    }

    #[test]
    fn each_format_is_encoded_once_and_is_a_whole_unmasked_frame() {
        let frame = SharedFrame::new(ServerMessage::Pong);
        let a = frame.wire(Format::Binary).clone();
        assert_eq!(a.as_ptr(), frame.wire(Format::Binary).as_ptr(), "reused");
        let (header, payload) = parse(&a);
        assert!(header.is_final && header.mask.is_none());
        assert_eq!(header.opcode, OpCode::Data(Data::Binary));
        assert_eq!(
            payload,
            binary::encode_server(&ServerMessage::Pong).to_vec()
        );

        let (header, payload) = parse(frame.wire(Format::Json));
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert_eq!(
            payload,
            json::encode_server(&ServerMessage::Pong).into_bytes()
        );
    }

    #[test]
    fn long_payloads_take_the_extended_lengths() {
        for length in [0usize, 125, 126, 65_535, 65_536, 300_000] {
            let payload = vec![7u8; length];
            let (_, parsed) = parse(&data_frame(Data::Binary, &payload));
            assert_eq!(parsed.len(), length);
        }
        let (header, payload) = parse(&ping());
        assert_eq!(header.opcode, OpCode::Control(Control::Ping));
        assert!(payload.is_empty());
    }
}
