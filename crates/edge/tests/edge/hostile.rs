//! Hostile clients against a real edge on an ephemeral port: each attack of the internet audit (issue 14),
//! repeated on loopback with 127.0.0.2 and friends as other client addresses, asserting its
//! bounded outcome and that a well-behaved player on another address still places and sees
//! pixels meanwhile. Every loop is bounded in count and time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use place_edge::EdgeConfig;
use place_protocol::{ClientMessage, RequestId, ServerMessage};
use place_testkit::{subscribe, Answer, Client, Player};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::Server;

/// A TCP connection to `server` from the loopback address `from` (127.0.0.2, ...).
async fn connect_from(from: &str, server: &str) -> TcpStream {
    let from: IpAddr = from.parse().expect("source address");
    let to: SocketAddr = server
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host")
        .parse()
        .expect("server address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind source");
    socket.connect(to).await.expect("connect")
}

/// Whether the server closed `stream` within `within` (reads until EOF or a reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A guest cookie made from the loopback address `from`.
async fn guest_from(base: &str, from: &str) -> String {
    place_testkit::guest_with(&from_address(from), base).await
}

/// An HTTP client whose connections come from the loopback address `from`.
fn from_address(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .build()
        .expect("client")
}

/// A WebSocket of `cookie` from the loopback address `from`; `Err` with the HTTP status when the
/// upgrade is refused.
async fn websocket_from(server: &Server, from: &str, cookie: &str) -> Result<Client, u16> {
    let stream = connect_from(from, &server.base).await;
    let mut request = server.ws.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(cookie).expect("cookie"));
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => {
            let mut client = Client::from_stream(ws, false);
            match client.recv().await {
                ServerMessage::Welcome(_) => Ok(client),
                other => panic!("expected welcome, got {other:?}"),
            }
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("websocket: {other}"),
    }
}

/// A well-behaved player on 127.0.0.9: places a pixel and sees it come back, within 5 s.
async fn a_player_still_plays(server: &Server, x: i64, color: i64) {
    let cookie = guest_from(&server.base, "127.0.0.9").await;
    let mut player = websocket_from(server, "127.0.0.9", &cookie)
        .await
        .expect("the player's socket is accepted");
    player.send(&subscribe(&[(0, 0)])).await;
    player
        .send(&ClientMessage::Place {
            x,
            y: 1,
            color,
            request_id: Some(RequestId::Number(1)),
        })
        .await;
    let seen = tokio::time::timeout(
        Duration::from_secs(5),
        player.recv_until(|m| match m {
            ServerMessage::Pixels { changes, .. } => changes
                .iter()
                .any(|c| i64::from(c.lx) == x && c.ly == 1 && i64::from(c.color) == color)
                .then_some(()),
            _ => None,
        }),
    )
    .await;
    assert!(seen.is_ok(), "the well-behaved player saw its pixel");
}

/// Header and body deadlines of 1 s, so the slow attacks are cut off quickly.
fn hostile(c: &mut EdgeConfig) {
    c.limits.header_read_timeout = Duration::from_secs(1);
    c.limits.request_body_timeout = Duration::from_secs(1);
}

#[tokio::test]
async fn slow_headers_and_silent_sockets_are_closed_by_the_header_deadline() {
    let server = Server::start(256, 256, 0, hostile).await;
    let mut attackers = Vec::new();
    for i in 0..20 {
        let mut stream = connect_from("127.0.0.2", &server.base).await;
        if i % 2 == 0 {
            // Half a request head, never finished.
            stream
                .write_all(b"GET /api/v1/canvas/info HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .expect("write");
        }
        attackers.push(stream);
    }
    // An idle keep-alive connection after one good request.
    let mut idle = connect_from("127.0.0.3", &server.base).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    attackers.push(idle);

    a_player_still_plays(&server, 3, 5).await;
    let started = Instant::now();
    for stream in &mut attackers {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a slow or silent connection is closed"
        );
    }
    // The deadline is 1 s; 5 s is slack for a loaded CI machine.
    assert!(started.elapsed() < Duration::from_secs(6));
    server.stop().await;
}

