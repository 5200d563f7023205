//! Fuzzing on stable Rust: `proptest` strategies that make hostile input for every decoder of
//! network input in place (this crate's codecs, the edge–shard wire format, cookies, cursors).
//!
//! A decoder is fuzzed two ways: with arbitrary bytes, and with **structure-aware mutations**
//! of valid encodings ([`mutated`]): encode a random valid message, then flip bits, overwrite,
//! insert, delete, duplicate or truncate bytes, which reaches far deeper into a decoder than
//! random bytes do (past the type byte and the length checks). The harnesses are ordinary
//! `#[test]`s named `fuzz_*` beside each decoder, so `cargo test` runs them in CI in bounded time
//! (256 cases each by default); set `PROPTEST_CASES` to run more, e.g. `PROPTEST_CASES=100000
//! cargo test fuzz_`. Each asserts that the decoder does not panic, that what it decodes is no
//! larger than the input justifies, and that what it decodes encodes back to what it decoded.
//!
//! Other crates use this module through the `fuzzing` feature (as a dev-dependency); it is not
//! part of a normal build.

use place_tiles::{PixelChange, TileId, TILE_AREA};
use proptest::prelude::*;

use crate::message::{
    CanvasInfo, ClientMessage, ErrorCode, ErrorMessage, RequestId, ServerMessage, TileRequest,
    Welcome,
};

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flips one bit of the byte at (position modulo the length).
    FlipBit(usize, u8),
    /// Overwrites one byte.
    Set(usize, u8),
    /// Inserts bytes at a position.
    Insert(usize, Vec<u8>),
    /// Deletes up to this many bytes from a position.
    Delete(usize, usize),
    /// Copies a run of bytes to right after itself (repeated fields, lengths out of step).
    Duplicate(usize, usize),
    /// Keeps only a prefix.
    Truncate(usize),
    /// Overwrites four bytes with an extreme little-endian `u32` (counts, lengths).
    ExtremeU32(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![
        Just(0u32),
        Just(1),
        Just(0xff),
        Just(0xffff),
        Just(0x1_0000),
        Just(u32::MAX),
        Just(i32::MAX as u32),
        any::<u32>(),
    ];
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        2 => (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => (any::<usize>(), 1usize..32).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), extreme).prop_map(|(at, v)| Mutation::ExtremeU32(at, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    // A position inside the bytes (or 0 for none), and one where an insertion may go.
    let inside = |at: usize| at.checked_rem(len).unwrap_or(0);
    let between = |at: usize| at % (len + 1);
    match mutation {
        Mutation::FlipBit(at, bit) => {
            if let Some(b) = bytes.get_mut(inside(*at)) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Set(at, value) => {
            if let Some(b) = bytes.get_mut(inside(*at)) {
                *b = *value;
            }
        }
        Mutation::Insert(at, more) => {
            let at = between(*at);
            bytes.splice(at..at, more.iter().copied());
        }
        Mutation::Delete(at, n) => {
            let at = between(*at);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Duplicate(at, n) => {
            let at = between(*at);
            let run = bytes[at..(at + n).min(len)].to_vec();
            let end = at + run.len();
            bytes.splice(end..end, run);
        }
        Mutation::Truncate(at) => bytes.truncate(between(*at)),
        Mutation::ExtremeU32(at, value) => {
            let at = inside(*at);
            for (b, v) in bytes[at..].iter_mut().zip(value.to_le_bytes()) {
                *b = v;
            }
        }
    }
}

/// `valid` (a strategy of valid encodings) with one to four mutations applied.
pub fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, prop::collection::vec(mutation(), 1..=4)).prop_map(|(mut bytes, mutations)| {
        for m in &mutations {
            apply(&mut bytes, m);
        }
        bytes
    })
}

/// Arbitrary bytes, up to `max` of them.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// Any tile id (on the canvas or not).
pub fn tile() -> impl Strategy<Value = TileId> {
    (any::<u16>(), any::<u16>()).prop_map(|(tx, ty)| TileId::new(tx, ty))
}

/// Pixel changes of one tile.
pub fn pixel_changes(max: usize) -> impl Strategy<Value = Vec<PixelChange>> {
    let change =
        (0u8..64, 0u8..64, any::<u8>()).prop_map(|(lx, ly, color)| PixelChange { lx, ly, color });
    prop::collection::vec(change, 0..max)
}

/// Any client message the binary codec can carry (numeric request ids).
pub fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        prop::collection::vec((tile(), prop::option::of(any::<u64>())), 0..50).prop_map(|t| {
            ClientMessage::Subscribe {
                tiles: t
                    .into_iter()
                    .map(|(tile, seq)| TileRequest { tile, seq })
                    .collect(),
            }
        }),
        prop::collection::vec(tile(), 0..50).prop_map(|tiles| ClientMessage::Unsubscribe { tiles }),
        (any::<u16>(), any::<u16>(), any::<u8>(), any::<u32>()).prop_map(|(x, y, c, r)| {
            ClientMessage::Place {
                x: x.into(),
                y: y.into(),
                color: c.into(),
                request_id: Some(RequestId::Number(r)),
            }
        }),
        Just(ClientMessage::Ping),
    ]
}

