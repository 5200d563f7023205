//! The accept loop: every TCP connection bounded in number and in time before any request is
//! read.
//!
//! - **In number.** A [`ConnectionGate`] admits a connection only while the process holds fewer
//!   than [`Limits::max_connections`] (kept below the file-descriptor limit) and its client's
//!   network fewer than [`Limits::max_connections_per_address`]. A refused connection gets a
//!   one-line HTTP 503 (server full) or 429 (this address has too many) written straight to its
//!   fresh socket and is closed: the accept loop never stalls and never runs out of descriptors
//!   for everyone else. The admission ticket ([`ConnectionPermit`]) rides along into a WebSocket
//!   upgrade, so a socket counts until it is really closed.
//! - **In time.** HTTP/1.1 is served by hyper with a timer: a request's head must arrive within
//!   [`Limits::header_read_timeout`], which also ends a silent new connection and an idle
//!   keep-alive one; a request body must arrive within [`Limits::request_body_timeout`]. A
//!   WebSocket is bounded by its pings and write deadlines ([`crate::connection`]).
//!
//! Behind a proxy (`trust_proxy`) every TCP peer is the proxy, so the per-address connection cap
//! is left to the proxy and the per-address WebSocket cap counts the forwarded address instead.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::address::AddressPolicy;

/// File descriptors kept free for the store, the shards' links and logs when the connection cap
/// is derived from the process's limit.
const FD_RESERVE: u64 = 512;

/// The kernel send buffer of every connection (Linux doubles it for its own bookkeeping):
/// enough for a viewport's catch-up within a few round trips, little for a client that does not
/// read.
pub const SEND_BUFFER: usize = 256 * 1024;

/// How connections, requests and sockets are bounded. Every field is a setting of `place serve`
/// and `place edge` (README, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open TCP connections (HTTP and WebSocket) in the process; lowered at start to the file
    /// limit less `FD_RESERVE`.
    pub max_connections: usize,
    /// Open TCP connections from one network (see [`AddressPolicy`]); ignored behind a trusted
    /// proxy, whose own limits apply.
    pub max_connections_per_address: u32,
    /// Open WebSockets of one session.
    pub max_websockets_per_session: u32,
    /// Open WebSockets of one client network (the forwarded address behind a trusted proxy).
    pub max_websockets_per_address: u32,
    /// Time for a request's head to arrive; also how long an idle keep-alive connection lives.
    pub header_read_timeout: Duration,
    /// Time for a request's body to arrive.
    pub request_body_timeout: Duration,
    /// A WebSocket is pinged this often; one not heard from (no frame, no pong) for twice this
    /// and a second more is closed (4002).
    pub ping_interval: Duration,
    /// Placements one client network may make per minute, whatever its number of users
    /// (0: no limit).
    pub placements_per_address_per_minute: u32,
    /// How addresses are grouped into networks.
    pub addresses: AddressPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_connections_per_address: 256,
            max_websockets_per_session: 8,
            max_websockets_per_address: 200,
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            placements_per_address_per_minute: 600,
            addresses: AddressPolicy::default(),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The process holds its maximum of connections.
    Full,
    /// The client's network holds its maximum.
    TooManyFromAddress,
}

impl Refusal {
    /// The HTTP answer written to a refused socket.
    fn response(self) -> Vec<u8> {
        let (status, code, message) = match self {
            Refusal::Full => (
                "503 Service Unavailable",
                "UNAVAILABLE",
                "the server is full: try again soon",
            ),
            Refusal::TooManyFromAddress => (
                "429 Too Many Requests",
                "RATE_LIMITED",
                "too many connections from your address",
            ),
        };
        let body = format!("{{\"error\":{{\"code\":\"{code}\",\"message\":\"{message}\"}}}}\n");
        format!(
            "HTTP/1.1 {status}\r\nRetry-After: 5\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// The label of the refusal counter.
    fn label(self) -> &'static str {
        match self {
            Refusal::Full => "server_full",
            Refusal::TooManyFromAddress => "address_connections",
        }
    }
}

/// Counts open connections, in all and per network, and admits new ones under the limits.
#[derive(Debug)]
pub struct ConnectionGate {
    max_total: usize,
    max_per_address: Option<u32>,
    addresses: AddressPolicy,
    total: AtomicUsize,
    per_network: KeyedCounter<IpAddr>,
}

/// One admitted connection; dropping it gives its places back.
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Arc<ConnectionGate>,
    _network: Option<KeyedSlot<IpAddr>>,
}

