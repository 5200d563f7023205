//! The cluster modes: `place shard` and `place edge`, wired from the same edge and shard code as
//! `place serve`, on Redis (sessions, cooldowns, bans, the ring) and PostgreSQL (events,
//! snapshots, users), with mutually authenticated QUIC between them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use place_cluster::failover::{supervise, Supervisor};
use place_cluster::tls::NodeIdentity;
use place_cluster::{ClusterClient, RingStore, ShardServer};
use place_edge::accounts::{Accounts, SharedAccounts};
use place_edge::live::{LiveBus, RedisBus};
use place_edge::shards::Shards;
use place_edge::Edge;
use place_shard::{Ownership, ShardHandle, ShardTask};
use place_store::{PgStore, Store};
use place_timelapse::jobs::JobContext;
use place_timelapse::queue::JobQueue;
use place_timelapse::service::{Dispatch, Timelapse};
use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::ConfigError;

/// Where the cluster's shared services are and what it is called.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Redis.
    pub redis_url: String,
    /// PostgreSQL.
    pub database_url: String,
    /// The cluster's name: its PostgreSQL schema and its Redis key prefix (`place:NAME:`), so
    /// several clusters (and test runs) share one Redis and one database without touching each
    /// other's data.
    pub name: String,
    /// Directory with `ca.pem` and this node's certificate and key.
    pub certs: PathBuf,
    /// This node's id: its certificate's name, and for a shard its id in the ring.
    pub node_id: String,
}

impl ClusterSettings {
    /// Checks the settings that can be checked without connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_cluster_name(&self.name)?;
        check_node_id(&self.node_id)?;
        if !self.redis_url.starts_with("redis://") {
            return Err(ConfigError {
                setting: "redis_url".into(),
                reason: format!("{:?} is not a redis:// URL", self.redis_url),
            });
        }
        check_database_url(&self.database_url)
    }

    /// The Redis key prefix.
    pub fn key_prefix(&self) -> String {
        format!("place:{}:", self.name)
    }

    /// Connects to Redis. The connection comes back by itself after an outage; meanwhile each
    /// command fails within about 1.5 s (two short reconnect attempts), so a placement that needs
    /// Redis is refused as `UNAVAILABLE` quickly instead of hanging.
    pub async fn redis(&self) -> anyhow::Result<ConnectionManager> {
        let client = self.redis_client()?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(400))
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)));
        client
            .get_connection_manager_with_config(config)
            .await
            .with_context(|| format!("connecting to Redis at {}", self.redis_url))
    }

    /// A Redis client, for connections of its own (pub/sub).
    pub fn redis_client(&self) -> anyhow::Result<redis::Client> {
        redis::Client::open(self.redis_url.as_str())
            .with_context(|| format!("Redis URL {}", self.redis_url))
    }

    /// Connects to PostgreSQL (in the cluster's schema, migrated).
    pub async fn postgres(&self) -> anyhow::Result<PgStore> {
        PgStore::connect(&self.database_url, &self.name)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", self.database_url))
    }

    fn identity(&self) -> anyhow::Result<NodeIdentity> {
        NodeIdentity::load(&self.certs, &self.node_id).with_context(|| {
            format!(
                "loading the certificate of {} from {} (make it with `place certs`)",
                self.node_id,
                self.certs.display()
            )
        })
    }
}

/// Checks a cluster's name: 1 to 48 of a-z, 0-9 and `_`, not starting with `pg_` (it names a
/// PostgreSQL schema and a Redis key prefix).
pub fn check_cluster_name(name: &str) -> Result<(), ConfigError> {
    let ok = (1..=48).contains(&name.len())
        && !name.starts_with("pg_")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        return Ok(());
    }
    Err(ConfigError {
        setting: "cluster".into(),
        reason: format!("{name:?} must be 1 to 48 of a-z, 0-9 and _, not starting with pg_"),
    })
}

/// Checks a node's id: 1 to 64 letters, digits, `-` or `_` (it names its certificate).
pub fn check_node_id(id: &str) -> Result<(), ConfigError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(ConfigError {
        setting: "id".into(),
        reason: format!("{id:?} must be 1 to 64 letters, digits, '-' or '_'"),
    })
}

/// Checks that a database URL is a PostgreSQL one.
pub fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    Err(ConfigError {
        setting: "database_url".into(),
        reason: format!("{url:?} is not a postgres:// URL"),
    })
}

/// How a shard process runs, beyond the cluster's settings.
#[derive(Debug, Clone, Copy)]
pub struct ShardOptions {
    /// Where to listen for edges.
    pub listen_quic: SocketAddr,
    /// Take another shard out of the ring once it has not reported for this long (its tiles go
    /// to their next owners, loaded from PostgreSQL; their fences shut it out should it still be
    /// alive). `None`: never.
    pub failover_after: Option<Duration>,
}

/// A running shard process.
pub struct ShardNode {
    /// The local shard.
    pub shard: ShardHandle,
    /// Where it listens for edges.
    pub quic_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
    supervisor: tokio::task::JoinHandle<()>,
    store: PgStore,
}

