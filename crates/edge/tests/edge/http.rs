//! The edge's HTTP behaviour through its router, driven with `oneshot`: no socket, no port.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt as _;

use crate::fixture::TestEdge;

impl TestEdge {
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
