//! Integration tests of `place serve`: real servers on ephemeral ports, real WebSocket clients.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{config, Client, Server};
use place::config::ServeConfig;
use place_protocol::{ClientMessage, ErrorCode, RequestId, ServerMessage, TileRequest};
use place_tiles::{PixelChange, TileId};
use tokio_tungstenite::tungstenite::Message;

fn sub(tiles: &[(u16, u16)]) -> ClientMessage {
    ClientMessage::Subscribe {
        tiles: tiles
            .iter()
            .map(|&(tx, ty)| TileRequest {
                tile: TileId::new(tx, ty),
                seq: None,
            })
            .collect(),
    }
}

fn place(x: i64, y: i64, color: i64, id: u32) -> ClientMessage {
    ClientMessage::Place {
        x,
        y,
        color,
        request_id: Some(RequestId::Number(id)),
    }
}

/// Waits for the snapshot of a freshly subscribed tile and returns its seq.
async fn snapshot_seq(c: &mut Client, tile: TileId) -> u64 {
    c.recv_until(|m| match m {
        ServerMessage::Tile { tile: t, seq, .. } if *t == tile => Some(*seq),
        _ => None,
    })
    .await
}

async fn expect_error(c: &mut Client, code: ErrorCode) -> place_protocol::ErrorMessage {
    match c.recv().await {
        ServerMessage::Error(e) if e.code == code => e,
        other => panic!("expected {code}, got {other:?}"),
    }
}

async fn expect_success(c: &mut Client) -> u64 {
    match c.recv().await {
        ServerMessage::Success { next_placement, .. } => next_placement,
        other => panic!("expected success, got {other:?}"),
    }
}

#[tokio::test]
async fn a_placement_reaches_subscribers_of_its_tile_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 256, 256, 0)).await;
    for json in [false, true] {
        let (ca, cb, cc) = (
            server.guest().await,
            server.guest().await,
            server.guest().await,
        );
        let mut a = server.client(&ca, json).await;
        let mut b = server.client(&cb, json).await;
        let mut c = server.client(&cc, !json).await;
        b.send(&sub(&[(1, 2)])).await;
        let seq = snapshot_seq(&mut b, TileId::new(1, 2)).await;
        c.send(&sub(&[(0, 0), (3, 3)])).await;
        snapshot_seq(&mut c, TileId::new(0, 0)).await;
        snapshot_seq(&mut c, TileId::new(3, 3)).await;

        a.send(&place(64 + 5, 128 + 9, 7, 41)).await;
        match a.recv().await {
            ServerMessage::Success { request_id, .. } => {
                assert_eq!(request_id.and_then(|r| r.as_u32()), Some(41))
            }
            other => panic!("expected success, got {other:?}"),
        }
        let got = b.recv().await;
        assert_eq!(
            got,
            ServerMessage::Pixels {
                tile: TileId::new(1, 2),
                first_seq: seq + 1,
                changes: vec![PixelChange {
                    lx: 5,
                    ly: 9,
                    color: 7
                }],
            }
        );
        c.expect_silence(Duration::from_millis(300)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_reconnect_with_known_seqs_gets_exactly_the_missed_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 128, 0)).await;
    let cookie = server.guest().await;
    let mut painter = server.client(&server.guest().await, false).await;
    let tile = TileId::new(0, 0);

    let mut watcher = server.client(&cookie, false).await;
    watcher.send(&sub(&[(0, 0), (1, 1)])).await;
    let seq = snapshot_seq(&mut watcher, tile).await;
    let seq_other = snapshot_seq(&mut watcher, TileId::new(1, 1)).await;
    drop(watcher);

    for i in 0..5 {
        painter.send(&place(i, 0, 3, i as u32)).await;
        expect_success(&mut painter).await;
    }
    let mut back = server.client(&cookie, true).await;
    back.send(&ClientMessage::Subscribe {
        tiles: vec![
            TileRequest {
                tile,
                seq: Some(seq + 2),
            },
            TileRequest {
                tile: TileId::new(1, 1),
                seq: Some(seq_other),
            },
        ],
    })
    .await;
    let mut got = HashMap::new();
    for _ in 0..2 {
        match back.recv().await {
            ServerMessage::Pixels {
                tile,
                first_seq,
                changes,
            } => got.insert(tile, (first_seq, changes)),
            other => panic!("expected a catch-up, got {other:?}"),
        };
    }
    let (first, changes) = &got[&tile];
    assert_eq!(*first, seq + 3, "starts right after the seq held");
    assert_eq!(
        changes.iter().map(|c| c.lx).collect::<Vec<_>>(),
        vec![2, 3, 4],
        "exactly the missed events"
    );
    assert!(
        got[&TileId::new(1, 1)].1.is_empty(),
        "an unchanged tile is confirmed with no events"
    );
    back.expect_silence(Duration::from_millis(200)).await;

    // A seq the server has never reached gets a fresh snapshot.
    back.send(&ClientMessage::Subscribe {
        tiles: vec![TileRequest {
            tile,
            seq: Some(1_000_000),
        }],
    })
    .await;
    assert_eq!(snapshot_seq(&mut back, tile).await, seq + 5);
    server.stop().await;
}