impl ConnectionGate {
    /// A gate for `limits`; `per_address` false behind a trusted proxy.
    pub fn new(limits: &Limits, per_address: bool) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_address: per_address.then_some(limits.max_connections_per_address),
            addresses: limits.addresses,
            total: AtomicUsize::new(0),
            per_network: KeyedCounter::default(),
        })
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let taken = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_total).then_some(open + 1)
            });
        if taken.is_err() {
            return Err(Refusal::Full);
        }
        let network = match self.max_per_address {
            Some(max) => {
                let slot = self
                    .per_network
                    .try_acquire(self.addresses.network(ip), max);
                if slot.is_none() {
                    self.total.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refusal::TooManyFromAddress);
                }
                slot
            }
            None => None,
        };
        crate::telemetry::connection_opened();
        Ok(ConnectionPermit {
            gate: Arc::clone(self),
            _network: network,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::AcqRel);
        crate::telemetry::connection_closed();
    }
}

/// The highest connection cap the process's file limit allows.
pub fn connection_cap(configured: usize) -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let allowed = usize::try_from(soft.saturating_sub(FD_RESERVE).max(64)).unwrap_or(usize::MAX);
    if configured > allowed {
        tracing::warn!(
            configured,
            allowed,
            file_limit = soft,
            "max_connections lowered to fit the file-descriptor limit"
        );
    }
    configured.min(allowed)
}

/// Serves `app` on `listener` until `stop` is cancelled: each admitted connection in a task of
/// its own, with the request's [`ConnectInfo`] and its [`ConnectionPermit`] in its extensions.
/// Returns when the listener is closed; connections still open finish on their own.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    gate: Arc<ConnectionGate>,
    limits: Limits,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or memory, or a connection reset before it was accepted:
                // pause briefly instead of spinning, then go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match gate.admit(peer.ip()) {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    app.clone(),
                    Arc::new(permit),
                    limits,
                    stop.clone(),
                ));
            }
            Err(refusal) => refuse(stream, refusal),
        }
    }
}

/// Serves a small internal router (`/metrics` on its own address) until the process ends, with
/// the default time limits and at most 64 connections.
pub async fn serve_internal(listener: TcpListener, app: Router) {
    let limits = Limits {
        max_connections: 64,
        ..Limits::default()
    };
    let gate = ConnectionGate::new(&limits, false);
    accept_loop(listener, app, gate, limits, CancellationToken::new()).await;
}

