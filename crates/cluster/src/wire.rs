//! The edge-shard protocol on QUIC streams.
//!
//! Every exchange is one bidirectional stream opened by the edge, so a slow placement or a slow
//! tile never holds up another (no head-of-line blocking across streams):
//!
//! - **place**: the edge sends a [`Request::Place`] (with the placement's correlation id, which
//!   the shard's log lines for it name); the shard answers one [`PlaceReply`] and finishes the
//!   stream.
//! - **subscribe**: the edge sends a [`Request::Subscribe`] for one tile; the shard answers with
//!   the tile (a snapshot, or the changes after the edge's seq) and then streams every batch of
//!   that tile, until the edge closes the stream (unsubscribe) or the shard resets it (the edge
//!   fell behind, or the tile moved: the edge resubscribes with its seq).
//! - **place a batch**: [`Request::PlaceBatch`] carries up to [`MAX_PLACE_BATCH`] placements of
//!   tiles the shard owns (an administrator's rollback restoring pixels); the shard answers one
//!   [`BatchReply`] with a status per placement, in order, and finishes the stream.
//! - **read**: [`Request::ReadTiles`] answers every owned tile as snapshots, then finishes.
//! - **placement lane**: [`Request::PlaceLane`] opens a stream that carries many placements, for
//!   as long as the connection lives. The edge sends [`LanePlace`]s, each with an id of its
//!   choosing; the shard answers each with a [`LaneReply`] naming that id, in the order they
//!   complete, so a placement waiting for its commit holds up none behind it. It replaces a
//!   stream per placement (the placement streams were 11 to 16% of a busy shard's samples,
//!   `bench/RESULTS.md` sections 17 and 18; with lanes and the appends' own connection the
//!   shards use 0.82 to 0.88x the CPU), and lets either side write every frame that is ready in
//!   one go. The edge keeps one lane per shard; on a lossy network a lost packet
//!   delays the lane's placements behind it by a round trip, which is the price of sharing it.
//!
//! Frames are a `u32` little-endian length and the payload. Tile snapshots and batches use the
//! client protocol's binary `tile` (0x82) and `pixels` (0x83) layouts (`docs/PROTOCOL.md`). An
//! optional value is a flag byte (1 present, 0 absent) and the value, 0 when absent; anything
//! else is refused. Every decoder here is fuzzed on stable Rust by the `fuzz_*` property tests
//! at the bottom of this file (arbitrary bytes, and mutations of valid frames: see
//! `place_protocol::fuzzing`), which check that it never panics, decodes nothing larger than its
//! bytes, and round-trips. A batch is sent stamped: `0xB3`, the time its first change was
//! applied (`i64` LE, epoch ms of the shard's clock), then the `pixels` message; the edge times
//! its fan-out from that stamp (the broadcast latency). An unstamped `pixels` frame is accepted
//! too, with no time.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use place_protocol::{binary, ServerMessage};
use place_tiles::{PixelChange, TileId, TILE_AREA};
use thiserror::Error;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;
/// The most placements one [`Request::PlaceBatch`] carries.
pub const MAX_PLACE_BATCH: usize = 4096;
/// Bytes of one encoded [`WirePlace`].
const PLACE_LEN: usize = 46;

/// A malformed or oversize frame, or a broken stream.
#[derive(Debug, Error)]
pub enum WireError {
    /// The frame does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The frame is larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The stream failed.
    #[error("stream: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Writing failed.
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
}

/// A placement as it travels from edge to shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WirePlace {
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
    /// Palette index.
    pub color: u8,
    /// Who.
    pub user_id: i64,
    /// When (epoch ms).
    pub placed_at: i64,
    /// The ring epoch the edge routed by.
    pub epoch: u64,
    /// The moderation action this placement carries out (a restore), if any.
    pub action_id: Option<i64>,
    /// The placement's correlation id (0: none): the shard's log lines for it name it too.
    pub placement_id: u64,
}

