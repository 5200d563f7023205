//! The configuration of every long-running mode: one documented struct per mode ([`ServeConfig`]
//! for `place serve`; [`EdgeNodeConfig`], [`ShardNodeConfig`] and [`WorkerConfig`] for the
//! cluster), each made of flattened sections by role, so that a mode takes, and `place MODE
//! --help` lists, only the settings it uses: [`CommonSection`] (logs) for every mode,
//! [`CanvasSection`] (size, colours) for every mode, [`MetricsSection`] for those that serve
//! `/metrics`, [`EdgeSection`] (address, cooldown, limits, cookies, proxy, guests, spike alarm)
//! for serve and edges, [`ShardSection`] (batching, checkpoints) for serve and shards,
//! [`SnapshotSection`] for serve and workers, [`ClusterConfig`] for the cluster's nodes,
//! [`MeshSection`] (Redis, certificates) for edges and shards, [`QueueSection`] (RabbitMQ) for edges
//! and workers. Each
//! struct derives both its command line (clap: the flag, its environment variable and its
//! default are declared once, in the field's attribute, and the field's doc is its help) and its
//! TOML form (serde: the field's name is the key).
//!
//! [`load`] layers them with figment: defaults, then the TOML file (`--config`, every setting
//! valid there, an unknown key refused), then environment variables, then flags (later ones
//! win). Each mode's `validate` runs before any port is bound;
//! a bad value is reported with the setting's name and the reason, and the binary exits 64.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Empty, Tag, Value};
use figment::Figment;
use place_edge::address::AddressPolicy;
use place_edge::server::Limits;
use place_edge::EdgeConfig;
use place_shard::{CheckpointPolicy, ShardConfig};
use place_tiles::{CanvasGeometry, Palette};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cluster::ClusterSettings;

/// Environment variables that more than one command reads (`place ring`, `admin`, `verify` and
/// `timelapse` as well as the modes). Every other setting's variable is named once, in its
/// field's attribute.
pub mod env {
    /// Path of a TOML configuration file.
    pub const CONFIG: &str = "PLACE_CONFIG";
    /// The cluster's name.
    pub const CLUSTER: &str = "PLACE_CLUSTER";
    /// PostgreSQL URL.
    pub const DATABASE_URL: &str = "PLACE_DATABASE_URL";
    /// Redis URL.
    pub const REDIS_URL: &str = "PLACE_REDIS_URL";
    /// Directory of the cluster's certificates.
    pub const CERTS: &str = "PLACE_CERTS";
    /// Canvas width.
    pub const WIDTH: &str = "PLACE_WIDTH";
    /// Canvas height.
    pub const HEIGHT: &str = "PLACE_HEIGHT";
}

/// Defaults that more than one command shares (see [`env`]).
pub mod defaults {
    /// The cluster's name.
    pub const CLUSTER: &str = "place";
    /// PostgreSQL, on this machine.
    pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    /// Redis, on this machine.
    pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
    /// Directory of the cluster's certificates.
    pub const CERTS: &str = "certs";
}

/// Where a mode reads its TOML file from: not a setting itself, so not a key of the file.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigFile {
    /// TOML configuration file: any setting of this command, keyed by its name (the flag without
    /// `--`, `_` for `-`); flags and environment variables win over it.
    #[arg(long, env = env::CONFIG)]
    pub config: Option<PathBuf>,
}

/// Every setting of `place serve`: its own (the store's directory, the timelapse snapshots) and
/// the sections the cluster's modes take by role. The TOML file uses the fields' names.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct ServeConfig {
    /// Directory of the embedded store (`place serve`, `place timelapse`).
    #[arg(long, env = "PLACE_DATA_DIR", default_value = "place-data")]
    pub data_dir: PathBuf,
    /// How the process logs.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonSection,
    /// Where `/metrics` is served.
    #[command(flatten)]
    #[serde(flatten)]
    pub metrics: MetricsSection,
    /// The canvas.
    #[command(flatten)]
    #[serde(flatten)]
    pub canvas: CanvasSection,
    /// The edge's address, limits and alarms.
    #[command(flatten)]
    #[serde(flatten)]
    pub edge: EdgeSection,
    /// The shard's batching and checkpoints.
    #[command(flatten)]
    #[serde(flatten)]
    pub shard: ShardSection,
    /// The timelapse snapshots.
    #[command(flatten)]
    #[serde(flatten)]
    pub snapshots: SnapshotSection,
}

impl Default for ServeConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// What every mode takes: how it logs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct CommonSection {
    /// Log format.
    #[arg(long, env = "PLACE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl Default for CommonSection {
    fn default() -> Self {
        declared_defaults()
    }
}

/// Where a process that serves `/metrics` (`place serve`, an edge, a shard) serves it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct MetricsSection {
    /// An address of its own for `GET /metrics` (e.g. `127.0.0.1:9100`), off the public one; a
    /// shard serves its metrics there too. Without it an edge answers `/metrics` on `listen`, a
    /// shard has none.
    #[arg(long, env = "PLACE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

impl MetricsSection {
    /// The address, checked.
    pub fn address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(address) = &self.metrics_listen else {
            return Ok(None);
        };
        address.parse::<SocketAddr>().map(Some).map_err(|e| {
            bad(
                "metrics_listen",
                format!("{address:?} is not an address like 127.0.0.1:9100: {e}"),
            )
        })
    }
}

