//! The spike-alarm scenario: many guests paint one cell at once; the server raises an alarm (the
//! admin API, `/metrics`, the audit log, a webhook) and slows the cell down by itself; the
//! administrator lifts the slow-down in one request.

use std::time::Duration;

use place_protocol::{ClientMessage, ErrorCode, ServerMessage};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use place_testkit::call;
use place_testkit::Client;

/// A web server on loopback that passes every JSON body POSTed to it on; its URL.
pub async fn webhook_receiver() -> (String, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel(16);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// `guests` new guests each place one pixel in the cell at (0,0) (64 pixels a side) at about the
/// same moment, through `base`; then the alarm and its automatic slow-down (a cooldown of
/// `slow_seconds`) are seen. The server's per-network limits must be lifted and its cooldown 0.
pub async fn a_spike_is_alarmed_and_slowed_down(
    base: &str,
    admin: &str,
    guests: usize,
    slow_seconds: u64,
    mut webhook: mpsc::Receiver<Value>,
) {
    let ws = base.replace("http://", "ws://") + "/ws";
    let cookies =
        futures_util::future::join_all((0..guests).map(|_| place_testkit::guest(base))).await;
    let mut sockets = Vec::new();
    for cookie in &cookies {
        let mut socket = Client::connect(&ws, Some(cookie), false).await;
        assert!(matches!(socket.recv().await, ServerMessage::Welcome(_)));
        sockets.push(socket);
    }
    let started = Instant::now();
    let placed = futures_util::future::join_all(sockets.iter_mut().enumerate().map(
        |(i, socket)| async move {
            let (x, y) = ((i % 64) as i64, (i / 64) as i64 + 10);
            place(socket, x, y).await
        },
    ))
    .await;
    assert!(
        placed.iter().all(Option::is_none),
        "every guest placed once: {placed:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the burst took {:?}",
        started.elapsed()
    );

    // The alarm, listed for the administrators within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(8);
    let alarm = loop {
        let listed = call(base, "GET", "/api/v1/admin/alarms", Some(admin), None).await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        if let Some(alarm) = listed.body["alarms"].get(0) {
            break alarm.clone();
        }
        assert!(Instant::now() < deadline, "no alarm after the spike");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (&alarm["x"], &alarm["y"], &alarm["width"], &alarm["height"]),
        (
            &Value::from(0),
            &Value::from(0),
            &Value::from(64),
            &Value::from(64)
        ),
        "{alarm}"
    );
    assert!(alarm["rate"].as_f64().unwrap_or(0.0) > 1.0, "{alarm}");
    assert_eq!(alarm["slowedDown"], true, "{alarm}");
    let region = alarm["regionId"]
        .as_str()
        .expect("the slow-down's region")
        .to_owned();

    // On /metrics, and slowed down for players: a second placement in the cell waits.
    let text = super::observability::scrape(base).await;
    let alarms = super::observability::metric(&text, "rplace_spike_alarms_total");
    assert!(alarms.unwrap_or(0.0) >= 1.0, "{alarms:?}");
    let regions: Value = reqwest::get(format!("{base}/api/v1/regions"))
        .await
        .expect("regions")
        .json()
        .await
        .expect("json");
    let slow = &regions["regions"][0];
    assert_eq!(slow["mode"], "slow", "{regions}");
    assert_eq!(slow["automatic"], true, "{regions}");
    assert_eq!(slow["cooldownSeconds"], slow_seconds, "{regions}");
    let again = place(&mut sockets[0], 5, 5).await;
    assert_eq!(again.map(|(code, _)| code), Some(ErrorCode::RateLimited));
    assert_eq!(
        place(&mut sockets[0], 100, 5).await,
        None,
        "outside the cell"
    );

    // Every automatic action is in the audit log, by the server.
    let (actions, audit) = super::moderation::audit_actions(base, admin).await;
    let by_server: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["actorId"] == "0")
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert!(
        by_server.contains(&"spike-alarm") && by_server.contains(&"region-add"),
        "{actions:?}: {audit}"
    );

    // The webhook heard of it.
    let hook = tokio::time::timeout(Duration::from_secs(8), webhook.recv())
        .await
        .expect("the webhook is called")
        .expect("a body");
    assert_eq!(hook["kind"], "spike-alarm", "{hook}");
    assert_eq!(hook["regionId"], region.as_str(), "{hook}");

    // Reversed in one request: the cell is the canvas's again.
    let lifted = call(
        base,
        "DELETE",
        &format!("/api/v1/admin/regions/{region}"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(lifted.status, 200, "{}", lifted.body);
    assert_eq!(place(&mut sockets[0], 5, 5).await, None, "lifted");
}

/// Places a pixel of colour 1; `None` when placed, else the refusal's code and message.
async fn place(socket: &mut Client, x: i64, y: i64) -> Option<(ErrorCode, String)> {
    socket
        .send(&ClientMessage::Place {
            x,
            y,
            color: 1,
            request_id: None,
        })
        .await;
    socket
        .recv_until(|m| match m {
            ServerMessage::Success { .. } => Some(None),
            ServerMessage::Error(e) => Some(Some((e.code, e.message.clone()))),
            _ => None,
        })
        .await
}
