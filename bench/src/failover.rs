//! `place-bench failover-probe`: how long each tile of a killed shard goes unserved, from the
//! kill, as players see it.
//!
//! It reads the ring from Redis and opens sockets through the load balancer that watch the tiles
//! of the shard to kill (twenty tiles per socket). After `before` it sends `kill -9` to the
//! shard's process itself, so the kill's instant is its own clock's. From then on each socket
//! places a pixel in one of its tiles not back yet every 25 ms (within the 50 frames a second a
//! socket may send), so each tile is tried at least every 500 ms (a window is late by at most
//! that). A tile is **back** when a placement sent
//! after the kill is acknowledged (only a new owner can) and its watcher receives the delta of
//! one of them. The windows are printed per tile with their p50, p99 and maximum, and written as
//! JSON. The probe's own placements are not the run's load: a loadgen run beside it counts the
//! deltas they cause as `unmatched`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use place_protocol::{binary, ClientMessage, RequestId, ServerMessage, TileRequest};
use place_tiles::{CanvasGeometry, TileId, TILE_SIZE};
use serde::Serialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Tiles each probing socket places in and watches: each is tried every 500 ms at most (the
/// windows' resolution). More often, the probe's own placements, refused while the tiles have no
/// owner, would be most of the edges' work.
const TILES_PER_SOCKET: usize = 20;
/// Time between two placements of one socket (40 a second, under the 50 a socket may send).
const PLACE_EVERY: Duration = Duration::from_millis(25);

/// What to probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The load balancer (or an edge): `http://host:port`.
    pub url: String,
    /// Redis, where the ring is.
    pub redis_url: String,
    /// The cluster's name.
    pub cluster: String,
    /// The shard to kill.
    pub shard: String,
    /// Its process id.
    pub pid: u32,
    /// The canvas.
    pub geometry: CanvasGeometry,
    /// How long to probe before the kill.
    pub before: Duration,
    /// How long after the kill to wait for every tile at most.
    pub within: Duration,
}

/// When one tile was back, counted from the kill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TileWindow {
    /// The tile, as `tx:ty`.
    pub tile: String,
    /// Its first acknowledged placement sent after the kill (ms); `None`: not within the wait.
    pub acked_ms: Option<u64>,
    /// Its watcher's first delta carrying a placement sent after the kill (ms).
    pub delta_ms: Option<u64>,
}

/// The probe's findings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Windows {
    /// The shard killed.
    pub shard: String,
    /// Per tile.
    pub tiles: Vec<TileWindow>,
    /// Of every tile's window (the later of its acknowledgement and its delta): p50, p99, max,
    /// in ms; a tile not back counts as the whole wait.
    pub p50_ms: u64,
    /// See `p50_ms`.
    pub p99_ms: u64,
    /// See `p50_ms`.
    pub max_ms: u64,
    /// Tiles not back within the wait.
    pub not_back: usize,
}

/// What the probing sockets saw, by tile: first acknowledgement and first delta after the kill.
#[derive(Default)]
struct Seen {
    acked: HashMap<TileId, Duration>,
    delta: HashMap<TileId, Duration>,
}