#[tokio::test]
async fn one_user_racing_on_many_sockets_places_once_per_cooldown() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Twenty-one sockets of one session: over the default cap of 8, raised for this race.
    let server = Server::start(ServeConfig {
        max_websockets_per_session: 21,
        ..config(dir.path(), 64, 64, 30)
    })
    .await;
    let cookie = server.guest().await;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(server.client(&cookie, false).await);
    }
    for (i, s) in sockets.iter_mut().enumerate() {
        s.send(&place(i as i64, 0, 1, i as u32)).await;
    }
    let mut successes = 0;
    for s in &mut sockets {
        match s.recv().await {
            ServerMessage::Success { .. } => successes += 1,
            ServerMessage::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                let left = e.cooldown_remaining.expect("cooldown remaining");
                assert!(left > 25_000 && left <= 30_000, "remaining {left}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(successes, 1, "exactly one placement gets through");

    // The remaining cooldown survives a reconnect and a restart.
    let welcome = |m: ServerMessage| match m {
        ServerMessage::Welcome(w) => w.cooldown_remaining,
        other => panic!("expected welcome, got {other:?}"),
    };
    let mut again = Client::connect(&server.ws, Some(&cookie), false).await;
    assert!(welcome(again.recv().await) > 25_000);
    drop(again);
    drop(sockets);
    let ws_url = server.ws.clone();
    server.stop().await;
    let server = Server::start(config(dir.path(), 64, 64, 30)).await;
    assert_ne!(server.ws, ws_url);
    let mut after = Client::connect(&server.ws, Some(&cookie), false).await;
    assert!(
        welcome(after.recv().await) > 20_000,
        "cooldown restored after a restart"
    );
    after.send(&place(5, 5, 1, 1)).await;
    expect_error(&mut after, ErrorCode::RateLimited).await;

    // An administrator shortens the cooldown: the running wait follows at once.
    server
        .edge
        .set_cooldown(Duration::from_secs(1))
        .await
        .expect("set the cooldown");
    let remaining = after
        .recv_until(|m| match m {
            ServerMessage::Cooldown {
                cooldown: 1,
                cooldown_remaining,
            } => Some(*cooldown_remaining),
            _ => None,
        })
        .await;
    assert!(
        remaining <= 1000,
        "measured from the last placement: {remaining}"
    );
    tokio::time::sleep(Duration::from_millis(remaining + 20)).await;
    after.send(&place(5, 5, 1, 1)).await;
    expect_success(&mut after).await;
    server.stop().await;
}

#[tokio::test]
async fn every_bad_input_gets_its_error_code_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServeConfig {
        max_tiles_per_client: 4,
        ..config(dir.path(), 100, 100, 0)
    })
    .await;
    for json in [false, true] {
        let mut c = server.client(&server.guest().await, json).await;
        c.send(&place(100, 0, 1, 1)).await;
        let e = expect_error(&mut c, ErrorCode::InvalidCoords).await;
        assert_eq!(
            e.request_id.and_then(|r| r.as_u32()),
            Some(1),
            "the request id comes back"
        );
        c.send(&place(0, 0, 16, 2)).await;
        expect_error(&mut c, ErrorCode::InvalidColor).await;
        c.send(&sub(&[(2, 0)])).await;
        expect_error(&mut c, ErrorCode::BadRequest).await;
        c.send(&sub(&[(0, 0), (1, 0), (0, 1), (1, 1)])).await;
        for _ in 0..4 {
            assert!(matches!(c.recv().await, ServerMessage::Tile { .. }));
        }
        c.send(&ClientMessage::Subscribe {
            tiles: vec![TileRequest {
                tile: TileId::new(1, 1),
                seq: None,
            }],
        })
        .await;
        assert!(
            matches!(c.recv().await, ServerMessage::Tile { .. }),
            "re-subscribing does not count twice"
        );
        c.send(&ClientMessage::Unsubscribe {
            tiles: vec![TileId::new(1, 1)],
        })
        .await;
        c.send(&sub(&[(1, 1)])).await;
        assert!(matches!(c.recv().await, ServerMessage::Tile { .. }));
        c.send(&ClientMessage::Ping).await;
        assert_eq!(c.recv().await, ServerMessage::Pong);
    }

    let mut c = server.client(&server.guest().await, false).await;
    c.send_raw(Message::Binary(vec![0x7f, 1, 2].into())).await;
    assert!(expect_error(&mut c, ErrorCode::BadRequest)
        .await
        .message
        .contains("unknown message type"));
    c.send_raw(Message::Binary(vec![0x03, 1, 0].into())).await;
    expect_error(&mut c, ErrorCode::BadRequest).await;
    c.send_raw(Message::Text(
        "{\"type\":\"place\",\"x\":\"no\",\"requestId\":9}".into(),
    ))
    .await;
    let e = expect_error(&mut c, ErrorCode::BadRequest).await;
    assert_eq!(
        e.request_id,
        Some(RequestId::Number(9)),
        "a JSON frame on a binary socket is answered in binary"
    );
    c.send_raw(Message::Text("not json".into())).await;
    expect_error(&mut c, ErrorCode::BadRequest).await;
    c.send_raw(Message::Binary(vec![0x04; 70 * 1024].into()))
        .await;
    assert!(expect_error(&mut c, ErrorCode::BadRequest)
        .await
        .message
        .contains("limit"));
    c.send(&ClientMessage::Ping).await;
    assert_eq!(
        c.recv().await,
        ServerMessage::Pong,
        "still usable after every bad frame"
    );
    server.stop().await;
}