/// Writes the refusal to the fresh socket's empty send buffer without waiting, and closes it.
fn refuse(stream: TcpStream, refusal: Refusal) {
    metrics::counter!(crate::telemetry::CONNECTIONS_REFUSED, "why" => refusal.label()).increment(1);
    let _ = stream.try_write(&refusal.response());
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    permit: Arc<ConnectionPermit>,
    limits: Limits,
    stop: CancellationToken,
) {
    // Frames are small and latency is the product: without TCP_NODELAY, Nagle's algorithm holds
    // a frame back while an earlier one awaits the peer's delayed ACK (about 40 ms).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%error, "cannot set TCP_NODELAY");
    }
    // Left to itself the kernel grows a socket's send buffer to megabytes for a client that does
    // not read, and holds them until the socket closes. A fixed buffer bounds that memory per
    // connection and lets a stalled writer notice within seconds.
    if let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER) {
        tracing::warn!(%error, "cannot set SO_SNDBUF");
    }
    let service = tower::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(Arc::clone(&permit));
        app.clone().oneshot(request.map(Body::new))
    });
    let service = TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::trace!(%error, "connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}

/// Open things (WebSockets) per key (a session, a network), each counted while its
/// [`KeyedSlot`] lives.
#[derive(Debug)]
pub struct KeyedCounter<K: Eq + std::hash::Hash + Clone> {
    open: Arc<Mutex<HashMap<K, u32>>>,
}

impl<K: Eq + std::hash::Hash + Clone> Default for KeyedCounter<K> {
    fn default() -> Self {
        Self {
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// One counted thing; dropping it gives its place back.
#[derive(Debug)]
pub struct KeyedSlot<K: Eq + std::hash::Hash + Clone> {
    open: Arc<Mutex<HashMap<K, u32>>>,
    key: K,
}

impl<K: Eq + std::hash::Hash + Clone> KeyedCounter<K> {
    /// A place for `key` if it holds fewer than `max`.
    pub fn try_acquire(&self, key: K, max: u32) -> Option<KeyedSlot<K>> {
        let mut open = self.open.lock();
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(KeyedSlot {
            open: Arc::clone(&self.open),
            key,
        })
    }

    /// Places held by `key`.
    pub fn count(&self, key: &K) -> u32 {
        self.open.lock().get(key).copied().unwrap_or(0)
    }
}

impl<K: Eq + std::hash::Hash + Clone> Drop for KeyedSlot<K> {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: u32) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_address: per_address,
            ..Limits::default()
        }
    }

    #[test]
    fn a_network_is_capped_and_its_places_come_back() {
        let gate = ConnectionGate::new(&limits(100, 2), true);
        let a: IpAddr = "2001:db8::1".parse().expect("address");
        let a_sibling: IpAddr = "2001:db8::2".parse().expect("address");
        let b: IpAddr = "127.0.0.2".parse().expect("address");
        let first = gate.admit(a).expect("first");
        let _second = gate.admit(a_sibling).expect("second");
        assert_eq!(
            gate.admit(a).err(),
            Some(Refusal::TooManyFromAddress),
            "a third from the same /64"
        );
        let _other = gate.admit(b).expect("another network");
        drop(first);
        assert!(gate.admit(a).is_ok(), "a place given back");
    }

    #[test]
    fn the_process_is_capped_whatever_the_address() {
        let gate = ConnectionGate::new(&limits(2, 100), false);
        let permits: Vec<_> = ["127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|a| gate.admit(a.parse().expect("address")).expect("admitted"))
            .collect();
        assert_eq!(
            gate.admit("127.0.0.4".parse().expect("address")).err(),
            Some(Refusal::Full)
        );
        assert_eq!(gate.open(), 2);
        drop(permits);
        assert_eq!(gate.open(), 0);
    }

    #[test]
    fn keyed_slots_are_capped_and_given_back() {
        let counter = KeyedCounter::default();
        let a = counter.try_acquire("a", 2).expect("first");
        let _b = counter.try_acquire("a", 2).expect("second");
        assert!(counter.try_acquire("a", 2).is_none());
        assert!(counter.try_acquire("b", 2).is_some());
        drop(a);
        assert_eq!(counter.count(&"a"), 1);
        assert!(counter.try_acquire("a", 2).is_some());
    }

    #[test]
    fn refusals_are_well_formed_http() {
        for refusal in [Refusal::Full, Refusal::TooManyFromAddress] {
            let response = refusal.response();
            let text = std::str::from_utf8(&response).expect("ascii");
            let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("length")
                .parse()
                .expect("number");
            assert_eq!(body.len(), length, "{refusal:?}");
            serde_json::from_str::<serde_json::Value>(body).expect("JSON body");
        }
    }
}
