//! The public history API, `/api/v1/history/...`: who placed what on a pixel, a user's
//! placements, everyone's latest, and the heatmap of recent activity. Anyone may read it, with
//! or without a session, like the canvas itself.
//!
//! The listings are pages of [`place_store::history`]'s keyset queries, newest first, `limit`
//! 1 to [`PAGE_MAX`] (default [`PAGE_DEFAULT`]). The `cursor` of the next page is opaque to
//! clients: the listing it belongs to and the key of the last row, in URL-safe base64, so a
//! cursor of another listing is refused (400) rather than silently misread. Every edge answers
//! from the store beside its accounts: the embedded store in `place serve`, PostgreSQL in the
//! cluster (the same store the admin routes read).
//!
//! The heatmap counts the players' placements of the last `minutes` (one of
//! [`HEATMAP_WINDOWS`]) per square cell, the cell size chosen so the canvas has at most
//! [`HEATMAP_MAX_CELLS`] cells. It scans at most [`HEATMAP_MAX_EVENTS`] of the newest events,
//! and each edge keeps an answer for a sixtieth of its window ([`heatmap_ttl`]: 5 s for the last
//! 5 minutes, a minute for the last hour), computing each window at most once at a time, so its
//! cost is bounded however many ask.
//!
//! Each client address may make [`RATE_PER_SECOND`] history requests a second on each edge,
//! in bursts of up to [`RATE_BURST`] (a page hovering pixels makes at most four a second);
//! beyond, 429 `RATE_LIMITED` with `Retry-After`, so no one scrapes the store at full speed.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use place_store::{HistoryEntry, Scope};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tower_http::compression::CompressionLayer;

use crate::error::AppError;
use crate::{now_ms, Edge};

/// Placements per page, by default and at most.
pub const PAGE_DEFAULT: i64 = 50;
/// See [`PAGE_DEFAULT`].
pub const PAGE_MAX: i64 = 500;
/// The heatmap's windows, in minutes.
pub const HEATMAP_WINDOWS: [u32; 5] = [5, 15, 60, 360, 1440];
/// The window when none is asked for.
pub const HEATMAP_MINUTES_DEFAULT: u32 = 60;
/// The newest events a heatmap counts at most.
pub const HEATMAP_MAX_EVENTS: i64 = 1_000_000;
/// Cells of the canvas a heatmap has at most.
pub const HEATMAP_MAX_CELLS: u64 = 65_536;
/// History requests per second and client address, on each edge.
pub const RATE_PER_SECOND: u32 = 10;
/// The burst allowed above [`RATE_PER_SECOND`].
pub const RATE_BURST: u32 = 50;

/// The history routes, behind the per-address limit.
pub fn routes(edge: &Arc<Edge>) -> Router<Arc<Edge>> {
    Router::new()
        .route("/api/v1/history/pixel", get(pixel))
        .route("/api/v1/history/user/{id}", get(user))
        .route("/api/v1/history/recent", get(recent))
        .route(
            "/api/v1/history/heatmap",
            get(heatmap).layer(CompressionLayer::new().gzip(true)),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(edge), limit))
}

