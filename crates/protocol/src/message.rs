//! The messages of the protocol, independent of how they are encoded.

use place_tiles::{PixelChange, TileId, TILE_AREA};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest message a client may send; larger ones are refused with `BAD_REQUEST`.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The longest JSON `requestId`.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// The id a client attaches to a placement so it can match the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A number: what the binary protocol carries (`u32`).
    Number(u32),
    /// Any short string (JSON only).
    Text(String),
}

impl RequestId {
    /// The id as the binary protocol carries it: numbers, and strings holding a decimal `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(s) => s.parse().ok(),
        }
    }
}

/// A tile to subscribe to, with the seq the client already holds (after a reconnect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRequest {
    /// The tile.
    pub tile: TileId,
    /// The seq of the copy the client holds, if it holds one.
    pub seq: Option<u64>,
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Start receiving these tiles (a snapshot or a catch-up, then every change).
    Subscribe {
        /// The tiles, in order.
        tiles: Vec<TileRequest>,
    },
    /// Stop receiving these tiles.
    Unsubscribe {
        /// The tiles.
        tiles: Vec<TileId>,
    },
    /// Paint one pixel. Coordinates and colour are as the client sent them (possibly out of
    /// range: the edge answers `INVALID_COORDS` / `INVALID_COLOR`).
    Place {
        /// Column.
        x: i64,
        /// Row.
        y: i64,
        /// Palette index.
        color: i64,
        /// Echoed in the answer.
        request_id: Option<RequestId>,
    },
    /// Asks for a `pong`.
    Ping,
}

/// The canvas parameters a client needs to draw and paint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Tile side (64).
    pub tile_size: u32,
    /// Number of palette colours.
    pub color_count: u32,
    /// The colours as `#rrggbb`.
    pub palette: Vec<String>,
    /// The cooldown between two placements of one user.
    pub cooldown_seconds: u32,
    /// How many tiles one connection may subscribe to.
    pub max_subscribed_tiles: u32,
}

/// The first message on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// The user this connection acts as.
    pub user_id: String,
    /// The cooldown in seconds.
    pub cooldown: u32,
    /// Milliseconds until this user may place again.
    pub cooldown_remaining: u64,
    /// The canvas.
    pub canvas_info: CanvasInfo,
}

/// The error codes a client can receive; `docs/PROTOCOL.md` says when each is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Cooldown not over, or frames too fast.
    RateLimited,
    /// Pixel outside the canvas.
    InvalidCoords,
    /// Colour outside the palette.
    InvalidColor,
    /// No valid session.
    Unauthorized,
    /// The user may not place.
    Banned,
    /// Malformed or oversize message, unknown type, tile outside the canvas.
    BadRequest,
    /// Subscription over the per-connection limit.
    TooManyTiles,
    /// The placement could not be made durable now; retryable.
    Unavailable,
    /// The pixel lies in a locked region: only administrators place there.
    RegionLocked,
    /// The pixel lies in a region for registered players: guests may not place there.
    RegionRegisteredOnly,
}

impl ErrorCode {
    /// Every code, in binary order.
    pub const ALL: [ErrorCode; 10] = [
        Self::RateLimited,
        Self::InvalidCoords,
        Self::InvalidColor,
        Self::Unauthorized,
        Self::Banned,
        Self::BadRequest,
        Self::TooManyTiles,
        Self::Unavailable,
        Self::RegionLocked,
        Self::RegionRegisteredOnly,
    ];

    /// The code's name on the wire (JSON) and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "RATE_LIMITED",
            Self::InvalidCoords => "INVALID_COORDS",
            Self::InvalidColor => "INVALID_COLOR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Banned => "BANNED",
            Self::BadRequest => "BAD_REQUEST",
            Self::TooManyTiles => "TOO_MANY_TILES",
            Self::Unavailable => "UNAVAILABLE",
            Self::RegionLocked => "REGION_LOCKED",
            Self::RegionRegisteredOnly => "REGION_REGISTERED_ONLY",
        }
    }

    /// The code's byte in the binary protocol (1 to 10).
    pub fn to_byte(self) -> u8 {
        Self::ALL
            .iter()
            .position(|c| *c == self)
            .map_or(0, |i| i as u8 + 1)
    }

    /// The code for a binary byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.get(usize::from(b).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// What went wrong.
    pub code: ErrorCode,
    /// A short human-readable explanation.
    pub message: String,
    /// The request id of the message that caused it, if it had one.
    pub request_id: Option<RequestId>,
    /// With `RATE_LIMITED` from the cooldown: milliseconds left.
    pub cooldown_remaining: Option<u64>,
    /// With `UNAVAILABLE` when nothing was placed, or `RATE_LIMITED` from the per-network
    /// budget: the client may send the same placement again after this many milliseconds.
    /// Absent when the placement may have been applied (no answer came in time), which the
    /// client must not send again.
    pub retry_after: Option<u64>,
}

