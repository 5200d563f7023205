//! The configuration of `place serve`: one documented struct read from defaults, an optional
//! TOML file, environment variables and flags (later ones win), and validated before any port is
//! bound. A bad value is reported with the setting's name and the reason; the binary exits 64.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use place_edge::address::AddressPolicy;
use place_edge::server::Limits;
use place_edge::EdgeConfig;
use place_shard::{CheckpointPolicy, ShardConfig};
use place_tiles::{CanvasGeometry, Palette};
use serde::{Deserialize, Serialize};

/// Environment variable names, one per setting.
pub mod env {
    /// Path of a TOML configuration file.
    pub const CONFIG: &str = "PLACE_CONFIG";
    /// `listen`.
    pub const LISTEN: &str = "PLACE_LISTEN";
    /// `data_dir`.
    pub const DATA_DIR: &str = "PLACE_DATA_DIR";
    /// `width`.
    pub const WIDTH: &str = "PLACE_WIDTH";
    /// `height`.
    pub const HEIGHT: &str = "PLACE_HEIGHT";
    /// `cooldown_secs`.
    pub const COOLDOWN_SECS: &str = "PLACE_COOLDOWN_SECS";
    /// `colors`.
    pub const COLORS: &str = "PLACE_COLORS";
    /// `batch_window_ms`.
    pub const BATCH_WINDOW_MS: &str = "PLACE_BATCH_WINDOW_MS";
    /// `max_tiles_per_client`.
    pub const MAX_TILES_PER_CLIENT: &str = "PLACE_MAX_TILES_PER_CLIENT";
    /// `guest_rate_per_minute`.
    pub const GUEST_RATE_PER_MINUTE: &str = "PLACE_GUEST_RATE_PER_MINUTE";
    /// `checkpoint_secs`.
    pub const CHECKPOINT_SECS: &str = "PLACE_CHECKPOINT_SECS";
    /// `log_format`.
    pub const LOG_FORMAT: &str = "PLACE_LOG_FORMAT";
    /// `secure_cookies`.
    pub const SECURE_COOKIES: &str = "PLACE_SECURE_COOKIES";
    /// `trust_proxy`.
    pub const TRUST_PROXY: &str = "PLACE_TRUST_PROXY";
    /// `timelapse_snapshot_secs`.
    pub const TIMELAPSE_SNAPSHOT_SECS: &str = "PLACE_TIMELAPSE_SNAPSHOT_SECS";
    /// `max_connections`.
    pub const MAX_CONNECTIONS: &str = "PLACE_MAX_CONNECTIONS";
    /// `max_connections_per_address`.
    pub const MAX_CONNECTIONS_PER_ADDRESS: &str = "PLACE_MAX_CONNECTIONS_PER_ADDRESS";
    /// `max_websockets_per_session`.
    pub const MAX_WEBSOCKETS_PER_SESSION: &str = "PLACE_MAX_WEBSOCKETS_PER_SESSION";
    /// `max_websockets_per_address`.
    pub const MAX_WEBSOCKETS_PER_ADDRESS: &str = "PLACE_MAX_WEBSOCKETS_PER_ADDRESS";
    /// `header_read_timeout_secs`.
    pub const HEADER_READ_TIMEOUT_SECS: &str = "PLACE_HEADER_READ_TIMEOUT_SECS";
    /// `request_body_timeout_secs`.
    pub const REQUEST_BODY_TIMEOUT_SECS: &str = "PLACE_REQUEST_BODY_TIMEOUT_SECS";
    /// `placements_per_address_per_minute`.
    pub const PLACEMENTS_PER_ADDRESS_PER_MINUTE: &str = "PLACE_PLACEMENTS_PER_ADDRESS_PER_MINUTE";
    /// `websocket_ping_secs`.
    pub const WEBSOCKET_PING_SECS: &str = "PLACE_WEBSOCKET_PING_SECS";
    /// `public_origin`.
    pub const PUBLIC_ORIGIN: &str = "PLACE_PUBLIC_ORIGIN";
    /// `metrics_listen`.
    pub const METRICS_LISTEN: &str = "PLACE_METRICS_LISTEN";
    /// `guest_pow_bits`.
    pub const GUEST_POW_BITS: &str = "PLACE_GUEST_POW_BITS";
    /// `ipv4_prefix`.
    pub const IPV4_PREFIX: &str = "PLACE_IPV4_PREFIX";
    /// `ipv6_prefix`.
    pub const IPV6_PREFIX: &str = "PLACE_IPV6_PREFIX";
    /// `spike_cell`.
    pub const SPIKE_CELL: &str = "PLACE_SPIKE_CELL";
    /// `spike_min_rate`.
    pub const SPIKE_MIN_RATE: &str = "PLACE_SPIKE_MIN_RATE";
    /// `spike_factor`.
    pub const SPIKE_FACTOR: &str = "PLACE_SPIKE_FACTOR";
    /// `spike_webhook`.
    pub const SPIKE_WEBHOOK: &str = "PLACE_SPIKE_WEBHOOK";
    /// `spike_slow_minutes`.
    pub const SPIKE_SLOW_MINUTES: &str = "PLACE_SPIKE_SLOW_MINUTES";
    /// `spike_slow_cooldown_secs`.
    pub const SPIKE_SLOW_COOLDOWN_SECS: &str = "PLACE_SPIKE_SLOW_COOLDOWN_SECS";
}

