//! The JSON codec: one message per WebSocket text frame, for scripts and bots.
//! See `docs/PROTOCOL.md`, "Messages (JSON)", for the shapes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use place_tiles::{PixelChange, TileId, TILE_AREA, TILE_SIZE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::message::{
    ClientMessage, DecodeError, ErrorCode, ErrorMessage, RequestId, ServerMessage, TileRequest,
    Welcome, MAX_MESSAGE_BYTES, MAX_REQUEST_ID_CHARS,
};

/// Decodes a client text frame.
pub fn decode_client(frame: &str) -> Result<ClientMessage, DecodeError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::new(format!(
            "message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
            frame.len()
        )));
    }
    let value: Value =
        serde_json::from_str(frame).map_err(|e| DecodeError::new(format!("invalid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| DecodeError::new("a message must be a JSON object"))?;
    let request_id = read_request_id(object)?;
    let fail = |reason: String| DecodeError {
        reason,
        request_id: request_id.clone(),
    };
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("missing \"type\"".into()))?;
    match kind {
        "subscribe" => Ok(ClientMessage::Subscribe {
            tiles: read_tiles(object, true)
                .map_err(fail)?
                .into_iter()
                .map(|(tile, seq)| TileRequest { tile, seq })
                .collect(),
        }),
        "unsubscribe" => Ok(ClientMessage::Unsubscribe {
            tiles: read_tiles(object, false)
                .map_err(fail)?
                .into_iter()
                .map(|(t, _)| t)
                .collect(),
        }),
        "place" => {
            let int = |name: &str| {
                object
                    .get(name)
                    .and_then(Value::as_i64)
                    .ok_or_else(|| fail(format!("place: \"{name}\" must be an integer")))
            };
            Ok(ClientMessage::Place {
                x: int("x")?,
                y: int("y")?,
                color: int("color")?,
                request_id,
            })
        }
        "ping" => Ok(ClientMessage::Ping),
        other => Err(fail(format!("unknown message type {:?}", truncate(other)))),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

fn read_request_id(object: &Map<String, Value>) -> Result<Option<RequestId>, DecodeError> {
    match object.get("requestId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_REQUEST_ID_CHARS => {
            Ok(Some(RequestId::Text(s.clone())))
        }
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) => {
            Ok(n.as_u64().map(|n| RequestId::Number(n as u32)))
        }
        Some(_) => Err(DecodeError::new(format!(
            "\"requestId\" must be a string of at most {MAX_REQUEST_ID_CHARS} characters or a u32"
        ))),
    }
}

fn read_tiles(
    object: &Map<String, Value>,
    with_seq: bool,
) -> Result<Vec<(TileId, Option<u64>)>, String> {
    let list = object
        .get("tiles")
        .and_then(Value::as_array)
        .ok_or("\"tiles\" must be an array of [tx,ty] pairs")?;
    list.iter()
        .map(|entry| {
            let parts = entry
                .as_array()
                .ok_or("each tile must be an array [tx,ty]")?;
            let coord = |i: usize| {
                parts
                    .get(i)
                    .and_then(Value::as_u64)
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| format!("tile {entry}: coordinates must be integers 0..65535"))
            };
            let tile = TileId::new(coord(0)?, coord(1)?);
            let seq =
                match (parts.len(), with_seq) {
                    (2, _) => None,
                    (3, true) => Some(parts[2].as_u64().ok_or_else(|| {
                        format!("tile {entry}: seq must be a non-negative integer")
                    })?),
                    _ => {
                        return Err(format!(
                            "tile {entry}: expected [tx,ty]{}",
                            if with_seq { " or [tx,ty,seq]" } else { "" }
                        ))
                    }
                };
            Ok((tile, seq))
        })
        .collect()
}

/// Encodes a client message (for `loadgen` and tests).
pub fn encode_client(message: &ClientMessage) -> String {
    let value = match message {
        ClientMessage::Subscribe { tiles } => json!({
            "type": "subscribe",
            "tiles": tiles.iter().map(|t| match t.seq {
                Some(seq) => json!([t.tile.tx, t.tile.ty, seq]),
                None => json!([t.tile.tx, t.tile.ty]),
            }).collect::<Vec<_>>(),
        }),
        ClientMessage::Unsubscribe { tiles } => json!({
            "type": "unsubscribe",
            "tiles": tiles.iter().map(|t| json!([t.tx, t.ty])).collect::<Vec<_>>(),
        }),
        ClientMessage::Place {
            x,
            y,
            color,
            request_id,
        } => {
            let mut v = json!({"type": "place", "x": x, "y": y, "color": color});
            if let Some(id) = request_id {
                v["requestId"] = json!(id);
            }
            v
        }
        ClientMessage::Ping => json!({"type": "ping"}),
    };
    value.to_string()
}