/// What an edge keeps for the history: heatmaps computed lately, by window in minutes, and the
/// request rate per client address.
pub struct HistoryState {
    heatmaps: [HeatmapSlot; HEATMAP_WINDOWS.len()],
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for HistoryState {
    fn default() -> Self {
        let per_second = NonZeroU32::new(RATE_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(RATE_BURST).unwrap_or(NonZeroU32::MIN);
        Self {
            heatmaps: Default::default(),
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }
}

impl HistoryState {
    /// Forgets the addresses whose limit has recovered.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

/// The last heatmap of one window and when it was made; locked while it is computed, so one
/// window is computed once at a time however many ask.
type HeatmapSlot = tokio::sync::Mutex<Option<(Instant, Arc<Heatmap>)>>;

/// How long an edge serves the heatmap of a `minutes` window: a sixtieth of it.
pub fn heatmap_ttl(minutes: u32) -> Duration {
    Duration::from_secs(u64::from(minutes))
}

/// 429 for a client address past its rate (a request without a peer address is not limited).
pub(crate) async fn limit(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = crate::auth::client_ip(&edge, *peer, request.headers());
        if let Err(not_until) = edge.history.limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return AppError::RateLimited(wait.as_secs() + 1).into_response();
        }
    }
    next.run(request).await
}

/// `limit` and `cursor`, as given.
#[derive(Deserialize, Default)]
struct PageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageParams {
    fn limit(&self) -> Result<i64, AppError> {
        let Some(text) = &self.limit else {
            return Ok(PAGE_DEFAULT);
        };
        text.parse::<i64>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!("limit must be a whole number from 1 to {PAGE_MAX}"))
            })
    }

    /// The key the cursor carries; 400 for one that another listing (`tag`) made, or garbage.
    fn before(&self, tag: &str) -> Result<Option<i64>, AppError> {
        self.cursor
            .as_deref()
            .map(|c| {
                decode_cursor(c, tag).ok_or_else(|| {
                    AppError::BadRequest("cursor is not one this listing gave".into())
                })
            })
            .transpose()
    }
}

/// The listing a cursor belongs to, so it cannot be replayed on another.
fn scope_tag(scope: Scope) -> String {
    match scope {
        Scope::Pixel { x, y } => format!("p{x},{y}"),
        Scope::User(id) => format!("u{id}"),
        Scope::Recent => "r".into(),
    }
}

fn encode_cursor(tag: &str, key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}.{key}"))
}

fn decode_cursor(cursor: &str, tag: &str) -> Option<i64> {
    if cursor.len() > 128 {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (t, key) = text.rsplit_once('.')?;
    let key: i64 = key.parse().ok()?;
    (t == tag && key >= 0).then_some(key)
}

/// One placement as the history shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlacementView {
    x: u32,
    y: u32,
    color: u8,
    user_id: String,
    username: Option<String>,
    placed_at: i64,
    /// A moderator's rollback undid it.
    reverted: bool,
    /// It restored a pixel for a moderation action (placed by the acting administrator).
    restore: bool,
}

impl From<&HistoryEntry> for PlacementView {
    fn from(e: &HistoryEntry) -> Self {
        Self {
            x: e.x,
            y: e.y,
            color: e.color,
            user_id: e.user_id.to_string(),
            username: e.username.clone(),
            placed_at: e.placed_at,
            reverted: e.reverted,
            restore: e.action_id.is_some(),
        }
    }
}

/// A page of placements, newest first; `nextCursor` asks for the next (older) page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryPage {
    items: Vec<PlacementView>,
    next_cursor: Option<String>,
    /// Whose placements, for a user's history.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Placer>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Placer {
    user_id: String,
    username: String,
}

async fn page(edge: &Edge, scope: Scope, params: &PageParams) -> Result<HistoryPage, AppError> {
    let tag = scope_tag(scope);
    let limit = params.limit()?;
    let before = params.before(&tag)?;
    let page = edge.accounts.store().history(scope, before, limit).await?;
    Ok(HistoryPage {
        items: page.entries.iter().map(PlacementView::from).collect(),
        next_cursor: page.next.map(|key| encode_cursor(&tag, key)),
        user: None,
    })
}

#[derive(Deserialize)]
struct PixelParams {
    x: Option<String>,
    y: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

async fn pixel(
    State(edge): State<Arc<Edge>>,
    Query(q): Query<PixelParams>,
) -> Result<Json<HistoryPage>, AppError> {
    let g = edge.geometry();
    let coord = |v: &Option<String>| v.as_deref().and_then(|t| t.parse::<u32>().ok());
    let (x, y) = match (coord(&q.x), coord(&q.y)) {
        (Some(x), Some(y)) if g.contains(x, y) => (x, y),
        _ => {
            return Err(AppError::BadRequest(format!(
                "x and y must be whole numbers inside the {}x{} canvas",
                g.width(),
                g.height()
            )))
        }
    };
    Ok(Json(page(&edge, Scope::Pixel { x, y }, &q.page).await?))
}

async fn user(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
    Query(q): Query<PageParams>,
) -> Result<Json<HistoryPage>, AppError> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::BadRequest(format!("{id:?} is not a user id")))?;
    let store = edge.accounts.store();
    let user = store.user(id).await?.ok_or(AppError::NotFound)?;
    let mut body = page(&edge, Scope::User(user.id), &q).await?;
    body.user = Some(Placer {
        user_id: user.id.to_string(),
        username: user.username,
    });
    Ok(Json(body))
}

