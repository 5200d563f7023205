//! `place`: a real-time collaborative pixel canvas. See `place --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use place::config::{env, LogFormat, ServeConfig};
use place::ring_cli::RingCommand;
use tokio::net::TcpListener;

/// Exit status for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "place",
    version,
    about = "A real-time collaborative pixel canvas"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process on an embedded store (no Redis, no PostgreSQL).
    Serve(ServeArgs),
    /// Make the cluster's certificate authority (once) and a certificate per node, for the
    /// mutually authenticated QUIC between edges and shards.
    Certs(CertsArgs),
    /// Run a shard of a cluster: owns the tiles the ring gives it, events in PostgreSQL.
    Shard(ShardArgs),
    /// Run an edge of a cluster: players' WebSockets and the HTTP API, routing to the shards.
    Edge(EdgeArgs),
    /// Set up or show the cluster's ring of shards (kept in Redis).
    Ring(RingArgs),
    /// Check that a running canvas equals a replay of its event log, pixel for pixel.
    Verify(VerifyArgs),
    /// Operator commands on the stores (no server needed).
    Admin(AdminArgs),
    /// Render a timelapse of the canvas (or a rectangle) between two times from the event log,
    /// exact at every frame, into an animated GIF, an animated PNG or a directory of PNGs.
    Timelapse(TimelapseArgs),
    /// Run a cluster's timelapse worker: renders the jobs queued in RabbitMQ, takes snapshots.
    Worker(WorkerArgs),
}

#[derive(Args, Debug)]
struct TimelapseArgs {
    /// The first frame's time: epoch ms, RFC 3339, `now-2h` (any span: `90m`, `1h30m`, `2days`), or `start`.
    #[arg(long)]
    from: String,
    /// The last frame's time (as --from).
    #[arg(long, default_value = "now")]
    to: String,
    /// A rectangle `x,y,width,height` [default: the whole canvas].
    #[arg(long)]
    rect: Option<String>,
    /// Frames, evenly spaced from --from to --to.
    #[arg(long, default_value_t = 60)]
    frames: u32,
    /// Milliseconds each frame is shown.
    #[arg(long, default_value_t = 100)]
    delay_ms: u32,
    /// `file.gif`, `file.png` (animated PNG), or `dir/` for one PNG per frame.
    #[arg(long)]
    out: PathBuf,
    /// The cluster's name (its PostgreSQL schema); without it, the data directory's store.
    #[arg(long, env = "PLACE_CLUSTER")]
    cluster: Option<String>,
    /// PostgreSQL URL (with --cluster).
    #[arg(
        long,
        env = "PLACE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    #[command(flatten)]
    common: ServeArgs,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// The cluster's name: its PostgreSQL schema and its job queue.
    #[arg(long, env = "PLACE_CLUSTER", default_value = "place")]
    cluster: String,
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "PLACE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// RabbitMQ URL.
    #[arg(long, env = "PLACE_AMQP_URL", default_value = place_timelapse::queue::DEFAULT_AMQP_URL)]
    amqp_url: String,
    /// This worker's name [default: worker-PID].
    #[arg(long, env = "PLACE_NODE_ID")]
    id: Option<String>,
    /// Pause after each frame, in ms (tests that kill a worker mid-job).
    #[arg(long, default_value_t = 0, hide = true)]
    throttle_ms: u64,
    #[command(flatten)]
    common: ServeArgs,
}

#[derive(Args, Debug)]
struct AdminArgs {
    #[command(subcommand)]
    action: AdminAction,
}

