//! The HTTP side of an edge: the router, the REST API and the origin check (account routes are
//! in [`crate::auth`], the session cookie in [`crate::session`]).
//!
//! `docs/PROTOCOL.md` ("HTTP API") documents every route.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use bytes::Bytes;
use place_tiles::{CanvasGeometry, TileId, TILE_SIZE};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use crate::frame::Format;
use crate::session::{raw_session, session_user, UserView};
use crate::websocket::Handshake;
use crate::{admin, auth, connection, history, Edge};

/// How long a built canvas image is served before it is rebuilt.
const CANVAS_IMAGE_TTL: Duration = Duration::from_secs(1);

/// The edge's routes.
pub fn app(edge: Arc<Edge>) -> Router {
    Router::new()
        .route("/api/v1/auth/guest", post(guest))
        .route("/api/v1/auth/challenge", get(challenge))
        .route("/api/v1/auth/me", get(me))
        .merge(auth::routes())
        .merge(admin::routes())
        .merge(crate::ring_admin::routes())
        .merge(crate::canvas_size::routes())
        .merge(history::routes(&edge))
        .merge(crate::timelapse::routes(&edge))
        .merge(crate::templates::routes(&edge))
        .route("/api/v1/canvas/info", get(canvas_info))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/tiles/{tx}/{ty}", get(tile))
        .route("/health", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/ws", get(websocket))
        .route("/api/v1/canvas", get(canvas))
        .merge(if edge.config.metrics_apart {
            Router::new()
        } else {
            metrics_routes()
        })
        .fallback(get(static_asset))
        .layer(RequestBodyTimeoutLayer::new(
            edge.config.limits.request_body_timeout,
        ))
        .layer(middleware::from_fn(crate::telemetry::record_http))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&edge),
            check_origin,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&edge),
            name_the_node,
        ))
        // A correlation id per request: the client's `X-Request-Id`, or a new UUID; it names the
        // request's log span and comes back in the response.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(edge)
}

/// Says which edge answered (`X-Place-Node`), for operators and tests behind a load balancer.
async fn name_the_node(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Ok(name) = HeaderValue::from_str(&edge.config.node_id) {
        response.headers_mut().insert("x-place-node", name);
    }
    response
}

/// Refuses state-changing requests and WebSocket upgrades whose `Origin` is another site: its
/// scheme, host and port must be the configured `public_origin`'s, or without one the request's
/// own (`Host`, over HTTPS when a proxy says so).
async fn check_origin(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let guarded = request.method() != Method::GET
        && request.method() != Method::HEAD
        && request.method() != Method::OPTIONS
        || request.headers().contains_key(header::UPGRADE);
    if guarded {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let expected = match &edge.config.public_origin {
                Some(public) => normalize_origin(public),
                None => request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|host| {
                        let scheme = if auth::forwarded_https(request.headers()) {
                            "https"
                        } else {
                            "http"
                        };
                        normalize_origin(&format!("{scheme}://{host}"))
                    }),
            };
            let given = origin.to_str().ok().and_then(normalize_origin);
            if expected.is_none() || given != expected {
                return AppError::Forbidden("cross-origin request refused".into()).into_response();
            }
        }
    }
    next.run(request).await
}

/// `scheme://host[:port]` in lower case without a default port (80 for http, 443 for https),
/// or `None` when `origin` is not one.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.trim().trim_end_matches('/').split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if (scheme != "http" && scheme != "https") || rest.is_empty() || rest.contains('/') {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = rest.strip_suffix(default).unwrap_or(&rest);
    Some(format!("{scheme}://{authority}"))
}

/// What `POST /api/v1/auth/guest` takes: the answer to a challenge (when the edge asks one).
#[derive(Deserialize, Default)]
struct GuestProof {
    challenge: String,
    nonce: String,
}

/// `GET /api/v1/auth/challenge`: a proof-of-work challenge for a new guest.
async fn challenge(
    State(edge): State<Arc<Edge>>,
) -> Result<Json<crate::challenge::Challenge>, AppError> {
    Ok(Json(edge.challenges.issue(edge.now_ms()).await?))
}