impl WirePlace {
    fn put(&self, b: &mut BytesMut) {
        b.put_u16_le(self.x);
        b.put_u16_le(self.y);
        b.put_u8(self.color);
        b.put_i64_le(self.user_id);
        b.put_i64_le(self.placed_at);
        b.put_u64_le(self.epoch);
        b.put_u8(u8::from(self.action_id.is_some()));
        b.put_i64_le(self.action_id.unwrap_or(0));
        b.put_u64_le(self.placement_id);
    }

    /// Reads one from `b`, which holds at least [`PLACE_LEN`] bytes.
    fn get(b: &mut &[u8]) -> Result<Self, WireError> {
        let mut place = WirePlace {
            x: b.get_u16_le(),
            y: b.get_u16_le(),
            color: b.get_u8(),
            user_id: b.get_i64_le(),
            placed_at: b.get_i64_le(),
            epoch: b.get_u64_le(),
            action_id: None,
            placement_id: 0,
        };
        let flag = b.get_u8();
        place.action_id = optional(flag, b.get_i64_le(), 0, "placement's action")?;
        place.placement_id = b.get_u64_le();
        Ok(place)
    }
}

/// An optional value as it travels: a flag byte (1: present, 0: absent) and the value, which is
/// `none` when absent. Any other flag, or a value without its flag, is refused rather than read
/// one way or the other (found by `fuzz_requests`: both used to pass as "absent").
fn optional<T: PartialEq + std::fmt::Display>(
    flag: u8,
    value: T,
    none: T,
    what: &str,
) -> Result<Option<T>, WireError> {
    match flag {
        1 => Ok(Some(value)),
        0 if value == none => Ok(None),
        0 => Err(WireError::Malformed(format!(
            "{what}: {value} given without its flag"
        ))),
        _ => Err(WireError::Malformed(format!("{what}: flag {flag}"))),
    }
}

/// The first frame of every stream the edge opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Apply a placement.
    Place(WirePlace),
    /// Apply up to [`MAX_PLACE_BATCH`] placements, each answered.
    PlaceBatch(Vec<WirePlace>),
    /// Stream a tile.
    Subscribe {
        /// The tile.
        tile: TileId,
        /// The seq the edge holds, if any.
        known_seq: Option<u64>,
    },
    /// Send every owned tile once.
    ReadTiles,
    /// Open a placement lane: [`LanePlace`]s follow, each answered by a [`LaneReply`].
    PlaceLane,
}

/// A placement on a lane, with the id its [`LaneReply`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanePlace {
    /// The edge's id for this exchange, unique on the lane while it is unanswered.
    pub id: u64,
    /// The placement.
    pub place: WirePlace,
}

/// A shard's answer to one [`LanePlace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneReply {
    /// The id of the placement answered.
    pub id: u64,
    /// The answer.
    pub reply: PlaceReply,
}

/// Why a shard refused a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceRefusal {
    /// Outside the canvas.
    InvalidCoords,
    /// Not a palette colour.
    InvalidColor,
    /// The shard does not own the tile at its epoch: re-route.
    NotOwner,
    /// Not durable now: retryable.
    Unavailable,
}

/// A shard's answer to a [`Request::PlaceBatch`]: per placement, in order, placed or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReply(pub Vec<Result<(), PlaceRefusal>>);

/// A shard's answer to a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceReply {
    /// Applied and durable at this tile seq.
    Placed {
        /// The tile's seq after it.
        seq: u64,
    },
    /// Refused.
    Refused(PlaceRefusal),
}

const PLACE: u8 = 1;
const SUBSCRIBE: u8 = 2;
const READ_TILES: u8 = 3;
const PLACE_BATCH: u8 = 4;
const PLACE_LANE: u8 = 5;
const PLACED: u8 = 0x10;
const REFUSED: u8 = 0x11;
const BATCH_REPLY: u8 = 0x12;
/// A tile batch with the time it was applied (a tag no client message uses).
const STAMPED_BATCH: u8 = 0xB3;

