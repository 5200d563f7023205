//! The network side of a player: the HTTP calls (canvas info, guest session) and the WebSocket,
//! opened from a chosen loopback source address; and the file-descriptor limit.
//!
//! One source address can hold about 28,000 connections to one server port (Linux's ephemeral
//! port range). Every address in 127.0.0.0/8 is local, so binding each socket to one of
//! 127.0.0.1 ..= 127.0.0.250 before connecting lets one machine open millions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use place_protocol::CanvasInfo;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::aligned::Aligned;
use crate::target::Target;

/// A player's WebSocket, over a stream cut at frame ends (see [`Aligned`]).
pub type Socket = WebSocketStream<Aligned>;

/// How long opening a WebSocket may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Loopback source addresses used: 127.0.0.1 to 127.0.0.`SOURCE_ADDRESSES`.
pub const SOURCE_ADDRESSES: u32 = 250;
/// Read buffer per socket: small, so fifty thousand players fit in memory (tungstenite
/// allocates 128 KiB by default), and because tungstenite zeroes it at every read: a delivery of
/// a pixel batch is tens to hundreds of bytes; a tile snapshot takes a few reads.
const READ_BUFFER: usize = 2 * 1024;
const GUEST_ATTEMPTS: u32 = 5;

/// The HTTP client every player shares.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .context("building the HTTP client")
}

/// `GET /api/v1/canvas/info`.
pub async fn canvas_info(client: &reqwest::Client, target: &Target) -> anyhow::Result<CanvasInfo> {
    let url = format!("{}/api/v1/canvas/info", target.http_base);
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}: is the server running?"))?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    response
        .json()
        .await
        .with_context(|| format!("GET {url}: not canvas info"))
}

/// A solved challenge for a new guest, or `None` when the server asks none (or is older than
/// challenges): then the request has no body at all (an empty JSON object is not a proof, and
/// the server refuses it as malformed).
async fn guest_proof(
    client: &reqwest::Client,
    target: &Target,
) -> anyhow::Result<Option<serde_json::Value>> {
    let url = format!("{}/api/v1/auth/challenge", target.http_base);
    let response = client.get(&url).send().await.context("challenge")?;
    if !response.status().is_success() {
        return Ok(None);
    }
    let challenge: serde_json::Value = response.json().await.context("challenge")?;
    let text = challenge["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bits = challenge["difficulty"].as_u64().unwrap_or(0).min(32) as u8;
    if bits == 0 {
        return Ok(None);
    }
    let nonce = tokio::task::spawn_blocking({
        let text = text.clone();
        move || place_protocol::pow::solve(&text, bits)
    })
    .await
    .context("proof of work")?;
    Ok(Some(serde_json::json!({"challenge": text, "nonce": nonce})))
}

/// `POST /api/v1/auth/guest`: a new guest session, as the `place_session=...` cookie pair.
/// Waits out `429` answers a few times (the server limits guests per address unless started
/// with `--guest-rate-per-minute 0`).
/// When the server asks a proof of work (`GET /api/v1/auth/challenge`), it is solved first (a
/// few milliseconds at the default 16 bits; servers for load tests run with
/// `--guest-pow-bits 0`).
pub async fn guest(client: &reqwest::Client, target: &Target) -> anyhow::Result<String> {
    let url = format!("{}/api/v1/auth/guest", target.http_base);
    for attempt in 1..=GUEST_ATTEMPTS {
        let mut request = client.post(&url);
        if let Some(proof) = guest_proof(client, target).await? {
            request = request.json(&proof);
        }
        let response = request.send().await.context("guest session")?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS && attempt < GUEST_ATTEMPTS {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .min(10);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        if !status.is_success() {
            bail!("guest session: {status} (start the server with --guest-rate-per-minute 0 for load tests)");
        }
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| {
                pair.starts_with("place_session=") || pair.starts_with("__Host-place_session=")
            })
            .context("guest session: no place_session cookie")?;
        return Ok(cookie.to_string());
    }
    bail!("guest session: still rate limited after {GUEST_ATTEMPTS} attempts")
}

/// The source address of player `index` towards `server`: spread over 127.0.0.0/8 when the
/// server is on IPv4 loopback and `spread` is on, else whatever the OS picks.
pub fn source_address(index: usize, server: SocketAddr, spread: bool) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(ip) if spread && ip.is_loopback() => {
            let last = 1 + (index as u32 % SOURCE_ADDRESSES);
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last as u8)))
        }
        _ => None,
    }
}