impl ErrorMessage {
    /// An error with no request id and no cooldown.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            request_id: None,
            cooldown_remaining: None,
            retry_after: None,
        }
    }

    /// The same error, answering `request_id`.
    pub fn with_request_id(mut self, request_id: Option<RequestId>) -> Self {
        self.request_id = request_id;
        self
    }

    /// The same error, telling the client it may retry after `retry_after`.
    pub fn with_retry_after(mut self, retry_after: std::time::Duration) -> Self {
        self.retry_after = Some(retry_after.as_millis().min(u128::from(u32::MAX)) as u64);
        self
    }
}

/// A message from the server.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// First message of a connection.
    Welcome(Welcome),
    /// A whole tile.
    Tile {
        /// Which tile.
        tile: TileId,
        /// Its seq.
        seq: u64,
        /// Its pixels, row-major, padded with 0 where the tile is cropped.
        pixels: Box<[u8; TILE_AREA]>,
    },
    /// Consecutive changes of one tile.
    Pixels {
        /// Which tile.
        tile: TileId,
        /// The seq of the first change.
        first_seq: u64,
        /// The changes.
        changes: Vec<PixelChange>,
    },
    /// A placement was applied and is durable.
    Success {
        /// The placement's request id.
        request_id: Option<RequestId>,
        /// Epoch milliseconds from which the next placement is allowed.
        next_placement: u64,
    },
    /// Something was refused.
    Error(ErrorMessage),
    /// Answer to `ping`.
    Pong,
    /// The cooldown changed (an administrator set it): the new cooldown and how long this
    /// connection's user still waits under it.
    Cooldown {
        /// The cooldown in seconds.
        cooldown: u32,
        /// Milliseconds until this user may place again.
        cooldown_remaining: u64,
    },
    /// The canvas grew (an administrator resized it): its new size. Nothing already placed
    /// moved; the new area is empty (colour 0).
    Canvas {
        /// The new width in pixels.
        width: u32,
        /// The new height in pixels.
        height: u32,
    },
}

impl std::fmt::Debug for ServerMessage {
    /// Like the derived form, but a tile's 4096 pixels are summarised.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Welcome(w) => f.debug_tuple("Welcome").field(w).finish(),
            Self::Tile { tile, seq, pixels } => f
                .debug_struct("Tile")
                .field("tile", tile)
                .field("seq", seq)
                .field(
                    "non_zero_pixels",
                    &pixels.iter().filter(|&&p| p != 0).count(),
                )
                .finish(),
            Self::Pixels {
                tile,
                first_seq,
                changes,
            } => f
                .debug_struct("Pixels")
                .field("tile", tile)
                .field("first_seq", first_seq)
                .field("changes", changes)
                .finish(),
            Self::Success {
                request_id,
                next_placement,
            } => f
                .debug_struct("Success")
                .field("request_id", request_id)
                .field("next_placement", next_placement)
                .finish(),
            Self::Error(e) => f.debug_tuple("Error").field(e).finish(),
            Self::Pong => f.write_str("Pong"),
            Self::Cooldown {
                cooldown,
                cooldown_remaining,
            } => f
                .debug_struct("Cooldown")
                .field("cooldown", cooldown)
                .field("cooldown_remaining", cooldown_remaining)
                .finish(),
            Self::Canvas { width, height } => f
                .debug_struct("Canvas")
                .field("width", width)
                .field("height", height)
                .finish(),
        }
    }
}

/// A frame that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// Why, for the client's error message.
    pub reason: String,
    /// The request id, when the frame was a placement whose id could still be read.
    pub request_id: Option<RequestId>,
}

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            request_id: None,
        }
    }

    /// The error answer for this frame: `BAD_REQUEST` with the reason.
    pub fn to_error_message(&self) -> ErrorMessage {
        ErrorMessage::new(ErrorCode::BadRequest, self.reason.clone())
            .with_request_id(self.request_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_bytes() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_byte(code.to_byte()), Some(code));
        }
        assert_eq!(ErrorCode::from_byte(0), None);
        assert_eq!(ErrorCode::from_byte(11), None);
        assert_eq!(ErrorCode::RegionLocked.to_byte(), 9);
        assert_eq!(ErrorCode::RegionRegisteredOnly.to_byte(), 10);
        assert_eq!(ErrorCode::RateLimited.to_byte(), 1);
        assert_eq!(ErrorCode::Unavailable.to_byte(), 8);
    }

    #[test]
    fn request_ids_map_to_binary_when_numeric() {
        assert_eq!(RequestId::Number(7).as_u32(), Some(7));
        assert_eq!(RequestId::Text("42".into()).as_u32(), Some(42));
        assert_eq!(RequestId::Text("r-1".into()).as_u32(), None);
    }
}