impl PlaceRefusal {
    fn code(self) -> u8 {
        match self {
            PlaceRefusal::InvalidCoords => 1,
            PlaceRefusal::InvalidColor => 2,
            PlaceRefusal::NotOwner => 3,
            PlaceRefusal::Unavailable => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => PlaceRefusal::InvalidCoords,
            2 => PlaceRefusal::InvalidColor,
            3 => PlaceRefusal::NotOwner,
            4 => PlaceRefusal::Unavailable,
            _ => return None,
        })
    }
}

impl Request {
    /// Encodes the request.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32);
        match self {
            Request::Place(p) => {
                b.put_u8(PLACE);
                p.put(&mut b);
            }
            Request::PlaceBatch(places) => {
                b.reserve(5 + places.len() * PLACE_LEN);
                b.put_u8(PLACE_BATCH);
                b.put_u32_le(places.len() as u32);
                for p in places {
                    p.put(&mut b);
                }
            }
            Request::Subscribe { tile, known_seq } => {
                b.put_u8(SUBSCRIBE);
                b.put_u16_le(tile.tx);
                b.put_u16_le(tile.ty);
                b.put_u8(u8::from(known_seq.is_some()));
                b.put_u64_le(known_seq.unwrap_or(0));
            }
            Request::ReadTiles => b.put_u8(READ_TILES),
            Request::PlaceLane => b.put_u8(PLACE_LANE),
        }
        b.freeze()
    }

    /// Decodes a request.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        let short = || WireError::Malformed("request too short".into());
        let tag = b.try_get_u8().map_err(|_| short())?;
        let request = match (tag, b.len()) {
            (PLACE, PLACE_LEN) => Request::Place(WirePlace::get(&mut b)?),
            (PLACE_BATCH, len) if len >= 4 => {
                let count = b.get_u32_le() as usize;
                if count > MAX_PLACE_BATCH || b.len() != count * PLACE_LEN {
                    return Err(WireError::Malformed(format!(
                        "a batch of {count} placements in {} bytes",
                        b.len()
                    )));
                }
                Request::PlaceBatch(
                    (0..count)
                        .map(|_| WirePlace::get(&mut b))
                        .collect::<Result<_, _>>()?,
                )
            }
            (SUBSCRIBE, 13) => {
                let tile = TileId::new(b.get_u16_le(), b.get_u16_le());
                let flag = b.get_u8();
                Request::Subscribe {
                    tile,
                    known_seq: optional(flag, b.get_u64_le(), 0, "subscription's seq")?,
                }
            }
            (READ_TILES, 0) => Request::ReadTiles,
            (PLACE_LANE, 0) => Request::PlaceLane,
            (tag, len) => {
                return Err(WireError::Malformed(format!(
                    "request type {tag} with {len} bytes"
                )))
            }
        };
        Ok(request)
    }
}

impl LanePlace {
    /// Appends the placement to `b` as one frame (length included).
    pub fn put_frame(&self, b: &mut BytesMut) {
        b.put_u32_le((8 + PLACE_LEN) as u32);
        b.put_u64_le(self.id);
        self.place.put(b);
    }

    /// Decodes a frame's payload.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        if b.len() != 8 + PLACE_LEN {
            return Err(WireError::Malformed(format!(
                "a lane's placement of {} bytes",
                b.len()
            )));
        }
        let id = b.get_u64_le();
        Ok(LanePlace {
            id,
            place: WirePlace::get(&mut b)?,
        })
    }
}

impl LaneReply {
    /// Appends the reply to `b` as one frame (length included).
    pub fn put_frame(&self, b: &mut BytesMut) {
        let start = b.len();
        b.put_u32_le(0);
        b.put_u64_le(self.id);
        self.reply.put(b);
        let len = (b.len() - start - 4) as u32;
        b[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Decodes a frame's payload.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        let id = b
            .try_get_u64_le()
            .map_err(|_| WireError::Malformed("a lane's reply without its id".into()))?;
        Ok(LaneReply {
            id,
            reply: PlaceReply::decode(b)?,
        })
    }
}

impl PlaceReply {
    /// Encodes the reply.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(9);
        self.put(&mut b);
        b.freeze()
    }