#[tokio::test]
async fn connections_are_capped_per_address_and_in_all_with_a_clear_answer() {
    let server = Server::start(256, 256, 0, |c| {
        hostile(c);
        c.limits.max_connections_per_address = 5;
        c.limits.max_connections = 16;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.2", &server.base).await);
    }
    let mut sixth = connect_from("127.0.0.2", &server.base).await;
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sixth.read_to_string(&mut answer)).await;
    assert!(
        answer.starts_with("HTTP/1.1 429"),
        "the sixth from one address: {answer:?}"
    );
    a_player_still_plays(&server, 4, 6).await;

    // Fill the process from other addresses: the next connection is told the server is full.
    for i in 0..20 {
        held.push(connect_from(&format!("127.0.1.{}", i + 1), &server.base).await);
    }
    let mut over = connect_from("127.0.2.1", &server.base).await;
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), over.read_to_string(&mut answer)).await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "over the cap: {answer:?}"
    );
    drop(held);
    // Places come back as the connections close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = reqwest::get(format!("{}/health", server.base)).await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the server admits again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn websockets_are_capped_per_session_and_per_address() {
    let server = Server::start(256, 256, 0, |c| {
        hostile(c);
        c.limits.max_websockets_per_session = 3;
        c.limits.max_websockets_per_address = 5;
    })
    .await;
    let cookie = guest_from(&server.base, "127.0.0.2").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(
            websocket_from(&server, "127.0.0.2", &cookie)
                .await
                .expect("under the session cap"),
        );
    }
    assert_eq!(
        websocket_from(&server, "127.0.0.2", &cookie).await.err(),
        Some(429),
        "a fourth socket of one session"
    );
    for _ in 0..2 {
        let other = guest_from(&server.base, "127.0.0.2").await;
        sockets.push(
            websocket_from(&server, "127.0.0.2", &other)
                .await
                .expect("under the address cap"),
        );
    }
    let sixth = guest_from(&server.base, "127.0.0.2").await;
    assert_eq!(
        websocket_from(&server, "127.0.0.2", &sixth).await.err(),
        Some(429),
        "a sixth socket from one address"
    );
    a_player_still_plays(&server, 5, 7).await;
    // A closed socket gives its place back.
    drop(sockets.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while websocket_from(&server, "127.0.0.2", &sixth).await.is_err() {
        assert!(Instant::now() < deadline, "a place comes back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_within_ten_seconds() {
    let server = Server::start(256, 256, 0, hostile).await;
    let cookie = guest_from(&server.base, "127.0.0.2").await;
    // A small receive window, so the kernel holds little for it.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket
        .bind("127.0.0.2:0".parse().expect("address"))
        .expect("bind");
    let to: SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let stream = socket.connect(to).await.expect("connect");
    let mut request = server.ws.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie).expect("cookie"));
    let (mut sleeper, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    let all: Vec<(u16, u16)> = (0..4).flat_map(|x| (0..4).map(move |y| (x, y))).collect();
    let frame = place_protocol::binary::encode_client(&subscribe(&all));
    futures_util::SinkExt::send(&mut sleeper, Message::Binary(frame.clone()))
        .await
        .expect("subscribe");
    assert_eq!(server.edge.players_online().await, 1);

    // Noise in the 16 tiles, so their snapshots do not compress away.
    let shard = server.shard.clone();
    for chunk in 0..64u32 {
        let places = (0..1024u32).map(|i| {
            let n = chunk * 1024 + i;
            shard.place(place_shard::PlaceRequest {
                x: n % 256,
                y: n / 256,
                color: (n.wrapping_mul(2_654_435_761) >> 28) as u8,
                user_id: 1,
                placed_at: place_edge::now_ms(),
                action_id: None,
                placement_id: u64::from(n) | 1,
            })
        });
        let placed = futures_util::future::join_all(places).await;
        assert!(placed.iter().all(Result::is_ok), "noise painted");
    }
    // Then the attack: ask for the 16 snapshots again and again (a subscription to a tile already
    // watched is answered with its snapshot), under the flood limit, never reading a byte.
    let started = Instant::now();
    let churn = async {
        while started.elapsed() < Duration::from_secs(15) {
            {
                let message = &frame;
                let send =
                    futures_util::SinkExt::send(&mut sleeper, Message::Binary(message.clone()));
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(1), send).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let edge = std::sync::Arc::clone(&server.edge);
    let watch = async move {
        while started.elapsed() < Duration::from_secs(15) {
            if edge.players_online().await == 0 {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    };
    tokio::pin!(watch);
    let closed_after = tokio::select! {
        closed = &mut watch => closed,
        _ = churn => watch.await,
    };
    let closed_after = closed_after.expect("the non-reader was closed");
    // The bound is 8 s for a stalled write; 2 s of slack for a loaded machine.
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    a_player_still_plays(&server, 6, 8).await;
    drop(sleeper);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let server = Server::start(256, 256, 0, |c| {
        hostile(c);
        c.limits.ping_interval = Duration::from_secs(1);
    })
    .await;
    let cookie = guest_from(&server.base, "127.0.0.2").await;
    // A raw upgrade, then silence: no pongs, no frames.
    let mut stream = connect_from("127.0.0.2", &server.base).await;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Cookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.expect("answer");
    assert_eq!(&head, b"HTTP/1.1 101");
    let started = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(8)).await,
        "closed for silence"
    );
    // Twice the ping interval and a second: 3 s.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the limit"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009() {
    let server = Server::start(256, 256, 0, hostile).await;
    let cookie = server.guest().await;
    let mut client = server.client(&cookie, false).await;
    client
        .send_raw(Message::Binary(vec![0u8; 2 << 20].into()))
        .await;
    while client.try_recv(Duration::from_secs(5)).await.is_some() {}
    let code = client.closed.as_ref().map(|c| u16::from(c.code));
    assert_eq!(code, Some(1009), "{:?} {:?}", client.closed, client.error);
    server.stop().await;
}

#[tokio::test]
async fn guest_churn_pays_work_is_limited_per_network_and_keeps_the_cooldown() {
    let server = Server::start(256, 256, 30, |c| c.guest_rate_per_minute = 5).await;
    let http = from_address("127.0.0.2");
    let guest_url = format!("{}/api/v1/auth/guest", server.base);
    // No work, no guest; a forged or reused challenge neither.
    let bare = http.post(&guest_url).send().await.expect("post");
    assert_eq!(bare.status(), 400);
    let body: serde_json::Value = bare.json().await.expect("json");
    assert_eq!(body["error"]["code"], "CHALLENGE_FAILED");
    let proof = place_testkit::guest_proof(&http, &server.base).await;
    let first = http
        .post(&guest_url)
        .json(&proof)
        .send()
        .await
        .expect("post");
    assert_eq!(first.status(), 200);
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_owned();
    let reused = http
        .post(&guest_url)
        .json(&proof)
        .send()
        .await
        .expect("post");
    assert_eq!(reused.status(), 400, "a challenge makes one guest");

    // The first guest places, signs out, and comes back as a fresh guest: still cooling down.
    let mut first = websocket_from(&server, "127.0.0.2", &cookie)
        .await
        .expect("socket");
    first
        .send(&ClientMessage::Place {
            x: 10,
            y: 10,
            color: 3,
            request_id: Some(RequestId::Number(1)),
        })
        .await;
    assert!(matches!(first.recv().await, ServerMessage::Success { .. }));
    let logout = http
        .post(format!("{}/api/v1/auth/logout", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert!(logout.status().is_success());
    let fresh = guest_from(&server.base, "127.0.0.2").await;
    let mut again = websocket_from(&server, "127.0.0.2", &fresh)
        .await
        .expect("socket");
    again
        .send(&ClientMessage::Place {
            x: 11,
            y: 10,
            color: 3,
            request_id: Some(RequestId::Number(2)),
        })
        .await;
    match again.recv().await {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, place_protocol::ErrorCode::RateLimited);
            assert!(e.cooldown_remaining.is_some_and(|ms| ms > 20_000), "{e:?}");
        }
        other => panic!("a fresh guest kept the cooldown: {other:?}"),
    }

    // Guests per network per minute: 5 (two made above), then 429, whatever the work done.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let proof = place_testkit::guest_proof(&http, &server.base).await;
        statuses.push(
            http.post(&guest_url)
                .json(&proof)
                .send()
                .await
                .expect("post")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Another address is not charged.
    a_player_still_plays(&server, 12, 4).await;
    server.stop().await;
}

#[tokio::test]
async fn placements_are_budgeted_per_network_whatever_the_number_of_guests() {
    let server = Server::start(256, 256, 30, |c| {
        c.limits.placements_per_address_per_minute = 4;
    })
    .await;
    // Ten bot guests from one network, one placement each.
    let mut outcomes = Vec::new();
    for i in 0..10 {
        let cookie = guest_from(&server.base, "127.0.0.2").await;
        let mut bot = websocket_from(&server, "127.0.0.2", &cookie)
            .await
            .expect("socket");
        bot.send(&ClientMessage::Place {
            x: 20 + i,
            y: 20,
            color: 2,
            request_id: Some(RequestId::Number(1)),
        })
        .await;
        outcomes.push(match bot.recv().await {
            ServerMessage::Success { .. } => "placed".to_owned(),
            ServerMessage::Error(e) => {
                assert!(e.retry_after.is_some_and(|ms| ms <= 60_000), "{e:?}");
                e.code.as_str().to_owned()
            }
            other => panic!("{other:?}"),
        });
    }
    let placed = outcomes.iter().filter(|o| *o == "placed").count();
    assert_eq!(placed, 4, "{outcomes:?}");
    assert!(outcomes[4..].iter().all(|o| o == "RATE_LIMITED"));
    // A player elsewhere is not charged.
    a_player_still_plays(&server, 7, 9).await;
    server.stop().await;
}

/// The value of the first series of `metric` in the server's `/metrics`, 0 when absent.
async fn metric(server: &Server, metric: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(metric))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn invented_methods_make_no_new_metric_series() {
    let server = Server::start(256, 256, 0, hostile).await;
    let http = reqwest::Client::new();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("X{i:04}").as_bytes()).expect("method");
        let _ = http
            .request(method, format!("{}/api/v1/canvas/info", server.base))
            .send()
            .await
            .expect("answer");
    }
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !text.contains("X0001"),
        "no series named by a client's method"
    );
    // 300 invented methods on one route: one series (a status or two), not 300.
    let series = text
        .lines()
        .filter(|l| l.starts_with("rplace_http_requests_total{") && l.contains("method=\"other\""))
        .count();
    assert!(
        (1..=3).contains(&series),
        "{series} series of invented methods"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_gzip_flood_of_the_canvas_costs_one_compression_per_image() {
    let server = Server::start(256, 256, 0, hostile).await;
    let before = metric(&server, "rplace_canvas_compressions_total").await;
    let http = reqwest::Client::new();
    let fetches = (0..16).map(|_| {
        http.get(format!("{}/api/v1/canvas", server.base))
            .header("accept-encoding", "gzip")
            .send()
    });
    let started = Instant::now();
    let answers = futures_util::future::join_all(fetches).await;
    for answer in answers {
        let answer = answer.expect("canvas");
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some("gzip")
        );
        let body = answer.bytes().await.expect("body");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .expect("gzip");
        assert_eq!(plain.len(), 256 * 256, "the whole canvas");
    }
    let compressions = metric(&server, "rplace_canvas_compressions_total").await - before;
    // One image per second at most: 16 fetches within a couple of seconds make one or two.
    let seconds = started.elapsed().as_secs_f64().ceil();
    assert!(
        compressions >= 1.0 && compressions <= seconds + 1.0,
        "{compressions} compressions in {seconds} s"
    );
    a_player_still_plays(&server, 8, 2).await;
    server.stop().await;
}

#[tokio::test]
async fn a_request_body_that_never_arrives_is_cut_off() {
    let server = Server::start(256, 256, 0, hostile).await;
    let mut stream = connect_from("127.0.0.3", &server.base).await;
    // A head that promises 100 bytes, then one byte and silence.
    stream
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: place\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not ended within 5 s");
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 400") && text.contains("within the designated timeout"),
        "a slow body is answered 400, naming the timeout: {text:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "cut off after {waited:?}; the deadline is 1 s"
    );
    a_player_still_plays(&server, 9, 4).await;
    server.stop().await;
}

/// Starts a tiny render as `cookie` and waits for its end; the answer to the start.
async fn render_tiny(base: &str, cookie: &str) -> Answer {
    let now = place_edge::now_ms();
    let spec = serde_json::json!({"from": now - 1_000, "to": now, "x": 0, "y": 0,
                                  "width": 4, "height": 4, "frames": 1});
    let started = place_testkit::call(
        base,
        "POST",
        "/api/v1/timelapse/render",
        Some(cookie),
        Some(spec),
    )
    .await;
    if started.status == 202 {
        let id = started.body["jobId"].as_str().expect("jobId");
        place_testkit::wait_for_job(base, id, Duration::from_secs(10)).await;
    }
    started
}

#[tokio::test]
async fn render_jobs_are_for_accounts_within_a_quota() {
    let server = Server::start(256, 256, 0, hostile).await;
    let guest = Player::join(&server.base).await;
    let refused = render_tiny(&server.base, &guest.cookie).await;
    assert_eq!(
        refused.status, 403,
        "a guest renders nothing: {}",
        refused.body
    );
    let greedy = Player::account(&server.base, "greedy").await;
    for i in 0..place_timelapse::service::JOBS_PER_USER {
        let started = render_tiny(&server.base, &greedy.cookie).await;
        assert_eq!(started.status, 202, "render {i}: {}", started.body);
    }
    let over = render_tiny(&server.base, &greedy.cookie).await;
    assert_eq!(over.status, 429, "over the hourly quota: {}", over.body);
    assert!(
        over.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("last hour")),
        "{}",
        over.body
    );
    // The quota is the user's: another account still renders, and players still play.
    let other = Player::account(&server.base, "patient").await;
    assert_eq!(render_tiny(&server.base, &other.cookie).await.status, 202);
    a_player_still_plays(&server, 10, 6).await;
    server.stop().await;
}