#[tokio::test]
async fn too_many_tiles_is_refused_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServeConfig {
        max_tiles_per_client: 3,
        ..config(dir.path(), 256, 256, 0)
    })
    .await;
    let mut c = server.client(&server.guest().await, true).await;
    c.send(&sub(&[(0, 0), (1, 0)])).await;
    snapshot_seq(&mut c, TileId::new(0, 0)).await;
    snapshot_seq(&mut c, TileId::new(1, 0)).await;
    c.send(&sub(&[(2, 0), (3, 0)])).await;
    expect_error(&mut c, ErrorCode::TooManyTiles).await;
    c.send(&sub(&[(2, 0)])).await;
    snapshot_seq(&mut c, TileId::new(2, 0)).await;
    server.stop().await;
}

#[tokio::test]
async fn sessions_are_required_and_forged_cookies_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    for cookie in [
        None,
        Some("place_session=00"),
        Some(&*format!("place_session={}", "ab".repeat(32))),
    ] {
        let mut c = Client::connect(&server.ws, cookie, true).await;
        expect_error(&mut c, ErrorCode::Unauthorized).await;
        assert!(c.try_recv(Duration::from_secs(2)).await.is_none());
        assert_eq!(c.closed.as_ref().map(|f| u16::from(f.code)), Some(4401));
    }
    let me = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/me", server.base))
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 401);
    let cookie = server.guest().await;
    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/me", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["isGuest"], true);
    assert_eq!(me["isAdmin"], false);
    server.stop().await;
}

#[tokio::test]
async fn a_public_origin_is_the_only_origin_and_makes_the_cookie_secure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServeConfig {
        public_origin: Some("https://Place.Example.org:443/".into()),
        ..config(dir.path(), 64, 64, 0)
    })
    .await;
    let http = reqwest::Client::new();
    let post = |origin: &'static str| {
        let http = http.clone();
        let base = server.base.clone();
        async move {
            let proof = common::guest_proof(&http, &base).await;
            http.post(format!("{base}/api/v1/auth/guest"))
                .header("origin", origin)
                .json(&proof)
                .send()
                .await
                .expect("post")
        }
    };
    // The request's own host is not the public origin.
    assert_eq!(post("http://127.0.0.1").await.status(), 403);
    assert_eq!(post("http://place.example.org").await.status(), 403);
    assert_eq!(post("https://place.example.org:8443").await.status(), 403);
    let made = post("https://place.example.org").await;
    assert_eq!(made.status(), 200);
    let set_cookie = made
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_owned();
    assert_cookie_flags(&set_cookie, true);
    // The __Host- cookie is a session like any other.
    let pair = set_cookie.split(';').next().expect("pair");
    let me = common::me(&server.base, pair).await;
    assert_eq!(me.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn foreign_origins_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let http = reqwest::Client::new();
    let guest = |origin: String| {
        http.post(format!("{}/api/v1/auth/guest", server.base))
            .header("origin", origin)
            .send()
    };
    let proof = common::guest_proof(&http, &server.base).await;
    assert_eq!(
        guest("http://evil.example".into())
            .await
            .expect("post")
            .status(),
        403
    );
    // The same host and port over another scheme is another origin.
    let other_scheme = server.base.replace("http://", "https://");
    assert_eq!(guest(other_scheme).await.expect("post").status(), 403);
    let host = server.base.clone();
    let same = http
        .post(format!("{host}/api/v1/auth/guest"))
        .header("origin", host.as_str())
        .json(&proof)
        .send()
        .await
        .expect("post");
    assert_eq!(same.status(), 200);

    // A WebSocket upgrade from another site is refused before it is upgraded.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.ws.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_flooding_client_is_throttled_then_disconnected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let mut c = server.client(&server.guest().await, false).await;
    for _ in 0..400 {
        c.send(&ClientMessage::Ping).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    while let Some(m) = c.try_recv(Duration::from_secs(5)).await {
        match m {
            ServerMessage::Pong => pongs += 1,
            ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (100..150).contains(&pongs),
        "about the burst gets through: {pongs} pongs, {limited} limited, {:?} {:?}",
        c.closed,
        c.error
    );
    assert!(limited > 0);
    assert_eq!(
        c.closed.as_ref().map(|f| u16::from(f.code)),
        Some(1008),
        "{:?}",
        c.error
    );
    // The server is fine: others play on.
    let mut other = server.client(&server.guest().await, false).await;
    other.send(&ClientMessage::Ping).await;
    assert_eq!(other.recv().await, ServerMessage::Pong);
    server.stop().await;
}

#[tokio::test]
async fn banned_users_cannot_place_and_unavailable_shards_refuse_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let cookie = server.guest().await;
    let mut c = server.client(&cookie, true).await;
    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/me", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    let user_id: i64 = me["userId"]
        .as_str()
        .expect("string id")
        .parse()
        .expect("number");
    server.edge.set_banned(user_id, true).await.expect("ban");
    c.send(&place(1, 1, 1, 1)).await;
    expect_error(&mut c, ErrorCode::Banned).await;
    server.edge.set_banned(user_id, false).await.expect("unban");
    c.send(&place(1, 1, 1, 2)).await;
    expect_success(&mut c).await;

    // With the shard stopped, a placement is refused as UNAVAILABLE and uses no cooldown.
    server.shard.shutdown().await;
    c.send(&place(2, 2, 2, 3)).await;
    expect_error(&mut c, ErrorCode::Unavailable).await;
}

#[tokio::test]
async fn a_restart_keeps_the_canvas_and_the_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 200, 100, 0)).await;
    let mut c = server.client(&server.guest().await, false).await;
    for i in 0..30 {
        c.send(&place(i * 6, (i * 3) % 100, (i % 15) + 1, i as u32))
            .await;
        expect_success(&mut c).await;
    }
    c.send(&sub(&[(0, 0)])).await;
    let seq_before = snapshot_seq(&mut c, TileId::new(0, 0)).await;
    let canvas_before = reqwest::get(format!("{}/api/v1/canvas", server.base))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    drop(c);
    server.stop().await;

    let server = Server::start(config(dir.path(), 200, 100, 0)).await;
    let canvas_after = reqwest::get(format!("{}/api/v1/canvas", server.base))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(canvas_before.len(), 200 * 100);
    assert_eq!(canvas_before, canvas_after);
    let mut c = server.client(&server.guest().await, false).await;
    c.send(&sub(&[(0, 0)])).await;
    assert_eq!(snapshot_seq(&mut c, TileId::new(0, 0)).await, seq_before);
    c.send(&place(1, 1, 2, 1)).await;
    expect_success(&mut c).await;
    assert_eq!(
        c.recv().await,
        ServerMessage::Pixels {
            tile: TileId::new(0, 0),
            first_seq: seq_before + 1,
            changes: vec![PixelChange {
                lx: 1,
                ly: 1,
                color: 2
            }]
        },
        "seqs continue where they stopped"
    );
    server.stop().await;

    // Another size on the same data is refused.
    let valid = config(dir.path(), 300, 100, 0).validate().expect("valid");
    assert!(place::serve::start(&valid).await.is_err());
}