/// The canvas every node must agree on: its size and its colours (`place timelapse` reads them
/// too).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct CanvasSection {
    /// Canvas width in pixels, 1 to 65536.
    #[arg(long, env = env::WIDTH, default_value_t = 2000)]
    pub width: u32,
    /// Canvas height in pixels, 1 to 65536.
    #[arg(long, env = env::HEIGHT, default_value_t = 2000)]
    pub height: u32,
    /// Number of palette colours, 2 to 256, when `palette` is not given (given as a flag or an
    /// environment variable, it replaces a `palette` of the file).
    #[arg(long, env = "PLACE_COLORS", default_value_t = 16)]
    pub colors: usize,
    /// Explicit palette as `#rrggbb` strings, in the TOML file only; overrides `colors`.
    #[arg(skip)]
    pub palette: Option<Vec<String>>,
}

impl Default for CanvasSection {
    fn default() -> Self {
        declared_defaults()
    }
}

/// The canvas, checked.
#[derive(Debug, Clone)]
pub struct ValidCanvas {
    /// Its configured size.
    pub geometry: CanvasGeometry,
    /// Its colours.
    pub palette: Palette,
}

impl CanvasSection {
    /// Checks the size and the colours.
    pub fn validate(&self) -> Result<ValidCanvas, ConfigError> {
        in_range("width", self.width, 1, 65_536)?;
        in_range("height", self.height, 1, 65_536)?;
        let geometry = CanvasGeometry::new(self.width, self.height)
            .map_err(|e| bad("width", e.to_string()))?;
        let palette = match &self.palette {
            Some(colors) => Palette::from_hex(colors).map_err(|e| bad("palette", e.to_string()))?,
            None => Palette::default_with(self.colors).map_err(|e| bad("colors", e.to_string()))?,
        };
        Ok(ValidCanvas { geometry, palette })
    }
}

/// What an edge (`place edge`, and `place serve`'s) takes: its address, the cooldown, the
/// cookies and the proxy, the limits on connections, sockets and guests, and the spike alarm.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct EdgeSection {
    /// Address to listen on for HTTP and WebSockets.
    #[arg(long, env = "PLACE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Seconds between two placements of one user, 0 to 86400.
    #[arg(long, env = "PLACE_COOLDOWN_SECS", default_value_t = 5)]
    pub cooldown_secs: u64,
    /// Tiles one connection may subscribe to, 1 to 65536.
    #[arg(long, env = "PLACE_MAX_TILES_PER_CLIENT", default_value_t = 256)]
    pub max_tiles_per_client: usize,
    /// Guest sessions one network may make per minute; 0 disables the limit.
    #[arg(long, env = "PLACE_GUEST_RATE_PER_MINUTE", default_value_t = 30)]
    pub guest_rate_per_minute: u32,
    /// Mark the session cookie `Secure` (the site is served over HTTPS). Without it the cookie
    /// is still `Secure` when a proxy sends `X-Forwarded-Proto: https`.
    #[arg(long, env = "PLACE_SECURE_COOKIES", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub secure_cookies: bool,
    /// Behind a proxy that sets `X-Forwarded-For`: take the client's address from it for the
    /// per-network limits. Never without such a proxy, or clients could choose their address.
    #[arg(long, env = "PLACE_TRUST_PROXY", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub trust_proxy: bool,
    /// Open TCP connections (HTTP and WebSocket) the process holds, 16 to 1,000,000; lowered at
    /// start to the file-descriptor limit less 512. Past it a new connection gets HTTP 503.
    #[arg(long, env = "PLACE_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Open TCP connections from one network (`ipv4_prefix`, `ipv6_prefix`), 1 to 1,000,000;
    /// ignored with `trust_proxy` (the proxy limits those). Past it a new connection gets 429.
    #[arg(long, env = "PLACE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: u32,
    /// Open WebSockets of one session (tabs of one player), 1 to 1000.
    #[arg(long, env = "PLACE_MAX_WEBSOCKETS_PER_SESSION", default_value_t = 8)]
    pub max_websockets_per_session: u32,
    /// Open WebSockets from one network (the forwarded address with `trust_proxy`), 1 to
    /// 1,000,000.
    #[arg(long, env = "PLACE_MAX_WEBSOCKETS_PER_ADDRESS", default_value_t = 200)]
    pub max_websockets_per_address: u32,
    /// Seconds for a request's head to arrive, 1 to 300; also how long a silent or idle
    /// keep-alive connection stays open.
    #[arg(long, env = "PLACE_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds for a request's body to arrive, 1 to 300.
    #[arg(long, env = "PLACE_REQUEST_BODY_TIMEOUT_SECS", default_value_t = 10)]
    pub request_body_timeout_secs: u64,
    /// Placements one network may make per minute, whatever its number of users (0: no limit;
    /// 600 is 50 players at the default cooldown).
    #[arg(
        long,
        env = "PLACE_PLACEMENTS_PER_ADDRESS_PER_MINUTE",
        default_value_t = 600
    )]
    pub placements_per_address_per_minute: u32,
    /// The site's public origin, `scheme://host[:port]` (e.g. `https://place.example.org`): the
    /// only `Origin` a state-changing request or a WebSocket upgrade may carry. Without it: the
    /// request's own scheme, host and port.
    #[arg(long, env = "PLACE_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,
    /// Proof of work a new guest pays, in leading zero bits of a SHA-256 (0 to 28; 0 asks none,
    /// for load tests). 16 is 65,536 hashes on average, about 0.4 s of the page's JavaScript on
    /// a desktop, a second or two on a phone.
    #[arg(long, env = "PLACE_GUEST_POW_BITS", default_value_t = place_edge::DEFAULT_GUEST_POW_BITS)]
    pub guest_pow_bits: u8,
    /// Seconds between two pings of a WebSocket, 1 to 300; a client not heard from (no frame, no
    /// pong) for twice this and a second more is closed with 4002.
    #[arg(long, env = "PLACE_WEBSOCKET_PING_SECS", default_value_t = 20)]
    pub websocket_ping_secs: u64,
    /// Threads of their own that write a fan-out to more than 128 WebSockets, apart from those
    /// that read and answer placements, 0 to 256 (0: the edge's own workers write). 1 uses less
    /// CPU past the knee over hot spots (the same tail since the hub drains its backlog), but
    /// slows a fan-out to every player (README, Performance).
    #[arg(long, env = "PLACE_FANOUT_THREADS", default_value_t = 0)]
    pub fanout_threads: usize,
    /// IPv4 prefix length that per-address limits count as one network, 8 to 32.
    #[arg(long, env = "PLACE_IPV4_PREFIX", default_value_t = 32)]
    pub ipv4_prefix: u8,
    /// IPv6 prefix length that per-address limits count as one network, 16 to 128.
    #[arg(long, env = "PLACE_IPV6_PREFIX", default_value_t = 64)]
    pub ipv6_prefix: u8,
    /// The spike alarm's cell: a square of this many pixels a side, 8 to 1024.
    #[arg(long, env = "PLACE_SPIKE_CELL", default_value_t = 64)]
    pub spike_cell: u32,
    /// Placements a second (over 5 s) a cell must reach, on one edge, to raise a spike alarm,
    /// 1 to 1,000,000.
    #[arg(long, env = "PLACE_SPIKE_MIN_RATE", default_value_t = 20)]
    pub spike_min_rate: u32,
    /// How many times its moving baseline a cell's rate must also reach, 2 to 1000.
    #[arg(long, env = "PLACE_SPIKE_FACTOR", default_value_t = 5)]
    pub spike_factor: u32,
    /// An `http://` or `https://` URL each spike alarm is POSTed to as JSON.
    #[arg(long, env = "PLACE_SPIKE_WEBHOOK")]
    pub spike_webhook: Option<String>,
    /// Minutes an alarmed cell is put in `slow` mode by itself, 0 to 1440; 0 only alarms.
    #[arg(long, env = "PLACE_SPIKE_SLOW_MINUTES", default_value_t = 0)]
    pub spike_slow_minutes: u64,
    /// The cooldown of that automatic slow region, 1 to 3600 seconds.
    #[arg(long, env = "PLACE_SPIKE_SLOW_COOLDOWN_SECS", default_value_t = 30)]
    pub spike_slow_cooldown_secs: u64,
}