async fn guest(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Option<Json<GuestProof>>,
) -> Result<(CookieJar, Json<UserView>), AppError> {
    if let Some(user) = session_user(&edge, &jar).await? {
        return Ok((jar, Json(UserView::of(&user))));
    }
    let ip = auth::client_ip(&edge, peer, &headers);
    if edge.challenges.difficulty() > 0 {
        let Json(proof) = body.unwrap_or_default();
        if let Err(refused) = edge
            .challenges
            .redeem(&proof.challenge, &proof.nonce, edge.now_ms())
            .await?
        {
            return Err(AppError::ChallengeFailed(refused.to_string()));
        }
    }
    edge.check_guest_rate(ip)?;
    let session_id = auth::new_session_id()?;
    let ttl = edge.config.session_ttl;
    let user = edge
        .accounts
        .create_guest_session(&session_id, edge.now_ms(), ttl.as_millis() as i64)
        .await?;
    let network = edge.config.limits.addresses.network(ip);
    edge.accounts
        .inherit_guest_cooldown(user.id, network)
        .await?;
    tracing::info!(user_id = user.id, "guest session created");
    let cookie = auth::session_cookie(&edge, &headers, session_id);
    Ok((jar.add(cookie), Json(UserView::of(&user))))
}

async fn me(State(edge): State<Arc<Edge>>, jar: CookieJar) -> Result<Json<UserView>, AppError> {
    let user = session_user(&edge, &jar)
        .await?
        .ok_or(AppError::Unauthorized)?;
    Ok(Json(UserView::of(&user)))
}

async fn canvas_info(State(edge): State<Arc<Edge>>) -> Json<place_protocol::CanvasInfo> {
    Json(edge.canvas_info())
}

/// The protected regions in force, for the page's outlines (from this edge's memory).
async fn regions(State(edge): State<Arc<Edge>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(edge.regions().list(edge.now_ms())),
    )
        .into_response()
}

/// The whole canvas, built from the shard's tiles at most once a second, with its gzip made at
/// most once per build: a crowd fetching the canvas costs one compression a second, not one per
/// request.
#[derive(Clone)]
pub struct CanvasImage {
    /// The canvas it shows.
    geometry: CanvasGeometry,
    etag: HeaderValue,
    bytes: Bytes,
    gzip: Arc<tokio::sync::OnceCell<Bytes>>,
    built: Instant,
}

impl CanvasImage {
    /// The gzip of the image, compressed by the first request that wants it (on a blocking
    /// thread) and shared by the rest.
    async fn gzipped(&self) -> Result<Bytes, AppError> {
        let bytes = self.bytes.clone();
        self.gzip
            .get_or_try_init(|| async move {
                metrics::counter!(crate::telemetry::CANVAS_COMPRESSIONS).increment(1);
                tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    let mut encoder = flate2::write::GzEncoder::new(
                        Vec::with_capacity(bytes.len() / 8),
                        flate2::Compression::fast(),
                    );
                    encoder.write_all(&bytes)?;
                    encoder.finish().map(Bytes::from)
                })
                .await
                .map_err(|e| AppError::Unavailable(e.to_string()))?
                .map_err(|e| AppError::Unavailable(e.to_string()))
            })
            .await
            .cloned()
    }
}

/// Whether the request accepts a gzip body.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

async fn canvas(State(edge): State<Arc<Edge>>, headers: HeaderMap) -> Result<Response, AppError> {
    let image = {
        let mut cache = edge.canvas_cache.lock().await;
        match cache.as_ref() {
            Some(image)
                if image.built.elapsed() < CANVAS_IMAGE_TTL
                    && image.geometry == edge.geometry() =>
            {
                image.clone()
            }
            _ => {
                let image = build_canvas_image(&edge).await?;
                *cache = Some(image.clone());
                image
            }
        }
    };
    if headers.get(header::IF_NONE_MATCH) == Some(&image.etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, image.etag)]).into_response());
    }
    let (body, encoding) = if accepts_gzip(&headers) {
        (image.gzipped().await?, Some("gzip"))
    } else {
        (image.bytes.clone(), None)
    };
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=1"),
            ),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
            (header::ETAG, image.etag),
            (
                HeaderName::from_static("x-canvas-width"),
                HeaderValue::from(image.geometry.width()),
            ),
            (
                HeaderName::from_static("x-canvas-height"),
                HeaderValue::from(image.geometry.height()),
            ),
        ],
        Body::from(body),
    )
        .into_response();
    if let Some(encoding) = encoding {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Ok(response)
}