async fn recent(
    State(edge): State<Arc<Edge>>,
    Query(q): Query<PageParams>,
) -> Result<Json<HistoryPage>, AppError> {
    Ok(Json(page(&edge, Scope::Recent, &q).await?))
}

#[derive(Deserialize)]
struct HeatmapParams {
    minutes: Option<String>,
}

/// The smallest power-of-two cell size that cuts a `width` x `height` canvas into at most
/// [`HEATMAP_MAX_CELLS`] cells.
pub fn heatmap_cell_size(width: u32, height: u32) -> u32 {
    let mut cell: u32 = 1;
    while u64::from(width.div_ceil(cell)) * u64::from(height.div_ceil(cell)) > HEATMAP_MAX_CELLS {
        cell *= 2;
    }
    cell
}

async fn heatmap(
    State(edge): State<Arc<Edge>>,
    Query(q): Query<HeatmapParams>,
) -> Result<Response, AppError> {
    let slot = HEATMAP_WINDOWS
        .iter()
        .position(|&m| match &q.minutes {
            None => m == HEATMAP_MINUTES_DEFAULT,
            Some(text) => m.to_string() == *text,
        })
        .ok_or_else(|| {
            AppError::BadRequest(format!("minutes must be one of {HEATMAP_WINDOWS:?}"))
        })?;
    let minutes = HEATMAP_WINDOWS[slot];
    let ttl = heatmap_ttl(minutes);
    let body = {
        let mut kept = edge.history.heatmaps[slot].lock().await;
        match kept.as_ref() {
            Some((made, body)) if made.elapsed() < ttl => Arc::clone(body),
            _ => {
                let body = Arc::new(compute_heatmap(&edge, minutes).await?);
                *kept = Some((Instant::now(), Arc::clone(&body)));
                body
            }
        }
    };
    let max_age = HeaderValue::from_str(&format!("public, max-age={}", ttl.as_secs()))
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok(([(header::CACHE_CONTROL, max_age)], Json(body)).into_response())
}

/// `GET /api/v1/heatmap`: placements per cell over the last `minutes`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Heatmap {
    minutes: u32,
    since: i64,
    until: i64,
    cell_size: u32,
    columns: u32,
    rows: u32,
    total: i64,
    max: i64,
    /// More than the events a heatmap reads: only the newest were counted.
    truncated: bool,
    /// The oldest placement counted.
    oldest: Option<i64>,
    /// `[column, row, placements]` for every cell with any.
    cells: Vec<[i64; 3]>,
}

