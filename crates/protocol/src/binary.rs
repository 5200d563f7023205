//! The binary codec: one message per WebSocket binary frame, integers little-endian.
//! See `docs/PROTOCOL.md`, "Messages (binary)", for the layouts.

use bytes::{BufMut, Bytes, BytesMut};
use place_tiles::{compress_tile, decompress_tile, PixelChange, TileId, TILE_AREA};

use crate::message::{
    ClientMessage, DecodeError, ErrorCode, ErrorMessage, RequestId, ServerMessage, TileRequest,
    Welcome, MAX_MESSAGE_BYTES,
};

/// Message type bytes.
pub mod kind {
    /// Client: subscribe.
    pub const SUBSCRIBE: u8 = 0x01;
    /// Client: unsubscribe.
    pub const UNSUBSCRIBE: u8 = 0x02;
    /// Client: place.
    pub const PLACE: u8 = 0x03;
    /// Client: ping.
    pub const PING: u8 = 0x04;
    /// Server: welcome.
    pub const WELCOME: u8 = 0x81;
    /// Server: tile snapshot.
    pub const TILE: u8 = 0x82;
    /// Server: pixel changes.
    pub const PIXELS: u8 = 0x83;
    /// Server: placement succeeded.
    pub const SUCCESS: u8 = 0x84;
    /// Server: error.
    pub const ERROR: u8 = 0x85;
    /// Server: pong.
    pub const PONG: u8 = 0x86;
    /// Server: the cooldown changed.
    pub const COOLDOWN: u8 = 0x87;
    /// Server: the canvas grew to a new size.
    pub const CANVAS: u8 = 0x88;
}

const SUBSCRIBE_ENTRY: usize = 13;
const UNSUBSCRIBE_ENTRY: usize = 4;
const PLACE_LEN: usize = 1 + 9;
const ENCODING_RAW: u8 = 0;
const ENCODING_DEFLATE: u8 = 1;

/// Decodes a client frame.
pub fn decode_client(frame: &[u8]) -> Result<ClientMessage, DecodeError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::new(format!(
            "message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
            frame.len()
        )));
    }
    let mut r = Reader::new(frame);
    let message = match r.u8()? {
        kind::SUBSCRIBE => {
            let count = usize::from(r.u16()?);
            r.expect_remaining(count * SUBSCRIBE_ENTRY, "subscribe")?;
            let mut tiles = Vec::with_capacity(count);
            for _ in 0..count {
                let tile = TileId::new(r.u16()?, r.u16()?);
                let flags = r.u8()?;
                let seq = r.u64()?;
                let seq = match flags {
                    0 if seq == 0 => None,
                    0 => return Err(DecodeError::new("subscribe: seq given without flag bit 0")),
                    1 => Some(seq),
                    _ => {
                        return Err(DecodeError::new(format!(
                            "subscribe: unknown flags {flags:#04x}"
                        )))
                    }
                };
                tiles.push(TileRequest { tile, seq });
            }
            ClientMessage::Subscribe { tiles }
        }
        kind::UNSUBSCRIBE => {
            let count = usize::from(r.u16()?);
            r.expect_remaining(count * UNSUBSCRIBE_ENTRY, "unsubscribe")?;
            let mut tiles = Vec::with_capacity(count);
            for _ in 0..count {
                tiles.push(TileId::new(r.u16()?, r.u16()?));
            }
            ClientMessage::Unsubscribe { tiles }
        }
        kind::PLACE => {
            if frame.len() != PLACE_LEN {
                // Read the request id when it is where it should be, so the error can carry it.
                let request_id = frame
                    .get(6..10)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| RequestId::Number(u32::from_le_bytes(b)));
                return Err(DecodeError {
                    reason: format!(
                        "place: frame is {} bytes, expected {PLACE_LEN}",
                        frame.len()
                    ),
                    request_id,
                });
            }
            let x = i64::from(r.u16()?);
            let y = i64::from(r.u16()?);
            let color = i64::from(r.u8()?);
            let request_id = Some(RequestId::Number(r.u32()?));
            ClientMessage::Place {
                x,
                y,
                color,
                request_id,
            }
        }
        kind::PING => ClientMessage::Ping,
        other => {
            return Err(DecodeError::new(format!(
                "unknown message type {other:#04x}"
            )))
        }
    };
    r.expect_end()?;
    Ok(message)
}

