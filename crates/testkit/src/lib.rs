//! What the integration tests of `place-edge` and `place` share, so that each crate's tests drive
//! a real server the same way: a WebSocket [`Client`] speaking either protocol, guests with their
//! proof of work ([`guest`]), players on a socket ([`Player`]), and the HTTP API's JSON answers
//! ([`Answer`], [`call`]). A library, not a `tests/common/` module, so that no test binary
//! carries helpers it does not use.
//!
//! # Layout
//! - [`Client`]: a real WebSocket client, binary or JSON; [`subscribe`] and [`place_message`]
//!   build the messages most tests send.
//! - [`Answer`], [`call`], [`auth_post`], [`credentials`], [`me`]: HTTP requests and answers.
//! - [`guest`], [`guest_with`], [`guest_proof`]: guest sessions, paying the proof of work.
//! - [`Player`]: a guest or an account on a socket, placing pixels.
//! - [`wait_for_job`]: a timelapse render job, until it is done.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use place_protocol::{
    binary, json, ClientMessage, ErrorCode, ErrorMessage, RequestId, ServerMessage, TileRequest,
};
use place_tiles::TileId;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long [`Client::recv`] waits for a message.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket client speaking the binary protocol or, with `json`, the JSON one.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whether it speaks JSON.
    pub json: bool,
    /// The close frame the server sent, once it closed.
    pub closed: Option<CloseFrame>,
    /// The error that ended the socket, if one did.
    pub error: Option<String>,
}

impl Client {
    /// Connects to `ws_url` (`ws://host:port/ws`) with an optional `place_session=...` cookie.
    pub async fn connect(ws_url: &str, cookie: Option<&str>, json: bool) -> Client {
        let url = if json {
            format!("{ws_url}?format=json")
        } else {
            ws_url.to_string()
        };
        let mut request = url.into_client_request().expect("request");
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", HeaderValue::from_str(cookie).expect("cookie"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        Client::from_stream(ws, json)
    }

    /// Wraps a WebSocket opened elsewhere.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, json: bool) -> Client {
        Client {
            ws,
            json,
            closed: None,
            error: None,
        }
    }

    /// Sends a protocol message in the client's protocol.
    pub async fn send(&mut self, message: &ClientMessage) {
        let frame = if self.json {
            Message::Text(json::encode_client(message).into())
        } else {
            Message::Binary(binary::encode_client(message))
        };
        self.ws.send(frame).await.expect("send");
    }

    /// Sends a frame as it is.
    pub async fn send_raw(&mut self, frame: Message) {
        self.ws.send(frame).await.expect("send raw");
    }

    /// The next protocol message; panics on timeout or close.
    pub async fn recv(&mut self) -> ServerMessage {
        self.try_recv(TIMEOUT)
            .await
            .expect("a message before the timeout")
    }

    /// The next protocol message, or `None` on timeout or close (then `closed` says why).
    pub async fn try_recv(&mut self, within: Duration) -> Option<ServerMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Binary(b)) => {
                    return Some(binary::decode_server(&b).expect("valid binary frame"))
                }
                Ok(Message::Text(t)) => {
                    return Some(json::decode_server(t.as_str()).expect("valid json frame"))
                }
                Ok(Message::Close(frame)) => {
                    self.closed = frame;
                    return None;
                }
                Ok(_) => continue,
                Err(e) => {
                    self.error = Some(e.to_string());
                    return None;
                }
            }
        }
    }

    /// Receives until `pick` returns `Some`, skipping other messages.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> T {
        loop {
            let m = self.recv().await;
            if let Some(t) = pick(&m) {
                return t;
            }
        }
    }

    /// Waits for the snapshot of a freshly subscribed tile; its seq.
    pub async fn snapshot_seq(&mut self, tile: TileId) -> u64 {
        self.recv_until(|m| match m {
            ServerMessage::Tile { tile: t, seq, .. } if *t == tile => Some(*seq),
            _ => None,
        })
        .await
    }

    /// The next message, which must be an error of `code`.
    pub async fn expect_error(&mut self, code: ErrorCode) -> ErrorMessage {
        match self.recv().await {
            ServerMessage::Error(e) if e.code == code => e,
            other => panic!("expected {code}, got {other:?}"),
        }
    }

    /// The next message, which must be a placement's success; when the next placement is
    /// allowed.
    pub async fn expect_success(&mut self) -> u64 {
        match self.recv().await {
            ServerMessage::Success { next_placement, .. } => next_placement,
            other => panic!("expected success, got {other:?}"),
        }
    }

    /// Asserts that no message arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(m) = self.try_recv(quiet).await {
            panic!("expected no message, got {m:?}");
        }
    }
}

/// A subscription to the tiles `(tx, ty)`, with no seq held (each is answered with a snapshot).
pub fn subscribe(tiles: &[(u16, u16)]) -> ClientMessage {
    ClientMessage::Subscribe {
        tiles: tiles
            .iter()
            .map(|&(tx, ty)| TileRequest {
                tile: TileId::new(tx, ty),
                seq: None,
            })
            .collect(),
    }
}

/// A placement of `color` at `(x, y)` with the request id `id`.
pub fn place_message(x: i64, y: i64, color: i64, id: u32) -> ClientMessage {
    ClientMessage::Place {
        x,
        y,
        color,
        request_id: Some(RequestId::Number(id)),
    }
}

/// Makes a guest session and returns its cookie (`place_session=...`).
pub async fn guest(base: &str) -> String {
    guest_with(&reqwest::Client::new(), base).await
}

