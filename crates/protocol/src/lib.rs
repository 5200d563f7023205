//! The client protocol of place: the messages browsers, bots and `loadgen` exchange with an edge,
//! and their two codecs. `docs/PROTOCOL.md` is the byte-exact description; this crate is its
//! reference implementation.
//!
//! # Layout
//! - [`message`]: the message types, shared by both codecs.
//! - [`binary`]: the compact binary codec (one message per WebSocket binary frame).
//! - [`close_code`]: the codes an edge closes a WebSocket with.
//! - [`json`]: the JSON codec (one message per text frame), for scripts and bots.
//! - [`pow`]: the proof of work a new guest pays.
//! - `fuzzing` (tests, or the `fuzzing` feature): hostile-input strategies for every decoder of
//!   network input in place, used by the `fuzz_*` tests here and in other crates.
//!
//! Both decoders treat their input as hostile: they never panic, never allocate more than the
//! frame's size justifies, and answer every malformed frame with a [`DecodeError`] that carries the
//! request id when one could be read.

pub mod binary;
pub mod close_code;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod json;
pub mod message;
pub mod pow;

pub use message::{
    CanvasInfo, ClientMessage, DecodeError, ErrorCode, ErrorMessage, RequestId, ServerMessage,
    TileRequest, Welcome, MAX_MESSAGE_BYTES, MAX_REQUEST_ID_CHARS,
};