#[tokio::test]
async fn http_reads_serve_the_canvas_and_tiles_with_etags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 100, 70, 0)).await;
    let mut c = server.client(&server.guest().await, false).await;
    c.send(&place(99, 69, 4, 1)).await;
    expect_success(&mut c).await;
    let http = reqwest::Client::new();
    let tile = http
        .get(format!("{}/api/v1/tiles/1/1", server.base))
        .send()
        .await
        .expect("tile");
    assert_eq!(tile.status(), 200);
    assert_eq!(tile.headers()["etag"], "\"1\"");
    let bytes = tile.bytes().await.expect("body");
    assert_eq!(bytes.len(), 4096);
    assert_eq!(bytes[5 * 64 + 35], 4);
    let again = http
        .get(format!("{}/api/v1/tiles/1/1", server.base))
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .expect("tile");
    assert_eq!(again.status(), 304);
    assert_eq!(
        http.get(format!("{}/api/v1/tiles/2/0", server.base))
            .send()
            .await
            .expect("tile")
            .status(),
        404
    );

    let canvas = http
        .get(format!("{}/api/v1/canvas", server.base))
        .send()
        .await
        .expect("canvas");
    let etag = canvas.headers()["etag"].clone();
    let body = canvas.bytes().await.expect("body");
    assert_eq!(body.len(), 100 * 70);
    assert_eq!(body[69 * 100 + 99], 4);
    let cached = http
        .get(format!("{}/api/v1/canvas", server.base))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("canvas");
    assert_eq!(cached.status(), 304);
    let gz = http
        .get(format!("{}/api/v1/canvas", server.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("canvas");
    assert_eq!(gz.headers()["content-encoding"], "gzip");

    let ready: serde_json::Value = http
        .get(format!("{}/health/ready", server.base))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["store"], "ok");
    let page = http
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("<html"));
    server.stop().await;
}

/// Asserts the session cookie's flags: HTTP-only, SameSite=Lax, whole site, and `Secure` only
/// when asked for.
fn assert_cookie_flags(set_cookie: &str, secure: bool) {
    // A Secure cookie is also `__Host-` (only this origin over HTTPS can set it).
    let name = if secure {
        "__Host-place_session="
    } else {
        "place_session="
    };
    assert!(set_cookie.starts_with(name), "{set_cookie}");
    let attrs: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for flag in ["httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == flag), "{flag} in {set_cookie}");
    }
    assert_eq!(attrs.iter().any(|a| a == "secure"), secure, "{set_cookie}");
}

