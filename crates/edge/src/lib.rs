//! The edge of place: the HTTP API, the players' WebSockets, sessions, bans, cooldowns and
//! viewport subscriptions.
//!
//! # Layout
//! - [`server`]: the accept loop: connections bounded in number (per process, per network) and
//!   in time (header and body deadlines) before any request is read.
//! - [`address`]: which network a client address counts as, for every per-address limit.
//! - [`http`]: the router ([`http::app`]), the REST handlers and the origin check.
//! - [`connection`]: one WebSocket from welcome to close: decoding, flood control, placements.
//! - [`hub`]: the tiles this edge's clients watch, mirrored, and the fan-out of their changes.
//! - [`shards`]: where the shards are: in this process, or across the cluster over QUIC.
//! - [`auth`]: register, login, logout and the session cookie.
//! - [`challenge`]: the proof of work a new guest pays.
//! - [`admin`]: the administrators' API (bans, cooldown, rollbacks, figures, audit log).
//! - [`history`]: the public history (a pixel's, a user's, everyone's placements) and the
//!   heatmap of recent activity.
//! - [`moderation`]: what those do: bans, the cooldown, rollbacks and resets through the
//!   shards, the audit log.
//! - [`accounts`]: sessions, users, cooldowns and bans: local, or shared in Redis and
//!   PostgreSQL.
//! - [`credentials`]: username and password rules, argon2id hashing off the async workers.
//! - [`login_limit`]: login attempts per IP and per username, in memory or in Redis.
//! - [`cooldown`]: atomic per-user cooldowns (the local kind).
//! - [`live`]: changes every edge applies at once: the cooldown, ended sessions.
//! - [`frame`]: outgoing messages, encoded once per format.
//! - [`telemetry`]: Prometheus metrics (`GET /metrics`).
//! - [`timelapse`]: the timelapse API: snapshots, exact frames at any time, render jobs.
//! - [`templates`]: templates players paint by: made from a PNG, shared by id, with progress.
//! - [`error`]: [`error::AppError`], the one way HTTP handlers fail.
//!
//! The edge talks to its shard through a [`place_shard::ShardHandle`]; in `place serve` that
//! shard runs in the same process.

pub mod accounts;
pub mod address;
pub mod admin;
pub mod alarm;
pub mod auth;
pub mod canvas_size;
pub mod challenge;
pub mod connection;
pub mod cooldown;
pub mod credentials;
pub mod error;
pub mod frame;
pub mod history;
pub mod http;
pub mod hub;
pub mod live;
pub mod login_limit;
pub mod moderation;
pub mod outbox;
pub mod regions;
pub mod ring_admin;
pub mod server;
pub mod session;
pub mod shards;
pub mod sockets;
pub mod telemetry;
pub mod templates;
pub mod timelapse;
pub mod websocket;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use place_protocol::CanvasInfo;
use place_tiles::clock::Clock;
use place_tiles::{CanvasGeometry, Palette};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::{Accounts, AccountsError};
use crate::error::AppError;
use crate::hub::TileHub;
use crate::live::{LiveBus, LiveError, LiveEvent, LiveState};
use crate::login_limit::LoginLimiter;
use crate::shards::Shards;

/// The proof of work a new guest pays by default: 65,536 hashes on average, about 0.4 s of the
/// page's JavaScript on this project's 2-core test machine (0.16 M hashes/s in Node), a second
/// or two on a phone, and milliseconds for native code: a speed bump for bots; the per-network
/// limits are the wall.
pub const DEFAULT_GUEST_POW_BITS: u8 = 16;

