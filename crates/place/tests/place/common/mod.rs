//! What the tests share: a real `place serve` on an ephemeral port ([`Server`]), and the
//! scenarios that run against it and against a cluster's edges (one module each). The WebSocket
//! client and the HTTP helpers are `place-testkit`'s.

use std::path::Path;

use place::config::{CanvasSection, EdgeSection, ServeConfig, ShardSection, ValidConfig};
use place_protocol::ServerMessage;
use place_testkit::Client;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A `place serve` running in this process.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws: String,
    /// Its store, for the timelapse's replays.
    pub store: place_store::Store,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The settings of a test server in `dir`: its canvas, its cooldown, guests paying a cheap proof
/// of work without a rate limit.
pub fn config(dir: &Path, width: u32, height: u32, cooldown_secs: u64) -> ServeConfig {
    ServeConfig {
        data_dir: dir.to_path_buf(),
        canvas: CanvasSection {
            width,
            height,
            ..CanvasSection::default()
        },
        edge: EdgeSection {
            listen: "127.0.0.1:0".into(),
            cooldown_secs,
            guest_rate_per_minute: 0,
            // Every test guest pays a proof of work, cheaply.
            guest_pow_bits: 8,
            ..EdgeSection::default()
        },
        shard: ShardSection {
            batch_window_ms: 5,
            ..ShardSection::default()
        },
        ..ServeConfig::default()
    }
}

impl Server {
    /// Starts `place serve` with `config`, on an ephemeral port.
    pub async fn start(config: ServeConfig) -> Server {
        let valid: ValidConfig = config.validate().expect("valid test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let services = place::serve::start(&valid).await.expect("start");
        let store = services.store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(services.serve(listener, async {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://{addr}"),
            ws: format!("ws://{addr}/ws"),
            store,
            stop,
            task,
        }
    }

    /// Stops gracefully and waits until the store is closed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("clean stop");
    }

    /// A new guest's cookie.
    pub async fn guest(&self) -> String {
        place_testkit::guest(&self.base).await
    }

    /// A socket of `cookie`, past its welcome.
    pub async fn client(&self, cookie: &str, json: bool) -> Client {
        let mut c = Client::connect(&self.ws, Some(cookie), json).await;
        match c.recv().await {
            ServerMessage::Welcome(_) => c,
            other => panic!("expected welcome, got {other:?}"),
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
