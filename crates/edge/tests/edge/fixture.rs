//! The edge under test: an [`Edge`] over an embedded store and an in-process shard in a temporary
//! directory, with the timelapse rendered in the process, as `place serve` wires it. Its router
//! is driven with `oneshot` ([`TestEdge::app`]) where no socket is needed, or served on an
//! ephemeral port ([`TestEdge::serve`]) for real WebSocket and TCP clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::MockConnectInfo;
use axum::Router;
use place_edge::accounts::Accounts;
use place_edge::live::LiveBus;
use place_edge::shards::Shards;
use place_edge::{Edge, EdgeConfig};
use place_shard::{ShardConfig, ShardHandle, ShardTask};
use place_store::{EmbeddedStore, Store};
use place_testkit::Client;
use place_tiles::CanvasGeometry;
use place_timelapse::jobs::{JobContext, LocalRunner};
use place_timelapse::service::{Dispatch, Timelapse};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The settings of the socket tests: a `width` x `height` canvas, a cooldown, guests paying a
/// cheap proof of work without a rate limit, and no per-network placement budget (every player
/// of these tests is on loopback).
pub fn settings(c: &mut EdgeConfig, width: u32, height: u32, cooldown_secs: u64) {
    c.geometry = CanvasGeometry::new(width, height).expect("size");
    c.cooldown = Duration::from_secs(cooldown_secs);
    c.guest_rate_per_minute = 0;
    c.guest_pow_bits = 8;
}

/// An edge on a fresh embedded store, and the directory that holds it.
pub struct TestEdge {
    pub edge: Arc<Edge>,
    pub shard: ShardHandle,
    pub store: Store,
    dir: tempfile::TempDir,
}

impl TestEdge {
    /// A 256x256 canvas; `config` adjusts the edge's settings (its canvas too).
    pub async fn start(config: impl FnOnce(&mut EdgeConfig)) -> TestEdge {
        TestEdge::start_in(tempfile::tempdir().expect("tempdir"), config).await
    }

    /// An edge on the store in `dir` (new, or left by an edge that stopped).
    async fn start_in(dir: tempfile::TempDir, config: impl FnOnce(&mut EdgeConfig)) -> TestEdge {
        let engine = EmbeddedStore::open(dir.path())
            .await
            .expect("open the store");
        let store = Store::from(engine.clone());
        let mut edge_config = EdgeConfig {
            geometry: CanvasGeometry::new(256, 256).expect("size"),
            ..EdgeConfig::default()
        };
        config(&mut edge_config);
        let shard_config = ShardConfig {
            geometry: edge_config.geometry,
            color_count: edge_config.palette.len(),
            batch_window: Duration::from_millis(5),
            commit_linger: Duration::ZERO,
            checkpoint: Default::default(),
        };
        let (shard, _task) = ShardTask::start(shard_config, place_store::Store::from(engine), None)
            .await
            .expect("start the shard");
        let accounts = Accounts::embedded(store.clone(), edge_config.clock.now_ms())
            .await
            .expect("accounts");
        let jobs = JobContext {
            source: store.clone(),
            geometry: edge_config.geometry,
            palette: edge_config.palette.clone(),
            throttle: Duration::ZERO,
        };
        let edge = Edge::new(
            edge_config,
            accounts,
            Shards::Local(shard.clone()),
            LiveBus::Local,
        );
        let runner = LocalRunner::start(jobs.clone());
        edge.enable_timelapse(Arc::new(Timelapse::new(jobs, Dispatch::Local(runner))));
        TestEdge {
            edge,
            shard,
            store,
            dir,
        }
    }

    /// The router, as a connection from `peer` would reach it.
    pub fn app(&self, peer: &str) -> Router {
        let peer: SocketAddr = peer.parse().expect("peer address");
        place_edge::http::app(Arc::clone(&self.edge)).layer(MockConnectInfo(peer))
    }

    /// Serves the edge on an ephemeral port of 127.0.0.1.
    pub async fn serve(self) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(place_edge::serve(listener, Arc::clone(&self.edge), async {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://{addr}"),
            ws: format!("ws://{addr}/ws"),
            edge: self.edge,
            shard: self.shard,
            store: self.store,
            dir: self.dir,
            stop,
            task,
        }
    }
}

/// An edge served on an ephemeral port.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws: String,
    pub edge: Arc<Edge>,
    pub shard: ShardHandle,
    pub store: Store,
    dir: tempfile::TempDir,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// An edge with [`settings`], adjusted by `config`, served on an ephemeral port.
    pub async fn start(
        width: u32,
        height: u32,
        cooldown_secs: u64,
        config: impl FnOnce(&mut EdgeConfig),
    ) -> Server {
        TestEdge::start(|c| {
            settings(c, width, height, cooldown_secs);
            config(c);
        })
        .await
        .serve()
        .await
    }

    /// Stops gracefully: the sockets are closed, the server returns cleanly, the shard writes
    /// what is pending and the store is closed.
    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops as [`Server::stop`] does, then starts again on the same store with [`settings`]
    /// and `config`, on another port.
    pub async fn restart(
        self,
        width: u32,
        height: u32,
        cooldown_secs: u64,
        config: impl FnOnce(&mut EdgeConfig),
    ) -> Server {
        let dir = self.stop_keeping_data().await;
        TestEdge::start_in(dir, |c| {
            settings(c, width, height, cooldown_secs);
            config(c);
        })
        .await
        .serve()
        .await
    }

    async fn stop_keeping_data(self) -> tempfile::TempDir {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("clean stop");
        self.shard.shutdown().await;
        self.store.close().await;
        self.dir
    }

    /// Stops, whether or not the stop is clean (the store may have been taken away).
    pub async fn stop_anyway(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// A new guest's cookie.
    pub async fn guest(&self) -> String {
        place_testkit::guest(&self.base).await
    }

    /// A socket of `cookie`, past its welcome.
    pub async fn client(&self, cookie: &str, json: bool) -> Client {
        let mut c = Client::connect(&self.ws, Some(cookie), json).await;
        match c.recv().await {
            place_protocol::ServerMessage::Welcome(_) => c,
            other => panic!("expected welcome, got {other:?}"),
        }
    }
}