/// How an edge behaves.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// This edge's name, sent as the `X-Place-Node` header of every response (which edge
    /// behind a load balancer answered).
    pub node_id: String,
    /// The canvas as the edge starts (the stored size); it may grow while the edge runs:
    /// [`Edge::geometry`] is the current one.
    pub geometry: CanvasGeometry,
    /// The colours.
    pub palette: Palette,
    /// Time between two placements of one user (may be changed while running).
    pub cooldown: Duration,
    /// Tiles one connection may subscribe to.
    pub max_tiles_per_client: usize,
    /// Guest sessions one IP address may make per minute; 0 for no limit (load tests).
    pub guest_rate_per_minute: u32,
    /// How long a session lives without use.
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (when served over HTTPS). They are also marked so when a proxy
    /// says the request came over HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Take the client's address from `X-Forwarded-For` (its last entry), for the per-IP
    /// limits: only behind a proxy that sets it, or clients could pick their own address.
    pub trust_proxy: bool,
    /// How connections, requests, sockets and per-address budgets are bounded.
    pub limits: server::Limits,
    /// Leading zero bits of the proof of work a new guest pays (0: none).
    pub guest_pow_bits: u8,
    /// `/metrics` is served on an address of its own ([`http::metrics_app`]), not here.
    pub metrics_apart: bool,
    /// The site's public origin (`https://place.example.org`): the only `Origin` state-changing
    /// requests may carry; without it, the request's own scheme, host and port.
    pub public_origin: Option<String>,
    /// The edge listens on a loopback address: over plain HTTP its cookie may go without
    /// `Secure` (development). Everywhere else the cookie is `Secure` and `__Host-`.
    pub plain_loopback: bool,
    /// The placement-spike alarm's thresholds and actions.
    pub spike: alarm::SpikeConfig,
    /// The time of day the edge decides by (cooldowns, sessions, regions' ends, challenges): the
    /// system's, or one a test moves on.
    pub clock: Clock,
    /// Threads of their own that write large fan-outs into sockets; 0: the edge's own workers
    /// do ([`hub::FanoutWriters`]).
    pub fanout_threads: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            node_id: "serve".into(),
            geometry: CanvasGeometry::default(),
            palette: Palette::default(),
            cooldown: Duration::from_secs(5),
            max_tiles_per_client: 256,
            guest_rate_per_minute: 30,
            session_ttl: Duration::from_secs(24 * 3600),
            secure_cookies: false,
            trust_proxy: false,
            limits: server::Limits::default(),
            guest_pow_bits: DEFAULT_GUEST_POW_BITS,
            metrics_apart: false,
            public_origin: None,
            plain_loopback: true,
            spike: alarm::SpikeConfig::default(),
            clock: Clock::System,
            fanout_threads: 0,
        }
    }
}

/// The shared state of an edge.
pub struct Edge {
    config: EdgeConfig,
    live: LiveState,
    live_bus: LiveBus,
    accounts: Accounts,
    shards: Shards,
    hub: Arc<TileHub>,
    guest_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login_limiter: LoginLimiter,
    next_conn: AtomicU64,
    started: Instant,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    canvas_cache: tokio::sync::Mutex<Option<http::CanvasImage>>,
    history: history::HistoryState,
    /// Open WebSockets per user, for the players-online gauge.
    online: dashmap::DashMap<i64, u32>,
    /// The ring, for the admin API (a cluster's edges only).
    ring_admin: std::sync::OnceLock<ring_admin::RingAdmin>,
    /// The timelapse (snapshots, frames, render jobs).
    timelapse: std::sync::OnceLock<Arc<place_timelapse::service::Timelapse>>,
    /// Proof-of-work challenges for new guests.
    challenges: challenge::Challenges,
    /// Open WebSockets per session, capped at `limits.max_websockets_per_session`.
    sockets_per_session: server::KeyedCounter<String>,
    /// Open WebSockets per client network, capped at `limits.max_websockets_per_address`.
    sockets_per_address: server::KeyedCounter<IpAddr>,
    /// Every open WebSocket, looked after by one keeper (pings, stalls, shutdown, live changes).
    sockets: sockets::Sockets,
    /// The protected regions in force, checked on every placement.
    regions: regions::RegionIndex,
    /// The placement-spike alarm, fed by every placement made here.
    spikes: alarm::SpikeAlarm,
}