#[tokio::test]
async fn a_guest_registers_keeping_its_id_and_cooldown_then_logs_out_and_in() {
    use common::{auth_post, credentials, me};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 60)).await;
    let base = server.base.as_str();
    let guest_cookie = server.guest().await;
    let guest = me(base, &guest_cookie).await;
    let mut c = server.client(&guest_cookie, true).await;
    c.send(&place(1, 1, 3, 1)).await;
    expect_success(&mut c).await;

    let registered = credentials(
        base,
        "register",
        "Alice_1",
        "hunter2hunter2",
        Some(&guest_cookie),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(
        registered.body["userId"], guest.body["userId"],
        "the guest keeps its id"
    );
    assert_eq!(registered.body["username"], "Alice_1");
    assert_eq!(registered.body["isGuest"], false);
    assert_eq!(registered.body["isAdmin"], false);
    assert_cookie_flags(registered.set_cookie().expect("a new session"), false);
    let cookie = registered.cookie().expect("cookie");
    assert_ne!(cookie, guest_cookie, "a new session id after sign-in");
    assert_eq!(
        me(base, &guest_cookie).await.status,
        401,
        "the guest session is revoked"
    );
    let who = me(base, &cookie).await;
    assert_eq!(who.body, registered.body);

    // The cooldown the guest started is still running for the registered user.
    let mut c = server.client(&cookie, false).await;
    c.send(&place(2, 2, 3, 2)).await;
    expect_error(&mut c, ErrorCode::RateLimited).await;

    let out = auth_post(base, "logout", None, Some(&cookie), &[]).await;
    assert_eq!(out.status, 204);
    let removal = out.set_cookie().expect("the cookie is removed");
    assert!(
        removal.to_ascii_lowercase().contains("max-age=0"),
        "{removal}"
    );
    assert_eq!(
        me(base, &cookie).await.status,
        401,
        "logout ends the session at once"
    );
    // ... and closes its open WebSocket.
    assert!(c.try_recv(Duration::from_secs(2)).await.is_none());
    assert_eq!(c.closed.as_ref().map(|f| u16::from(f.code)), Some(4401));

    let back = credentials(base, "login", "aLICE_1", "hunter2hunter2", None).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.body, registered.body, "login in any letter case");
    assert_cookie_flags(back.set_cookie().expect("session"), false);
    let cookie = back.cookie().expect("cookie");
    assert_eq!(me(base, &cookie).await.body["username"], "Alice_1");

    // Names are unique in any case; the rules are checked.
    for (name, password, status, code) in [
        ("ALICE_1", "another password", 409, "USERNAME_TAKEN"),
        ("al", "another password", 400, "BAD_REQUEST"),
        ("guest-abc", "another password", 400, "BAD_REQUEST"),
        ("bob", "short", 400, "BAD_REQUEST"),
    ] {
        let a = credentials(base, "register", name, password, None).await;
        assert_eq!(a.status, status, "{name}: {}", a.body);
        assert_eq!(a.body["error"]["code"], code, "{name}");
        assert!(a.cookie().is_none(), "{name}");
    }
    let no_json = auth_post(base, "login", None, None, &[]).await;
    assert_eq!(no_json.body["error"]["code"], "BAD_REQUEST");
    server.stop().await;
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_one_answer_and_the_sixth_attempt_waits() {
    use common::credentials;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let base = server.base.as_str();
    let made = credentials(base, "register", "carol", "correct horse", None).await;
    assert_eq!(made.status, 201);

    let timed = |name: &'static str| async move {
        let started = std::time::Instant::now();
        let a = credentials(base, "login", name, "wrong password", None).await;
        (a, started.elapsed())
    };
    let (wrong, wrong_took) = timed("carol").await;
    let (unknown, unknown_took) = timed("nobody").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["error"]["code"], "INVALID_CREDENTIALS");
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
    // An unknown name is checked against a dummy hash: no quick answer gives it away.
    assert!(
        unknown_took * 3 > wrong_took,
        "unknown user {unknown_took:?}, wrong password {wrong_took:?}"
    );

    // Five attempts a minute per IP (two made above), whether right or wrong.
    for _ in 0..2 {
        assert_eq!(timed("carol").await.0.status, 401);
    }
    assert_eq!(
        credentials(base, "login", "carol", "correct horse", None)
            .await
            .status,
        200
    );
    let sixth = credentials(base, "login", "carol", "correct horse", None).await;
    assert_eq!(sixth.status, 429, "{}", sixth.body);
    assert_eq!(sixth.body["error"]["code"], "RATE_LIMITED");
    let retry: u64 = sixth.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    server.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_logins_are_limited_per_address_without_lockouts_and_cookies_follow_https(
) {
    use common::auth_post;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServeConfig {
        trust_proxy: true,
        ..config(dir.path(), 64, 64, 0)
    })
    .await;
    let base = server.base.as_str();
    let body = |password: &str| Some(serde_json::json!({"username": "dave", "password": password}));
    let https = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "10.9.9.9"),
    ];
    let made = auth_post(base, "register", body("dave's password"), None, &https).await;
    assert_eq!(made.status, 201);
    assert_cookie_flags(made.set_cookie().expect("cookie"), true);

    // An attacker behind one address guesses at dave: five tries, then it must wait...
    for i in 1..=8 {
        let a = auth_post(
            base,
            "login",
            body("guess"),
            None,
            &[("x-forwarded-for", "10.6.6.6")],
        )
        .await;
        assert_eq!(a.status, if i <= 5 { 401 } else { 429 }, "attempt {i}");
        assert_eq!(i > 5, a.headers.contains_key("retry-after"));
    }
    // ...and many attackers, a guess each, lock nobody out...
    for i in 1..=10 {
        let ip = format!("10.0.0.{i}");
        let a = auth_post(
            base,
            "login",
            body("guess"),
            None,
            &[("x-forwarded-for", &ip)],
        )
        .await;
        assert_eq!(a.status, 401, "attacker {i}");
    }
    // ...so dave's correct password from his own clean address goes through.
    let dave = auth_post(
        base,
        "login",
        body("dave's password"),
        None,
        &[("x-forwarded-for", "10.9.9.9")],
    )
    .await;
    assert_eq!(dave.status, 200, "no lockout from elsewhere");
    // The address limit is per address: another name from a fresh one goes through.
    let other = auth_post(
        base,
        "login",
        Some(serde_json::json!({"username": "erin", "password": "whatever1"})),
        None,
        &[("x-forwarded-for", "10.0.0.7")],
    )
    .await;
    assert_eq!(other.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn account_requests_from_foreign_origins_are_refused() {
    use common::{auth_post, me};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let base = server.base.as_str();
    let evil = [("origin", "http://evil.example")];
    let body = Some(serde_json::json!({"username": "frank", "password": "frank's password"}));
    let refused = auth_post(base, "register", body.clone(), None, &evil).await;
    assert_eq!(refused.status, 403);
    assert!(refused.cookie().is_none());
    let same_site = [("origin", base)];
    let made = auth_post(base, "register", body.clone(), None, &same_site).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let cookie = made.cookie().expect("cookie");
    assert_eq!(
        auth_post(base, "login", body, None, &evil).await.status,
        403
    );
    // A foreign page cannot sign the player out either.
    assert_eq!(
        auth_post(base, "logout", None, Some(&cookie), &evil)
            .await
            .status,
        403
    );
    assert_eq!(me(base, &cookie).await.status, 200);
    server.stop().await;
}

#[test]
fn the_list_of_admin_routes_whose_refusals_are_tested_has_every_admin_route() {
    common::moderation::admin_routes_are_all_listed();
}

#[tokio::test]
async fn moderation_rolls_back_to_exact_colours_and_the_log_still_replays() {
    use common::moderation;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 128, 0)).await;
    let bases = [server.base.clone()];
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let player = server.guest().await;
    moderation::non_admins_are_refused(&server.base, &player).await;
    let admin = moderation::admin_cookie(&store, &server.base, "root").await;
    // A state-changing admin request from another site is refused like the others.
    let evil = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/reset-canvas", server.base))
        .header("cookie", &admin)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(evil.status(), 403);
    let log = place::verify::LogSource::DataDir(dir.path().to_path_buf());
    moderation::rollbacks_restore_exact_colours(&bases, &admin, &log).await;
    server.stop().await;
}