/// A solved proof-of-work challenge of `base` for a new guest.
pub async fn guest_proof(http: &reqwest::Client, base: &str) -> Value {
    let challenge: Value = http
        .get(format!("{base}/api/v1/auth/challenge"))
        .send()
        .await
        .expect("challenge")
        .json()
        .await
        .expect("challenge JSON");
    let text = challenge["challenge"]
        .as_str()
        .expect("challenge")
        .to_owned();
    let bits = challenge["difficulty"].as_u64().expect("difficulty") as u8;
    let nonce = place_protocol::pow::solve(&text, bits);
    serde_json::json!({"challenge": text, "nonce": nonce})
}

/// Makes a guest session with `http` (which may have its own source address) and returns its
/// cookie (`place_session=...`).
pub async fn guest_with(http: &reqwest::Client, base: &str) -> String {
    let proof = guest_proof(http, base).await;
    let response = http
        .post(format!("{base}/api/v1/auth/guest"))
        .json(&proof)
        .send()
        .await
        .expect("guest request");
    assert!(
        response.status().is_success(),
        "guest: {}",
        response.status()
    );
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .expect("ascii");
    cookie.split(';').next().expect("cookie pair").to_string()
}

/// An answer of the HTTP API: status, headers and JSON body (`Null` when empty).
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON; `Null` when empty.
    pub body: Value,
}

impl Answer {
    /// Reads a response whose body is JSON or empty.
    pub async fn of(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The `place_session=...` pair of the answer's `Set-Cookie`, if any.
    pub fn cookie(&self) -> Option<String> {
        self.set_cookie()
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    }

    /// The whole `Set-Cookie` header.
    pub fn set_cookie(&self) -> Option<&str> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok())
    }
}

/// A request to `base` + `path` with a cookie and a JSON body.
pub async fn call(
    base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Answer::of(request.send().await.expect("request")).await
}

/// POSTs to `/api/v1/auth/{what}` with an optional cookie and extra headers.
pub async fn auth_post(
    base: &str,
    what: &str,
    body: Option<Value>,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = reqwest::Client::new().post(format!("{base}/api/v1/auth/{what}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::of(request.send().await.expect("auth request")).await
}

/// `POST /api/v1/auth/register` or `login` with these credentials.
pub async fn credentials(
    base: &str,
    what: &str,
    username: &str,
    password: &str,
    cookie: Option<&str>,
) -> Answer {
    let body = serde_json::json!({"username": username, "password": password});
    auth_post(base, what, Some(body), cookie, &[]).await
}

/// `GET /api/v1/auth/me`.
pub async fn me(base: &str, cookie: &str) -> Answer {
    call(base, "GET", "/api/v1/auth/me", Some(cookie), None).await
}

/// A player on a socket.
pub struct Player {
    /// Its user id.
    pub id: String,
    /// Its session cookie.
    pub cookie: String,
    /// Its socket (binary protocol).
    pub socket: Client,
}

impl Player {
    /// A new guest on a socket.
    pub async fn join(base: &str) -> Player {
        let cookie = guest(base).await;
        Self::connect(base, cookie).await
    }

    /// A newly registered account on a socket, named `prefix` and a random suffix (the cluster
    /// tests share one database, so names must not repeat across runs).
    pub async fn account(base: &str, prefix: &str) -> Player {
        let username = format!("{prefix}_{:08x}", rand::random::<u32>());
        let registered =
            credentials(base, "register", &username, "a long enough password", None).await;
        assert_eq!(registered.status, 201, "{}", registered.body);
        Self::connect(base, registered.cookie().expect("session cookie")).await
    }

    async fn connect(base: &str, cookie: String) -> Player {
        let me = me(base, &cookie).await;
        let ws = base.replace("http://", "ws://") + "/ws";
        let mut socket = Client::connect(&ws, Some(&cookie), false).await;
        assert!(matches!(socket.recv().await, ServerMessage::Welcome(_)));
        Player {
            id: me.body["userId"].as_str().expect("userId").to_string(),
            cookie,
            socket,
        }
    }

    /// Places a pixel; the answer.
    pub async fn place(&mut self, x: i64, y: i64, color: i64) -> ServerMessage {
        self.socket
            .send(&ClientMessage::Place {
                x,
                y,
                color,
                request_id: None,
            })
            .await;
        self.socket
            .recv_until(|m| match m {
                ServerMessage::Success { .. } | ServerMessage::Error(_) => Some(m.clone()),
                _ => None,
            })
            .await
    }

    /// Places every pixel, asserting each is accepted.
    pub async fn paint(&mut self, pixels: &[(i64, i64, i64)]) {
        for &(x, y, color) in pixels {
            let answer = self.place(x, y, color).await;
            assert!(
                matches!(answer, ServerMessage::Success { .. }),
                "placing ({x},{y}): {answer:?}"
            );
        }
    }
}

/// Polls a timelapse job until it is done (failing on `failed` or after `within`); its last
/// state.
pub async fn wait_for_job(base: &str, id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = call(
            base,
            "GET",
            &format!("/api/v1/timelapse/jobs/{id}"),
            None,
            None,
        )
        .await;
        assert_eq!(job.status, 200, "{}", job.body);
        match job.body["status"].as_str().expect("status") {
            "done" => return job.body,
            "failed" => panic!("the job failed: {}", job.body),
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job not done: {}",
            job.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