impl Edge {
    /// Builds an edge over its accounts and its shards, following `live_bus` for changes made
    /// on other edges.
    pub fn new(
        config: EdgeConfig,
        accounts: Accounts,
        shards: Shards,
        live_bus: LiveBus,
    ) -> Arc<Self> {
        let guest_limiter = NonZeroU32::new(config.guest_rate_per_minute)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        let hub = shards.start_hub(hub::FanoutWriters::start(config.fanout_threads));
        let login_limiter = LoginLimiter::for_accounts(&accounts);
        let config_spike = config.spike.clone();
        let challenges = challenge::Challenges::for_accounts(&accounts, config.guest_pow_bits);
        let edge = Arc::new(Self {
            live: LiveState::new(config.cooldown.as_millis() as u64, config.geometry),
            live_bus,
            config,
            accounts,
            shards,
            hub,
            guest_limiter,
            login_limiter,
            next_conn: AtomicU64::new(1),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            canvas_cache: tokio::sync::Mutex::new(None),
            history: history::HistoryState::default(),
            online: dashmap::DashMap::new(),
            ring_admin: std::sync::OnceLock::new(),
            timelapse: std::sync::OnceLock::new(),
            challenges,
            sockets_per_session: server::KeyedCounter::default(),
            sockets_per_address: server::KeyedCounter::default(),
            sockets: sockets::Sockets::default(),
            regions: regions::RegionIndex::default(),
            spikes: alarm::SpikeAlarm::new(config_spike),
        });
        tokio::spawn(sockets::keep(Arc::downgrade(&edge)));
        telemetry::handle();
        tokio::spawn(prune_cooldowns(Arc::downgrade(&edge)));
        tokio::spawn(regions::keep_current(Arc::downgrade(&edge)));
        tokio::spawn(alarm::watch(Arc::downgrade(&edge)));
        if matches!(edge.accounts, Accounts::Shared(_)) {
            tokio::spawn(sync_admins(Arc::downgrade(&edge)));
        }
        if matches!(edge.live_bus, LiveBus::Redis(_)) {
            tokio::spawn(live::follow(Arc::downgrade(&edge)));
        }
        edge
    }

    /// Lets administrators change the ring through this edge (a cluster's edges).
    pub fn enable_ring_admin(&self, admin: ring_admin::RingAdmin) {
        let _ = self.ring_admin.set(admin);
    }

    /// Serves the timelapse API (both modes, once their store and job dispatch are set up).
    pub fn enable_timelapse(&self, timelapse: Arc<place_timelapse::service::Timelapse>) {
        let _ = self.timelapse.set(timelapse);
    }

    /// The configuration.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// The canvas as it is now (it grows when an administrator resizes it).
    pub fn geometry(&self) -> CanvasGeometry {
        self.live.canvas()
    }

    /// Now as Unix epoch milliseconds, by the edge's clock: what cooldowns, sessions, regions
    /// and challenges are decided by.
    pub fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// The current cooldown in milliseconds.
    pub fn cooldown_ms(&self) -> i64 {
        self.live.cooldown_ms() as i64
    }

    /// Sets the cooldown on every edge (within a second); every connected player is told its
    /// new wait.
    pub async fn set_cooldown(&self, cooldown: Duration) -> Result<(), LiveError> {
        let cooldown_ms = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
        self.live_bus
            .announce(&self.live, LiveEvent::Cooldown { cooldown_ms })
            .await
    }

    /// Closes the open WebSockets of a session that ended, on every edge.
    pub async fn end_session(&self, session: &str) -> Result<(), LiveError> {
        self.live_bus
            .announce(
                &self.live,
                LiveEvent::SessionEnded {
                    session: session.to_owned(),
                },
            )
            .await
    }

    /// The canvas parameters as the protocol sends them.
    pub fn canvas_info(&self) -> CanvasInfo {
        let g = self.geometry();
        CanvasInfo {
            width: g.width(),
            height: g.height(),
            tile_size: place_tiles::TILE_SIZE,
            color_count: self.config.palette.len() as u32,
            palette: self.config.palette.to_hex(),
            cooldown_seconds: (self.cooldown_ms() / 1000) as u32,
            max_subscribed_tiles: self.config.max_tiles_per_client as u32,
        }
    }

    /// Bans or unbans a user; takes effect on the user's next placement, on every socket.
    pub async fn set_banned(&self, user_id: i64, banned: bool) -> Result<(), AccountsError> {
        self.accounts.set_banned(user_id, banned).await
    }