/// Any server message (a tile's pixels in a small range of colours, as real tiles are, so that
/// both the raw and the compressed layout come up).
pub fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (
            tile(),
            any::<u64>(),
            prop::collection::vec(0u8..4, TILE_AREA)
        )
            .prop_map(|(tile, seq, px)| {
                let pixels = px
                    .into_boxed_slice()
                    .try_into()
                    .unwrap_or_else(|_| Box::new([0; TILE_AREA]));
                ServerMessage::Tile { tile, seq, pixels }
            }),
        (tile(), any::<u64>(), pixel_changes(200)).prop_map(|(tile, first_seq, changes)| {
            ServerMessage::Pixels {
                tile,
                first_seq,
                changes,
            }
        }),
        (any::<u32>(), any::<u64>()).prop_map(|(r, n)| ServerMessage::Success {
            request_id: Some(RequestId::Number(r)),
            next_placement: n
        }),
        (
            0usize..ErrorCode::ALL.len(),
            ".{0,40}",
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>())
        )
            .prop_map(
                |(c, message, r, cd, ra)| ServerMessage::Error(ErrorMessage {
                    code: ErrorCode::ALL[c],
                    message,
                    request_id: r.map(RequestId::Number),
                    cooldown_remaining: cd.map(u64::from),
                    retry_after: ra.map(u64::from),
                })
            ),
        Just(ServerMessage::Pong),
        (any::<u32>(), any::<u64>()).prop_map(|(cooldown, cooldown_remaining)| {
            ServerMessage::Cooldown {
                cooldown,
                cooldown_remaining,
            }
        }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(width, height)| ServerMessage::Canvas { width, height }),
        (any::<u32>(), any::<u64>()).prop_map(|(cooldown, remaining)| ServerMessage::Welcome(
            Welcome {
                user_id: "17".into(),
                cooldown,
                cooldown_remaining: remaining,
                canvas_info: CanvasInfo {
                    width: 2000,
                    height: 2000,
                    tile_size: 64,
                    color_count: 16,
                    palette: vec!["#ffffff".into(); 16],
                    cooldown_seconds: cooldown,
                    max_subscribed_tiles: 256,
                },
            }
        )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds_on_any_input() {
        let all = [
            Mutation::FlipBit(usize::MAX, 7),
            Mutation::Set(usize::MAX, 1),
            Mutation::Insert(usize::MAX, vec![1, 2]),
            Mutation::Delete(usize::MAX, 15),
            Mutation::Duplicate(usize::MAX, 31),
            Mutation::Truncate(usize::MAX),
            Mutation::ExtremeU32(usize::MAX, u32::MAX),
        ];
        for len in 0..6 {
            for m in &all {
                let mut bytes: Vec<u8> = (0..len).collect();
                apply(&mut bytes, m);
                assert!(bytes.len() <= usize::from(len) * 2 + 2, "{m:?} on {len}");
            }
        }
        let mut bytes = vec![0, 1, 2, 3, 4, 5];
        apply(&mut bytes, &Mutation::ExtremeU32(4, u32::MAX));
        assert_eq!(bytes, [0, 1, 2, 3, 0xff, 0xff], "writes what fits");
    }
}