    fn put(&self, b: &mut BytesMut) {
        match self {
            PlaceReply::Placed { seq } => {
                b.put_u8(PLACED);
                b.put_u64_le(*seq);
            }
            PlaceReply::Refused(why) => {
                b.put_u8(REFUSED);
                b.put_u8(why.code());
            }
        }
    }

    /// Decodes a reply.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        let bad = |what: &str| WireError::Malformed(format!("place reply: {what}"));
        match (b.try_get_u8().map_err(|_| bad("empty"))?, b.len()) {
            (PLACED, 8) => Ok(PlaceReply::Placed {
                seq: b.get_u64_le(),
            }),
            (REFUSED, 1) => {
                let code = b.get_u8();
                PlaceRefusal::from_code(code)
                    .map(PlaceReply::Refused)
                    .ok_or_else(|| bad(&format!("unknown refusal {code}")))
            }
            (tag, len) => Err(bad(&format!("type {tag} with {len} bytes"))),
        }
    }
}

impl BatchReply {
    /// Encodes the reply: its tag, a `u32` count, then a status byte per placement (0 placed,
    /// else the refusal's code).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(5 + self.0.len());
        b.put_u8(BATCH_REPLY);
        b.put_u32_le(self.0.len() as u32);
        for status in &self.0 {
            b.put_u8(status.map_or_else(PlaceRefusal::code, |()| 0));
        }
        b.freeze()
    }

    /// Decodes a reply.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        let bad = |what: String| WireError::Malformed(format!("batch reply: {what}"));
        if b.try_get_u8().ok() != Some(BATCH_REPLY) || b.len() < 4 {
            return Err(bad("not a batch reply".into()));
        }
        let count = b.get_u32_le() as usize;
        if b.len() != count {
            return Err(bad(format!("{count} statuses in {} bytes", b.len())));
        }
        b.iter()
            .map(|&code| match code {
                0 => Ok(Ok(())),
                code => PlaceRefusal::from_code(code)
                    .map(Err)
                    .ok_or_else(|| bad(format!("unknown status {code}"))),
            })
            .collect::<Result<_, _>>()
            .map(BatchReply)
    }
}

/// A tile frame from the shard: a snapshot or a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileFrame {
    /// The whole tile.
    Snapshot {
        /// The tile.
        tile: TileId,
        /// Its seq.
        seq: u64,
        /// Its pixels.
        pixels: Box<[u8; TILE_AREA]>,
    },
    /// Consecutive changes.
    Batch {
        /// The tile.
        tile: TileId,
        /// The seq of the first change.
        first_seq: u64,
        /// The changes.
        changes: Vec<PixelChange>,
        /// When the first change was applied at the shard (epoch ms); 0 when not known.
        applied_at_ms: i64,
    },
}

impl TileFrame {
    /// Encodes a snapshot frame.
    pub fn encode_snapshot(tile: TileId, seq: u64, pixels: &[u8; TILE_AREA]) -> Bytes {
        binary::encode_tile(tile, seq, pixels)
    }

    /// Encodes a batch frame, stamped with when its first change was applied (epoch ms).
    pub fn encode_batch(
        tile: TileId,
        first_seq: u64,
        changes: &[PixelChange],
        applied_at_ms: i64,
    ) -> Bytes {
        let pixels = binary::encode_pixels(tile, first_seq, changes);
        let mut b = BytesMut::with_capacity(9 + pixels.len());
        b.put_u8(STAMPED_BATCH);
        b.put_i64_le(applied_at_ms);
        b.put_slice(&pixels);
        b.freeze()
    }