    /// Ends a session at once (logout, or a new session replacing it): deleted from the
    /// embedded store or Redis, so no edge accepts its cookie any more, then its open WebSockets
    /// are closed on every edge ([`Edge::end_session`]).
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), AccountsError> {
        self.accounts.revoke_session(session_id).await?;
        Ok(self.end_session(session_id).await?)
    }

    /// Open connections: this edge's, plus, in the cluster, what the other edges reported
    /// within the last 15 s.
    pub async fn players_online(&self) -> u64 {
        let here = self.tasks.len() as u64;
        match &self.live_bus {
            LiveBus::Local => here,
            LiveBus::Redis(bus) => match bus.online_elsewhere(&self.config.node_id).await {
                Ok(elsewhere) => here + elsewhere,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the other edges' connections");
                    here
                }
            },
        }
    }

    /// Counts a new account (guest or registered) against its network's rate; `RateLimited`
    /// past it.
    fn check_guest_rate(&self, ip: IpAddr) -> Result<(), AppError> {
        let ip = self.config.limits.addresses.network(ip);
        let Some(limiter) = &self.guest_limiter else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            AppError::RateLimited(wait.as_secs() + 1)
        })
    }

    /// The tile hub.
    pub fn hub(&self) -> &TileHub {
        &self.hub
    }

    /// Asks every connection to close (1001) and waits, at most `grace`, for them and for the
    /// placements in flight.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tasks.len(),
                "connections still open after the grace period"
            );
        }
    }

    /// Counts a user's WebSocket in (`opened`) or out, for the online gauges. Both gauges move
    /// by steps (never set), so the process's figure is the sum over its edges.
    fn count_online(&self, user_id: i64, opened: bool) {
        if opened {
            let mut sockets = self.online.entry(user_id).or_insert(0);
            *sockets += 1;
            if *sockets == 1 {
                metrics::gauge!(telemetry::ACTIVE_USERS).increment(1.0);
            }
            metrics::gauge!(telemetry::ACTIVE_CONNECTIONS).increment(1.0);
        } else {
            let gone = self.online.remove_if_mut(&user_id, |_, n| {
                *n -= 1;
                *n == 0
            });
            if gone.is_some() {
                metrics::gauge!(telemetry::ACTIVE_USERS).decrement(1.0);
            }
            metrics::gauge!(telemetry::ACTIVE_CONNECTIONS).decrement(1.0);
        }
    }

    /// A fresh id, unique in this process: names connections and placements in the logs.
    fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Forgets expired cooldowns now and then, so the table holds only users in their cooldown.
/// Rewrites the cluster's Redis set of administrators from PostgreSQL now and then (see
/// [`accounts`]); the first time at once.
async fn sync_admins(edge: std::sync::Weak<Edge>) {
    let mut every = tokio::time::interval(accounts::ADMINS_SYNC_EVERY);
    loop {
        every.tick().await;
        let Some(edge) = edge.upgrade() else { return };
        match edge.accounts.sync_admins().await {
            Ok(admins) => tracing::debug!(admins, "administrators synced to Redis"),
            Err(error) => tracing::warn!(%error, "cannot sync the administrators to Redis"),
        }
    }
}

async fn prune_cooldowns(edge: std::sync::Weak<Edge>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let Some(edge) = edge.upgrade() else { return };
        edge.accounts.prune(edge.now_ms());
        if let Err(error) = edge.accounts.purge_expired_sessions(edge.now_ms()).await {
            tracing::warn!(%error, "cannot delete expired sessions");
        }
        edge.login_limiter.prune();
        edge.history.prune();
        if let Some(limiter) = &edge.guest_limiter {
            limiter.retain_recent();
        }
    }
}

/// Serves the edge on an already-bound listener until `shutdown` resolves, then closes every
/// WebSocket with 1001 and waits for placements in flight. Connections are admitted and bounded
/// by [`server::accept_loop`].
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::app(Arc::clone(&edge));
    let mut limits = edge.config.limits;
    limits.max_connections = server::connection_cap(limits.max_connections);
    let gate = server::ConnectionGate::new(&limits, !edge.config.trust_proxy);
    let stop = edge.shutdown.clone();
    let accepting = tokio::spawn(server::accept_loop(
        listener,
        app,
        gate,
        limits,
        stop.clone(),
    ));
    tokio::select! {
        _ = shutdown => stop.cancel(),
        _ = stop.cancelled() => {}
    }
    let _ = accepting.await;
    edge.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// Now as Unix epoch milliseconds, by the system clock (an [`Edge`] decides by [`Edge::now_ms`]).
pub fn now_ms() -> i64 {
    place_shard::driver::now_ms()
}