/// The server messages as JSON objects; serde writes them, so strings are always escaped right.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Wire {
    Welcome(Welcome),
    Tile {
        tx: u16,
        ty: u16,
        seq: u64,
        data: String,
    },
    Pixels {
        tx: u16,
        ty: u16,
        events: Vec<WireEvent>,
    },
    #[serde(rename_all = "camelCase")]
    Success {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        request_id: Option<RequestId>,
        next_placement: u64,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        request_id: Option<RequestId>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cooldown_remaining: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after: Option<u64>,
    },
    Pong,
    #[serde(rename_all = "camelCase")]
    Cooldown {
        cooldown: u32,
        cooldown_remaining: u64,
    },
    Canvas {
        width: u32,
        height: u32,
    },
}

#[derive(Serialize, Deserialize)]
struct WireEvent {
    x: u32,
    y: u32,
    color: u8,
    seq: u64,
}

pub(crate) fn welcome_value(w: &Welcome) -> Value {
    serde_json::to_value(Wire::Welcome(w.clone())).unwrap_or(Value::Null)
}

/// Encodes a server message as a JSON text frame.
pub fn encode_server(message: &ServerMessage) -> String {
    let wire = match message {
        ServerMessage::Welcome(w) => Wire::Welcome(w.clone()),
        ServerMessage::Tile { tile, seq, pixels } => Wire::Tile {
            tx: tile.tx,
            ty: tile.ty,
            seq: *seq,
            data: BASE64.encode(pixels.as_slice()),
        },
        ServerMessage::Pixels {
            tile,
            first_seq,
            changes,
        } => {
            let (x0, y0) = tile.origin();
            Wire::Pixels {
                tx: tile.tx,
                ty: tile.ty,
                events: changes
                    .iter()
                    .zip(*first_seq..)
                    .map(|(c, seq)| WireEvent {
                        x: x0 + u32::from(c.lx),
                        y: y0 + u32::from(c.ly),
                        color: c.color,
                        seq,
                    })
                    .collect(),
            }
        }
        ServerMessage::Success {
            request_id,
            next_placement,
        } => Wire::Success {
            request_id: request_id.clone(),
            next_placement: *next_placement,
        },
        ServerMessage::Error(e) => Wire::Error {
            code: e.code,
            message: e.message.clone(),
            request_id: e.request_id.clone(),
            cooldown_remaining: e.cooldown_remaining,
            retry_after: e.retry_after,
        },
        ServerMessage::Pong => Wire::Pong,
        ServerMessage::Cooldown {
            cooldown,
            cooldown_remaining,
        } => Wire::Cooldown {
            cooldown: *cooldown,
            cooldown_remaining: *cooldown_remaining,
        },
        ServerMessage::Canvas { width, height } => Wire::Canvas {
            width: *width,
            height: *height,
        },
    };
    // Serializing these plain structs to a string cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Decodes a server text frame (for `loadgen` and tests).
pub fn decode_server(frame: &str) -> Result<ServerMessage, DecodeError> {
    let wire: Wire = serde_json::from_str(frame)
        .map_err(|e| DecodeError::new(format!("invalid message: {e}")))?;
    Ok(match wire {
        Wire::Welcome(w) => ServerMessage::Welcome(w),
        Wire::Tile { tx, ty, seq, data } => {
            let bytes = BASE64
                .decode(data)
                .map_err(|e| DecodeError::new(format!("tile: {e}")))?;
            let pixels: Box<[u8; TILE_AREA]> = bytes
                .into_boxed_slice()
                .try_into()
                .map_err(|_| DecodeError::new("tile: data is not 4096 bytes"))?;
            ServerMessage::Tile {
                tile: TileId::new(tx, ty),
                seq,
                pixels,
            }
        }
        Wire::Pixels { tx, ty, events } => {
            let tile = TileId::new(tx, ty);
            let (x0, y0) = tile.origin();
            let first_seq = events.first().map_or(0, |e| e.seq);
            let mut changes = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                let inside =
                    e.x.checked_sub(x0)
                        .zip(e.y.checked_sub(y0))
                        .filter(|(lx, ly)| *lx < TILE_SIZE && *ly < TILE_SIZE);
                let (lx, ly) =
                    inside.ok_or_else(|| DecodeError::new("pixels: event outside its tile"))?;
                if e.seq != first_seq + i as u64 {
                    return Err(DecodeError::new("pixels: seqs are not consecutive"));
                }
                changes.push(PixelChange {
                    lx: lx as u8,
                    ly: ly as u8,
                    color: e.color,
                });
            }
            ServerMessage::Pixels {
                tile,
                first_seq,
                changes,
            }
        }
        Wire::Success {
            request_id,
            next_placement,
        } => ServerMessage::Success {
            request_id,
            next_placement,
        },
        Wire::Error {
            code,
            message,
            request_id,
            cooldown_remaining,
            retry_after,
        } => ServerMessage::Error(ErrorMessage {
            code,
            message,
            request_id,
            cooldown_remaining,
            retry_after,
        }),
        Wire::Pong => ServerMessage::Pong,
        Wire::Cooldown {
            cooldown,
            cooldown_remaining,
        } => ServerMessage::Cooldown {
            cooldown,
            cooldown_remaining,
        },
        Wire::Canvas { width, height } => ServerMessage::Canvas { width, height },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_client_shapes_decode() {
        assert_eq!(
            decode_client(r#"{"type":"subscribe","tiles":[[3,4],[3,5,17]]}"#),
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
        assert_eq!(
            decode_client(
                r#"{"type":"place","x":200,"y":310,"color":5,"requestId":"r-1","extra":true}"#
            ),
            Ok(ClientMessage::Place {
                x: 200,
                y: 310,
                color: 5,
                request_id: Some(RequestId::Text("r-1".into()))
            })
        );
        assert_eq!(decode_client(r#"{"type":"ping"}"#), Ok(ClientMessage::Ping));
        assert_eq!(
            decode_client(r#"{"type":"unsubscribe","tiles":[[3,4]]}"#),
            Ok(ClientMessage::Unsubscribe {
                tiles: vec![TileId::new(3, 4)]
            })
        );
    }

    #[test]
    fn out_of_range_values_reach_the_edge_for_the_right_error_code() {
        assert_eq!(
            decode_client(r#"{"type":"place","x":-1,"y":99999,"color":300}"#),
            Ok(ClientMessage::Place {
                x: -1,
                y: 99999,
                color: 300,
                request_id: None
            })
        );
    }

    #[test]
    fn malformed_messages_keep_their_request_id() {
        let err = decode_client(r#"{"type":"place","x":"a","y":1,"color":1,"requestId":"q"}"#)
            .expect_err("bad x");
        assert_eq!(err.request_id, Some(RequestId::Text("q".into())));
        assert!(err.reason.contains("\"x\""));
        assert!(decode_client("[1,2]").is_err());
        assert!(decode_client("{").is_err());
        assert!(decode_client(r#"{"type":"dance"}"#)
            .expect_err("unknown")
            .reason
            .contains("unknown"));
        assert!(decode_client(r#"{"type":"subscribe","tiles":[[1,2,3,4]]}"#).is_err());
        assert!(decode_client(r#"{"type":"unsubscribe","tiles":[[1,2,3]]}"#).is_err());
        assert!(decode_client(r#"{"type":"subscribe","tiles":[[70000,2]]}"#).is_err());
        let long_id = format!(r#"{{"type":"ping","requestId":"{}"}}"#, "x".repeat(65));
        assert!(decode_client(&long_id).is_err());
        let huge = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(decode_client(&huge)
            .expect_err("oversize")
            .reason
            .contains("limit"));
    }

    #[test]
    fn server_shapes_match_the_documentation() {
        let success = encode_server(&ServerMessage::Success {
            request_id: Some(RequestId::Text("r-1".into())),
            next_placement: 1_764_011_234_567,
        });
        assert_eq!(
            success,
            r#"{"type":"success","requestId":"r-1","nextPlacement":1764011234567}"#
        );
        let pixels = encode_server(&ServerMessage::Pixels {
            tile: TileId::new(3, 4),
            first_seq: 18,
            changes: vec![PixelChange {
                lx: 8,
                ly: 54,
                color: 5,
            }],
        });
        assert_eq!(
            pixels,
            r#"{"type":"pixels","tx":3,"ty":4,"events":[{"x":200,"y":310,"color":5,"seq":18}]}"#
        );
        let error = encode_server(&ServerMessage::Error(ErrorMessage {
            code: ErrorCode::RateLimited,
            message: "cooldown".into(),
            request_id: None,
            cooldown_remaining: Some(4200),
            retry_after: None,
        }));
        assert_eq!(
            error,
            r#"{"type":"error","code":"RATE_LIMITED","message":"cooldown","cooldownRemaining":4200}"#
        );
        let retry = encode_server(&ServerMessage::Error(
            ErrorMessage::new(ErrorCode::Unavailable, "shard unreachable")
                .with_retry_after(std::time::Duration::from_millis(1000)),
        ));
        assert_eq!(
            retry,
            r#"{"type":"error","code":"UNAVAILABLE","message":"shard unreachable","retryAfter":1000}"#
        );
        assert_eq!(encode_server(&ServerMessage::Pong), r#"{"type":"pong"}"#);
        let canvas = ServerMessage::Canvas {
            width: 4096,
            height: 2000,
        };
        let text = encode_server(&canvas);
        assert_eq!(text, r#"{"type":"canvas","width":4096,"height":2000}"#);
        assert_eq!(decode_server(&text).expect("valid"), canvas);
    }

    proptest! {
        #[test]
        fn server_messages_round_trip(m in crate::fuzzing::server_message()) {
            // An empty batch has no seq to carry in JSON, so compare what it can carry.
            if let ServerMessage::Pixels { changes, .. } = &m { prop_assume!(!changes.is_empty()); }
            prop_assert_eq!(decode_server(&encode_server(&m)), Ok(m));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = decode_client(&s);
            let _ = decode_server(&s);
        }

        #[test]
        fn binary_compatible_client_messages_round_trip(m in crate::fuzzing::client_message()) {
            prop_assert_eq!(decode_client(&encode_client(&m)), Ok(m));
        }

        /// Arbitrary and mutated client text frames: no panic; what decodes is no larger than the
        /// frame (each tile takes at least `[0,0]`) and round-trips.
        #[test]
        fn fuzz_client_frames(frame in prop_oneof![
            crate::fuzzing::bytes(300),
            crate::fuzzing::mutated(
                crate::fuzzing::client_message().prop_map(|m| encode_client(&m).into_bytes())
            ),
        ]) {
            let frame = String::from_utf8_lossy(&frame);
            if let Ok(m) = decode_client(&frame) {
                let tiles = match &m {
                    ClientMessage::Subscribe { tiles } => tiles.len(),
                    ClientMessage::Unsubscribe { tiles } => tiles.len(),
                    _ => 0,
                };
                prop_assert!(tiles * 5 <= frame.len());
                prop_assert_eq!(decode_client(&encode_client(&m)), Ok(m));
            }
        }

        /// Arbitrary and mutated server text frames: no panic, bounded, round trip.
        #[test]
        fn fuzz_server_frames(frame in prop_oneof![
            crate::fuzzing::bytes(300),
            crate::fuzzing::mutated(
                crate::fuzzing::server_message().prop_map(|m| encode_server(&m).into_bytes())
            ),
        ]) {
            let frame = String::from_utf8_lossy(&frame);
            if let Ok(m) = decode_server(&frame) {
                if let ServerMessage::Pixels { changes, .. } = &m {
                    prop_assert!(changes.len() <= frame.len());
                }
                prop_assert_eq!(decode_server(&encode_server(&m)), Ok(m));
            }
        }

        #[test]
        fn client_messages_round_trip(x in -5i64..70000, y in -5i64..70000, c in 0i64..300, id in "[a-z0-9-]{0,64}") {
            let m = ClientMessage::Place { x, y, color: c, request_id: Some(RequestId::Text(id)) };
            prop_assert_eq!(decode_client(&encode_client(&m)), Ok(m));
        }
    }
}