/// Every setting of `place serve`, with its default. The TOML file uses these names.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on for HTTP and WebSockets. Default `127.0.0.1:3000`.
    pub listen: String,
    /// Directory of the embedded store. Default `./place-data`.
    pub data_dir: PathBuf,
    /// Canvas width in pixels, 1 to 65536. Default 2000.
    pub width: u32,
    /// Canvas height in pixels, 1 to 65536. Default 2000.
    pub height: u32,
    /// Seconds between two placements of one user, 0 to 86400. Default 5.
    pub cooldown_secs: u64,
    /// Number of palette colours (2 to 256) when `palette` is not given. Default 16.
    pub colors: usize,
    /// Explicit palette as `#rrggbb` strings; overrides `colors`.
    pub palette: Option<Vec<String>>,
    /// Milliseconds a tile's changes are gathered before they are sent, 1 to 1000. Default 10.
    pub batch_window_ms: u64,
    /// Tiles one connection may subscribe to, 1 to 65536. Default 256.
    pub max_tiles_per_client: usize,
    /// Guest sessions one IP address may make per minute; 0 disables the limit. Default 30.
    pub guest_rate_per_minute: u32,
    /// Seconds between checkpoints of changed tiles, 1 to 3600. Default 30.
    pub checkpoint_secs: u64,
    /// `pretty` or `json`. Default `pretty`.
    pub log_format: LogFormat,
    /// Mark the session cookie `Secure` (the site is served over HTTPS). Without it the cookie
    /// is still `Secure` when a proxy sends `X-Forwarded-Proto: https`. Default false.
    pub secure_cookies: bool,
    /// Behind a proxy that sets `X-Forwarded-For`: take the client's address from it for the
    /// per-IP limits (guest sessions, logins). Never without such a proxy, or clients could
    /// choose their address. Default false.
    pub trust_proxy: bool,
    /// Seconds between two timelapse snapshots of the canvas, 1 to 86400 (taken by `place serve`,
    /// or by the cluster's `place worker`). Default 600.
    pub timelapse_snapshot_secs: u64,
    /// Open TCP connections (HTTP and WebSocket) the process holds, 16 to 1,000,000; lowered at start to the file-descriptor limit less 512. Past it a new connection gets HTTP 503. Default 20000.
    pub max_connections: usize,
    /// Open TCP connections from one network (`ipv4_prefix`, `ipv6_prefix`), 1 to 1,000,000; ignored with `trust_proxy` (the proxy limits those). Past it a new connection gets HTTP 429. Default 256.
    pub max_connections_per_address: u32,
    /// Open WebSockets of one session (tabs of one player), 1 to 1000. Default 8.
    pub max_websockets_per_session: u32,
    /// Open WebSockets from one network (the forwarded address with `trust_proxy`), 1 to 1,000,000. Default 200.
    pub max_websockets_per_address: u32,
    /// Seconds for a request's head to arrive, 1 to 300; also how long a silent or idle keep-alive connection stays open. Default 10.
    pub header_read_timeout_secs: u64,
    /// Seconds for a request's body to arrive, 1 to 300. Default 10.
    pub request_body_timeout_secs: u64,
    /// Placements one network may make per minute, whatever its number of users (0: no limit). Default 600 (50 players at the default cooldown).
    pub placements_per_address_per_minute: u32,
    /// The site's public origin, `scheme://host[:port]` (e.g. `https://place.example.org`): the
    /// only `Origin` a state-changing request or a WebSocket upgrade may carry. Default: none (the
    /// request's own scheme, host and port).
    pub public_origin: Option<String>,
    /// An address of its own for `GET /metrics` (e.g. `127.0.0.1:9100`), off the public one;
    /// a shard serves its metrics there too. Default: none (an edge answers `/metrics` on
    /// `listen`, a shard has none).
    pub metrics_listen: Option<String>,
    /// Proof of work a new guest pays, in leading zero bits of a SHA-256 (0 to 28; 0 asks none,
    /// for load tests). Default 16: 65,536 hashes on average, about 0.4 s of the page's
    /// JavaScript on a desktop, a second or two on a phone.
    pub guest_pow_bits: u8,
    /// Seconds between two pings of a WebSocket, 1 to 300; a client not heard from (no frame, no
    /// pong) for twice this and a second more is closed with 4002. Default 20.
    pub websocket_ping_secs: u64,
    /// IPv4 prefix length that per-address limits count as one network, 8 to 32. Default 32.
    pub ipv4_prefix: u8,
    /// IPv6 prefix length that per-address limits count as one network, 16 to 128. Default 64.
    pub ipv6_prefix: u8,
    /// The spike alarm's cell: a square of this many pixels a side, 8 to 1024. Default 64.
    pub spike_cell: u32,
    /// Placements a second (over 5 s) a cell must reach, on one edge, to raise a spike alarm,
    /// 1 to 1,000,000. Default 20.
    pub spike_min_rate: u32,
    /// How many times its moving baseline a cell's rate must also reach, 2 to 1000. Default 5.
    pub spike_factor: u32,
    /// An `http://` or `https://` URL each spike alarm is POSTed to as JSON. Default: none.
    pub spike_webhook: Option<String>,
    /// Minutes an alarmed cell is put in `slow` mode by itself, 0 to 1440; 0 only alarms.
    /// Default 0.
    pub spike_slow_minutes: u64,
    /// The cooldown of that automatic slow region, 1 to 3600 seconds. Default 30.
    pub spike_slow_cooldown_secs: u64,
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

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3000".into(),
            data_dir: PathBuf::from("place-data"),
            width: 2000,
            height: 2000,
            cooldown_secs: 5,
            colors: 16,
            palette: None,
            batch_window_ms: 10,
            max_tiles_per_client: 256,
            guest_rate_per_minute: 30,
            checkpoint_secs: 30,
            log_format: LogFormat::Pretty,
            secure_cookies: false,
            trust_proxy: false,
            timelapse_snapshot_secs: 600,
            max_connections: 20_000,
            max_connections_per_address: 256,
            max_websockets_per_session: 8,
            max_websockets_per_address: 200,
            header_read_timeout_secs: 10,
            request_body_timeout_secs: 10,
            placements_per_address_per_minute: 600,
            websocket_ping_secs: 20,
            guest_pow_bits: place_edge::DEFAULT_GUEST_POW_BITS,
            metrics_listen: None,
            public_origin: None,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            spike_cell: 64,
            spike_min_rate: 20,
            spike_factor: 5,
            spike_webhook: None,
            spike_slow_minutes: 0,
            spike_slow_cooldown_secs: 30,
        }
    }
}