#[tokio::test]
async fn protected_regions_hold_and_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = common::moderation::admin_cookie(&store, &server.base, "root").await;
    let kept =
        common::regions::regions_hold_on_every_edge(std::slice::from_ref(&server.base), &admin)
            .await;
    server.stop().await;
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let regions: serde_json::Value = reqwest::get(format!("{}/api/v1/regions", server.base))
        .await
        .expect("regions")
        .json()
        .await
        .expect("json");
    assert_eq!(regions["regions"][0]["id"], kept.as_str(), "{regions}");
    assert_eq!(regions["regions"].as_array().map(Vec::len), Some(1));
    let mut guest = common::moderation::Player::join(&server.base).await;
    match guest.place(41, 41, 2).await {
        place_protocol::ServerMessage::Error(e) => {
            assert_eq!(e.code, place_protocol::ErrorCode::RegionRegisteredOnly)
        }
        other => panic!("a guest placed in a registered region after a restart: {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_spike_of_many_guests_raises_the_alarm_and_slows_the_area_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (webhook, received) = common::spikes::webhook_receiver().await;
    let server = Server::start(ServeConfig {
        // Every guest is 127.0.0.1: the per-network limits would stop the crowd.
        placements_per_address_per_minute: 0,
        spike_min_rate: 5,
        spike_factor: 3,
        spike_slow_minutes: 2,
        spike_slow_cooldown_secs: 60,
        spike_webhook: Some(webhook),
        ..config(dir.path(), 128, 128, 0)
    })
    .await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = common::moderation::admin_cookie(&store, &server.base, "root").await;
    common::spikes::a_spike_is_alarmed_and_slowed_down(&server.base, &admin, 60, 60, received)
        .await;
    server.stop().await;
}

#[tokio::test]
async fn moderation_bans_and_a_cooldown_that_outlives_a_restart() {
    use common::moderation;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = moderation::admin_cookie(&store, &server.base, "root").await;
    moderation::bans_and_settings_reach_every_edge(std::slice::from_ref(&server.base), &admin)
        .await;
    server.stop().await;
    // The cooldown the administrator set is the one after a restart, not the configured one.
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let info: serde_json::Value = reqwest::get(format!("{}/api/v1/canvas/info", server.base))
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(info["cooldownSeconds"], 42);
    server.stop().await;
}

#[tokio::test]
async fn the_canvas_grows_under_load_and_keeps_its_size_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 100, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = common::moderation::admin_cookie(&store, &server.base, "root").await;
    let log = place::verify::LogSource::DataDir(dir.path().to_path_buf());
    // Before the growth: one pixel, and a timelapse snapshot of the 128x100 canvas.
    let mut early = common::moderation::Player::join(&server.base).await;
    early.paint(&[(127, 99, 3)]).await;
    let source = place_timelapse::Source::Embedded(server.store.clone());
    let small = place_tiles::CanvasGeometry::new(128, 100).expect("valid");
    let snapshot = place_timelapse::snapshot::take(&source, small, Duration::ZERO)
        .await
        .expect("take a snapshot")
        .expect("a snapshot of the painted canvas");
    let before_growth = place_edge::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    common::growth::canvas_grows_under_load(std::slice::from_ref(&server.base), &admin, &log).await;
    // The snapshot keeps its own size, and so does a frame of before the growth (a rectangle
    // is cut to the canvas of its time, one wholly beyond it refused); a frame of now is of the
    // grown canvas and has the new pixel.
    let base = server.base.clone();
    let png = |path: String| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(&url).await.expect("png");
            assert_eq!(response.status(), 200, "{url}");
            common::timelapse::png_pixels(&response.bytes().await.expect("png body"))
        }
    };
    let (w, h, pixels) = png(format!("/api/v1/timelapse/snapshot/{snapshot}")).await;
    assert_eq!((w, h, pixels[99 * 128 + 127]), (128, 100, 3));
    let (w, h, pixels) = png(format!("/api/v1/timelapse/frame?t={before_growth}")).await;
    assert_eq!((w, h), (128, 100), "the canvas of that time");
    let painted: Vec<usize> = (0..pixels.len()).filter(|&i| pixels[i] != 0).collect();
    assert_eq!(
        painted,
        vec![99 * 128 + 127],
        "only the pixel placed before"
    );
    let (w, h, pixels) = png(format!(
        "/api/v1/timelapse/frame?t={before_growth}&x=100&y=90&width=100&height=50"
    ))
    .await;
    assert_eq!((w, h), (28, 10), "cut to the canvas of that time");
    assert_eq!(pixels[9 * 28 + 27], 3);
    let beyond = reqwest::get(format!(
        "{}/api/v1/timelapse/frame?t={before_growth}&x=150&y=0&width=10&height=10",
        server.base
    ))
    .await
    .expect("frame");
    assert_eq!(
        beyond.status(),
        400,
        "wholly beyond the canvas of that time"
    );
    let (w, h, pixels) = png("/api/v1/timelapse/frame".to_owned()).await;
    assert_eq!((w, h), (228, 164));
    assert_eq!(pixels[130 * 228 + 178], 5);
    server.stop().await;
    // Restarted with the configured size it started from, it serves the grown canvas, with
    // the pixel placed in the new area.
    let server = Server::start(config(dir.path(), 128, 100, 0)).await;
    let info = common::moderation::call(&server.base, "GET", "/api/v1/canvas/info", None, None)
        .await
        .body;
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(228), Some(164))
    );
    let tile = reqwest::get(format!("{}/api/v1/tiles/2/2", server.base))
        .await
        .expect("tile")
        .bytes()
        .await
        .expect("tile body");
    // (178, 130) is (50, 2) in tile (2, 2).
    assert_eq!(tile[2 * 64 + 50], 5);
    let report = place::verify::verify(&server.base, &log)
        .await
        .expect("verify");
    assert_eq!(report.differing, 0, "{:?}", report.differences);
    server.stop().await;
}