/// Encodes a client message (for `loadgen` and tests).
pub fn encode_client(message: &ClientMessage) -> Bytes {
    let mut b = BytesMut::new();
    match message {
        ClientMessage::Subscribe { tiles } => {
            b.put_u8(kind::SUBSCRIBE);
            b.put_u16_le(tiles.len() as u16);
            for t in tiles {
                b.put_u16_le(t.tile.tx);
                b.put_u16_le(t.tile.ty);
                b.put_u8(u8::from(t.seq.is_some()));
                b.put_u64_le(t.seq.unwrap_or(0));
            }
        }
        ClientMessage::Unsubscribe { tiles } => {
            b.put_u8(kind::UNSUBSCRIBE);
            b.put_u16_le(tiles.len() as u16);
            for t in tiles {
                b.put_u16_le(t.tx);
                b.put_u16_le(t.ty);
            }
        }
        ClientMessage::Place {
            x,
            y,
            color,
            request_id,
        } => {
            b.put_u8(kind::PLACE);
            b.put_u16_le(*x as u16);
            b.put_u16_le(*y as u16);
            b.put_u8(*color as u8);
            b.put_u32_le(request_id.as_ref().and_then(RequestId::as_u32).unwrap_or(0));
        }
        ClientMessage::Ping => b.put_u8(kind::PING),
    }
    b.freeze()
}

/// Encodes a server message.
pub fn encode_server(message: &ServerMessage) -> Bytes {
    match message {
        ServerMessage::Welcome(w) => {
            let json = serde_json::to_vec(&crate::json::welcome_value(w)).unwrap_or_default();
            let mut b = BytesMut::with_capacity(1 + json.len());
            b.put_u8(kind::WELCOME);
            b.put_slice(&json);
            b.freeze()
        }
        ServerMessage::Tile { tile, seq, pixels } => encode_tile(*tile, *seq, pixels),
        ServerMessage::Pixels {
            tile,
            first_seq,
            changes,
        } => encode_pixels(*tile, *first_seq, changes),
        ServerMessage::Success {
            request_id,
            next_placement,
        } => {
            let mut b = BytesMut::with_capacity(13);
            b.put_u8(kind::SUCCESS);
            b.put_u32_le(request_id.as_ref().and_then(RequestId::as_u32).unwrap_or(0));
            b.put_u64_le(*next_placement);
            b.freeze()
        }
        ServerMessage::Error(e) => {
            let request_id = e.request_id.as_ref().and_then(RequestId::as_u32);
            let flags = u8::from(request_id.is_some())
                | (u8::from(e.cooldown_remaining.is_some()) << 1)
                | (u8::from(e.retry_after.is_some()) << 2);
            let text = truncate_utf8(&e.message, usize::from(u16::MAX));
            let mut b = BytesMut::with_capacity(17 + text.len());
            b.put_u8(kind::ERROR);
            b.put_u8(e.code.to_byte());
            b.put_u8(flags);
            b.put_u32_le(request_id.unwrap_or(0));
            b.put_u32_le(e.cooldown_remaining.unwrap_or(0).min(u64::from(u32::MAX)) as u32);
            b.put_u16_le(text.len() as u16);
            b.put_slice(text.as_bytes());
            if let Some(retry_after) = e.retry_after {
                b.put_u32_le(retry_after.min(u64::from(u32::MAX)) as u32);
            }
            b.freeze()
        }
        ServerMessage::Pong => Bytes::from_static(&[kind::PONG]),
        ServerMessage::Cooldown {
            cooldown,
            cooldown_remaining,
        } => {
            let mut b = BytesMut::with_capacity(13);
            b.put_u8(kind::COOLDOWN);
            b.put_u32_le(*cooldown);
            b.put_u64_le(*cooldown_remaining);
            b.freeze()
        }
        ServerMessage::Canvas { width, height } => {
            let mut b = BytesMut::with_capacity(9);
            b.put_u8(kind::CANVAS);
            b.put_u32_le(*width);
            b.put_u32_le(*height);
            b.freeze()
        }
    }
}