impl Default for EdgeSection {
    fn default() -> Self {
        declared_defaults()
    }
}

/// What a shard (`place shard`, and `place serve`'s) takes: how it batches and checkpoints.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct ShardSection {
    /// Milliseconds a tile's changes are gathered before they are sent, 1 to 1000.
    #[arg(long, env = "PLACE_BATCH_WINDOW_MS", default_value_t = 10)]
    pub batch_window_ms: u64,
    /// Microseconds an idle shard waits after a placement before it writes, so placements close
    /// together share a commit, 0 to 10000 (0: write at once). A busy shard never waits.
    #[arg(long, env = "PLACE_COMMIT_LINGER_US", default_value_t = 1000)]
    pub commit_linger_us: u64,
    /// Seconds between checkpoints of changed tiles, 1 to 3600.
    #[arg(long, env = "PLACE_CHECKPOINT_SECS", default_value_t = 30)]
    pub checkpoint_secs: u64,
}

impl Default for ShardSection {
    fn default() -> Self {
        declared_defaults()
    }
}

/// The timelapse snapshots' pace, for what takes them (`place serve`, or a cluster's `place
/// worker`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct SnapshotSection {
    /// Seconds between two timelapse snapshots of the canvas, 1 to 86400 (taken by `place serve`,
    /// or by the cluster's `place worker`).
    #[arg(long, env = "PLACE_TIMELAPSE_SNAPSHOT_SECS", default_value_t = 600)]
    pub timelapse_snapshot_secs: u64,
}

impl Default for SnapshotSection {
    fn default() -> Self {
        declared_defaults()
    }
}

