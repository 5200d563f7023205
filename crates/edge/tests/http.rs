//! The edge's HTTP behaviour, tested in its own crate: an [`Edge`] over an embedded store and an
//! in-process shard in a temporary directory, its router driven with `oneshot` (no socket, no
//! port). Needs no outside service: `cargo test -p place-edge` runs it anywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use place_edge::accounts::Accounts;
use place_edge::live::LiveBus;
use place_edge::shards::Shards;
use place_edge::{Edge, EdgeConfig};
use place_shard::{ShardConfig, ShardStore, ShardTask};
use place_store::EmbeddedStore;
use place_tiles::CanvasGeometry;
use tower::ServiceExt as _;

/// An edge on a fresh embedded store, and the directory that holds it.
struct TestEdge {
    edge: Arc<Edge>,
    _dir: tempfile::TempDir,
}

impl TestEdge {
    /// A 256x256 canvas; `config` adjusts the edge's settings.
    async fn start(config: impl FnOnce(&mut EdgeConfig)) -> TestEdge {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path())
            .await
            .expect("open the store");
        let geometry = CanvasGeometry::new(256, 256).expect("size");
        let mut edge_config = EdgeConfig {
            geometry,
            ..EdgeConfig::default()
        };
        config(&mut edge_config);
        let shard_config = ShardConfig {
            geometry,
            color_count: edge_config.palette.len(),
            batch_window: Duration::from_millis(10),
            checkpoint: Default::default(),
        };
        let (shard, _task) =
            ShardTask::start(shard_config, ShardStore::Embedded(store.clone()), None)
                .await
                .expect("start the shard");
        let accounts = Accounts::embedded(store, place_edge::now_ms())
            .await
            .expect("accounts");
        let edge = Edge::new(edge_config, accounts, Shards::Local(shard), LiveBus::Local);
        TestEdge { edge, _dir: dir }
    }

    /// The router, as a connection from `peer` would reach it.
    fn app(&self, peer: &str) -> Router {
        let peer: SocketAddr = peer.parse().expect("peer address");
        place_edge::http::app(Arc::clone(&self.edge)).layer(MockConnectInfo(peer))
    }

    /// Sends `request` from 127.0.0.1; the status, the headers and the body as JSON (`Null` when
    /// it is not JSON).
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .app("127.0.0.1:40000")
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

/// A POST to `path` at the page's own host (a body, if any, is JSON).
fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header(header::HOST, "127.0.0.1:3000")
}

#[tokio::test]
async fn a_guest_without_its_proof_of_work_is_refused_and_with_none_asked_gets_a_session() {
    let paying = TestEdge::start(|c| c.guest_pow_bits = 8).await;
    let refused = paying
        .send(
            post("/api/v1/auth/guest")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["error"]["code"], "CHALLENGE_FAILED");

    let free = TestEdge::start(|c| c.guest_pow_bits = 0).await;
    let made = free
        .send(
            post("/api/v1/auth/guest")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert_eq!(made.body["isGuest"], true);
    let cookie = made
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    assert!(
        cookie.starts_with("place_session="),
        "plain HTTP on loopback: the development cookie ({cookie})"
    );
    let me = free
        .send(
            Request::get("/api/v1/auth/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["userId"], made.body["userId"]);
}

#[tokio::test]
async fn a_state_change_from_another_origin_is_refused() {
    let edge = TestEdge::start(|c| c.guest_pow_bits = 0).await;
    for origin in ["http://evil.example", "https://127.0.0.1:3000"] {
        let refused = edge
            .send(
                post("/api/v1/auth/guest")
                    .header(header::ORIGIN, origin)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(refused.body["error"]["code"], "FORBIDDEN");
    }
    let same = edge
        .send(
            post("/api/v1/auth/guest")
                .header(header::ORIGIN, "http://127.0.0.1:3000")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
}

#[tokio::test]
async fn the_canvas_is_described_and_served_whole() {
    let edge = TestEdge::start(|_| {}).await;
    let info = edge
        .send(
            Request::get("/api/v1/canvas/info")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(
        (info.body["width"].as_u64(), info.body["height"].as_u64()),
        (Some(256), Some(256))
    );
    let canvas = edge
        .app("127.0.0.1:40000")
        .oneshot(
            Request::get("/api/v1/canvas")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(canvas.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(canvas.into_body(), 1 << 20)
        .await
        .expect("body");
    assert_eq!(bytes.len(), 256 * 256, "one byte a pixel");
}

#[tokio::test]
async fn renders_need_an_account() {
    let edge = TestEdge::start(|c| c.guest_pow_bits = 0).await;
    let render = |cookie: Option<String>| {
        let mut request = post("/api/v1/timelapse/render");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"from":0,"to":1}"#))
            .expect("request")
    };
    assert_eq!(
        edge.send(render(None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let guest = edge
        .send(
            post("/api/v1/auth/guest")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let cookie = guest
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let refused = edge.send(render(Some(cookie))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
}