    /// Decodes a tile frame.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        let mut stamp = None;
        if b.first() == Some(&STAMPED_BATCH) {
            if b.len() < 9 {
                return Err(WireError::Malformed("stamped batch too short".into()));
            }
            b.advance(1);
            stamp = Some(b.get_i64_le());
        }
        match binary::decode_server(b).map_err(|e| WireError::Malformed(e.reason))? {
            ServerMessage::Tile { tile, seq, pixels } if stamp.is_none() => {
                Ok(TileFrame::Snapshot { tile, seq, pixels })
            }
            ServerMessage::Pixels {
                tile,
                first_seq,
                changes,
            } => Ok(TileFrame::Batch {
                tile,
                first_seq,
                changes,
                applied_at_ms: stamp.unwrap_or(0),
            }),
            other => Err(WireError::Malformed(format!("not a tile frame: {other:?}"))),
        }
    }
}

/// Writes one frame, in one write to the stream (each write wakes the connection's driver).
pub async fn write_frame(send: &mut quinn::SendStream, payload: &[u8]) -> Result<(), WireError> {
    let len = u32::try_from(payload.len()).map_err(|_| WireError::TooLarge(payload.len()))?;
    let mut frame = BytesMut::with_capacity(4 + payload.len());
    frame.put_u32_le(len);
    frame.put_slice(payload);
    send.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame; `None` when the peer finished the stream cleanly between frames.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<Bytes>, WireError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await?;
    Ok(Some(Bytes::from(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use place_protocol::fuzzing;
    use proptest::prelude::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let requests = [
            Request::Place(WirePlace {
                x: 1999,
                y: 7,
                color: 15,
                user_id: -3,
                placed_at: 1_764_000_000_000,
                epoch: 9,
                action_id: None,
                placement_id: 0x0123_4567_89ab_cdef,
            }),
            Request::PlaceBatch(vec![
                WirePlace {
                    x: 0,
                    y: 65535,
                    color: 0,
                    user_id: 4,
                    placed_at: 5,
                    epoch: 6,
                    action_id: Some(77),
                    placement_id: 0,
                };
                3
            ]),
            Request::Subscribe {
                tile: TileId::new(3, 4),
                known_seq: Some(17),
            },
            Request::Subscribe {
                tile: TileId::new(0, 0),
                known_seq: None,
            },
            Request::ReadTiles,
            Request::PlaceLane,
        ];
        for r in requests {
            assert_eq!(Request::decode(&r.encode()).expect("valid"), r);
        }
        for reply in [
            PlaceReply::Placed { seq: u64::MAX },
            PlaceReply::Refused(PlaceRefusal::NotOwner),
            PlaceReply::Refused(PlaceRefusal::Unavailable),
        ] {
            assert_eq!(PlaceReply::decode(&reply.encode()).expect("valid"), reply);
        }
        let statuses = BatchReply(vec![Ok(()), Err(PlaceRefusal::NotOwner), Ok(())]);
        assert_eq!(
            BatchReply::decode(&statuses.encode()).expect("valid"),
            statuses
        );
        let change = PixelChange {
            lx: 1,
            ly: 2,
            color: 3,
        };
        let batch = TileFrame::encode_batch(TileId::new(1, 2), 5, &[change], 1_764_000_000_123);
        assert!(matches!(
            TileFrame::decode(&batch),
            Ok(TileFrame::Batch {
                first_seq: 5,
                applied_at_ms: 1_764_000_000_123,
                ..
            })
        ));
        // An unstamped batch (the client protocol's `pixels`) has no time.
        let plain = binary::encode_pixels(TileId::new(1, 2), 5, &[change]);
        assert!(matches!(
            TileFrame::decode(&plain),
            Ok(TileFrame::Batch {
                applied_at_ms: 0,
                ..
            })
        ));
        let snapshot = TileFrame::encode_snapshot(TileId::new(0, 0), 1, &[0; TILE_AREA]);
        let mut stamped_snapshot = vec![STAMPED_BATCH];
        stamped_snapshot.extend_from_slice(&7i64.to_le_bytes());
        stamped_snapshot.extend_from_slice(&snapshot);
        assert!(
            TileFrame::decode(&stamped_snapshot).is_err(),
            "only batches are stamped"
        );
    }

    fn wire_place() -> impl Strategy<Value = WirePlace> {
        (
            (any::<u16>(), any::<u16>(), any::<u8>(), any::<i64>()),
            (
                any::<i64>(),
                any::<u64>(),
                any::<Option<i64>>(),
                any::<u64>(),
            ),
        )
            .prop_map(
                |((x, y, color, user_id), (placed_at, epoch, action_id, placement_id))| WirePlace {
                    x,
                    y,
                    color,
                    user_id,
                    placed_at,
                    epoch,
                    action_id,
                    placement_id,
                },
            )
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            wire_place().prop_map(Request::Place),
            prop::collection::vec(wire_place(), 0..20).prop_map(Request::PlaceBatch),
            (fuzzing::tile(), any::<Option<u64>>())
                .prop_map(|(tile, known_seq)| Request::Subscribe { tile, known_seq }),
            Just(Request::ReadTiles),
            Just(Request::PlaceLane),
        ]
    }

    fn lane_place() -> impl Strategy<Value = LanePlace> {
        (any::<u64>(), wire_place()).prop_map(|(id, place)| LanePlace { id, place })
    }

    fn lane_reply() -> impl Strategy<Value = LaneReply> {
        (any::<u64>(), place_reply()).prop_map(|(id, reply)| LaneReply { id, reply })
    }

    /// A frame's payload: what follows its length.
    fn payload(frame: BytesMut) -> Vec<u8> {
        let len = u32::from_le_bytes(frame[..4].try_into().expect("a length")) as usize;
        assert_eq!(len, frame.len() - 4, "the length is the payload's");
        frame[4..].to_vec()
    }

    fn lane_place_bytes(p: &LanePlace) -> Vec<u8> {
        let mut b = BytesMut::new();
        p.put_frame(&mut b);
        payload(b)
    }

    fn lane_reply_bytes(r: &LaneReply) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.put_frame(&mut b);
        payload(b)
    }

    fn refusal() -> impl Strategy<Value = PlaceRefusal> {
        prop_oneof![
            Just(PlaceRefusal::InvalidCoords),
            Just(PlaceRefusal::InvalidColor),
            Just(PlaceRefusal::NotOwner),
            Just(PlaceRefusal::Unavailable),
        ]
    }

    fn place_reply() -> impl Strategy<Value = PlaceReply> {
        prop_oneof![
            any::<u64>().prop_map(|seq| PlaceReply::Placed { seq }),
            refusal().prop_map(PlaceReply::Refused),
        ]
    }

    fn batch_reply() -> impl Strategy<Value = BatchReply> {
        prop::collection::vec(prop::option::of(refusal()), 0..50)
            .prop_map(|s| BatchReply(s.into_iter().map(|r| r.map_or(Ok(()), Err)).collect()))
    }

    /// Snapshots, stamped batches and unstamped (client protocol) batches.
    fn tile_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (
                fuzzing::tile(),
                any::<u64>(),
                prop::collection::vec(0u8..4, TILE_AREA)
            )
                .prop_map(|(tile, seq, px)| {
                    let mut pixels = [0u8; TILE_AREA];
                    pixels.copy_from_slice(&px);
                    TileFrame::encode_snapshot(tile, seq, &pixels).to_vec()
                }),
            (
                fuzzing::tile(),
                any::<u64>(),
                fuzzing::pixel_changes(100),
                any::<i64>()
            )
                .prop_map(|(tile, seq, changes, at)| {
                    TileFrame::encode_batch(tile, seq, &changes, at).to_vec()
                }),
            (fuzzing::tile(), any::<u64>(), fuzzing::pixel_changes(100)).prop_map(
                |(tile, seq, changes)| binary::encode_pixels(tile, seq, &changes).to_vec()
            ),
        ]
    }

    /// The re-encoding of a decoded tile frame (snapshots may change layout: raw or compressed).
    fn reencode(frame: &TileFrame) -> Bytes {
        match frame {
            TileFrame::Snapshot { tile, seq, pixels } => {
                TileFrame::encode_snapshot(*tile, *seq, pixels)
            }
            TileFrame::Batch {
                tile,
                first_seq,
                changes,
                applied_at_ms,
            } => TileFrame::encode_batch(*tile, *first_seq, changes, *applied_at_ms),
        }
    }

    proptest! {
        #[test]
        fn messages_round_trip(
            r in request(),
            p in place_reply(),
            b in batch_reply(),
        ) {
            prop_assert_eq!(Request::decode(&r.encode()).ok(), Some(r));
            prop_assert_eq!(PlaceReply::decode(&p.encode()).ok(), Some(p));
            prop_assert_eq!(BatchReply::decode(&b.encode()).ok(), Some(b));
        }

        #[test]
        fn lane_frames_round_trip(p in lane_place(), r in lane_reply()) {
            prop_assert_eq!(LanePlace::decode(&lane_place_bytes(&p)).ok(), Some(p));
            prop_assert_eq!(LaneReply::decode(&lane_reply_bytes(&r)).ok(), Some(r));
        }

        /// Arbitrary and mutated lane frames (a shard decodes placements from edges, an edge
        /// replies from shards): no panic, and what decodes is the one frame encoded as exactly
        /// those bytes.
        #[test]
        fn fuzz_lane_frames(frame in prop_oneof![
            fuzzing::bytes(128),
            fuzzing::mutated(lane_place().prop_map(|p| lane_place_bytes(&p))),
            fuzzing::mutated(lane_reply().prop_map(|r| lane_reply_bytes(&r))),
        ]) {
            if let Ok(p) = LanePlace::decode(&frame) {
                prop_assert_eq!(lane_place_bytes(&p), frame.clone());
            }
            if let Ok(r) = LaneReply::decode(&frame) {
                prop_assert_eq!(lane_reply_bytes(&r), frame);
            }
        }

        /// Arbitrary and mutated requests (a shard decodes them from edges): no panic, no batch
        /// larger than its bytes, and what decodes is the one request encoded as exactly those
        /// bytes.
        #[test]
        fn fuzz_requests(frame in prop_oneof![
            fuzzing::bytes(256),
            fuzzing::mutated(request().prop_map(|r| r.encode().to_vec())),
        ]) {
            if let Ok(r) = Request::decode(&frame) {
                if let Request::PlaceBatch(places) = &r {
                    prop_assert!(places.len() * PLACE_LEN <= frame.len());
                }
                prop_assert_eq!(r.encode().to_vec(), frame);
            }
        }

        /// Arbitrary and mutated replies (an edge decodes them from shards): the same.
        #[test]
        fn fuzz_replies(frame in prop_oneof![
            fuzzing::bytes(128),
            fuzzing::mutated(place_reply().prop_map(|p| p.encode().to_vec())),
            fuzzing::mutated(batch_reply().prop_map(|b| b.encode().to_vec())),
        ]) {
            if let Ok(p) = PlaceReply::decode(&frame) {
                prop_assert_eq!(p.encode().to_vec(), frame.clone());
            }
            if let Ok(b) = BatchReply::decode(&frame) {
                prop_assert!(b.0.len() <= frame.len());
                prop_assert_eq!(b.encode().to_vec(), frame);
            }
        }

        /// Arbitrary and mutated tile frames: no panic, no more changes than bytes, round trip.
        #[test]
        fn fuzz_tile_frames(frame in prop_oneof![
            fuzzing::bytes(256),
            fuzzing::mutated(tile_frame_bytes()),
        ]) {
            if let Ok(decoded) = TileFrame::decode(&frame) {
                if let TileFrame::Batch { changes, .. } = &decoded {
                    prop_assert!(changes.len() * 3 <= frame.len());
                }
                prop_assert_eq!(TileFrame::decode(&reencode(&decoded)).ok(), Some(decoded));
            }
        }
    }
}