impl SnapshotSection {
    /// The time between two snapshots, checked.
    pub fn interval(&self) -> Result<Duration, ConfigError> {
        in_range(
            "timelapse_snapshot_secs",
            self.timelapse_snapshot_secs,
            1,
            86_400,
        )?;
        Ok(Duration::from_secs(self.timelapse_snapshot_secs))
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where a cluster node finds the cluster's shared services, and who it is: the section `place
/// edge`, `place shard` and `place worker` share.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct ClusterConfig {
    /// This node's id: its certificate's name, and for a shard its id in the ring (needed by
    /// edges and shards; a worker's is `worker-PID` without it).
    #[arg(long, env = "PLACE_NODE_ID")]
    pub id: Option<String>,
    /// The cluster's name: its PostgreSQL schema, Redis key prefix and timelapse queue.
    #[arg(long, env = env::CLUSTER, default_value = defaults::CLUSTER)]
    pub cluster: String,
    /// PostgreSQL URL.
    #[arg(long, env = env::DATABASE_URL, default_value = defaults::DATABASE_URL)]
    pub database_url: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

impl ClusterConfig {
    /// The checked settings of a node that must have an id and reaches the others through
    /// `mesh` (an edge or a shard).
    pub fn settings(&self, mesh: &MeshSection) -> Result<ClusterSettings, ConfigError> {
        let Some(node_id) = self.id.clone() else {
            return Err(bad("id", "an edge or a shard needs its id (--id)"));
        };
        let settings = ClusterSettings {
            redis_url: mesh.redis_url.clone(),
            database_url: self.database_url.clone(),
            name: self.cluster.clone(),
            certs: mesh.certs.clone(),
            node_id,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// How edges and shards reach each other: Redis (the ring, sessions, cooldowns) and the
/// certificates of the QUIC between them. A worker uses neither.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct MeshSection {
    /// Redis URL.
    #[arg(long, env = env::REDIS_URL, default_value = defaults::REDIS_URL)]
    pub redis_url: String,
    /// Directory with ca.pem and this node's certificate (`place certs`).
    #[arg(long, env = env::CERTS, default_value = defaults::CERTS)]
    pub certs: PathBuf,
}

impl Default for MeshSection {
    fn default() -> Self {
        declared_defaults()
    }
}

/// Where timelapse render jobs are queued: edges publish them, workers render them. A shard uses
/// none.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct QueueSection {
    /// RabbitMQ URL (edges publish timelapse render jobs there for `place worker`).
    #[arg(long, env = "PLACE_AMQP_URL", default_value = place_timelapse::queue::DEFAULT_AMQP_URL)]
    pub amqp_url: String,
}

impl Default for QueueSection {
    fn default() -> Self {
        declared_defaults()
    }
}

impl QueueSection {
    /// The URL, checked.
    pub fn url(&self) -> Result<String, ConfigError> {
        if !self.amqp_url.starts_with("amqp://") {
            return Err(bad(
                "amqp_url",
                format!("{:?} is not an amqp:// URL", self.amqp_url),
            ));
        }
        Ok(self.amqp_url.clone())
    }
}

/// `place edge`: a cluster's edge, holding players' WebSockets and the HTTP API.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct EdgeNodeConfig {
    /// Where the cluster is and who this edge is.
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterConfig,
    /// Redis and the certificates.
    #[command(flatten)]
    #[serde(flatten)]
    pub mesh: MeshSection,
    /// Where it queues timelapse renders.
    #[command(flatten)]
    #[serde(flatten)]
    pub queue: QueueSection,
    /// How it logs.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonSection,
    /// Where `/metrics` is served.
    #[command(flatten)]
    #[serde(flatten)]
    pub metrics: MetricsSection,
    /// The canvas.
    #[command(flatten)]
    #[serde(flatten)]
    pub canvas: CanvasSection,
    /// Its address, limits and alarms.
    #[command(flatten)]
    #[serde(flatten)]
    pub edge: EdgeSection,
}

/// An edge's settings, checked.
#[derive(Debug, Clone)]
pub struct ValidEdgeNode {
    /// The cluster and this edge's id.
    pub cluster: ClusterSettings,
    /// RabbitMQ, where it queues timelapse renders.
    pub amqp_url: String,
    /// Where to listen for HTTP and WebSockets.
    pub listen: SocketAddr,
    /// The edge's settings (its id is set when it starts).
    pub edge: EdgeConfig,
    /// Where `/metrics` is served apart, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl EdgeNodeConfig {
    /// Checks every setting: the cluster's first.
    pub fn validate(&self) -> Result<ValidEdgeNode, ConfigError> {
        let cluster = self.cluster.settings(&self.mesh)?;
        let amqp_url = self.queue.url()?;
        let canvas = self.canvas.validate()?;
        let metrics_listen = self.metrics.address()?;
        let (listen, edge) = self.edge.validate(&canvas, metrics_listen.is_some())?;
        Ok(ValidEdgeNode {
            cluster,
            amqp_url,
            listen,
            edge,
            metrics_listen,
        })
    }
}

/// `place shard`: a cluster's shard, owning the tiles the ring gives it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct ShardNodeConfig {
    /// UDP address for QUIC from the edges.
    #[arg(long, env = "PLACE_LISTEN_QUIC", default_value = "127.0.0.1:7001")]
    pub listen_quic: String,
    /// Take a shard out of the ring once its report (1 s time to live) has been missing for this
    /// many more seconds (its tiles go to the next owners; a shard only presumed dead is shut out
    /// by the tiles' fences and rejoins when it runs again), 0 to 3600; 0: never.
    #[arg(long, env = "PLACE_FAILOVER_AFTER_SECS", default_value_t = 1)]
    pub failover_after_secs: u64,
    /// Where the cluster is and who this shard is.
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterConfig,
    /// Redis and the certificates.
    #[command(flatten)]
    #[serde(flatten)]
    pub mesh: MeshSection,
    /// How it logs.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonSection,
    /// Where `/metrics` is served.
    #[command(flatten)]
    #[serde(flatten)]
    pub metrics: MetricsSection,
    /// The canvas.
    #[command(flatten)]
    #[serde(flatten)]
    pub canvas: CanvasSection,
    /// Its batching and checkpoints.
    #[command(flatten)]
    #[serde(flatten)]
    pub shard: ShardSection,
}

impl Default for ShardNodeConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// A shard's settings, checked.
#[derive(Debug, Clone)]
pub struct ValidShardNode {
    /// The cluster and this shard's id.
    pub cluster: ClusterSettings,
    /// Its QUIC address and failover.
    pub options: crate::cluster::ShardOptions,
    /// The shard's settings (the canvas as configured; the stored one wins when it starts).
    pub shard: ShardConfig,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl ShardNodeConfig {
    /// Checks every setting: the cluster's first.
    pub fn validate(&self) -> Result<ValidShardNode, ConfigError> {
        let cluster = self.cluster.settings(&self.mesh)?;
        let options = self.options()?;
        let canvas = self.canvas.validate()?;
        Ok(ValidShardNode {
            cluster,
            options,
            shard: self.shard.validate(&canvas)?,
            metrics_listen: self.metrics.address()?,
        })
    }

    /// The shard's own settings, checked.
    pub fn options(&self) -> Result<crate::cluster::ShardOptions, ConfigError> {
        let listen_quic = self.listen_quic.parse::<SocketAddr>().map_err(|e| {
            bad(
                "listen_quic",
                format!(
                    "{:?} is not an address like 127.0.0.1:7001: {e}",
                    self.listen_quic
                ),
            )
        })?;
        in_range("failover_after_secs", self.failover_after_secs, 0, 3600)?;
        Ok(crate::cluster::ShardOptions {
            listen_quic,
            failover_after: (self.failover_after_secs > 0)
                .then(|| Duration::from_secs(self.failover_after_secs)),
        })
    }
}

/// `place worker`: a cluster's timelapse worker (renders the queued jobs, takes the snapshots).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Args)]
#[serde(default)]
pub struct WorkerConfig {
    /// Pause after each frame, in ms (tests that kill a worker mid-job).
    #[arg(long, default_value_t = 0, hide = true)]
    pub throttle_ms: u64,
    /// The cluster (`id` is the worker's name).
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterConfig,
    /// Where the render jobs are queued.
    #[command(flatten)]
    #[serde(flatten)]
    pub queue: QueueSection,
    /// How it logs.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonSection,
    /// The canvas it renders.
    #[command(flatten)]
    #[serde(flatten)]
    pub canvas: CanvasSection,
    /// The snapshots it takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub snapshots: SnapshotSection,
}

impl WorkerConfig {
    /// The worker's settings, checked (the cluster's first); its name is `worker-PID` unless
    /// `id` is given.
    pub fn worker(&self) -> Result<crate::worker::WorkerSettings, ConfigError> {
        let section = &self.cluster;
        let id = (section.id.clone()).unwrap_or_else(|| format!("worker-{}", std::process::id()));
        crate::cluster::check_cluster_name(&section.cluster)?;
        crate::cluster::check_node_id(&id)?;
        crate::cluster::check_database_url(&section.database_url)?;
        let amqp_url = self.queue.url()?;
        let canvas = self.canvas.validate()?;
        Ok(crate::worker::WorkerSettings {
            database_url: section.database_url.clone(),
            cluster: section.cluster.clone(),
            amqp_url,
            id,
            throttle: Duration::from_millis(self.throttle_ms),
            geometry: canvas.geometry,
            palette: canvas.palette,
            snapshot_interval: self.snapshots.interval()?,
        })
    }
}

/// The defaults declared in `T`'s flag attributes: its command line parsed empty, with no
/// environment variable read. So each default is written once, where `--help` shows it.
fn declared_defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    // Cannot fail: every setting has a default or is optional (the tests build every mode's).
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every setting has a default");
    T::from_arg_matches(&matches).expect("every setting has a default")
}

/// Layers a mode's settings, later ones winning: the defaults, the TOML `file`, environment
/// variables, flags. `parsed` and `matches` are clap's parse of the command line (which read the
/// environment too); `matches` says which values came from where.
pub fn load<T>(parsed: &T, matches: &ArgMatches, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let Ok(Value::Dict(_, given)) = Value::serialize(parsed) else {
        unreachable!("a settings struct serialises to a table");
    };
    let (mut from_env, mut from_flags) = (Dict::new(), Dict::new());
    for id in matches.ids() {
        let key = id.as_str();
        let Some(value) = given.get(key) else {
            continue;
        };
        let layer = match matches.value_source(key) {
            Some(ValueSource::EnvVariable) => &mut from_env,
            Some(ValueSource::CommandLine) => &mut from_flags,
            _ => continue,
        };
        layer.insert(key.to_owned(), value.clone());
        // A palette size given outside the file replaces the file's explicit palette.
        if key == "colors" && given.contains_key("palette") {
            layer.insert(
                "palette".to_owned(),
                Value::Empty(Tag::Default, Empty::None),
            );
        }
    }
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        let toml = Toml::file_exact(path);
        check_keys(&given, path, &toml)?;
        figment = figment.merge(toml);
    }
    let figment = figment
        .merge(Serialized::defaults(from_env))
        .merge(Serialized::defaults(from_flags));
    figment.extract::<T>().map_err(|e| {
        let setting = match e.path.first() {
            Some(key) => key.clone(),
            None => culprit::<T>(&figment, &given).unwrap_or_else(|| "config".into()),
        };
        bad(setting, e.to_string())
    })
}