async fn build_canvas_image(edge: &Edge) -> Result<CanvasImage, AppError> {
    let tiles = edge
        .shards
        .read_tiles()
        .await
        .ok_or_else(|| AppError::Unavailable("the shard is unavailable".into()))?;
    let g = edge.geometry();
    let width = g.width() as usize;
    let mut pixels = vec![0u8; width * g.height() as usize];
    let mut version = 0u64;
    // A shard may already serve tiles of a growth this edge has not heard of yet.
    for t in tiles.iter().filter(|t| g.contains_tile(t.tile)) {
        version = version.wrapping_add(t.seq);
        let (x0, y0) = t.tile.origin();
        let (w, h) = g.tile_dims(t.tile);
        for row in 0..h as usize {
            let src = &t.pixels[row * TILE_SIZE as usize..][..w as usize];
            let start = (y0 as usize + row) * width + x0 as usize;
            pixels[start..start + w as usize].copy_from_slice(src);
        }
    }
    // The size is in the tag: a grown canvas with no placement yet is another image.
    let etag = HeaderValue::from_str(&format!("\"c{}x{}-{version}\"", g.width(), g.height()))
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok(CanvasImage {
        geometry: g,
        etag,
        bytes: Bytes::from(pixels),
        gzip: Arc::default(),
        built: Instant::now(),
    })
}

async fn tile(
    State(edge): State<Arc<Edge>>,
    Path((tx, ty)): Path<(u16, u16)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let tile = TileId::new(tx, ty);
    if !edge.geometry().contains_tile(tile) {
        return Err(AppError::NotFound);
    }
    let (seq, pixels) = match edge.hub.mirror(tile) {
        Some(mirror) => mirror,
        None => {
            let snapshot = edge
                .shards
                .read_tile(tile)
                .await
                .ok_or_else(|| AppError::Unavailable("the shard is unavailable".into()))?;
            (snapshot.seq, snapshot.pixels)
        }
    };
    let etag = HeaderValue::from_str(&format!("\"{seq}\""))
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let body = Bytes::copy_from_slice(pixels.as_slice());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=1"),
            ),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

/// `GET /readyz`: whether every service this node needs answers, each by name.
#[derive(Serialize)]
struct Readiness {
    status: Health,
    /// Seconds since the edge started.
    uptime: f64,
    version: &'static str,
    /// `store` (`place serve`), or `redis` and `postgres` (an edge).
    #[serde(flatten)]
    services: BTreeMap<&'static str, Health>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Health {
    Ok,
    Unavailable,
}

impl From<bool> for Health {
    fn from(ok: bool) -> Self {
        if ok {
            Self::Ok
        } else {
            Self::Unavailable
        }
    }
}

