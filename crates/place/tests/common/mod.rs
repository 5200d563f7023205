//! Helpers for the integration tests: a real `place serve` on an ephemeral port, and real
//! WebSocket clients speaking either protocol.

#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use place::config::{ServeConfig, ValidConfig};
use place_protocol::{binary, json, ClientMessage, ServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A `place serve` running in this process.
pub struct Server {
    pub base: String,
    pub ws: String,
    pub edge: std::sync::Arc<place_edge::Edge>,
    pub shard: place_shard::ShardHandle,
    pub store: place_store::EmbeddedStore,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn config(dir: &Path, width: u32, height: u32, cooldown_secs: u64) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        width,
        height,
        cooldown_secs,
        guest_rate_per_minute: 0,
        // Every test guest pays a proof of work, cheaply.
        guest_pow_bits: 8,
        batch_window_ms: 5,
        ..ServeConfig::default()
    }
}

impl Server {
    pub async fn start(config: ServeConfig) -> Server {
        let valid: ValidConfig = config.validate().expect("valid test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let services = place::serve::start(&valid).await.expect("start");
        let (edge, shard) = (services.edge.clone(), services.shard.clone());
        let store = services.store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(services.serve(listener, async {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://{addr}"),
            ws: format!("ws://{addr}/ws"),
            edge,
            shard,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops gracefully and waits until the store is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("clean stop");
        }
    }

    /// Stops, whether or not the stop is clean (the store may have been taken away).
    pub async fn stop_anyway(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub async fn guest(&self) -> String {
        guest(&self.base).await
    }

    pub async fn client(&self, cookie: &str, json: bool) -> Client {
        let mut c = Client::connect(&self.ws, Some(cookie), json).await;
        match c.recv().await {
            ServerMessage::Welcome(_) => c,
            other => panic!("expected welcome, got {other:?}"),
        }
    }
}

/// Makes a guest session and returns its cookie (`place_session=...`).
pub async fn guest(base: &str) -> String {
    guest_with(&reqwest::Client::new(), base).await
}

/// A solved proof-of-work challenge of `base` for a new guest (`{}` when it asks none).
pub async fn guest_proof(http: &reqwest::Client, base: &str) -> serde_json::Value {
    let challenge: serde_json::Value = http
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

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub json: bool,
    pub closed: Option<CloseFrame>,
    pub error: Option<String>,
}

impl Client {
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
        Client {
            ws,
            json,
            closed: None,
            error: None,
        }
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

    pub async fn send(&mut self, message: &ClientMessage) {
        let frame = if self.json {
            Message::Text(json::encode_client(message).into())
        } else {
            Message::Binary(binary::encode_client(message))
        };
        self.ws.send(frame).await.expect("send");
    }

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

    /// Asserts nothing but `allowed` messages arrive for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(m) = self.try_recv(quiet).await {
            panic!("expected no message, got {m:?}");
        }
    }
}
pub mod growth;
pub mod history;
pub mod moderation;
pub mod observability;
pub mod proxy;
pub mod regions;
pub mod spikes;
pub mod templates;
pub mod timelapse;

/// An answer of the account API: status, headers and JSON body (`Null` when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
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

/// POSTs to `/api/v1/auth/{what}` with an optional cookie and extra headers.
pub async fn auth_post(
    base: &str,
    what: &str,
    body: Option<serde_json::Value>,
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
    answer(request.send().await.expect("auth request")).await
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
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("me");
    answer(response).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}