/// The setting whose value `figment` cannot give `T`, found by trying each alone over the
/// defaults: an error inside a flattened section carries no key.
fn culprit<T>(figment: &Figment, keys: &Dict) -> Option<String>
where
    T: Serialize + DeserializeOwned + Default,
{
    keys.keys()
        .find(|key| {
            figment.find_value(key).is_ok_and(|value| {
                Figment::from(Serialized::defaults(T::default()))
                    .merge(Serialized::default(key, value))
                    .extract::<T>()
                    .is_err()
            })
        })
        .cloned()
}

/// Refuses a file that does not parse or has a key that is no setting of this mode (a typo
/// would otherwise be ignored: serde cannot deny unknown keys of flattened structs).
fn check_keys(
    known: &Dict,
    path: &Path,
    toml: &figment::providers::Data<Toml>,
) -> Result<(), ConfigError> {
    use figment::Provider;
    let data = toml
        .data()
        .map_err(|e| bad("config", format!("{}: {e}", path.display())))?;
    for key in data.values().flat_map(|table| table.keys()) {
        if !known.contains_key(key) {
            return Err(bad(
                "config",
                format!("{}: unknown setting `{key}`", path.display()),
            ));
        }
    }
    Ok(())
}

/// A setting with a bad value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting's name.
    pub setting: String,
    /// Why its value is refused.
    pub reason: String,
}