#[tokio::test]
async fn metrics_show_placements_broadcasts_the_shard_and_requests_with_request_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 30)).await;
    let mut painter = server.client(&server.guest().await, false).await;
    let mut watcher = server.client(&server.guest().await, true).await;
    common::observability::metrics_after_placements(
        &server.base,
        &mut painter,
        &server.base,
        &mut watcher,
        &["serve"],
    )
    .await;
    let text = common::observability::scrape(&server.base).await;
    let tiles = common::observability::metric(&text, "rplace_shard_tiles_owned{shard=\"serve\"}");
    assert_eq!(tiles, Some(1.0), "a 64x64 canvas is one tile");
    assert!(
        text.contains("rplace_shard_write_duration_seconds_count"),
        "the in-process shard's own histogram"
    );
    assert!(
        text.contains("rplace_shard_write_batch_size_bucket{le=\"4096\"}"),
        "batch sizes in placements, not seconds"
    );
    // Every response names its correlation id: the client's, or a fresh one.
    let client = reqwest::Client::new();
    let mine = client
        .get(format!("{}/api/v1/canvas/info", server.base))
        .header("x-request-id", "my-request-7")
        .send()
        .await
        .expect("info");
    assert_eq!(mine.headers()["x-request-id"], "my-request-7");
    let fresh = client
        .get(format!("{}/api/v1/canvas/info", server.base))
        .send()
        .await
        .expect("info");
    let id = fresh.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    server.stop().await;
}