async fn compute_heatmap(edge: &Edge, minutes: u32) -> Result<Heatmap, AppError> {
    let g = edge.geometry();
    let cell = heatmap_cell_size(g.width(), g.height());
    let until = now_ms();
    let since = until - i64::from(minutes) * 60_000;
    let started = Instant::now();
    let counts = edge
        .accounts
        .store()
        .heatmap(since, cell, HEATMAP_MAX_EVENTS)
        .await?;
    tracing::debug!(
        minutes,
        cells = counts.cells.len(),
        total = counts.total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "heatmap computed"
    );
    let max = counts.cells.iter().map(|c| c.2).max().unwrap_or(0);
    let cells: Vec<[i64; 3]> = counts
        .cells
        .iter()
        .map(|&(cx, cy, n)| [i64::from(cx), i64::from(cy), n])
        .collect();
    Ok(Heatmap {
        minutes,
        since,
        until,
        cell_size: cell,
        columns: g.width().div_ceil(cell),
        rows: g.height().div_ceil(cell),
        total: counts.total,
        max,
        truncated: counts.truncated,
        oldest: counts.oldest_ms,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use place_protocol::fuzzing;
    use proptest::prelude::*;

    fn tag() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(x, y)| scope_tag(Scope::Pixel { x, y })),
            any::<i64>().prop_map(|id| scope_tag(Scope::User(id))),
            Just(scope_tag(Scope::Recent)),
        ]
    }

    proptest! {
        #[test]
        fn cursors_round_trip(tag in tag(), key in 0..=i64::MAX) {
            prop_assert_eq!(decode_cursor(&encode_cursor(&tag, key), &tag), Some(key));
        }

        /// Arbitrary and mutated cursors: no panic, and a key only when it is one this listing
        /// could have made (not negative, and encoding back to a cursor that gives it again).
        #[test]
        fn fuzz_cursors((tag, cursor) in tag().prop_flat_map(|tag| {
            let text = format!("{tag}.");
            let base64 = tag.clone();
            let cursor = prop_oneof![
                fuzzing::bytes(200),
                // The cursor's base64 mutated, or the text inside it.
                fuzzing::mutated(
                    any::<i64>().prop_map(move |k| encode_cursor(&base64, k).into_bytes())
                ),
                fuzzing::mutated(any::<i64>().prop_map(move |k| format!("{text}{k}").into_bytes()))
                    .prop_map(|inside| URL_SAFE_NO_PAD.encode(inside).into_bytes()),
            ];
            (Just(tag), cursor)
        })) {
            let cursor = String::from_utf8_lossy(&cursor);
            if let Some(key) = decode_cursor(&cursor, &tag) {
                prop_assert!(key >= 0);
                prop_assert_eq!(decode_cursor(&encode_cursor(&tag, key), &tag), Some(key));
            }
        }
    }

    #[test]
    fn cursors_come_back_only_to_their_listing() {
        let c = encode_cursor("p3,4", 17);
        assert_eq!(decode_cursor(&c, "p3,4"), Some(17));
        assert_eq!(decode_cursor(&c, "p3,5"), None);
        assert_eq!(decode_cursor(&c, "r"), None);
        assert_eq!(decode_cursor("not base64!", "r"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("r.-3"), "r"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("r.x"), "r"), None);
        assert_eq!(decode_cursor(&"A".repeat(200), "r"), None);
    }

    #[test]
    fn limits_are_checked() {
        let p = |limit: &str| PageParams {
            limit: Some(limit.into()),
            cursor: None,
        };
        assert_eq!(
            PageParams::default().limit().expect("test step"),
            PAGE_DEFAULT
        );
        assert_eq!(p("500").limit().expect("test step"), 500);
        assert!(p("501").limit().is_err());
        assert!(p("0").limit().is_err());
        assert!(p("ten").limit().is_err());
    }

    #[test]
    fn every_heatmap_window_is_kept_a_sixtieth_of_it() {
        assert!(HEATMAP_WINDOWS.contains(&HEATMAP_MINUTES_DEFAULT));
        assert_eq!(heatmap_ttl(5), Duration::from_secs(5));
        assert_eq!(heatmap_ttl(60), Duration::from_secs(60));
    }

    #[test]
    fn heatmap_cells_stay_bounded() {
        assert_eq!(heatmap_cell_size(256, 256), 1);
        assert_eq!(heatmap_cell_size(2000, 2000), 8);
        assert_eq!(heatmap_cell_size(65536, 65536), 256);
        assert_eq!(heatmap_cell_size(65536, 1), 1);
        for (w, h) in [(1, 1), (2000, 2000), (65536, 65536), (3000, 17)] {
            let c = heatmap_cell_size(w, h);
            assert!(u64::from(w.div_ceil(c)) * u64::from(h.div_ceil(c)) <= HEATMAP_MAX_CELLS);
        }
    }
}