/// The error for `setting`, refused for `reason`.
pub fn bad(setting: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        reason: reason.into(),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    setting: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(bad(
            setting,
            format!("{value} is not between {min} and {max}"),
        ));
    }
    Ok(())
}

/// `place serve`'s configuration, checked, in the shapes the crates take.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the data lives.
    pub data_dir: PathBuf,
    /// The edge's settings.
    pub edge: EdgeConfig,
    /// The shard's settings.
    pub shard: ShardConfig,
    /// The log format.
    pub log_format: LogFormat,
    /// Time between two timelapse snapshots.
    pub timelapse_snapshot_interval: Duration,
    /// Where `/metrics` is served apart, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeConfig {
    /// Checks every setting and builds what the crates need.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let canvas = self.canvas.validate()?;
        let metrics_listen = self.metrics.address()?;
        let (listen, edge) = self.edge.validate(&canvas, metrics_listen.is_some())?;
        let shard = self.shard.validate(&canvas)?;
        let timelapse_snapshot_interval = self.snapshots.interval()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        Ok(ValidConfig {
            listen,
            data_dir: self.data_dir.clone(),
            edge,
            shard,
            log_format: self.common.log_format,
            timelapse_snapshot_interval,
            metrics_listen,
        })
    }
}

impl ShardSection {
    /// The shard's settings for `canvas`, checked.
    pub fn validate(&self, canvas: &ValidCanvas) -> Result<ShardConfig, ConfigError> {
        in_range("batch_window_ms", self.batch_window_ms, 1, 1000)?;
        in_range("checkpoint_secs", self.checkpoint_secs, 1, 3600)?;
        in_range("commit_linger_us", self.commit_linger_us, 0, 10_000)?;
        Ok(ShardConfig {
            geometry: canvas.geometry,
            color_count: canvas.palette.len(),
            batch_window: Duration::from_millis(self.batch_window_ms),
            commit_linger: Duration::from_micros(self.commit_linger_us),
            checkpoint: CheckpointPolicy {
                max_interval_ms: self.checkpoint_secs as i64 * 1000,
                ..CheckpointPolicy::default()
            },
        })
    }
}