/// Starts a shard: restores its tiles (by the ring in Redis) from PostgreSQL, listens for edges,
/// reports itself in Redis and watches the other shards for failover.
pub async fn start_shard(
    config: &place_shard::ShardConfig,
    cluster: &ClusterSettings,
    options: ShardOptions,
) -> anyhow::Result<ShardNode> {
    let listen_quic = options.listen_quic;
    let identity = cluster.identity()?;
    let store = cluster.postgres().await?;
    let stored = Store::from(store.clone())
        .canvas_geometry(config.geometry)
        .await?;
    let redis = cluster.redis().await?;
    let ring_store = RingStore::new(redis, &cluster.key_prefix())
        .following_announcements(cluster.redis_client()?);
    let ring = ring_store.watch().await?;
    let current = ring.borrow().clone();
    // The canvas as stored, grown to the ring's (a growth may be under way).
    let geometry = current.geometry(stored);
    let shard_config = place_shard::ShardConfig {
        geometry,
        ..config.clone()
    };
    if current.shard(&cluster.node_id).is_none() {
        warn!(id = %cluster.node_id, epoch = current.epoch(), "this shard is not in the ring: it owns no tiles");
    }
    let owned = current.tiles_of(&cluster.node_id, geometry).collect();
    let (shard, task) = ShardTask::start(
        shard_config,
        Store::from(store.clone()),
        Some(Ownership {
            epoch: current.epoch(),
            tiles: owned,
        }),
    )
    .await?;
    let endpoint = quinn::Endpoint::server(identity.server_config()?, listen_quic)
        .with_context(|| format!("binding QUIC on {listen_quic}"))?;
    let quic_addr = endpoint.local_addr()?;
    let supervisor = tokio::spawn(supervise(Supervisor {
        quic: identity.liveness_config()?,
        id: cluster.node_id.clone(),
        shard: shard.clone(),
        store: ring_store,
        ring: ring.clone(),
        geometry,
        failover_after: options.failover_after,
    }));
    let server = ShardServer::new(cluster.node_id.clone(), shard.clone(), ring, geometry);
    let server = tokio::spawn(server.run(endpoint.clone()));
    info!(id = %cluster.node_id, %quic_addr, "shard ready");
    Ok(ShardNode {
        shard,
        quic_addr,
        endpoint,
        task,
        server,
        supervisor,
        store,
    })
}

impl ShardNode {
    /// Stops at once as a crash would: connections drop, nothing pending is written, no
    /// checkpoint is taken (what was acknowledged is already in PostgreSQL). Returns once the
    /// QUIC socket is released, as the operating system does for a killed process, so that a
    /// new shard can bind the same address.
    pub async fn crash(self) {
        self.endpoint.close(quinn::VarInt::from_u32(1), b"crashed");
        self.supervisor.abort();
        self.task.abort();
        self.server.abort();
        let _ = self.task.await;
        let _ = self.server.await;
        if tokio::time::timeout(Duration::from_secs(5), self.endpoint.wait_idle())
            .await
            .is_err()
        {
            warn!("QUIC connections still draining after a crash");
        }
        drop(self.endpoint);
        // The endpoint's driver task releases the socket when it next runs.
        for _ in 0..200 {
            if std::net::UdpSocket::bind(self.quic_addr).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        warn!(addr = %self.quic_addr, "the crashed shard's QUIC address is still bound");
    }

    /// Runs until `shutdown`, then stops accepting, writes what is pending and checkpoints.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.supervisor.abort();
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"shutting down");
        self.shard.shutdown().await;
        let _ = self.task.await;
        self.store.close().await;
        info!("shard stopped cleanly");
    }
}

/// Starts an edge: shared accounts in Redis and PostgreSQL, shards found through the ring,
/// timelapse renders queued in RabbitMQ at `amqp_url`.
pub async fn start_edge(
    config: &place_edge::EdgeConfig,
    cluster: &ClusterSettings,
    amqp_url: &str,
) -> anyhow::Result<Arc<Edge>> {
    let identity = cluster.identity()?;
    let redis = cluster.redis().await?;
    let users = Store::from(cluster.postgres().await?);
    let stored = users.canvas_geometry(config.geometry).await?;
    // The ring has a connection of its own: behind the placements' commands on the shared one,
    // a flood of them (every page retrying after a failover) would delay the new ring by seconds.
    let ring_store = RingStore::new(cluster.redis().await?, &cluster.key_prefix())
        .following_announcements(cluster.redis_client()?);
    let ring = ring_store.watch().await?;
    // The canvas as stored, grown to the ring's (a growth may be under way).
    let geometry = ring.borrow().geometry(stored);
    let client = ClusterClient::new(&identity, ring, geometry)?;
    let live_bus = LiveBus::Redis(Box::new(RedisBus::new(
        cluster.redis_client()?,
        redis.clone(),
        &cluster.key_prefix(),
    )));
    let accounts = Accounts::Shared(SharedAccounts {
        redis,
        prefix: cluster.key_prefix(),
        users: users.clone(),
    });
    // Administrators made before this edge started have their rights from its first request on.
    let admins = accounts
        .sync_admins()
        .await
        .context("copying the administrators from PostgreSQL to Redis")?;
    info!(admins, "administrators synced");
    let edge_config = place_edge::EdgeConfig {
        node_id: cluster.node_id.clone(),
        geometry,
        ..config.clone()
    };
    let edge = Edge::new(
        edge_config,
        accounts,
        Shards::Cluster(Arc::new(client)),
        live_bus,
    );
    // Before the first placement: a region locked before a restart holds from the first moment.
    edge.reload_regions()
        .await
        .context("reading the protected regions")?;
    edge.enable_ring_admin(place_edge::ring_admin::RingAdmin {
        store: ring_store,
        identity,
    });
    let jobs = JobContext {
        source: users,
        geometry,
        palette: config.palette.clone(),
        throttle: Duration::ZERO,
    };
    let queue = JobQueue::new(amqp_url, &cluster.name);
    edge.enable_timelapse(Arc::new(Timelapse::new(
        jobs,
        Dispatch::Queue(Arc::new(queue)),
    )));
    Ok(edge)
}

/// Serves an edge on a bound listener until `shutdown`.
pub async fn serve_edge(
    edge: Arc<Edge>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    place_edge::serve(listener, edge, shutdown)
        .await
        .context("serving HTTP")
}