/// Encodes a tile snapshot, compressed when that is smaller.
pub fn encode_tile(tile: TileId, seq: u64, pixels: &[u8; TILE_AREA]) -> Bytes {
    let compressed = compress_tile(pixels);
    let (encoding, data): (u8, &[u8]) = if compressed.len() < TILE_AREA {
        (ENCODING_DEFLATE, &compressed)
    } else {
        (ENCODING_RAW, pixels)
    };
    let mut b = BytesMut::with_capacity(14 + data.len());
    b.put_u8(kind::TILE);
    b.put_u16_le(tile.tx);
    b.put_u16_le(tile.ty);
    b.put_u64_le(seq);
    b.put_u8(encoding);
    b.put_slice(data);
    b.freeze()
}

/// Encodes a batch of changes of one tile.
pub fn encode_pixels(tile: TileId, first_seq: u64, changes: &[PixelChange]) -> Bytes {
    let mut b = BytesMut::with_capacity(15 + 3 * changes.len());
    b.put_u8(kind::PIXELS);
    b.put_u16_le(tile.tx);
    b.put_u16_le(tile.ty);
    b.put_u64_le(first_seq);
    b.put_u16_le(changes.len() as u16);
    for c in changes {
        b.put_u8(c.lx);
        b.put_u8(c.ly);
        b.put_u8(c.color);
    }
    b.freeze()
}