impl EdgeSection {
    /// The edge's address and settings for `canvas`, checked; `metrics_apart`: `/metrics` is
    /// served on an address of its own.
    pub fn validate(
        &self,
        canvas: &ValidCanvas,
        metrics_apart: bool,
    ) -> Result<(SocketAddr, EdgeConfig), ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            bad(
                "listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:3000: {e}",
                    self.listen
                ),
            )
        })?;
        in_range("cooldown_secs", self.cooldown_secs, 0, 86_400)?;
        in_range("max_tiles_per_client", self.max_tiles_per_client, 1, 65_536)?;
        in_range("websocket_ping_secs", self.websocket_ping_secs, 1, 300)?;
        in_range("fanout_threads", self.fanout_threads, 0, 256)?;
        in_range("guest_pow_bits", self.guest_pow_bits, 0, 28)?;
        if let Some(origin) = &self.public_origin {
            if place_edge::http::normalize_origin(origin).is_none() {
                return Err(bad(
                    "public_origin",
                    format!("{origin:?} is not an origin like https://place.example.org"),
                ));
            }
        }
        let edge = EdgeConfig {
            geometry: canvas.geometry,
            palette: canvas.palette.clone(),
            cooldown: Duration::from_secs(self.cooldown_secs),
            max_tiles_per_client: self.max_tiles_per_client,
            guest_rate_per_minute: self.guest_rate_per_minute,
            secure_cookies: self.secure_cookies,
            trust_proxy: self.trust_proxy,
            guest_pow_bits: self.guest_pow_bits,
            metrics_apart,
            public_origin: self.public_origin.clone(),
            plain_loopback: listen.ip().is_loopback(),
            spike: self.spike_config()?,
            limits: self.limits()?,
            fanout_threads: self.fanout_threads,
            ..EdgeConfig::default()
        };
        Ok((listen, edge))
    }

    /// The limits on connections, sockets and requests, checked.
    fn limits(&self) -> Result<Limits, ConfigError> {
        in_range("max_connections", self.max_connections, 16, 1_000_000)?;
        in_range(
            "max_connections_per_address",
            self.max_connections_per_address,
            1,
            1_000_000,
        )?;
        in_range(
            "max_websockets_per_session",
            self.max_websockets_per_session,
            1,
            1000,
        )?;
        in_range(
            "max_websockets_per_address",
            self.max_websockets_per_address,
            1,
            1_000_000,
        )?;
        in_range(
            "header_read_timeout_secs",
            self.header_read_timeout_secs,
            1,
            300,
        )?;
        in_range(
            "request_body_timeout_secs",
            self.request_body_timeout_secs,
            1,
            300,
        )?;
        in_range("ipv4_prefix", self.ipv4_prefix, 8, 32)?;
        in_range("ipv6_prefix", self.ipv6_prefix, 16, 128)?;
        Ok(Limits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            max_websockets_per_session: self.max_websockets_per_session,
            max_websockets_per_address: self.max_websockets_per_address,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            request_body_timeout: Duration::from_secs(self.request_body_timeout_secs),
            placements_per_address_per_minute: self.placements_per_address_per_minute,
            ping_interval: Duration::from_secs(self.websocket_ping_secs),
            addresses: AddressPolicy {
                ipv4_prefix: self.ipv4_prefix,
                ipv6_prefix: self.ipv6_prefix,
            },
        })
    }

    /// The spike alarm's settings, checked.
    fn spike_config(&self) -> Result<place_edge::alarm::SpikeConfig, ConfigError> {
        in_range("spike_cell", self.spike_cell, 8, 1024)?;
        in_range("spike_min_rate", self.spike_min_rate, 1, 1_000_000)?;
        in_range("spike_factor", self.spike_factor, 2, 1000)?;
        in_range("spike_slow_minutes", self.spike_slow_minutes, 0, 1440)?;
        in_range(
            "spike_slow_cooldown_secs",
            self.spike_slow_cooldown_secs,
            1,
            3600,
        )?;
        if let Some(url) = &self.spike_webhook {
            let parsed =
                reqwest::Url::parse(url).map_err(|e| bad("spike_webhook", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad(
                    "spike_webhook",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        Ok(place_edge::alarm::SpikeConfig {
            cell: self.spike_cell,
            min_rate: self.spike_min_rate,
            factor: self.spike_factor,
            webhook: self.spike_webhook.clone(),
            auto_slow: (self.spike_slow_minutes > 0).then(|| place_edge::alarm::AutoSlow {
                duration: Duration::from_secs(self.spike_slow_minutes * 60),
                cooldown: Duration::from_secs(self.spike_slow_cooldown_secs),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let valid = ServeConfig::default().validate().expect("defaults");
        assert_eq!(valid.listen.port(), 3000);
        assert_eq!(valid.edge.palette.len(), 16);
    }

    #[test]
    fn fanout_threads_come_from_the_flag() {
        let threads = |args: &[&str]| {
            let c: ServeConfig = load_from(args, None).expect("valid");
            c.validate().expect("valid").edge.fanout_threads
        };
        assert_eq!(threads(&[]), 0, "the edge's own workers by default");
        assert_eq!(threads(&["--fanout-threads", "3"]), 3);
        let c: ServeConfig = load_from(&["--fanout-threads", "257"], None).expect("parses");
        assert_eq!(
            c.validate().expect_err("too many").setting,
            "fanout_threads"
        );
    }

    #[test]
    fn bad_values_name_their_setting() {
        let check = |c: ServeConfig| c.validate().expect_err("invalid").setting;
        assert_eq!(
            check(ServeConfig {
                canvas: CanvasSection {
                    width: 0,
                    ..Default::default()
                },
                ..Default::default()
            }),
            "width"
        );
        assert_eq!(
            check(ServeConfig {
                canvas: CanvasSection {
                    height: 70_000,
                    ..Default::default()
                },
                ..Default::default()
            }),
            "height"
        );
        assert_eq!(
            check(ServeConfig {
                edge: EdgeSection {
                    listen: "nowhere".into(),
                    ..Default::default()
                },
                ..Default::default()
            }),
            "listen"
        );
        assert_eq!(
            check(ServeConfig {
                canvas: CanvasSection {
                    colors: 300,
                    ..Default::default()
                },
                ..Default::default()
            }),
            "colors"
        );
        assert_eq!(
            check(ServeConfig {
                shard: ShardSection {
                    batch_window_ms: 0,
                    ..Default::default()
                },
                ..Default::default()
            }),
            "batch_window_ms"
        );
        let palette = Some(vec!["#fff".to_string(), "#000000".to_string()]);
        assert_eq!(
            check(ServeConfig {
                canvas: CanvasSection {
                    palette,
                    ..Default::default()
                },
                ..Default::default()
            }),
            "palette"
        );
        assert_eq!(
            check(ServeConfig {
                edge: EdgeSection {
                    spike_webhook: Some("ftp://example.org/x".into()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            "spike_webhook"
        );
        assert_eq!(
            check(ServeConfig {
                edge: EdgeSection {
                    spike_factor: 1,
                    ..Default::default()
                },
                ..Default::default()
            }),
            "spike_factor"
        );
    }

    /// `T` loaded from `args` (flags only: the environment is the process's, tested by
    /// `tests/settings.rs` through the binary) and `file`.
    fn load_from<T>(args: &[&str], file: Option<&str>) -> Result<T, ConfigError>
    where
        T: Args + FromArgMatches + Serialize + DeserializeOwned + Default,
    {
        let command = T::augment_args(clap::Command::new("place")).mut_args(|a| a.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("place").chain(args.iter().copied()))
            .expect("flags parse");
        let parsed = T::from_arg_matches(&matches).expect("flags parse");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("place.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).expect("write");
        }
        load(&parsed, &matches, file.map(|_| path.as_path()))
    }

    #[test]
    fn toml_files_are_read_and_unknown_keys_refused() {
        let file = "width = 128\ncooldown_secs = 1\nlog_format = \"json\"\n";
        let c: ServeConfig = load_from(&[], Some(file)).expect("valid file");
        assert_eq!(
            (
                c.canvas.width,
                c.canvas.height,
                c.edge.cooldown_secs,
                c.common.log_format
            ),
            (128, 2000, 1, LogFormat::Json)
        );
        let typo = load_from::<ServeConfig>(&[], Some("widht = 128\n")).expect_err("typo");
        assert_eq!(typo.setting, "config");
        assert!(typo.reason.contains("widht"), "{typo}");
        let wrong = load_from::<ServeConfig>(&[], Some("width = \"wide\"\n")).expect_err("type");
        assert_eq!(wrong.setting, "width", "{wrong}");
        // Inside a mode's flattened sections too.
        let wrong = load_from::<EdgeNodeConfig>(&[], Some("guest_pow_bits = 300\n"));
        assert_eq!(wrong.expect_err("too large").setting, "guest_pow_bits");
        let wrong = load_from::<ShardNodeConfig>(&[], Some("failover_after_secs = \"x\"\n"));
        assert_eq!(wrong.expect_err("a string").setting, "failover_after_secs");
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_defaults() {
        let file = "width = 128\nheight = 256\npalette = [\"#000000\", \"#ffffff\"]\n";
        let c: ServeConfig = load_from(&["--width", "64"], Some(file)).expect("valid");
        let canvas = &c.canvas;
        assert_eq!(
            (canvas.width, canvas.height, c.edge.cooldown_secs),
            (64, 256, 5)
        );
        assert_eq!(canvas.palette.as_ref().map(Vec::len), Some(2));
        // A palette size given as a flag replaces the file's palette.
        let c: ServeConfig = load_from(&["--colors", "4"], Some(file)).expect("valid");
        assert_eq!((c.canvas.colors, c.canvas.palette), (4, None));
        // A flag left at its default does not hide the file's value.
        let c: ServeConfig = load_from(&["--height", "2000"], Some(file)).expect("valid");
        assert_eq!((c.canvas.width, c.canvas.height), (128, 2000));
    }

    #[test]
    fn every_mode_takes_its_cluster_section_from_flags_or_the_file() {
        let file = "cluster = \"demo\"\nid = \"shard-2\"\nlisten_quic = \"127.0.0.1:7002\"\n\
                    failover_after_secs = 0\nwidth = 640\n";
        let shard: ShardNodeConfig =
            load_from(&["--redis-url", "redis://r:1"], Some(file)).expect("a shard's file");
        assert_eq!(shard.cluster.cluster, "demo");
        assert_eq!(shard.mesh.redis_url, "redis://r:1");
        assert_eq!(shard.canvas.width, 640);
        let options = shard.options().expect("valid shard");
        assert_eq!(
            (options.listen_quic.port(), options.failover_after),
            (7002, None)
        );
        assert_eq!(
            shard.cluster.settings(&shard.mesh).expect("valid").node_id,
            "shard-2"
        );

        let edge: EdgeNodeConfig =
            load_from(&["--id", "edge-1"], Some("cluster = \"demo\"\n")).expect("an edge's file");
        let settings = edge.cluster.settings(&edge.mesh).expect("valid edge");
        assert_eq!(
            (settings.name.as_str(), settings.node_id.as_str()),
            ("demo", "edge-1")
        );
        // A setting of another mode is refused in this one's file.
        let refused = load_from::<EdgeNodeConfig>(&[], Some("listen_quic = \"0.0.0.0:1\"\n"));
        assert!(refused
            .expect_err("not an edge's")
            .reason
            .contains("listen_quic"));
        let refused = load_from::<ServeConfig>(&[], Some("cluster = \"demo\"\n"));
        assert!(refused.expect_err("not serve's").reason.contains("cluster"));
        // Each cluster mode takes only the sections it uses.
        for (file, key) in [
            ("cooldown_secs = 1\n", "cooldown_secs"),
            ("data_dir = \"d\"\n", "data_dir"),
            ("trust_proxy = true\n", "trust_proxy"),
        ] {
            let refused = load_from::<ShardNodeConfig>(&[], Some(file)).expect_err("not a shard's");
            assert!(refused.reason.contains(key), "{refused}");
        }
        for file in ["batch_window_ms = 5\n", "timelapse_snapshot_secs = 5\n"] {
            load_from::<EdgeNodeConfig>(&[], Some(file)).expect_err("not an edge's");
        }
        load_from::<ShardNodeConfig>(&[], Some("amqp_url = \"amqp://x\"\n"))
            .expect_err("not a shard's");
        for file in [
            "listen = \"0.0.0.0:1\"\n",
            "metrics_listen = \"0.0.0.0:1\"\n",
            "redis_url = \"redis://x\"\n",
        ] {
            load_from::<WorkerConfig>(&[], Some(file)).expect_err("not a worker's");
        }

        let worker: WorkerConfig =
            load_from(&[], Some("amqp_url = \"amqp://mq:5672/%2f\"\n")).expect("a worker's file");
        let settings = worker.worker().expect("valid worker");
        assert!(settings.id.starts_with("worker-"), "{}", settings.id);
        assert_eq!(settings.amqp_url, "amqp://mq:5672/%2f");
    }

    #[test]
    fn cluster_settings_are_checked_naming_the_setting() {
        let mesh = MeshSection::default();
        let check = |c: ClusterConfig| c.settings(&mesh).expect_err("invalid").setting;
        let with_id = ClusterConfig {
            id: Some("edge-1".into()),
            ..ClusterConfig::default()
        };
        assert_eq!(check(ClusterConfig::default()), "id");
        for (setting, config) in [
            (
                "cluster",
                ClusterConfig {
                    cluster: "Bad-Name".into(),
                    ..with_id.clone()
                },
            ),
            (
                "database_url",
                ClusterConfig {
                    database_url: "mysql://x".into(),
                    ..with_id.clone()
                },
            ),
        ] {
            assert_eq!(check(config), setting);
        }
        let redis = MeshSection {
            redis_url: "http://x".into(),
            ..MeshSection::default()
        };
        assert_eq!(
            with_id.settings(&redis).expect_err("bad").setting,
            "redis_url"
        );
        let queue = QueueSection {
            amqp_url: "http://x".into(),
        };
        assert_eq!(queue.url().expect_err("bad").setting, "amqp_url");
        let shard = |listen_quic: &str, failover_after_secs| ShardNodeConfig {
            listen_quic: listen_quic.into(),
            failover_after_secs,
            ..ShardNodeConfig::default()
        };
        assert_eq!(
            shard("nowhere", 1).options().expect_err("bad").setting,
            "listen_quic"
        );
        assert_eq!(
            shard("127.0.0.1:7001", 5000)
                .options()
                .expect_err("bad")
                .setting,
            "failover_after_secs"
        );
    }
}