#[derive(Subcommand, Debug)]
enum AdminAction {
    /// Make a registered user, `--admin` for an administrator. The password is read from
    /// standard input when it is piped, else prompted for (twice, without echo).
    CreateUser {
        /// The username: 3 to 32 ASCII letters, digits, '_' or '-'.
        name: String,
        /// Make an administrator.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        store: UserStoreArgs,
    },
    /// Make a registered user an administrator, at once for their sessions on every edge.
    Promote {
        /// The username (any letter case).
        name: String,
        #[command(flatten)]
        store: UserStoreArgs,
    },
    /// Take a user's administrator rights away, at once for their sessions on every edge.
    Demote {
        /// The username (any letter case).
        name: String,
        #[command(flatten)]
        store: UserStoreArgs,
    },
    /// Grow the canvas of a running server (`place serve` or any cluster edge) through its admin
    /// API, live: only growth, each side up to 65536; nothing placed moves, the new area is
    /// empty. The administrator's password is read from standard input when it is piped, else
    /// prompted for.
    Resize {
        /// The new width in pixels.
        width: u32,
        /// The new height in pixels.
        height: u32,
        /// The server: an edge's or `place serve`'s `http://host:port`.
        #[arg(long, env = "PLACE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An administrator's username.
        #[arg(long)]
        user: String,
    },
}

/// Where `place admin` finds the users.
#[derive(Args, Debug)]
struct UserStoreArgs {
    /// The embedded store's directory (`place serve`).
    #[arg(long, conflicts_with = "cluster")]
    data_dir: Option<PathBuf>,
    /// The cluster's name (its PostgreSQL schema and Redis key prefix).
    #[arg(long, visible_alias = "cluster-name", env = "PLACE_CLUSTER")]
    cluster: Option<String>,
    /// PostgreSQL URL (with --cluster).
    #[arg(
        long,
        env = "PLACE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Redis URL (with --cluster): the edges check administrators there.
    #[arg(
        long,
        env = "PLACE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
}

impl UserStoreArgs {
    /// The store named, or `None` when neither `--data-dir` nor `--cluster` is given.
    fn store(self) -> Option<place::admin::UserStore> {
        match (self.data_dir, self.cluster) {
            (Some(dir), _) => Some(place::admin::UserStore::DataDir(dir)),
            (None, Some(name)) => Some(place::admin::UserStore::Cluster {
                database_url: self.database_url,
                name,
                redis_url: self.redis_url,
            }),
            (None, None) => None,
        }
    }
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The server (an edge, the load balancer, or `place serve`).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The embedded store's directory (`place serve`).
    #[arg(long, conflicts_with = "cluster")]
    data_dir: Option<PathBuf>,
    /// The cluster's name (its PostgreSQL schema).
    #[arg(long, env = "PLACE_CLUSTER")]
    cluster: Option<String>,
    /// PostgreSQL URL (with --cluster).
    #[arg(
        long,
        env = "PLACE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

/// How to reach the cluster's shared services.
#[derive(Args, Debug)]
struct ClusterArgs {
    /// This node's id (its certificate name; for a shard, its id in the ring).
    #[arg(long, env = "PLACE_NODE_ID")]
    id: String,
    /// Redis URL.
    #[arg(
        long,
        env = "PLACE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "PLACE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// The cluster's name: its PostgreSQL schema and Redis key prefix.
    #[arg(long, env = "PLACE_CLUSTER", default_value = "place")]
    cluster: String,
    /// Directory with ca.pem and this node's certificate (`place certs`).
    #[arg(long, env = "PLACE_CERTS", default_value = "certs")]
    certs: PathBuf,
    /// RabbitMQ URL (edges publish timelapse render jobs there for `place worker`).
    #[arg(long, env = "PLACE_AMQP_URL", default_value = place_timelapse::queue::DEFAULT_AMQP_URL)]
    amqp_url: String,
}

impl ClusterArgs {
    fn settings(&self) -> place::cluster::ClusterSettings {
        place::cluster::ClusterSettings {
            redis_url: self.redis_url.clone(),
            database_url: self.database_url.clone(),
            name: self.cluster.clone(),
            certs: self.certs.clone(),
            node_id: self.id.clone(),
            amqp_url: self.amqp_url.clone(),
        }
    }
}

#[derive(Args, Debug)]
struct ShardArgs {
    /// UDP address for QUIC from the edges.
    #[arg(long, env = "PLACE_LISTEN_QUIC", default_value = "127.0.0.1:7001")]
    listen_quic: std::net::SocketAddr,
    /// Take a shard out of the ring once its report (1 s time to live) has been missing for this
    /// many more seconds (its tiles go to the next owners; a shard only presumed dead is shut out
    /// by the tiles' fences and rejoins when it runs again); 0: never.
    #[arg(long, env = "PLACE_FAILOVER_AFTER_SECS", default_value_t = 1)]
    failover_after_secs: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    common: ServeArgs,
}

#[derive(Args, Debug)]
struct EdgeArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    common: ServeArgs,
}