/// A setting with a bad value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting's name.
    pub setting: &'static str,
    /// Why its value is refused.
    pub reason: String,
}

fn bad(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
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

/// A configuration that passed validation, in the shapes the crates take.
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
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("config", format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| bad("config", format!("{}: {e}", path.display())))
    }

    /// Checks every setting and builds what the crates need.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            bad(
                "listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:3000: {e}",
                    self.listen
                ),
            )
        })?;
        in_range("width", self.width, 1, 65_536)?;
        in_range("height", self.height, 1, 65_536)?;
        let geometry = CanvasGeometry::new(self.width, self.height)
            .map_err(|e| bad("width", e.to_string()))?;
        in_range("cooldown_secs", self.cooldown_secs, 0, 86_400)?;
        in_range("batch_window_ms", self.batch_window_ms, 1, 1000)?;
        in_range("max_tiles_per_client", self.max_tiles_per_client, 1, 65_536)?;
        in_range("checkpoint_secs", self.checkpoint_secs, 1, 3600)?;
        in_range(
            "timelapse_snapshot_secs",
            self.timelapse_snapshot_secs,
            1,
            86_400,
        )?;
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
        in_range("websocket_ping_secs", self.websocket_ping_secs, 1, 300)?;
        in_range("guest_pow_bits", self.guest_pow_bits, 0, 28)?;
        if let Some(origin) = &self.public_origin {
            if place_edge::http::normalize_origin(origin).is_none() {
                return Err(bad(
                    "public_origin",
                    format!("{origin:?} is not an origin like https://place.example.org"),
                ));
            }
        }
        let metrics_listen = match &self.metrics_listen {
            Some(address) => Some(address.parse::<SocketAddr>().map_err(|e| {
                bad(
                    "metrics_listen",
                    format!("{address:?} is not an address like 127.0.0.1:9100: {e}"),
                )
            })?),
            None => None,
        };
        in_range("ipv4_prefix", self.ipv4_prefix, 8, 32)?;
        in_range("ipv6_prefix", self.ipv6_prefix, 16, 128)?;
        let spike = self.spike_config()?;
        let palette = match &self.palette {
            Some(colors) => Palette::from_hex(colors).map_err(|e| bad("palette", e.to_string()))?,
            None => Palette::default_with(self.colors).map_err(|e| bad("colors", e.to_string()))?,
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        Ok(ValidConfig {
            listen,
            data_dir: self.data_dir.clone(),
            edge: EdgeConfig {
                geometry,
                palette: palette.clone(),
                cooldown: Duration::from_secs(self.cooldown_secs),
                max_tiles_per_client: self.max_tiles_per_client,
                guest_rate_per_minute: self.guest_rate_per_minute,
                secure_cookies: self.secure_cookies,
                trust_proxy: self.trust_proxy,
                guest_pow_bits: self.guest_pow_bits,
                metrics_apart: metrics_listen.is_some(),
                public_origin: self.public_origin.clone(),
                plain_loopback: listen.ip().is_loopback(),
                spike,
                limits: Limits {
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
                },
                ..EdgeConfig::default()
            },
            shard: ShardConfig {
                geometry,
                color_count: palette.len(),
                batch_window: Duration::from_millis(self.batch_window_ms),
                checkpoint: CheckpointPolicy {
                    max_interval_ms: self.checkpoint_secs as i64 * 1000,
                    ..CheckpointPolicy::default()
                },
            },
            log_format: self.log_format,
            timelapse_snapshot_interval: Duration::from_secs(self.timelapse_snapshot_secs),
            metrics_listen,
        })
    }
}