/// Runs the probe: watches and paints the shard's tiles, kills it, and measures.
pub async fn run(probe: Probe) -> anyhow::Result<Windows> {
    let redis = redis::Client::open(probe.redis_url.as_str())
        .context("Redis URL")?
        .get_connection_manager()
        .await
        .context("connecting to Redis")?;
    let ring = place_cluster::RingStore::new(redis, &format!("place:{}:", probe.cluster))
        .require()
        .await
        .context("reading the ring")?;
    let tiles: Vec<TileId> = ring.tiles_of(&probe.shard, probe.geometry).collect();
    if tiles.is_empty() {
        bail!("{} owns no tile in the ring", probe.shard);
    }
    let http = reqwest::Client::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let killed: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sockets = Vec::new();
    for chunk in tiles.chunks(TILES_PER_SOCKET) {
        let cookie = guest(&http, &probe.url).await?;
        let socket = connect(&probe.url, &cookie).await?;
        sockets.push(tokio::spawn(probe_tiles(
            socket,
            chunk.to_vec(),
            Arc::clone(&seen),
            Arc::clone(&killed),
            Arc::clone(&stop),
        )));
    }
    tokio::time::sleep(probe.before).await;
    let status = std::process::Command::new("kill")
        .args(["-9", &probe.pid.to_string()])
        .status()
        .context("kill -9")?;
    let at = Instant::now();
    let _ = killed.set(at);
    let wall = place_tiles::clock::now_ms();
    eprintln!(
        "failover-probe: kill -9 {} ({}) at {wall} ms since the epoch",
        probe.pid, probe.shard
    );
    if !status.success() {
        bail!("kill -9 {} failed", probe.pid);
    }
    while at.elapsed() < probe.within {
        {
            let seen = seen.lock();
            if seen.acked.len() == tiles.len() && seen.delta.len() == tiles.len() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for socket in sockets {
        socket.await.context("a probing socket")??;
    }
    let seen = seen.lock();
    Ok(windows(&probe, &tiles, &seen))
}

/// The windows of `tiles` from what was seen.
fn windows(probe: &Probe, tiles: &[TileId], seen: &Seen) -> Windows {
    let ms = |d: &Duration| d.as_millis() as u64;
    let tiles_back: Vec<TileWindow> = tiles
        .iter()
        .map(|t| TileWindow {
            tile: format!("{}:{}", t.tx, t.ty),
            acked_ms: seen.acked.get(t).map(ms),
            delta_ms: seen.delta.get(t).map(ms),
        })
        .collect();
    let whole = ms(&probe.within);
    let mut each: Vec<u64> = tiles_back
        .iter()
        .map(|w| match (w.acked_ms, w.delta_ms) {
            (Some(a), Some(d)) => a.max(d),
            _ => whole,
        })
        .collect();
    each.sort_unstable();
    let at = |q: usize| each[(each.len() * q / 100).min(each.len() - 1)];
    Windows {
        shard: probe.shard.clone(),
        not_back: tiles_back
            .iter()
            .filter(|w| w.acked_ms.is_none() || w.delta_ms.is_none())
            .count(),
        tiles: tiles_back,
        p50_ms: at(50),
        p99_ms: at(99),
        max_ms: each[each.len() - 1],
    }
}

/// A placement the probe sent (all after the kill): its tile, pixel within the tile, colour.
#[derive(Clone, Copy)]
struct Sent {
    tile: TileId,
    lx: u8,
    ly: u8,
    color: u8,
}

/// One socket: watches its tiles; once the kill happened, places in each of them in turn until
/// it is back, and notes the first acknowledgement of each and the first delta carrying one of
/// its own placements sent after the kill (only the new owner can have applied those).
async fn probe_tiles(
    socket: Socket,
    tiles: Vec<TileId>,
    seen: Arc<Mutex<Seen>>,
    killed: Arc<std::sync::OnceLock<Instant>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let subscribe = ClientMessage::Subscribe {
        tiles: tiles
            .iter()
            .map(|&tile| TileRequest { tile, seq: None })
            .collect(),
    };
    sink.send(Message::Binary(binary::encode_client(&subscribe)))
        .await
        .context("subscribing")?;
    let sent: Arc<Mutex<HashMap<u32, Sent>>> = Arc::default();
    let reader = {
        let (sent, seen, killed) = (Arc::clone(&sent), Arc::clone(&seen), Arc::clone(&killed));
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Binary(bytes) = frame else {
                    continue;
                };
                let Ok(message) = binary::decode_server(&bytes) else {
                    continue;
                };
                let Some(at) = killed.get().copied() else {
                    continue;
                };
                match message {
                    ServerMessage::Success {
                        request_id: Some(RequestId::Number(id)),
                        ..
                    } => {
                        if let Some(placed) = sent.lock().get(&id) {
                            seen.lock().acked.entry(placed.tile).or_insert(at.elapsed());
                        }
                    }
                    ServerMessage::Pixels { tile, changes, .. } => {
                        let ours = sent.lock().values().any(|s| {
                            s.tile == tile
                                && changes
                                    .iter()
                                    .any(|c| (c.lx, c.ly, c.color) == (s.lx, s.ly, s.color))
                        });
                        if ours {
                            seen.lock().delta.entry(tile).or_insert(at.elapsed());
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    let mut every = tokio::time::interval(PLACE_EVERY);
    let mut next = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        every.tick().await;
        if killed.get().is_none() {
            continue;
        }
        let waiting: Vec<TileId> = {
            let seen = seen.lock();
            tiles
                .iter()
                .copied()
                .filter(|t| !seen.acked.contains_key(t) || !seen.delta.contains_key(t))
                .collect()
        };
        if waiting.is_empty() {
            break;
        }
        next = next.wrapping_add(1).max(1);
        let tile = waiting[next as usize % waiting.len()];
        let (lx, ly) = (
            rand::random_range(0..TILE_SIZE) as u8,
            rand::random_range(0..TILE_SIZE) as u8,
        );
        let color = rand::random_range(1..16u8);
        let (ox, oy) = tile.origin();
        let place = ClientMessage::Place {
            x: (ox + u32::from(lx)).into(),
            y: (oy + u32::from(ly)).into(),
            color: color.into(),
            request_id: Some(RequestId::Number(next)),
        };
        let placed = Sent {
            tile,
            lx,
            ly,
            color,
        };
        sent.lock().insert(next, placed);
        if sink
            .send(Message::Binary(binary::encode_client(&place)))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = sink.close().await;
    reader.abort();
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A guest session's cookie pair (the cluster must allow guests freely: `--guest-rate-per-minute
/// 0`).
async fn guest(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = http
        .post(format!("{url}/api/v1/auth/guest"))
        .send()
        .await
        .context("guest session")?;
    if !response.status().is_success() {
        bail!("guest session: {}", response.status());
    }
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with("place_session="))
        .map(str::to_owned)
        .context("guest session: no place_session cookie")
}

/// A WebSocket to `url`'s `/ws` with the session `cookie`, past its welcome.
async fn connect(url: &str, cookie: &str) -> anyhow::Result<Socket> {
    let mut request = format!("{}/ws", url.replacen("http", "ws", 1))
        .into_client_request()
        .context("WebSocket URL")?;
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(cookie).context("cookie")?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("opening the WebSocket")?;
    while let Some(frame) = socket.next().await {
        if let Message::Binary(bytes) = frame.context("before the welcome")? {
            if let Ok(ServerMessage::Welcome(_)) = binary::decode_server(&bytes) {
                return Ok(socket);
            }
        }
    }
    bail!("closed before the welcome")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_is_back_when_both_its_acknowledgement_and_its_delta_are() {
        let probe = Probe {
            url: String::new(),
            redis_url: String::new(),
            cluster: String::new(),
            shard: "shard-1".into(),
            pid: 0,
            geometry: CanvasGeometry::default(),
            before: Duration::ZERO,
            within: Duration::from_secs(15),
        };
        let tiles: Vec<TileId> = (0..4).map(|x| TileId::new(x, 0)).collect();
        let mut seen = Seen::default();
        for (i, t) in tiles.iter().enumerate().take(3) {
            seen.acked
                .insert(*t, Duration::from_millis(2_000 + 100 * i as u64));
            seen.delta.insert(*t, Duration::from_millis(2_150));
        }
        seen.acked.insert(tiles[3], Duration::from_millis(2_500));
        let w = windows(&probe, &tiles, &seen);
        assert_eq!(w.not_back, 1, "tile 3:0 got no delta");
        assert_eq!((w.p50_ms, w.max_ms), (2_200, 15_000));
        assert_eq!(w.tiles[0].acked_ms, Some(2_000));
        assert_eq!(w.tiles[0].delta_ms, Some(2_150));
    }
}
