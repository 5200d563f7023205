//! The WebSocket handshake, and the socket under a player's connection.
//!
//! The edge upgrades `/ws` itself rather than through axum's `WebSocketUpgrade`, to keep the
//! `TcpStream`: the socket is shared (`Arc<TcpStream>`, whose non-blocking reads and writes
//! take `&self`) between the connection task, which reads the client's frames through
//! tungstenite, and every sender of the client's frames, which write them straight into the
//! kernel ([`crate::outbox`]). No lock is taken to read, and no task is woken to write.
//!
//! tungstenite still owns the protocol of the reading side: it parses and unmasks the client's
//! frames, enforces the size limits, and answers pings and the close handshake. The control
//! frames it writes go through the client's outbox, in order with everything else.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::error::AppError;
use crate::outbox::Outbound;

/// Hard limit on one WebSocket message; between 64 KiB and this the client gets `BAD_REQUEST`.
pub const MAX_MESSAGE: usize = 1 << 20;
/// The read buffer: players send subscriptions and placements of a few hundred bytes, and the
/// buffer is zeroed up to this size each time the socket is read.
const READ_BUFFER: usize = 512;

/// A valid request to open a WebSocket, not yet answered.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let bad = |what: &str| {
            Err(AppError::BadRequest(format!(
                "not a WebSocket request: {what}"
            )))
        };
        if parts.method != Method::GET {
            return bad("the method must be GET");
        }
        if !header_has(&parts.headers, header::CONNECTION, "upgrade") {
            return bad("Connection must include upgrade");
        }
        if !header_has(&parts.headers, header::UPGRADE, "websocket") {
            return bad("Upgrade must be websocket");
        }
        if !header_has(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return bad("Sec-WebSocket-Version must be 13");
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return bad("Sec-WebSocket-Key is missing");
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return bad("this connection cannot be upgraded");
        };
        Ok(Self { key, on_upgrade })
    }
}

/// Whether one of the comma-separated values of `name` is `value` (any letter case).
fn header_has(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(value))
}

/// The client's side of the socket once upgraded: the TCP stream, and what the client sent
/// after its request that the HTTP server had already read.
pub struct Upgraded {
    /// The socket.
    pub stream: Arc<TcpStream>,
    /// Bytes read past the request (the start of the client's first frames).
    pub read_ahead: Bytes,
}

impl Handshake {
    /// Answers `101 Switching Protocols` and, once the switch is done, runs `serve` with the
    /// socket. A connection that is not a plain TCP stream (it always is here: see
    /// [`crate::server`]) is dropped with an error logged.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let accept =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "WebSocket upgrade failed");
                    return;
                }
            };
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    serve(Upgraded {
                        stream: Arc::new(parts.io.into_inner()),
                        read_ahead: parts.read_buf,
                    })
                    .await
                }
                Err(_) => tracing::error!("a WebSocket over something other than TCP: dropped"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
            ],
            [(header::SEC_WEBSOCKET_ACCEPT, accept)],
        )
            .into_response()
    }
}

/// The reading side of a client's WebSocket: tungstenite over the shared socket.
pub type FrameReader = WebSocketStream<SocketIo>;

/// tungstenite's reader over `upgraded`, whose control frames go out through `outbound`.
pub async fn reader(upgraded: &Upgraded, outbound: Outbound) -> FrameReader {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .read_buffer_size(READ_BUFFER)
        // Only control frames are written through tungstenite: straight on to the outbox.
        .write_buffer_size(0);
    let io = SocketIo {
        stream: Arc::clone(&upgraded.stream),
        outbound,
    };
    WebSocketStream::from_partially_read(
        io,
        upgraded.read_ahead.to_vec(),
        Role::Server,
        Some(config),
    )
    .await
}

/// The shared socket as tungstenite sees it: reads come from the socket, writes (its control
/// frames) go into the client's outbox.
pub struct SocketIo {
    stream: Arc<TcpStream>,
    outbound: Outbound,
}

impl AsyncRead for SocketIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SocketIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.outbound.send_raw(Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The outbox writes as soon as the socket takes it; the connection task waits for the
        // rest when it closes.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_matched_in_any_case_among_comma_separated_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has(&headers, header::CONNECTION, "upgrade"));
        assert!(!header_has(&headers, header::CONNECTION, "close"));
        assert!(!header_has(&headers, header::UPGRADE, "websocket"));
    }
}
