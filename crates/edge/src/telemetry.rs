//! Prometheus metrics of an edge (in `place serve`, of the whole server), served at `GET /metrics`.
//!
//! The names follow the seed's (`rplace_*`): placements by colour, open connections, players
//! online, HTTP requests with their durations, rate-limit hits, and the edge's placement latency
//! (from a placement's arrival to its durable acknowledgement). The `metrics` facade records them;
//! `metrics-exporter-prometheus` renders them. A process has one recorder, installed by the first
//! edge it starts.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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

/// Histogram buckets in seconds: 1 ms to 2.5 s.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` if another recorder was installed
/// first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
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
}

/// Counts and times every HTTP request by its route (the pattern, never the raw path, so ids
/// in paths do not make a series each).
pub async fn record_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!(HTTP_REQUESTS, "method" => method.clone(), "path" => path.clone(), "status" => status)
        .increment(1);
    histogram!(HTTP_DURATION, "method" => method, "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}