#[derive(Args, Debug)]
struct RingArgs {
    #[command(subcommand)]
    action: RingAction,
    /// Redis URL.
    #[arg(
        long,
        env = "PLACE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    /// The cluster's name.
    #[arg(long, env = "PLACE_CLUSTER", default_value = "place", global = true)]
    cluster: String,
    /// Canvas width, for the tile counts.
    #[arg(long, env = "PLACE_WIDTH", default_value_t = 2000, global = true)]
    width: u32,
    /// Canvas height, for the tile counts.
    #[arg(long, env = "PLACE_HEIGHT", default_value_t = 2000, global = true)]
    height: u32,
    /// Seconds to wait for a handoff to complete.
    #[arg(long, default_value_t = 120, global = true)]
    timeout_secs: u64,
}

#[derive(Subcommand, Debug)]
enum RingAction {
    /// Store the first ring: `--shard ID=HOST:PORT` for each shard.
    Init {
        /// A shard as ID=HOST:PORT (its QUIC address).
        #[arg(long = "shard", required = true)]
        shards: Vec<String>,
        /// Replace an existing ring.
        #[arg(long)]
        force: bool,
    },
    /// Print the ring: epoch, shards, how many tiles each owns and how each is doing.
    Show,
    /// Add a running shard to the ring while the cluster serves; prints which tiles move and the
    /// handoff's progress, and the new shard's id last once the handoff is complete.
    Add {
        /// The shard's id (as it runs with `--id`).
        id: String,
        /// Its QUIC address, HOST:PORT.
        addr: String,
        /// Directory of the cluster's certificates, to check the shard's.
        #[arg(long, env = "PLACE_CERTS", default_value = "certs")]
        certs: PathBuf,
        /// Whose certificate (in --certs) to present to it: an edge's, since a shard accepts
        /// only edges [default: the first edge-* there].
        #[arg(long)]
        identity: Option<String>,
    },
    /// Take a shard out of the ring while the cluster serves: its tiles move to the others
    /// (which load them) before it is left idle; prints the handoff's progress.
    Remove {
        /// The shard's id.
        id: String,
    },
}

#[derive(Args, Debug)]
struct CertsArgs {
    /// Directory for ca.pem, ca.key and NODE.pem / NODE.key; an existing authority there is reused.
    #[arg(long)]
    out: PathBuf,
    /// Node names (shard and edge ids), comma separated; the name gives the role written into
    /// the certificate: `shard-*` a shard, `edge-*` an edge (other names are refused).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
}

