//! The canvas-growth scenario both modes run: players paint while an administrator grows the
//! canvas through the first edge; every edge's sockets hear the new size, a placement in the new
//! area reaches a watcher of its tile, no acknowledged placement is lost, and the info, the
//! canvas image, history, the audit log and `place verify` agree on the grown canvas.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use place::verify::LogSource;
use place_protocol::{ClientMessage, ErrorCode, ServerMessage, TileRequest};
use place_tiles::TileId;
use serde_json::{json, Value};

use place_testkit::TIMEOUT;
use place_testkit::{call, Player};

/// Players painting at once, each on its own pixels (so the last colour it was told is
/// durable is the colour its pixels must show).
const PLAYERS: usize = 3;

/// What a player was told is durable: `(x, y, colour)`, in order.
type Acks = Vec<(u32, u32, u8)>;

/// Paints pixels of column band `index` (x in `8*index..8*index+8`, y in `0..32`) until `stop`,
/// 40 a second at most: an unpaced player would be closed by the server's limit of 50 messages a
/// second (it was, on a loaded machine, where answers come in bursts).
async fn paint_until(mut player: Player, index: usize, stop: Arc<AtomicBool>) -> Acks {
    let mut acks = Acks::new();
    let mut n = 0u32;
    let mut pace = tokio::time::interval(Duration::from_millis(25));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) || acks.len() < 5 {
        pace.tick().await;
        let x = 8 * index as u32 + n % 8;
        let y = (n / 8) % 32;
        let color = 1 + (n % 7) as u8;
        n += 1;
        match player.place(x.into(), y.into(), color.into()).await {
            ServerMessage::Success { .. } => acks.push((x, y, color)),
            // Refused: nothing applied, nothing owed.
            ServerMessage::Error(e) => assert!(
                e.code == ErrorCode::RateLimited || e.code == ErrorCode::Unavailable,
                "a placement at ({x},{y}) refused: {e:?}"
            ),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    acks
}

/// The canvas size `base` serves.
async fn info_size(base: &str) -> (u32, u32) {
    let info = call(base, "GET", "/api/v1/canvas/info", None, None).await;
    assert_eq!(info.status, 200, "{}", info.body);
    let side = |k: &str| info.body[k].as_u64().expect("a side") as u32;
    (side("width"), side("height"))
}

/// Grows the canvas of `bases` (a `place serve`, or a cluster's edges) by 100 x 64 pixels while
/// players paint; `admin` is an administrator's session cookie there.
pub async fn canvas_grows_under_load(bases: &[String], admin: &str, log: &LogSource) {
    let (first, last) = (&bases[0], &bases[bases.len() - 1]);
    let (w0, h0) = info_size(first).await;
    let (w, h) = (w0 + 100, h0 + 64);
    let put = |body: Value| {
        call(
            first,
            "PUT",
            "/api/v1/admin/canvas/size",
            Some(admin),
            Some(body),
        )
    };

    // Refusals, each with a reason, and nothing changes.
    for (body, reason) in [
        (json!({"width": w0 - 1, "height": h}), "only grows"),
        (json!({"width": w0, "height": h0}), "already"),
        (json!({"width": 65_537, "height": h0}), "65536"),
        (json!({"width": w}), "height"),
    ] {
        let refused = put(body.clone()).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        let message = refused.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(reason), "{body}: {message:?}");
    }
    assert_eq!(info_size(first).await, (w0, h0));

    // A socket per edge that will hear the new size, and a watcher of a tile that is new.
    let mut listeners = Vec::new();
    for base in bases {
        listeners.push(Player::join(base).await);
    }
    let (nx, ny) = (w0 + 50, h0 + 30);
    let mut painter = Player::join(last).await;
    match painter.place(nx.into(), ny.into(), 5).await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::InvalidCoords),
        other => panic!("a placement off the canvas: {other:?}"),
    }

    // Players paint throughout the growth.
    let stop = Arc::new(AtomicBool::new(false));
    let mut painting = Vec::new();
    for index in 0..PLAYERS {
        let player = Player::join(&bases[index % bases.len()]).await;
        painting.push(tokio::spawn(paint_until(player, index, Arc::clone(&stop))));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = put(json!({"width": w, "height": h})).await;
    assert_eq!(grown.status, 200, "{}", grown.body);
    assert_eq!(
        grown.body,
        json!({"from": {"width": w0, "height": h0}, "width": w, "height": h})
    );
    for listener in &mut listeners {
        let size = tokio::time::timeout(
            TIMEOUT,
            listener.socket.recv_until(|m| match m {
                ServerMessage::Canvas { width, height } => Some((*width, *height)),
                _ => None,
            }),
        )
        .await
        .expect("every edge's sockets hear the new size");
        assert_eq!(size, (w, h));
    }
    // Every edge checks placements against the new bounds at once.
    for base in bases {
        assert_eq!(info_size(base).await, (w, h));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for task in painting {
        acked.extend(task.await.expect("a painter"));
    }

    // A placement in the new area reaches a watcher of its (new) tile.
    let new_tile = TileId::new((nx / 64) as u16, (ny / 64) as u16);
    let watcher = &mut listeners[0].socket;
    watcher
        .send(&ClientMessage::Subscribe {
            tiles: vec![TileRequest {
                tile: new_tile,
                seq: None,
            }],
        })
        .await;
    let (seq, pixels) = watcher
        .recv_until(|m| match m {
            ServerMessage::Tile { tile, seq, pixels } if *tile == new_tile => {
                Some((*seq, pixels.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(seq, 0, "a new tile starts with nothing placed");
    assert!(pixels.iter().all(|&p| p == 0), "a new tile is empty");
    painter.paint(&[(nx.into(), ny.into(), 5)]).await;
    let seen = watcher
        .recv_until(|m| match m {
            ServerMessage::Pixels { tile, changes, .. } if *tile == new_tile => {
                Some(changes.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(
        (seen[0].lx, seen[0].ly, seen[0].color),
        ((nx % 64) as u8, (ny % 64) as u8, 5)
    );
    // Past the new bounds is still refused.
    match painter.place(w.into(), 0, 5).await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::InvalidCoords),
        other => panic!("a placement off the grown canvas: {other:?}"),
    }

    // The canvas image: the new size, every acknowledged pixel kept, the new area empty but
    // for the one placement.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let image = reqwest::get(format!("{first}/api/v1/canvas"))
        .await
        .expect("canvas");
    assert_eq!(image.headers()["x-canvas-width"], w.to_string().as_str());
    assert_eq!(image.headers()["x-canvas-height"], h.to_string().as_str());
    let canvas = image.bytes().await.expect("canvas body");
    assert_eq!(canvas.len(), (w * h) as usize);
    let mut last_acked = std::collections::HashMap::new();
    for &(x, y, c) in &acked {
        last_acked.insert((x, y), c);
    }
    assert!(acked.len() >= PLAYERS * 5, "the players painted: {acked:?}");
    for (&(x, y), &c) in &last_acked {
        assert_eq!(
            canvas[(y * w + x) as usize],
            c,
            "acknowledged ({x},{y}) lost"
        );
    }
    let painted_new: Vec<(u32, u32)> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| (x >= w0 || y >= h0) && canvas[(y * w + x) as usize] != 0)
        .collect();
    assert_eq!(painted_new, vec![(nx, ny)]);

    // History, the audit log and a replay of the log agree.
    let history = call(
        last,
        "GET",
        &format!("/api/v1/history/pixel?x={nx}&y={ny}"),
        None,
        None,
    )
    .await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.body["items"][0]["color"], 5, "{}", history.body);
    let audit = call(first, "GET", "/api/v1/admin/audit-log", Some(admin), None).await;
    let resize = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "resize-canvas")
        .unwrap_or_else(|| panic!("no resize in the audit log: {}", audit.body))
        .clone();
    assert_eq!(
        resize["details"],
        json!({"from": {"width": w0, "height": h0}, "to": {"width": w, "height": h}})
    );
    let report = place::verify::verify(first, log).await.expect("verify");
    assert_eq!(report.pixels, (w * h) as usize);
    assert_eq!(report.differing, 0, "{:?}", report.differences);
}