/// Decodes a server frame (for `loadgen` and tests).
pub fn decode_server(frame: &[u8]) -> Result<ServerMessage, DecodeError> {
    let mut r = Reader::new(frame);
    let message = match r.u8()? {
        kind::WELCOME => {
            let welcome: Welcome = serde_json::from_slice(r.rest())
                .map_err(|e| DecodeError::new(format!("welcome: {e}")))?;
            return Ok(ServerMessage::Welcome(welcome));
        }
        kind::TILE => {
            let tile = TileId::new(r.u16()?, r.u16()?);
            let seq = r.u64()?;
            let pixels = match r.u8()? {
                ENCODING_RAW => {
                    let raw: [u8; TILE_AREA] = r
                        .rest()
                        .try_into()
                        .map_err(|_| DecodeError::new("tile: raw data is not 4096 bytes"))?;
                    Box::new(raw)
                }
                ENCODING_DEFLATE => {
                    decompress_tile(r.rest()).map_err(|e| DecodeError::new(format!("tile: {e}")))?
                }
                other => return Err(DecodeError::new(format!("tile: unknown encoding {other}"))),
            };
            return Ok(ServerMessage::Tile { tile, seq, pixels });
        }
        kind::PIXELS => {
            let tile = TileId::new(r.u16()?, r.u16()?);
            let first_seq = r.u64()?;
            let count = usize::from(r.u16()?);
            r.expect_remaining(count * 3, "pixels")?;
            let mut changes = Vec::with_capacity(count);
            for _ in 0..count {
                let (lx, ly, color) = (r.u8()?, r.u8()?, r.u8()?);
                if lx >= 64 || ly >= 64 {
                    return Err(DecodeError::new("pixels: position outside the tile"));
                }
                changes.push(PixelChange { lx, ly, color });
            }
            ServerMessage::Pixels {
                tile,
                first_seq,
                changes,
            }
        }
        kind::SUCCESS => ServerMessage::Success {
            request_id: Some(RequestId::Number(r.u32()?)),
            next_placement: r.u64()?,
        },
        kind::ERROR => {
            let code = ErrorCode::from_byte(r.u8()?)
                .ok_or_else(|| DecodeError::new("error: unknown code"))?;
            let flags = r.u8()?;
            let request_id = r.u32()?;
            let cooldown = r.u32()?;
            let len = usize::from(r.u16()?);
            let retry_len = if flags & 4 != 0 { 4 } else { 0 };
            r.expect_remaining(len + retry_len, "error")?;
            let message = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| DecodeError::new("error: message is not UTF-8"))?;
            let retry_after = if flags & 4 != 0 {
                Some(u64::from(r.u32()?))
            } else {
                None
            };
            ServerMessage::Error(ErrorMessage {
                code,
                message,
                request_id: (flags & 1 != 0).then_some(RequestId::Number(request_id)),
                cooldown_remaining: (flags & 2 != 0).then_some(u64::from(cooldown)),
                retry_after,
            })
        }
        kind::PONG => ServerMessage::Pong,
        kind::COOLDOWN => {
            let cooldown = r.u32()?;
            let cooldown_remaining = r.u64()?;
            ServerMessage::Cooldown {
                cooldown,
                cooldown_remaining,
            }
        }
        kind::CANVAS => {
            let width = r.u32()?;
            let height = r.u32()?;
            ServerMessage::Canvas { width, height }
        }
        other => {
            return Err(DecodeError::new(format!(
                "unknown message type {other:#04x}"
            )))
        }
    };
    r.expect_end()?;
    Ok(message)
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A bounds-checked little-endian reader over a frame.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len());
        let end = end.ok_or_else(|| DecodeError::new("frame is too short"))?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        // `take` returned exactly N bytes.
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.data[self.pos..];
        self.pos = self.data.len();
        rest
    }

    fn expect_remaining(&self, n: usize, what: &str) -> Result<(), DecodeError> {
        let left = self.data.len() - self.pos;
        if left != n {
            return Err(DecodeError::new(format!(
                "{what}: expected {n} more bytes, got {left}"
            )));
        }
        Ok(())
    }

    fn expect_end(&self) -> Result<(), DecodeError> {
        self.expect_remaining(0, "frame")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::{bytes, client_message, mutated, server_message};
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn documented_examples_decode() {
        let sub = hex("01 02 00 03 00 04 00 00 00 00 00 00 00 00 00 00 03 00 05 00 01 11 00 00 00 00 00 00 00");
        assert_eq!(
            decode_client(&sub),
            Ok(ClientMessage::Subscribe {
                tiles: vec![
                    TileRequest {
                        tile: TileId::new(3, 4),
                        seq: None
                    },
                    TileRequest {
                        tile: TileId::new(3, 5),
                        seq: Some(17)
                    },
                ]
            })
        );
        let place = hex("03 c8 00 36 01 05 01 00 00 00");
        assert_eq!(
            decode_client(&place),
            Ok(ClientMessage::Place {
                x: 200,
                y: 310,
                color: 5,
                request_id: Some(RequestId::Number(1))
            })
        );
        // UNAVAILABLE (8) answering request 7, retryable after 1,000 ms (flags: bits 0 and 2).
        let unavailable = hex("85 08 05 07 00 00 00 00 00 00 00 02 00 6e 6f e8 03 00 00");
        let expected = ServerMessage::Error(
            ErrorMessage::new(ErrorCode::Unavailable, "no")
                .with_request_id(Some(RequestId::Number(7)))
                .with_retry_after(std::time::Duration::from_secs(1)),
        );
        assert_eq!(decode_server(&unavailable), Ok(expected.clone()));
        assert_eq!(encode_server(&expected).to_vec(), unavailable);
        assert!(
            decode_server(&unavailable[..unavailable.len() - 1]).is_err(),
            "flag bit 2 without the four bytes"
        );
        let pixels = hex("83 03 00 04 00 12 00 00 00 00 00 00 00 01 00 08 36 05");
        assert_eq!(
            decode_server(&pixels),
            Ok(ServerMessage::Pixels {
                tile: TileId::new(3, 4),
                first_seq: 18,
                changes: vec![PixelChange {
                    lx: 8,
                    ly: 54,
                    color: 5
                }]
            })
        );
        assert_eq!(
            encode_server(&decode_server(&pixels).expect("valid")).to_vec(),
            pixels
        );
        let cooldown = ServerMessage::Cooldown {
            cooldown: 2,
            cooldown_remaining: 1400,
        };
        assert_eq!(
            encode_server(&cooldown).to_vec(),
            hex("87 02 00 00 00 78 05 00 00 00 00 00 00"),
            "the bytes the browser client's test decodes"
        );
        let canvas = ServerMessage::Canvas {
            width: 4096,
            height: 2000,
        };
        assert_eq!(
            encode_server(&canvas).to_vec(),
            hex("88 00 10 00 00 d0 07 00 00"),
            "the bytes the browser client's test decodes"
        );
        assert_eq!(
            decode_server(&encode_server(&canvas)).expect("valid"),
            canvas
        );
    }

    #[test]
    fn malformed_frames_are_refused_with_reasons() {
        assert!(decode_client(&[]).is_err());
        assert!(decode_client(&[0x7f])
            .expect_err("unknown")
            .reason
            .contains("unknown message type"));
        assert!(
            decode_client(&[kind::SUBSCRIBE, 2, 0, 1]).is_err(),
            "count says 2, no entries"
        );
        assert!(decode_client(&[kind::PING, 0]).is_err(), "trailing byte");
        let mut flags = hex("01 01 00 03 00 04 00 02 00 00 00 00 00 00 00 00");
        assert!(decode_client(&flags).is_err(), "unknown flag bit");
        flags[7] = 0;
        flags[8] = 5;
        assert!(decode_client(&flags).is_err(), "seq without flag");
        let err = decode_client(&hex("03 c8 00 36 01 05 09 00 00 00 ff")).expect_err("long place");
        assert_eq!(err.request_id, Some(RequestId::Number(9)));
        let big = vec![kind::PING; MAX_MESSAGE_BYTES + 1];
        assert!(decode_client(&big)
            .expect_err("oversize")
            .reason
            .contains("limit"));
    }

    #[test]
    fn tile_snapshots_are_compressed_when_smaller() {
        let blank = Box::new([0u8; TILE_AREA]);
        let frame = encode_tile(TileId::new(1, 2), 9, &blank);
        assert!(
            frame.len() < 64,
            "blank tile frame is {} bytes",
            frame.len()
        );
        assert_eq!(frame[13], ENCODING_DEFLATE);
        let noisy: Vec<u8> = (0..TILE_AREA).map(|i| ((i * 7919) % 251) as u8).collect();
        let noisy: Box<[u8; TILE_AREA]> = noisy.into_boxed_slice().try_into().expect("len");
        let msg = ServerMessage::Tile {
            tile: TileId::new(0, 0),
            seq: 3,
            pixels: noisy,
        };
        assert_eq!(decode_server(&encode_server(&msg)), Ok(msg));
    }

    /// Bytes of frame a decoded message's variable part takes at least: a decoder that gives
    /// more than this per frame byte allocated more than the frame justifies.
    fn fits_in(frame: &[u8], weight: usize) -> bool {
        weight <= frame.len()
    }

    proptest! {
        #[test]
        fn client_messages_round_trip(m in client_message()) {
            prop_assert_eq!(decode_client(&encode_client(&m)), Ok(m));
        }

        #[test]
        fn server_messages_round_trip(m in server_message()) {
            prop_assert_eq!(decode_server(&encode_server(&m)), Ok(m));
        }

        /// Arbitrary and mutated client frames: no panic; what decodes is no larger than the
        /// frame and is the one message whose encoding is exactly the frame.
        #[test]
        fn fuzz_client_frames(frame in prop_oneof![
            bytes(512),
            mutated(client_message().prop_map(|m| encode_client(&m).to_vec())),
        ]) {
            if let Ok(m) = decode_client(&frame) {
                let weight = match &m {
                    ClientMessage::Subscribe { tiles } => tiles.len() * SUBSCRIBE_ENTRY,
                    ClientMessage::Unsubscribe { tiles } => tiles.len() * UNSUBSCRIBE_ENTRY,
                    _ => 0,
                };
                prop_assert!(fits_in(&frame, weight));
                prop_assert_eq!(encode_client(&m).to_vec(), frame);
            }
        }

        /// Arbitrary and mutated server frames (an edge decodes them from shards, `loadgen` from
        /// edges): no panic; what decodes is no larger than the frame justifies (a tile inflates
        /// to its 4,096 pixels and no more) and round-trips.
        #[test]
        fn fuzz_server_frames(frame in prop_oneof![
            bytes(512),
            mutated(server_message().prop_map(|m| encode_server(&m).to_vec())),
        ]) {
            if let Ok(m) = decode_server(&frame) {
                let weight = match &m {
                    ServerMessage::Pixels { changes, .. } => changes.len() * 3,
                    ServerMessage::Error(e) => e.message.len(),
                    ServerMessage::Welcome(w) => w.canvas_info.palette.len(),
                    _ => 0,
                };
                prop_assert!(fits_in(&frame, weight));
                prop_assert_eq!(decode_server(&encode_server(&m)), Ok(m));
            }
        }
    }
}