/// Why a WebSocket could not be opened, in a few words (counted by kind in the report).
#[derive(Debug)]
pub struct ConnectError(pub String);

/// Opens a WebSocket to `server` with the session `cookie`, from `source` when given.
pub async fn connect(
    server: SocketAddr,
    target: &Target,
    cookie: &str,
    source: Option<IpAddr>,
) -> Result<Socket, ConnectError> {
    let opening = async {
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(io_kind)?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0)).map_err(io_kind)?;
        }
        let stream = socket.connect(server).await.map_err(io_kind)?;
        stream.set_nodelay(true).map_err(io_kind)?;
        let mut request = target
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError(format!("bad request: {e}")))?;
        let cookie = HeaderValue::from_str(cookie)
            .map_err(|_| ConnectError("cookie is not a header value".into()))?;
        request.headers_mut().insert("cookie", cookie);
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let (socket, _) = tokio_tungstenite::client_async_with_config(
            request,
            Aligned::new(stream),
            Some(config),
        )
        .await
        .map_err(|e| ConnectError(ws_kind(&e)))?;
        Ok(socket)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, opening)
        .await
        .unwrap_or_else(|_| Err(ConnectError("timed out".into())))
}

fn io_kind(error: std::io::Error) -> ConnectError {
    ConnectError(match error.raw_os_error() {
        Some(24) => "too many open files (EMFILE): the file-descriptor limit is reached".into(),
        Some(99) => "no free local port (EADDRNOTAVAIL)".into(),
        Some(111) => "connection refused".into(),
        Some(104) => "connection reset".into(),
        Some(110) => "connect timed out".into(),
        _ => format!("{:?}", error.kind()),
    })
}

fn ws_kind(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Http(response) => format!("HTTP {}", response.status()),
        Error::Io(e) => io_kind(std::io::Error::new(e.kind(), e.to_string())).0,
        other => format!("handshake: {other}"),
    }
}

/// The file-descriptor limit after trying to raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// What the run needs.
    pub wanted: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

impl FdLimit {
    /// A sentence for the operator when the limit is below what the run needs.
    pub fn shortfall(&self) -> Option<String> {
        (self.soft < self.wanted).then(|| {
            format!(
                "the operating system allows this process {} open files (hard limit {}) but \
                 the run needs about {}: at most ~{} players can connect. Raise the hard limit \
                 (`ulimit -Hn`, /etc/security/limits.conf, or run as root) or use fewer --clients",
                self.soft,
                self.hard,
                self.wanted,
                self.soft.saturating_sub(FD_RESERVE)
            )
        })
    }
}

/// Descriptors kept for things other than player sockets.
pub const FD_RESERVE: u64 = 256;

/// Raises the soft file-descriptor limit to `wanted`, and the hard one too when allowed (root).
pub fn raise_fd_limit(wanted: u64) -> FdLimit {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((0, 0));
    if soft < wanted {
        // Raising the hard limit needs privileges; fall back to the hard limit.
        if Resource::NOFILE.set(wanted, wanted.max(hard)).is_err() {
            let _ = Resource::NOFILE.set(hard.min(wanted).max(soft), hard);
        }
    }
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((soft, hard));
    FdLimit { wanted, soft, hard }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_spread_over_loopback_only() {
        let local: SocketAddr = "127.0.0.1:3000".parse().expect("addr");
        let remote: SocketAddr = "10.0.0.1:3000".parse().expect("addr");
        assert_eq!(
            source_address(0, local, true),
            Some("127.0.0.1".parse().expect("ip"))
        );
        assert_eq!(
            source_address(249, local, true),
            Some("127.0.0.250".parse().expect("ip"))
        );
        assert_eq!(
            source_address(250, local, true),
            Some("127.0.0.1".parse().expect("ip"))
        );
        assert_eq!(source_address(5, local, false), None);
        assert_eq!(source_address(5, remote, true), None);
    }

    #[test]
    fn a_short_limit_is_explained() {
        let ok = FdLimit {
            wanted: 1000,
            soft: 2000,
            hard: 2000,
        };
        assert_eq!(ok.shortfall(), None);
        let short = FdLimit {
            wanted: 60_000,
            soft: 20_000,
            hard: 20_000,
        };
        let text = short.shortfall().expect("short");
        assert!(text.contains("20000") && text.contains("60000"), "{text}");
    }
}
