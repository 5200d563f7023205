//! Prometheus metrics of an edge (in `place serve`, of the whole server), served at `GET /metrics`.
//!
//! The names follow the seed's (`rplace_*`): placements by colour, open connections, players
//! online, HTTP requests with their durations, rate-limit hits, the edge's placement latency
//! (from a placement's arrival to its durable acknowledgement) and its broadcast latency (from a
//! batch's application at its shard to its last write to a socket watching the tile), and the
//! figures of every shard the edge knows ([`ShardFigures`]: its own in `place serve`, the
//! shards' reports in Redis in a cluster), refreshed at each scrape. The `metrics` facade records
//! them; `metrics-exporter-prometheus` renders them. A process has one recorder, installed by the
//! first edge it starts, with a thread that drains histogram samples every few seconds so memory
//! stays bounded when nobody scrapes.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use tokio::time::Instant;

/// Placements acknowledged durably, by colour.
pub const PIXELS_PLACED: &str = "rplace_pixels_placed_total";
/// Open WebSockets.
pub const ACTIVE_CONNECTIONS: &str = "rplace_active_connections";
/// Distinct users with at least one open WebSocket.
pub const ACTIVE_USERS: &str = "rplace_active_users";
/// HTTP requests by method, route and status.
pub const HTTP_REQUESTS: &str = "rplace_http_requests_total";
/// HTTP request durations by method and route.
pub const HTTP_DURATION: &str = "rplace_http_request_duration_seconds";
/// Answers `RATE_LIMITED` (cooldown or flood).
pub const RATE_LIMIT_HITS: &str = "rplace_rate_limit_hits_total";
/// From a placement's arrival at the edge to its acknowledgement (durable).
pub const PLACEMENT_DURATION: &str = "rplace_placement_duration_seconds";
/// Placements refused, by error code.
pub const PLACEMENTS_REFUSED: &str = "rplace_placements_refused_total";
/// From a tile batch's application at its shard to this edge having written it to every socket
/// watching the tile: one sample per batch and edge.
pub const BROADCAST_DURATION: &str = "rplace_broadcast_duration_seconds";
/// Per shard (`shard` label): 1 while it reports (cluster) or answers (serve), else 0.
pub const SHARD_UP: &str = "rplace_shard_up";
/// Per shard: the ring epoch it works at.
pub const SHARD_EPOCH: &str = "rplace_shard_epoch";
/// Per shard: tiles it owns.
pub const SHARD_TILES: &str = "rplace_shard_tiles_owned";
/// Per shard: tiles it is still loading after a ring change.
pub const SHARD_ACQUIRING: &str = "rplace_shard_tiles_acquiring";
/// Per shard: placements it made durable since it started.
pub const SHARD_PLACED: &str = "rplace_shard_placements_total";
/// Per shard: placements waiting to be written.
pub const SHARD_QUEUE: &str = "rplace_shard_queue_depth";
/// Per shard: group commits since it started.
pub const SHARD_WRITES: &str = "rplace_shard_writes_total";
/// Per shard: how long a group commit takes lately (a moving average), in seconds.
pub const SHARD_WRITE_SECONDS: &str = "rplace_shard_write_batch_seconds";

/// Open TCP connections (HTTP and WebSocket) admitted by the accept loop.
pub const OPEN_CONNECTIONS: &str = "rplace_open_connections";
/// Connections refused at accept, by why (`server_full`, `address_connections`).
pub const CONNECTIONS_REFUSED: &str = "rplace_connections_refused_total";
/// Compressions of the whole canvas for `GET /api/v1/canvas` (at most one per image build).
pub const CANVAS_COMPRESSIONS: &str = "rplace_canvas_compressions_total";
/// WebSockets closed by the server, by why (`lagging`, `stalled`, `unresponsive`, `flood`,
/// `session_ended`, `shutdown`).
pub const WEBSOCKETS_CLOSED: &str = "rplace_websockets_closed_total";
/// Widened fan-out windows: batches of a tile held back (up to 100 ms) and merged because its
/// watchers had not written the tile's previous frame.
pub const FANOUT_HELD_WINDOWS: &str = "rplace_fanout_held_windows_total";