async fn ready(State(edge): State<Arc<Edge>>) -> Response {
    let services: BTreeMap<&'static str, Health> = edge
        .accounts
        .readiness()
        .await
        .into_iter()
        .map(|(name, ok)| (name, ok.into()))
        .collect();
    let all_ok = services.values().all(|h| *h == Health::Ok);
    let body = Readiness {
        status: all_ok.into(),
        uptime: edge.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION"),
        services,
    };
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The log span of one HTTP request, named by its correlation id.
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

/// `GET /metrics` alone, for the edge's main router or an address of its own
/// (`metrics_listen`).
fn metrics_routes() -> Router<Arc<Edge>> {
    Router::new().route("/metrics", get(metrics))
}

/// The edge's metrics on an address of their own (`metrics_listen`), away from the public one.
pub fn metrics_app(edge: Arc<Edge>) -> Router {
    metrics_routes()
        .layer(middleware::from_fn(crate::telemetry::record_http))
        .with_state(edge)
}

/// `GET /metrics`: Prometheus text format, with the shards' figures as of now.
async fn metrics(State(edge): State<Arc<Edge>>) -> Response {
    let reports = edge.ring_admin.get().map(|admin| &admin.store);
    let figures = edge
        .shards
        .figures(reports, edge.geometry().tile_count())
        .await;
    crate::telemetry::record_shards(&figures);
    crate::telemetry::render()
}

#[derive(Deserialize)]
struct WsParams {
    format: Option<String>,
}

async fn websocket(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    permit: Option<axum::Extension<Arc<crate::server::ConnectionPermit>>>,
    headers: HeaderMap,
    Query(params): Query<WsParams>,
    jar: CookieJar,
    handshake: Handshake,
) -> Result<Response, AppError> {
    let format = match params.format.as_deref() {
        None | Some("binary") => Format::Binary,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "unknown format {other:?}: use json or binary"
            )))
        }
    };
    let user = session_user(&edge, &jar).await?;
    let session = raw_session(&jar).map(str::to_owned).unwrap_or_default();
    let limits = edge.config.limits;
    let network = limits
        .addresses
        .network(auth::client_ip(&edge, peer, &headers));
    let address_slot = edge
        .sockets_per_address
        .try_acquire(network, limits.max_websockets_per_address)
        .ok_or_else(|| {
            AppError::TooMany(format!(
                "at most {} WebSockets from one address",
                limits.max_websockets_per_address
            ))
        })?;
    let session_slot = match &user {
        Some(_) => Some(
            edge.sockets_per_session
                .try_acquire(session.clone(), limits.max_websockets_per_session)
                .ok_or_else(|| {
                    AppError::TooMany(format!(
                        "at most {} WebSockets per session: close another tab",
                        limits.max_websockets_per_session
                    ))
                })?,
        ),
        None => None,
    };
    if user.is_some() {
        // Sliding sessions: playing keeps the session alive.
        let ttl = edge.config.session_ttl.as_millis() as i64;
        if let Err(error) = edge
            .accounts
            .touch_session(&session, edge.now_ms(), ttl)
            .await
        {
            tracing::warn!(%error, "could not extend a session");
        }
    }
    Ok(handshake.on_upgrade(move |upgraded| {
        let tasks = edge.tasks.clone();
        tasks.track_future(async move {
            connection::run(edge, upgraded, user, session, format, network).await;
            // The socket counts against its session, its network and the process until it is
            // closed.
            drop((session_slot, address_slot, permit));
        })
    }))
}

async fn static_asset(uri: axum::http::Uri, headers: HeaderMap) -> Result<Response, AppError> {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let asset = place_web::asset(path).ok_or(AppError::NotFound)?;
    let etag =
        HeaderValue::from_str(&asset.etag).map_err(|e| AppError::Unavailable(e.to_string()))?;
    // Vite names built files by their hash (`assets/index-abc123.js`): those never change.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let content_type = HeaderValue::from_str(&asset.content_type)
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let body = match asset.body {
        std::borrow::Cow::Borrowed(bytes) => Body::from(Bytes::from_static(bytes)),
        std::borrow::Cow::Owned(bytes) => Body::from(bytes),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            normalize_origin("HTTPS://Place.Example.org:443/").as_deref(),
            Some("https://place.example.org")
        );
        assert_eq!(
            normalize_origin("http://a.b:80").as_deref(),
            Some("http://a.b")
        );
        assert_eq!(
            normalize_origin("http://a.b:8080").as_deref(),
            Some("http://a.b:8080")
        );
        assert_ne!(
            normalize_origin("http://a.b"),
            normalize_origin("https://a.b")
        );
        for bad in ["null", "a.b", "ftp://a.b", "http://", "http://a.b/path"] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
