//! `place`: a real-time collaborative pixel canvas. See `place --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use place::config::{
    defaults, env, CanvasSection, ConfigError, ConfigFile, EdgeNodeConfig, LogFormat, ServeConfig,
    ShardNodeConfig, WorkerConfig,
};
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
    Serve(Mode<ServeConfig>),
    /// Make the cluster's certificate authority (once) and a certificate per node, for the
    /// mutually authenticated QUIC between edges and shards.
    Certs(CertsArgs),
    /// Run a shard of a cluster: owns the tiles the ring gives it, events in PostgreSQL.
    Shard(Mode<ShardNodeConfig>),
    /// Run an edge of a cluster: players' WebSockets and the HTTP API, routing to the shards.
    Edge(Mode<EdgeNodeConfig>),
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
    Worker(Mode<WorkerConfig>),
}

/// A mode's settings (`T`) and the file they may also come from.
#[derive(Args, Debug)]
struct Mode<T: Args> {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    config: T,
}

impl<T: Args + serde::Serialize + serde::de::DeserializeOwned + Default> Mode<T> {
    /// The settings, layered: defaults, the file, the environment, the flags (`matches`).
    fn load(&self, matches: &ArgMatches) -> Result<T, ConfigError> {
        place::config::load(&self.config, matches, self.file.config.as_deref())
    }
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
    #[arg(long, env = env::CLUSTER)]
    cluster: Option<String>,
    /// PostgreSQL URL (with --cluster).
    #[arg(long, env = env::DATABASE_URL, default_value = defaults::DATABASE_URL)]
    database_url: String,
    #[command(flatten)]
    common: Mode<ServeConfig>,
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
    #[arg(long, visible_alias = "cluster-name", env = env::CLUSTER)]
    cluster: Option<String>,
    /// PostgreSQL URL (with --cluster).
    #[arg(long, env = env::DATABASE_URL, default_value = defaults::DATABASE_URL)]
    database_url: String,
    /// Redis URL (with --cluster): the edges check administrators there.
    #[arg(long, env = env::REDIS_URL, default_value = defaults::REDIS_URL)]
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
    #[arg(long, env = env::CLUSTER)]
    cluster: Option<String>,
    /// PostgreSQL URL (with --cluster).
    #[arg(long, env = env::DATABASE_URL, default_value = defaults::DATABASE_URL)]
    database_url: String,
}

#[derive(Args, Debug)]
struct RingArgs {
    #[command(subcommand)]
    action: RingAction,
    /// Redis URL.
    #[arg(long, env = env::REDIS_URL, default_value = defaults::REDIS_URL, global = true)]
    redis_url: String,
    /// The cluster's name.
    #[arg(long, env = env::CLUSTER, default_value = defaults::CLUSTER, global = true)]
    cluster: String,
    /// Canvas width, for the tile counts.
    #[arg(long, env = env::WIDTH, default_value_t = CanvasSection::default().width, global = true)]
    width: u32,
    /// Canvas height, for the tile counts.
    #[arg(long, env = env::HEIGHT, default_value_t = CanvasSection::default().height, global = true)]
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
        #[arg(long, env = env::CERTS, default_value = defaults::CERTS)]
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

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        // A value a setting cannot take, from a flag or the environment (clap names the flag):
        // a usage error like every other bad setting.
        Err(e) if e.use_stderr() && is_bad_value(&e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => e.exit(),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The subcommand's own matches: which of its settings came from flags or the environment.
    let Some((_, sub)) = matches.subcommand() else {
        unreachable!("clap requires a subcommand");
    };
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
        Command::Shard(mode) => {
            let checked = configured(|| {
                let config = mode.load(sub)?;
                Ok((config.validate()?, config.common.log_format))
            });
            match checked {
                Ok((node, log_format)) => run_node(log_format, run_shard(node)),
                Err(code) => code,
            }
        }
        Command::Edge(mode) => {
            let checked = configured(|| {
                let config = mode.load(sub)?;
                Ok((config.validate()?, config.common.log_format))
            });
            match checked {
                Ok((node, log_format)) => run_node(log_format, run_edge(node)),
                Err(code) => code,
            }
        }
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
        Command::Timelapse(args) => match configured(|| args.common.load(sub)?.validate()) {
            Ok(config) => run_timelapse(args, config),
            Err(code) => code,
        },
        Command::Worker(mode) => {
            let checked = configured(|| {
                let config = mode.load(sub)?;
                Ok((config.worker()?, config.common.log_format))
            });
            match checked {
                Ok((settings, log_format)) => run_node(log_format, run_worker(settings)),
                Err(code) => code,
            }
        }
        Command::Serve(mode) => {
            let config = match configured(|| mode.load(sub)?.validate()) {
                Ok(config) => config,
                Err(code) => return code,
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

/// Whether clap refused a value (rather than an unknown flag or a missing argument).
fn is_bad_value(e: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    )
}

/// A mode's configuration, loaded and checked (`check`) before anything starts; a bad value is
/// reported, naming the setting, and becomes the exit code.
fn configured<T>(check: impl FnOnce() -> Result<T, ConfigError>) -> Result<T, ExitCode> {
    check().map_err(|e| {
        eprintln!("place: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Runs a cluster node (`run`: an edge, a shard, a worker) until it stops, logging as `log_format` asks.
fn run_node(
    log_format: LogFormat,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    init_logging(log_format);
    let result = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("place: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `place shard`, until a signal.
async fn run_shard(config: place::config::ValidShardNode) -> anyhow::Result<()> {
    if let Some(address) = config.metrics_listen {
        let app = place_edge::telemetry::shard_app();
        serve_metrics(address, app).await?;
    }
    let cluster = &config.cluster;
    let node = place::cluster::start_shard(&config.shard, cluster, config.options).await?;
    println!(
        "shard {} listening on quic://{}",
        cluster.node_id, node.quic_addr
    );
    node.run_until(shutdown_signal()).await;
    Ok(())
}

/// `place edge`, until a signal.
async fn run_edge(config: place::config::ValidEdgeNode) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let edge = place::cluster::start_edge(&config.edge, &config.cluster, &config.amqp_url).await?;
    if let Some(address) = config.metrics_listen {
        let app = place_edge::http::metrics_app(std::sync::Arc::clone(&edge));
        serve_metrics(address, app).await?;
    }
    println!("listening on http://{local}");
    place::cluster::serve_edge(edge, listener, shutdown_signal()).await
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

fn run_timelapse(args: TimelapseArgs, config: place::config::ValidConfig) -> ExitCode {
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
                        let store =
                            place_store::Store::connect_postgres(&args.database_url, cluster)
                                .await
                                .with_context(|| format!("connecting to {}", args.database_url))?;
                        let geometry = store.canvas_geometry(configured).await?;
                        (store, geometry)
                    }
                    None => {
                        let store = place_store::Store::open_sqlite(&config.data_dir)
                            .await
                            .with_context(|| format!("opening {}", config.data_dir.display()))?;
                        let geometry = store.canvas_geometry(configured).await?;
                        (store, geometry)
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

/// `place worker`, until a signal.
async fn run_worker(settings: place::worker::WorkerSettings) -> anyhow::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    println!("worker {} ready", settings.id);
    place::worker::run(&settings, stop).await
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