/// How often histogram samples are drained into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Histogram buckets in seconds: 1 ms to 2.5 s.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets of the group commit sizes (placements): 1 to the most a write carries.
const BATCH_SIZE_BUCKETS: [f64; 10] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` if another recorder was installed
/// first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(place_shard::driver::WRITE_BATCH_SIZE.into()),
                        &BATCH_SIZE_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    start_at_zero();
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        });
                    if let Err(error) = spawned {
                        tracing::warn!(%error, "no metrics upkeep thread: histograms grow until scraped");
                    }
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics are not recorded");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_gauge!(
        OPEN_CONNECTIONS,
        "Open TCP connections (HTTP and WebSocket)"
    );
    describe_counter!(CONNECTIONS_REFUSED, "Connections refused at accept, by why");
    describe_counter!(CANVAS_COMPRESSIONS, "Gzip compressions of the whole canvas");
    describe_counter!(WEBSOCKETS_CLOSED, "WebSockets closed by the server, by why");
    describe_counter!(
        FANOUT_HELD_WINDOWS,
        "Tile batches held back and merged while the tile's watchers were behind"
    );
    describe_counter!(PIXELS_PLACED, "Placements acknowledged durably, by colour");
    describe_gauge!(ACTIVE_CONNECTIONS, "Open WebSockets");
    describe_gauge!(ACTIVE_USERS, "Distinct users with an open WebSocket");
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request durations");
    describe_counter!(RATE_LIMIT_HITS, "Answers RATE_LIMITED (cooldown or flood)");
    describe_histogram!(
        PLACEMENT_DURATION,
        Unit::Seconds,
        "From a placement's arrival at the edge to its durable acknowledgement"
    );
    describe_counter!(PLACEMENTS_REFUSED, "Placements refused, by error code");
    describe_histogram!(
        BROADCAST_DURATION,
        Unit::Seconds,
        "From a tile batch's application at its shard to its last write to a socket watching the tile (wall clocks)"
    );
    describe_gauge!(SHARD_UP, "1 while the shard reports or answers, else 0");
    describe_gauge!(SHARD_EPOCH, "The ring epoch the shard works at");
    describe_gauge!(SHARD_TILES, "Tiles the shard owns");
    describe_gauge!(
        SHARD_ACQUIRING,
        "Tiles the shard is loading after a ring change"
    );
    describe_counter!(
        SHARD_PLACED,
        "Placements the shard made durable since it started"
    );
    describe_gauge!(SHARD_QUEUE, "Placements waiting to be written by the shard");
    describe_counter!(SHARD_WRITES, "Group commits of the shard since it started");
    describe_gauge!(
        SHARD_WRITE_SECONDS,
        Unit::Seconds,
        "How long a group commit of the shard takes lately (moving average)"
    );
    describe_histogram!(
        place_shard::driver::WRITE_DURATION,
        Unit::Seconds,
        "How long each group commit of this process's shard took"
    );
    describe_histogram!(
        place_shard::driver::WRITE_BATCH_SIZE,
        "Placements per group commit of this process's shard"
    );
}

/// Registers the series whose labels are known in advance at zero, so a dashboard sees
/// `rplace_rate_limit_hits_total 0` from start-up instead of no series until the first hit.
fn start_at_zero() {
    for name in [OPEN_CONNECTIONS, ACTIVE_CONNECTIONS, ACTIVE_USERS] {
        gauge!(name).set(0.0);
    }
    counter!(CANVAS_COMPRESSIONS).absolute(0);
    for why in ["cooldown", "flood", "network"] {
        counter!(RATE_LIMIT_HITS, "why" => why).absolute(0);
    }
    for why in ["server_full", "address_connections"] {
        counter!(CONNECTIONS_REFUSED, "why" => why).absolute(0);
    }
    for code in place_protocol::ErrorCode::ALL {
        counter!(PLACEMENTS_REFUSED, "code" => code.as_str()).absolute(0);
    }
    for name in [
        PLACEMENT_DURATION,
        BROADCAST_DURATION,
        place_shard::driver::WRITE_DURATION,
        place_shard::driver::WRITE_BATCH_SIZE,
    ] {
        // Registering is enough: the exporter renders an empty histogram with zero counts.
        let _ = histogram!(name);
    }
}

/// One shard's figures, from its status (`place serve`) or its report in Redis (a cluster).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardFigures {
    /// Its id.
    pub id: String,
    /// It reports (or answers).
    pub up: bool,
    /// Its ring epoch.
    pub epoch: u64,
    /// Tiles it owns.
    pub tiles_owned: usize,
    /// Tiles it is loading.
    pub tiles_acquiring: usize,
    /// Placements made durable since it started.
    pub placed_total: u64,
    /// Placements per second lately, when the shard says.
    pub placements_per_sec: Option<f64>,
    /// Placements waiting to be written.
    pub queue_depth: usize,
    /// Group commits since it started.
    pub writes_total: u64,
    /// A group commit's duration lately, in seconds.
    pub write_seconds: f64,
}

/// Shards this process has shown figures of: one that is no longer listed reads as down.
static SHARDS_SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Sets the per-shard series to `figures`; a shard shown before and missing now is down.
pub fn record_shards(figures: &[ShardFigures]) {
    let mut seen = SHARDS_SEEN.lock();
    for gone in seen
        .iter()
        .filter(|id| figures.iter().all(|f| &f.id != *id))
    {
        gauge!(SHARD_UP, "shard" => gone.clone()).set(0.0);
    }
    for f in figures {
        seen.insert(f.id.clone());
        let shard = || [("shard", f.id.clone())];
        gauge!(SHARD_UP, &shard()).set(if f.up { 1.0 } else { 0.0 });
        if !f.up {
            continue;
        }
        gauge!(SHARD_EPOCH, &shard()).set(f.epoch as f64);
        gauge!(SHARD_TILES, &shard()).set(f.tiles_owned as f64);
        gauge!(SHARD_ACQUIRING, &shard()).set(f.tiles_acquiring as f64);
        counter!(SHARD_PLACED, &shard()).absolute(f.placed_total);
        gauge!(SHARD_QUEUE, &shard()).set(f.queue_depth as f64);
        counter!(SHARD_WRITES, &shard()).absolute(f.writes_total);
        gauge!(SHARD_WRITE_SECONDS, &shard()).set(f.write_seconds);
    }
}

/// The process's metrics in Prometheus text format (503 when another recorder was installed).
pub fn render() -> axum::response::Response {
    use axum::response::IntoResponse;
    match handle() {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process",
        )
            .into_response(),
    }
}

/// A router of `GET /metrics` alone for a process without an edge (a shard).
pub fn shard_app() -> axum::Router {
    handle();
    axum::Router::new().route("/metrics", axum::routing::get(|| async { render() }))
}

/// A connection was admitted by the accept loop.
pub fn connection_opened() {
    gauge!(OPEN_CONNECTIONS).increment(1.0);
}

/// A connection admitted by the accept loop has closed.
pub fn connection_closed() {
    gauge!(OPEN_CONNECTIONS).decrement(1.0);
}

/// The method as a label from a closed set: a client may send any token as a method, and each
/// would otherwise make series of its own.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every HTTP request by its route (the pattern, never the raw path, so ids
/// in paths do not make a series each).
pub async fn record_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!(HTTP_REQUESTS, "method" => method, "path" => path.clone(), "status" => status)
        .increment(1);
    histogram!(HTTP_DURATION, "method" => method, "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_exported_at_zero_from_start_up() {
        let text = handle().expect("the recorder").render();
        for series in [
            "rplace_rate_limit_hits_total{why=\"cooldown\"}",
            "rplace_placements_refused_total{code=\"RATE_LIMITED\"}",
            "rplace_connections_refused_total{why=\"server_full\"}",
            "rplace_canvas_compressions_total",
            "rplace_open_connections",
            "rplace_placement_duration_seconds_count",
            "rplace_broadcast_duration_seconds_count",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }
}