/// Flags override environment variables, which override the TOML file, which overrides defaults.
#[derive(Args, Debug)]
struct ServeArgs {
    /// TOML configuration file (settings as in `ServeConfig`).
    #[arg(long, env = env::CONFIG)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = env::LISTEN)]
    listen: Option<String>,
    /// Directory of the embedded store [default: ./place-data].
    #[arg(long, env = env::DATA_DIR)]
    data_dir: Option<PathBuf>,
    /// Canvas width in pixels [default: 2000].
    #[arg(long, env = env::WIDTH)]
    width: Option<u32>,
    /// Canvas height in pixels [default: 2000].
    #[arg(long, env = env::HEIGHT)]
    height: Option<u32>,
    /// Seconds between two placements of one user [default: 5].
    #[arg(long, env = env::COOLDOWN_SECS)]
    cooldown_secs: Option<u64>,
    /// Palette size, 2 to 256 [default: 16].
    #[arg(long, env = env::COLORS)]
    colors: Option<usize>,
    /// Milliseconds a tile's changes are gathered into one batch [default: 10].
    #[arg(long, env = env::BATCH_WINDOW_MS)]
    batch_window_ms: Option<u64>,
    /// Tiles one connection may subscribe to [default: 256].
    #[arg(long, env = env::MAX_TILES_PER_CLIENT)]
    max_tiles_per_client: Option<usize>,
    /// Guest sessions per IP address per minute, 0 for no limit [default: 30].
    #[arg(long, env = env::GUEST_RATE_PER_MINUTE)]
    guest_rate_per_minute: Option<u32>,
    /// Seconds between checkpoints [default: 30].
    #[arg(long, env = env::CHECKPOINT_SECS)]
    checkpoint_secs: Option<u64>,
    /// Log format [default: pretty].
    #[arg(long, env = env::LOG_FORMAT, value_enum)]
    log_format: Option<LogFormat>,
    /// Mark the session cookie Secure (served over HTTPS) [default: false].
    #[arg(long, env = env::SECURE_COOKIES, num_args = 0..=1, default_missing_value = "true")]
    secure_cookies: Option<bool>,
    /// Take client addresses from X-Forwarded-For (only behind a proxy that sets it)
    /// [default: false].
    #[arg(long, env = env::TRUST_PROXY, num_args = 0..=1, default_missing_value = "true")]
    trust_proxy: Option<bool>,
    /// Seconds between two timelapse snapshots [default: 600].
    #[arg(long, env = env::TIMELAPSE_SNAPSHOT_SECS)]
    timelapse_snapshot_secs: Option<u64>,
    /// Open TCP connections the process holds [default: 20000].
    #[arg(long, env = env::MAX_CONNECTIONS)]
    max_connections: Option<usize>,
    /// Open TCP connections from one network [default: 256].
    #[arg(long, env = env::MAX_CONNECTIONS_PER_ADDRESS)]
    max_connections_per_address: Option<u32>,
    /// Open WebSockets of one session [default: 8].
    #[arg(long, env = env::MAX_WEBSOCKETS_PER_SESSION)]
    max_websockets_per_session: Option<u32>,
    /// Open WebSockets from one network [default: 200].
    #[arg(long, env = env::MAX_WEBSOCKETS_PER_ADDRESS)]
    max_websockets_per_address: Option<u32>,
    /// Seconds for a request's head to arrive [default: 10].
    #[arg(long, env = env::HEADER_READ_TIMEOUT_SECS)]
    header_read_timeout_secs: Option<u64>,
    /// Seconds for a request's body to arrive [default: 10].
    #[arg(long, env = env::REQUEST_BODY_TIMEOUT_SECS)]
    request_body_timeout_secs: Option<u64>,
    /// Placements one network may make per minute, 0 for no limit [default: 600].
    #[arg(long, env = env::PLACEMENTS_PER_ADDRESS_PER_MINUTE)]
    placements_per_address_per_minute: Option<u32>,
    /// The site's public origin, e.g. https://place.example.org [default: none].
    #[arg(long, env = env::PUBLIC_ORIGIN)]
    public_origin: Option<String>,
    /// An address of its own for GET /metrics (a shard serves its metrics there too)
    /// [default: none].
    #[arg(long, env = env::METRICS_LISTEN)]
    metrics_listen: Option<String>,
    /// Proof of work a new guest pays, in bits; 0 for none [default: 16].
    #[arg(long, env = env::GUEST_POW_BITS)]
    guest_pow_bits: Option<u8>,
    /// Seconds between two pings of a WebSocket [default: 20].
    #[arg(long, env = env::WEBSOCKET_PING_SECS)]
    websocket_ping_secs: Option<u64>,
    /// IPv4 prefix length of a network for per-address limits [default: 32].
    #[arg(long, env = env::IPV4_PREFIX)]
    ipv4_prefix: Option<u8>,
    /// IPv6 prefix length of a network for per-address limits [default: 64].
    #[arg(long, env = env::IPV6_PREFIX)]
    ipv6_prefix: Option<u8>,
    /// Side in pixels of a cell the spike alarm counts placements in [default: 64].
    #[arg(long, env = env::SPIKE_CELL)]
    spike_cell: Option<u32>,
    /// Placements a second of a cell, on one edge, that may raise a spike alarm [default: 20].
    #[arg(long, env = env::SPIKE_MIN_RATE)]
    spike_min_rate: Option<u32>,
    /// How many times its moving baseline a cell's rate must be to raise one [default: 5].
    #[arg(long, env = env::SPIKE_FACTOR)]
    spike_factor: Option<u32>,
    /// A URL each spike alarm is POSTed to as JSON [default: none].
    #[arg(long, env = env::SPIKE_WEBHOOK)]
    spike_webhook: Option<String>,
    /// Minutes an alarmed cell is slowed down by itself; 0 only alarms [default: 0].
    #[arg(long, env = env::SPIKE_SLOW_MINUTES)]
    spike_slow_minutes: Option<u64>,
    /// Cooldown in seconds of that automatic slow-down [default: 30].
    #[arg(long, env = env::SPIKE_SLOW_COOLDOWN_SECS)]
    spike_slow_cooldown_secs: Option<u64>,
}