impl ServeConfig {
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
    fn bad_values_name_their_setting() {
        let check = |c: ServeConfig| c.validate().expect_err("invalid").setting;
        assert_eq!(
            check(ServeConfig {
                width: 0,
                ..Default::default()
            }),
            "width"
        );
        assert_eq!(
            check(ServeConfig {
                height: 70_000,
                ..Default::default()
            }),
            "height"
        );
        assert_eq!(
            check(ServeConfig {
                listen: "nowhere".into(),
                ..Default::default()
            }),
            "listen"
        );
        assert_eq!(
            check(ServeConfig {
                colors: 300,
                ..Default::default()
            }),
            "colors"
        );
        assert_eq!(
            check(ServeConfig {
                batch_window_ms: 0,
                ..Default::default()
            }),
            "batch_window_ms"
        );
        let palette = Some(vec!["#fff".to_string(), "#000000".to_string()]);
        assert_eq!(
            check(ServeConfig {
                palette,
                ..Default::default()
            }),
            "palette"
        );
        assert_eq!(
            check(ServeConfig {
                spike_webhook: Some("ftp://example.org/x".into()),
                ..Default::default()
            }),
            "spike_webhook"
        );
        assert_eq!(
            check(ServeConfig {
                spike_factor: 1,
                ..Default::default()
            }),
            "spike_factor"
        );
    }

    #[test]
    fn toml_files_are_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("place.toml");
        std::fs::write(
            &path,
            "width = 128\ncooldown_secs = 1\nlog_format = \"json\"\n",
        )
        .expect("write");
        let c = ServeConfig::from_file(&path).expect("valid file");
        assert_eq!(
            (c.width, c.height, c.cooldown_secs, c.log_format),
            (128, 2000, 1, LogFormat::Json)
        );
        std::fs::write(&path, "widht = 128\n").expect("write");
        assert_eq!(
            ServeConfig::from_file(&path).expect_err("typo").setting,
            "config"
        );
    }
}