#[tokio::test]
async fn history_lists_pixels_users_and_recent_placements_by_pages_and_a_heatmap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 128, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = common::moderation::admin_cookie(&store, &server.base, "root").await;
    common::history::history_pages_marks_and_heatmap(std::slice::from_ref(&server.base), &admin)
        .await;
    server.stop().await;
}

#[tokio::test]
async fn history_requests_are_limited_per_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..120 {
        let r = client
            .get(format!("{}/api/v1/history/recent?limit=1", server.base))
            .send()
            .await
            .expect("request");
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=10).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses[..50].iter().all(|&s| s == 200),
        "a burst of 50 is allowed"
    );
    assert!(statuses.contains(&429), "120 at once are not");
    // Other routes are not counted against it.
    let info = client
        .get(format!("{}/api/v1/canvas/info", server.base))
        .send()
        .await
        .expect("info");
    assert_eq!(info.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelapse_snapshots_frames_jobs_and_the_cli_equal_replays_of_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServeConfig {
        timelapse_snapshot_secs: 1,
        ..config(dir.path(), 128, 96, 0)
    })
    .await;
    let store = place_store::EmbeddedStore::open(dir.path())
        .await
        .expect("the same store");
    let source = place_timelapse::Source::Embedded(store.clone());
    let geometry = place_tiles::CanvasGeometry::new(128, 96).expect("size");
    let bases = [server.base.clone()];
    common::timelapse::frames_equal_replays(&bases, &source, geometry, Duration::from_secs(1))
        .await;

    // `place timelapse` into a GIF and into a directory of PNGs, from the same store.
    let palette = place_tiles::Palette::default_with(16).expect("palette");
    let (first, last) = store
        .event_time_range()
        .await
        .expect("range")
        .expect("events");
    let out = tempfile::tempdir().expect("tempdir");
    let rect = place_store::Rect {
        x: 10,
        y: 0,
        width: 100,
        height: 96,
    };
    let mut request = place::timelapse_cli::Request {
        from: "start".into(),
        to: last.to_string(),
        rect: Some("10,0,100,96".into()),
        frames: 7,
        delay_ms: 100,
        out: out.path().join("t.gif"),
    };
    let summary = place::timelapse_cli::render(&source, geometry, &palette, &request, false)
        .await
        .expect("render the GIF");
    assert_eq!((summary.frames, summary.span), (7, (first, last)));
    let gif = std::fs::read(out.path().join("t.gif")).expect("the GIF");
    let frames = common::timelapse::gif_frames(&gif);
    request.out = out.path().join("frames/");
    place::timelapse_cli::render(&source, geometry, &palette, &request, false)
        .await
        .expect("render PNGs");
    let spec = place_timelapse::render::RenderSpec {
        from: first,
        to: last,
        x: 10,
        y: 0,
        width: 100,
        height: 96,
        frames: 7,
        delay_ms: 100,
        format: place_timelapse::render::Format::Gif,
    };
    for (i, t) in spec.frame_times().into_iter().enumerate() {
        let replay = store.replay_log_until(geometry, t).await.expect("replay");
        let expected = common::timelapse::crop(&replay, 128, rect);
        assert_eq!(frames[i], expected, "GIF frame {i} at {t}");
        let png = std::fs::read(out.path().join(format!("frames/frame-{i:05}.png"))).expect("png");
        assert_eq!(common::timelapse::png_pixels(&png).2, expected, "PNG {i}");
    }
    server.stop().await;
}

#[tokio::test]
async fn readiness_names_the_store_and_answers_503_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let ready = || async {
        let r = reqwest::get(format!("{}/health/ready", server.base))
            .await
            .expect("ready");
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let (status, body) = ready().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["status"], &body["store"]),
        (&"ok".into(), &"ok".into())
    );
    assert!(body["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body.get("redis").is_none() && body.get("postgres").is_none());
    // The store goes away: not ready, and it says which service.
    server.store.close().await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        (&body["status"], &body["store"]),
        (&"unavailable".into(), &"unavailable".into())
    );
    let live = reqwest::get(format!("{}/health", server.base))
        .await
        .expect("health");
    assert_eq!(live.status(), 200, "still alive");
    server.stop_anyway().await;
}

#[tokio::test]
async fn a_user_promoted_or_demoted_by_name_has_or_loses_the_rights_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    // The store is changed beside the running server, as `place admin promote --data-dir` does.
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    common::moderation::promotion_and_demotion_count_at_once(
        &store,
        std::slice::from_ref(&server.base),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn templates_are_made_from_palette_pngs_read_back_and_their_progress_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 256, 256, 0)).await;
    common::templates::templates_made_read_and_followed(std::slice::from_ref(&server.base)).await;
    server.stop().await;
}