impl ServeArgs {
    fn into_config(self) -> Result<ServeConfig, place::config::ConfigError> {
        let mut c = match &self.config {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.width {
            c.width = v;
        }
        if let Some(v) = self.height {
            c.height = v;
        }
        if let Some(v) = self.cooldown_secs {
            c.cooldown_secs = v;
        }
        if let Some(v) = self.colors {
            c.colors = v;
        }
        if let Some(v) = self.batch_window_ms {
            c.batch_window_ms = v;
        }
        if let Some(v) = self.max_tiles_per_client {
            c.max_tiles_per_client = v;
        }
        if let Some(v) = self.guest_rate_per_minute {
            c.guest_rate_per_minute = v;
        }
        if let Some(v) = self.checkpoint_secs {
            c.checkpoint_secs = v;
        }
        if let Some(v) = self.log_format {
            c.log_format = v;
        }
        if let Some(v) = self.secure_cookies {
            c.secure_cookies = v;
        }
        if let Some(v) = self.trust_proxy {
            c.trust_proxy = v;
        }
        if let Some(v) = self.timelapse_snapshot_secs {
            c.timelapse_snapshot_secs = v;
        }
        if let Some(v) = self.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = self.max_connections_per_address {
            c.max_connections_per_address = v;
        }
        if let Some(v) = self.max_websockets_per_session {
            c.max_websockets_per_session = v;
        }
        if let Some(v) = self.max_websockets_per_address {
            c.max_websockets_per_address = v;
        }
        if let Some(v) = self.header_read_timeout_secs {
            c.header_read_timeout_secs = v;
        }
        if let Some(v) = self.request_body_timeout_secs {
            c.request_body_timeout_secs = v;
        }
        if let Some(v) = self.placements_per_address_per_minute {
            c.placements_per_address_per_minute = v;
        }
        if let Some(v) = self.public_origin {
            c.public_origin = Some(v);
        }
        if let Some(v) = self.metrics_listen {
            c.metrics_listen = Some(v);
        }
        if let Some(v) = self.guest_pow_bits {
            c.guest_pow_bits = v;
        }
        if let Some(v) = self.websocket_ping_secs {
            c.websocket_ping_secs = v;
        }
        if let Some(v) = self.ipv4_prefix {
            c.ipv4_prefix = v;
        }
        if let Some(v) = self.ipv6_prefix {
            c.ipv6_prefix = v;
        }
        if let Some(v) = self.spike_cell {
            c.spike_cell = v;
        }
        if let Some(v) = self.spike_min_rate {
            c.spike_min_rate = v;
        }
        if let Some(v) = self.spike_factor {
            c.spike_factor = v;
        }
        if let Some(v) = self.spike_webhook {
            c.spike_webhook = Some(v);
        }
        if let Some(v) = self.spike_slow_minutes {
            c.spike_slow_minutes = v;
        }
        if let Some(v) = self.spike_slow_cooldown_secs {
            c.spike_slow_cooldown_secs = v;
        }
        if self.colors.is_some() {
            c.palette = None;
        }
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Certs(args) => match place_cluster::tls::write_certs(&args.out, &args.nodes) {
            Ok(()) => {
                println!(
                    "certificates for {} in {}",
                    args.nodes.join(", "),
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("place: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Shard(args) => {
            let options = place::cluster::ShardOptions {
                listen_quic: args.listen_quic,
                failover_after: (args.failover_after_secs > 0)
                    .then(|| std::time::Duration::from_secs(args.failover_after_secs)),
            };
            run_node(args.common, args.cluster, Some(options))
        }
        Command::Edge(args) => run_node(args.common, args.cluster, None),
        Command::Ring(args) => match run_ring(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("place: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Verify(args) => match run_verify(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("place: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Admin(AdminArgs { action }) => {
            let (name, store_args, change) = match action {
                AdminAction::CreateUser { name, admin, store } => {
                    (name, store, AdminChange::Create { admin })
                }
                AdminAction::Promote { name, store } => (name, store, AdminChange::SetAdmin(true)),
                AdminAction::Demote { name, store } => (name, store, AdminChange::SetAdmin(false)),
                AdminAction::Resize {
                    width,
                    height,
                    url,
                    user,
                } => return run_resize(url, user, width, height),
            };
            let Some(store) = store_args.store() else {
                eprintln!("place: say where the users are: --data-dir DIR or --cluster NAME");
                return ExitCode::from(EXIT_CONFIG);
            };
            match change {
                AdminChange::Create { admin } => run_create_user(&store, &name, admin),
                AdminChange::SetAdmin(admin) => run_set_admin(&store, &name, admin),
            }
        }
        Command::Timelapse(args) => run_timelapse(args),
        Command::Worker(args) => run_worker(args),
        Command::Serve(args) => {
            let config = match args.into_config().and_then(|c| c.validate()) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("place: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging(config.log_format);
            match run_serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("place: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// A cluster process's configuration, checked with its own settings (`check`) before anything
/// starts; a bad value is reported and becomes the exit code.
fn cluster_config(
    common: ServeArgs,
    check: impl FnOnce() -> Result<(), place::config::ConfigError>,
) -> Result<place::config::ValidConfig, ExitCode> {
    common
        .into_config()
        .and_then(|c| c.validate())
        .and_then(|c| check().map(|()| c))
        .map_err(|e| {
            eprintln!("place: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
}

/// `place shard` (with a QUIC address) or `place edge`.
fn run_node(
    common: ServeArgs,
    cluster: ClusterArgs,
    shard: Option<place::cluster::ShardOptions>,
) -> ExitCode {
    let settings = cluster.settings();
    let config = match cluster_config(common, || settings.validate()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log_format);
    let result = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                match shard {
                    Some(options) => {
                        if let Some(address) = config.metrics_listen {
                            let app = place_edge::telemetry::shard_app();
                            serve_metrics(address, app).await?;
                        }
                        let node = place::cluster::start_shard(&config, &settings, options).await?;
                        println!(
                            "shard {} listening on quic://{}",
                            settings.node_id, node.quic_addr
                        );
                        node.run_until(shutdown_signal()).await;
                        Ok(())
                    }
                    None => {
                        let listener = TcpListener::bind(config.listen)
                            .await
                            .with_context(|| format!("binding {}", config.listen))?;
                        let local = listener.local_addr()?;
                        let edge = place::cluster::start_edge(&config, &settings).await?;
                        if let Some(address) = config.metrics_listen {
                            let app = place_edge::http::metrics_app(std::sync::Arc::clone(&edge));
                            serve_metrics(address, app).await?;
                        }
                        println!("listening on http://{local}");
                        place::cluster::serve_edge(edge, listener, shutdown_signal()).await
                    }
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("place: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_ring(args: RingArgs) -> anyhow::Result<()> {
    let geometry = place_tiles::CanvasGeometry::new(args.width, args.height)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let redis = redis::Client::open(args.redis_url.as_str())?
            .get_connection_manager()
            .await
            .with_context(|| format!("connecting to Redis at {}", args.redis_url))?;
        let store = place_cluster::RingStore::new(redis, &format!("place:{}:", args.cluster));
        let command = match args.action {
            RingAction::Init { shards, force } => {
                let shards = shards
                    .iter()
                    .map(|s| {
                        let (id, addr) = s
                            .split_once('=')
                            .with_context(|| format!("{s:?} is not ID=HOST:PORT"))?;
                        Ok(place_cluster::ShardInfo {
                            id: id.to_owned(),
                            addr: addr.to_owned(),
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                RingCommand::Init { shards, force }
            }
            RingAction::Show => RingCommand::Show,
            RingAction::Add {
                id,
                addr,
                certs,
                identity,
            } => RingCommand::Add {
                shard: place_cluster::ShardInfo { id, addr },
                certs,
                identity,
            },
            RingAction::Remove { id } => RingCommand::Remove { id },
        };
        let timeout = std::time::Duration::from_secs(args.timeout_secs);
        place::ring_cli::run(&store, geometry, command, timeout).await
    })
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let source = match (args.data_dir, args.cluster) {
        (Some(dir), _) => place::verify::LogSource::DataDir(dir),
        (None, Some(cluster)) => place::verify::LogSource::Postgres {
            url: args.database_url,
            cluster,
        },
        (None, None) => {
            anyhow::bail!("say where the event log is: --data-dir DIR or --cluster NAME")
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime.block_on(place::verify::verify(&args.url, &source))?;
    if report.differing == 0 {
        println!(
            "OK: all {} pixels equal a replay of the event log",
            report.pixels
        );
        return Ok(true);
    }
    println!(
        "MISMATCH: {} of {} pixels differ from a replay of the event log",
        report.differing, report.pixels
    );
    for (x, y, live, log) in report.differences {
        println!("  ({x},{y}): live {live}, log {log}");
    }
    Ok(false)
}

/// What `place admin` does to a user.
enum AdminChange {
    Create { admin: bool },
    SetAdmin(bool),
}

/// `place admin promote` and `demote`.
fn run_set_admin(store: &place::admin::UserStore, name: &str, admin: bool) -> ExitCode {
    run_admin(place::admin::set_admin(store, name, admin), |user| {
        let now = if user.is_admin {
            "an administrator"
        } else {
            "no longer an administrator"
        };
        format!("{} (id {}) is {now}", user.username, user.id)
    })
}

fn run_create_user(store: &place::admin::UserStore, name: &str, admin: bool) -> ExitCode {
    let password = match read_new_password(name) {
        Ok(password) => password,
        Err(e) => {
            eprintln!("place: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    run_admin(
        place::admin::create_user(store, name, password, admin),
        |user| {
            let kind = if user.is_admin {
                "administrator"
            } else {
                "user"
            };
            format!("created {kind} {} (id {})", user.username, user.id)
        },
    )
}

/// Runs a `place admin` command: prints what `done` says of its user, or the error (exit 64 for
/// a usage error, else 1).
fn run_admin(
    command: impl std::future::Future<Output = Result<place_store::User, place::admin::AdminError>>,
    done: impl FnOnce(&place_store::User) -> String,
) -> ExitCode {
    let outcome = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .map_err(|e| (false, format!("{e:#}")))
        .and_then(|runtime| {
            runtime
                .block_on(command)
                .map_err(|e| (e.is_usage(), e.to_string()))
        });
    match outcome {
        Ok(user) => {
            println!("{}", done(&user));
            ExitCode::SUCCESS
        }
        Err((usage, message)) => {
            eprintln!("place: {message}");
            if usage {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `place admin resize`: signs in at `url` as `user` and grows the canvas.
fn run_resize(url: String, user: String, width: u32, height: u32) -> ExitCode {
    let outcome = read_password(&user).and_then(|password| {
        let request = place::resize_cli::ResizeRequest {
            url,
            username: user,
            password,
            width,
            height,
        };
        tokio::runtime::Runtime::new()
            .context("starting the runtime")?
            .block_on(place::resize_cli::resize(&request))
    });
    match outcome {
        Ok(grown) => {
            println!(
                "canvas grown from {}x{} to {}x{}",
                grown["from"]["width"], grown["from"]["height"], grown["width"], grown["height"]
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("place: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A password: the first line of standard input when it is not a terminal, else typed at a
/// prompt without echo.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    rpassword::prompt_password(format!("password for {name}: ")).context("reading the password")
}

/// The new user's password: the first line of standard input when it is not a terminal, else
/// typed twice at a prompt without echo.
fn read_new_password(name: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return read_password(name);
    }
    let password = read_password(name)?;
    let again = rpassword::prompt_password("the same again: ").context("reading the password")?;
    anyhow::ensure!(password == again, "the two passwords differ");
    Ok(password)
}

/// Binds `address` and serves `/metrics` there for the life of the process.
async fn serve_metrics(address: std::net::SocketAddr, app: axum::Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} for /metrics"))?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(place_edge::server::serve_internal(listener, app));
    Ok(())
}

fn run_serve(config: place::config::ValidConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local = listener.local_addr()?;
        let services = place::serve::start(&config).await?;
        if let Some(address) = config.metrics_listen {
            let app = place_edge::http::metrics_app(std::sync::Arc::clone(&services.edge));
            serve_metrics(address, app).await?;
        }
        // Printed once the canvas is restored and the server is ready; tests and scripts read
        // this line to learn the port.
        println!("listening on http://{local}");
        services.serve(listener, shutdown_signal()).await
    })
}

fn run_timelapse(args: TimelapseArgs) -> ExitCode {
    let config = match args.common.into_config().and_then(|c| c.validate()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("place: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let request = place::timelapse_cli::Request {
        from: args.from,
        to: args.to,
        rect: args.rect,
        frames: args.frames,
        delay_ms: args.delay_ms,
        out: args.out,
    };
    let result = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                let configured = config.edge.geometry;
                let (source, geometry) = match &args.cluster {
                    Some(cluster) => {
                        let store = place_store::PgStore::connect(&args.database_url, cluster)
                            .await
                            .with_context(|| format!("connecting to {}", args.database_url))?;
                        let geometry = store.canvas_geometry(configured).await?;
                        (place_timelapse::Source::Postgres(store), geometry)
                    }
                    None => {
                        let store = place_store::EmbeddedStore::open(&config.data_dir)
                            .await
                            .with_context(|| format!("opening {}", config.data_dir.display()))?;
                        let geometry = store.canvas_geometry(configured).await?;
                        (place_timelapse::Source::Embedded(store), geometry)
                    }
                };
                place::timelapse_cli::run(&source, geometry, &config.edge.palette, &request).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("place: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_worker(args: WorkerArgs) -> ExitCode {
    let settings = place::worker::WorkerSettings {
        database_url: args.database_url,
        cluster: args.cluster,
        amqp_url: args.amqp_url,
        id: args
            .id
            .unwrap_or_else(|| format!("worker-{}", std::process::id())),
        throttle: std::time::Duration::from_millis(args.throttle_ms),
    };
    let config = match cluster_config(args.common, || settings.validate()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log_format);
    let result = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                let stop = tokio_util::sync::CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    on_signal.cancel();
                });
                println!("worker {} ready", settings.id);
                place::worker::run(&config, &settings, stop).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("place: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
