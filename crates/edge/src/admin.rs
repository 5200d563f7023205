//! The administrators' HTTP API, `/api/v1/admin/...`: bans, the cooldown, rollbacks and resets,
//! figures, the audit log, and the lookups the admin panel needs (users by name, a user's
//! placements, who placed a pixel).
//!
//! Every route takes the [`Admin`] extractor first: 401 without a session, 403 for anyone who is
//! not an administrator, before the body is even read. The state-changing routes are `POST` and
//! `PUT`, so [`crate::http`]'s origin check refuses them from another site. What they do is in
//! [`crate::moderation`]; each writes the audit log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use place_store::{HistoryEntry, Rect, Selection, User};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cooldown::MAX_COOLDOWN_MS;
use crate::error::AppError;
use crate::history::PlacementView;
use crate::moderation::{ModerationError, RollbackOutcome};
use crate::regions::{NewRegion, RegionError, RegionList, RegionView};
use crate::session::{session_user, UserView};
use crate::Edge;

/// Rows of the audit log per page, by default and at most.
const AUDIT_PAGE: i64 = 50;
const AUDIT_PAGE_MAX: i64 = 500;
/// Placements listed for a user or a pixel, by default and at most.
const EVENTS_DEFAULT: i64 = 100;
const EVENTS_MAX: i64 = 1000;
/// Users a name search lists.
const USERS_FOUND: i64 = 20;

/// The admin routes.
pub fn routes() -> Router<Arc<Edge>> {
    Router::new()
        .route("/api/v1/admin/ban-user", post(ban_user))
        .route("/api/v1/admin/unban-user", post(unban_user))
        .route("/api/v1/admin/settings", get(settings).put(put_settings))
        .route("/api/v1/admin/reset-canvas", post(reset_canvas))
        .route("/api/v1/admin/rollback", post(rollback))
        .route("/api/v1/admin/stats", get(stats))
        .route("/api/v1/admin/audit-log", get(audit_log))
        .route("/api/v1/admin/users", get(find_users))
        .route("/api/v1/admin/users/{id}/placements", get(user_placements))
        .route("/api/v1/admin/pixel", get(pixel))
        .route("/api/v1/admin/regions", get(regions).post(add_region))
        .route("/api/v1/admin/regions/{id}", delete(delete_region))
        .route("/api/v1/admin/alarms", get(alarms))
}

/// The request's user, who must be an administrator.
pub struct Admin(pub User);

impl FromRequestParts<Arc<Edge>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, edge: &Arc<Edge>) -> Result<Self, AppError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let user = session_user(edge, &jar)
            .await?
            .ok_or(AppError::Unauthorized)?;
        if !user.is_admin {
            tracing::warn!(user_id = user.id, path = %parts.uri.path(), "admin route refused");
            return Err(AppError::Forbidden("administrators only".into()));
        }
        Ok(Admin(user))
    }
}

impl From<ModerationError> for AppError {
    fn from(e: ModerationError) -> Self {
        match e {
            ModerationError::Live(crate::live::LiveError::CooldownOutOfRange) => {
                AppError::BadRequest(e.to_string())
            }
            ModerationError::Store(e) => e.into(),
            ModerationError::Accounts(e) => e.into(),
            ModerationError::Live(e) => {
                tracing::error!(error = %e, "announcing a change failed");
                AppError::Unavailable("a backing service is unavailable".into())
            }
        }
    }
}

/// A JSON body, or 400 with what is wrong with it.
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, AppError> {
    body.map(|Json(b)| b)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

/// A user id as the API writes it (a string of digits), or as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserId {
    Text(String),
    Number(i64),
}

impl UserId {
    fn parse(&self) -> Result<i64, AppError> {
        match self {
            UserId::Number(id) => Ok(*id),
            UserId::Text(text) => text
                .parse()
                .map_err(|_| AppError::BadRequest(format!("userId {text:?} is not a user id"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRef {
    user_id: UserId,
}

async fn existing_user(edge: &Edge, id: &UserId) -> Result<User, AppError> {
    edge.accounts
        .store()
        .user(id.parse()?)
        .await?
        .ok_or(AppError::NotFound)
}

async fn ban_user(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    request: Result<Json<UserRef>, JsonRejection>,
) -> Result<Json<UserView>, AppError> {
    set_ban(&edge, &admin, body(request)?, true).await
}

async fn unban_user(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    request: Result<Json<UserRef>, JsonRejection>,
) -> Result<Json<UserView>, AppError> {
    set_ban(&edge, &admin, body(request)?, false).await
}

async fn set_ban(
    edge: &Edge,
    admin: &User,
    request: UserRef,
    banned: bool,
) -> Result<Json<UserView>, AppError> {
    let mut user = existing_user(edge, &request.user_id).await?;
    edge.moderate_ban(admin, &user, banned).await?;
    user.banned = banned;
    Ok(Json(UserView::for_admins(&user)))
}

/// `GET` and `PUT /api/v1/admin/settings`: the settings an admin changes while the event runs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsView {
    cooldown_seconds: i64,
}

impl SettingsView {
    fn of(edge: &Edge) -> Self {
        Self {
            cooldown_seconds: edge.cooldown_ms() / 1000,
        }
    }
}

async fn settings(State(edge): State<Arc<Edge>>, Admin(_): Admin) -> Json<SettingsView> {
    Json(SettingsView::of(&edge))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    cooldown_seconds: u64,
}

async fn put_settings(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    request: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<SettingsView>, AppError> {
    let Settings { cooldown_seconds } = body(request)?;
    if cooldown_seconds > MAX_COOLDOWN_MS as u64 / 1000 {
        return Err(AppError::BadRequest(format!(
            "cooldownSeconds must be 0 to {}",
            MAX_COOLDOWN_MS / 1000
        )));
    }
    edge.moderate_cooldown(&admin, Duration::from_secs(cooldown_seconds))
        .await?;
    Ok(Json(SettingsView::of(&edge)))
}

/// A rectangle in a request: all four or none.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RectParams {
    x: Option<u32>,
    y: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
}

impl RectParams {
    /// The rectangle, `None` when no field is given; 400 when some are, or it leaves the canvas.
    fn rect(&self, edge: &Edge) -> Result<Option<Rect>, AppError> {
        let rect = match (self.x, self.y, self.width, self.height) {
            (None, None, None, None) => return Ok(None),
            (Some(x), Some(y), Some(width), Some(height)) => Rect {
                x,
                y,
                width,
                height,
            },
            _ => {
                return Err(AppError::BadRequest(
                    "a rectangle needs x, y, width and height".into(),
                ))
            }
        };
        let g = edge.geometry();
        let inside = rect.width > 0
            && rect.height > 0
            && u64::from(rect.x) + u64::from(rect.width) <= u64::from(g.width())
            && u64::from(rect.y) + u64::from(rect.height) <= u64::from(g.height());
        if !inside {
            return Err(AppError::BadRequest(format!(
                "the rectangle must lie inside the {}x{} canvas",
                g.width(),
                g.height()
            )));
        }
        Ok(Some(rect))
    }
}

fn rect_json(rect: &Rect) -> Value {
    json!({"x": rect.x, "y": rect.y, "width": rect.width, "height": rect.height})
}

/// What a rollback or reset did: placements marked reverted, pixels restored, and pixels that
/// could not be (their shard refused; the action can be repeated).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RollbackView {
    action_id: String,
    reverted: u64,
    restored: u64,
    failed: u64,
}

fn outcome_json(outcome: RollbackOutcome) -> Json<RollbackView> {
    Json(RollbackView {
        action_id: outcome.action_id.to_string(),
        reverted: outcome.reverted,
        restored: outcome.restored,
        failed: outcome.failed,
    })
}

/// Resets a rectangle, or the whole canvas for `{}`. Only an explicit JSON body counts
/// (`Content-Type: application/json`, well formed): a request without one is refused (400) and
/// resets nothing, so that no stray or forged POST can wipe the canvas.
async fn reset_canvas(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    request: Result<Json<RectParams>, JsonRejection>,
) -> Result<Json<RollbackView>, AppError> {
    let params = body(request)?;
    let g = edge.geometry();
    let rect = params.rect(&edge)?.unwrap_or(Rect {
        x: 0,
        y: 0,
        width: g.width(),
        height: g.height(),
    });
    let selection = Selection::Area {
        rect,
        from_ms: i64::MIN,
        to_ms: i64::MAX,
    };
    let details = json!({"rect": rect_json(&rect)});
    let outcome = edge
        .rollback(&admin, "reset-canvas", details, selection)
        .await?;
    Ok(outcome_json(outcome))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RollbackParams {
    user_id: Option<UserId>,
    since: Option<i64>,
    #[serde(flatten)]
    rect: RectParams,
    from: Option<i64>,
    to: Option<i64>,
}

async fn rollback(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    request: Result<Json<RollbackParams>, JsonRejection>,
) -> Result<Json<RollbackView>, AppError> {
    let params = body(request)?;
    let (selection, details) = match (&params.user_id, params.rect.rect(&edge)?) {
        (Some(user), None) => {
            let user = existing_user(&edge, user).await?;
            let since_ms = params.since.unwrap_or(0);
            let details = json!({
                "userId": user.id.to_string(),
                "username": user.username,
                "since": since_ms,
            });
            (
                Selection::User {
                    user_id: user.id,
                    since_ms,
                },
                details,
            )
        }
        (None, Some(rect)) => {
            let from_ms = params.from.unwrap_or(0);
            let to_ms = params.to.unwrap_or(i64::MAX);
            if from_ms > to_ms {
                return Err(AppError::BadRequest("from is after to".into()));
            }
            let details = json!({"rect": rect_json(&rect), "from": from_ms, "to": to_ms});
            let selection = Selection::Area {
                rect,
                from_ms,
                to_ms,
            };
            (selection, details)
        }
        _ => {
            return Err(AppError::BadRequest(
                "give either userId (and since) or x, y, width, height (and from, to)".into(),
            ))
        }
    };
    let outcome = edge
        .rollback(&admin, "rollback", details, selection)
        .await?;
    Ok(outcome_json(outcome))
}

/// `GET /api/v1/admin/stats`: the figures of the panel's first page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    players_online: u64,
    placements_last_minute: i64,
    top_placers: Vec<TopPlacer>,
    banned_users: i64,
    cooldown_seconds: i64,
    shards: Vec<ShardHealth>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopPlacer {
    user_id: String,
    username: Option<String>,
    placements: i64,
}

/// A shard, whether it answers, and (in a cluster, when it reports) its figures.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShardHealth {
    id: String,
    addr: String,
    status: &'static str,
    #[serde(flatten)]
    figures: Option<ShardFigures>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShardFigures {
    tiles: usize,
    queue_depth: usize,
    placements_per_sec: Option<f64>,
    /// The last group commit's time, in ms to 0.1.
    write_ms: f64,
}

async fn stats(State(edge): State<Arc<Edge>>, Admin(_): Admin) -> Result<Json<Stats>, AppError> {
    let store = edge.accounts.store();
    let reports = edge.ring_admin.get().map(|admin| &admin.store);
    let (placements, online, shards, figures) = tokio::join!(
        store.placement_stats(crate::now_ms()),
        edge.players_online(),
        edge.shards.health(),
        edge.shards.figures(reports, edge.geometry().tile_count())
    );
    let placements = placements?;
    let top_placers = placements
        .top_placers
        .iter()
        .map(|(id, name, count)| TopPlacer {
            user_id: id.to_string(),
            username: name.clone(),
            placements: *count,
        })
        .collect();
    let shards = shards
        .into_iter()
        .map(|(id, addr, ok)| {
            let figures = figures
                .iter()
                .find(|f| f.id == id && f.up)
                .map(|f| ShardFigures {
                    tiles: f.tiles_owned,
                    queue_depth: f.queue_depth,
                    placements_per_sec: f.placements_per_sec,
                    write_ms: (f.write_seconds * 10_000.0).round() / 10.0,
                });
            ShardHealth {
                id,
                addr,
                status: if ok { "ok" } else { "unavailable" },
                figures,
            }
        })
        .collect();
    Ok(Json(Stats {
        players_online: online,
        placements_last_minute: placements.last_minute,
        top_placers,
        banned_users: placements.banned,
        cooldown_seconds: edge.cooldown_ms() / 1000,
        shards,
    }))
}

impl From<RegionError> for AppError {
    fn from(e: RegionError) -> Self {
        match e {
            RegionError::Moderation(e) => e.into(),
            e => AppError::BadRequest(e.to_string()),
        }
    }
}

/// `POST /api/v1/admin/regions`: a region's rectangle, mode and optional cooldown and end.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegionParams {
    #[serde(flatten)]
    rect: RectParams,
    mode: String,
    cooldown_seconds: Option<u64>,
    until: Option<i64>,
}

async fn regions(State(edge): State<Arc<Edge>>, Admin(_): Admin) -> Json<RegionList> {
    Json(edge.regions().list(edge.now_ms()))
}

async fn add_region(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    request: Result<Json<RegionParams>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<RegionView>), AppError> {
    let params = body(request)?;
    let rect = params
        .rect
        .rect(&edge)?
        .ok_or_else(|| AppError::BadRequest("a region needs x, y, width and height".into()))?;
    let mode = place_store::RegionMode::parse(&params.mode).ok_or_else(|| {
        AppError::BadRequest(format!(
            "mode {:?} is not one of locked, slow, registered",
            params.mode
        ))
    })?;
    let new = NewRegion {
        rect,
        mode,
        cooldown: params.cooldown_seconds.map(Duration::from_secs),
        until_ms: params.until,
    };
    let region = edge.add_region(admin.id, new).await?;
    Ok((axum::http::StatusCode::CREATED, Json(region.view())))
}

async fn delete_region(
    State(edge): State<Arc<Edge>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<RegionView>, AppError> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::BadRequest(format!("{id:?} is not a region id")))?;
    let region = edge
        .delete_region(&admin, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(region.view()))
}

/// Spike alarms of the last day the panel lists, at most.
const ALARMS_LISTED: i64 = 50;

/// `GET /api/v1/admin/alarms`: the spike alarms of the last day (every edge's: they are rows of
/// the audit log), each with whether its automatic slow-down is still in force.
async fn alarms(
    State(edge): State<Arc<Edge>>,
    Admin(_): Admin,
) -> Result<Json<AlarmList>, AppError> {
    let now = edge.now_ms();
    let entries = edge
        .accounts
        .store()
        .audit_of_action("spike-alarm", now - 24 * 3_600_000, ALARMS_LISTED)
        .await?;
    let in_force: Vec<String> = edge
        .regions()
        .in_force(now)
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    let alarms = entries
        .into_iter()
        .map(|e| {
            let details: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
            let slowed_down = details["regionId"]
                .as_str()
                .is_some_and(|id| in_force.iter().any(|r| r == id));
            AlarmView {
                id: e.id.to_string(),
                created_at: e.created_at,
                slowed_down,
                details,
            }
        })
        .collect();
    Ok(Json(AlarmList { alarms }))
}

#[derive(Serialize)]
struct AlarmList {
    alarms: Vec<AlarmView>,
}

/// A spike alarm as its audit row keeps it (the edge's `alarm_json`: rectangle, rate, baseline,
/// edge, region), with its row's id and time and whether its slow-down is still in force.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlarmView {
    id: String,
    created_at: i64,
    slowed_down: bool,
    #[serde(flatten)]
    details: Value,
}

#[derive(Deserialize)]
struct Page {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn audit_log(
    State(edge): State<Arc<Edge>>,
    Admin(_): Admin,
    Query(page): Query<Page>,
) -> Result<Json<AuditPage>, AppError> {
    let limit = page.limit.unwrap_or(AUDIT_PAGE).clamp(1, AUDIT_PAGE_MAX);
    let entries = edge.accounts.store().audit_log(page.before, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|e| AuditView {
            id: e.id.to_string(),
            actor_id: e.actor_id.to_string(),
            actor_name: e.actor_name,
            action: e.action,
            details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
            created_at: e.created_at,
        })
        .collect();
    Ok(Json(AuditPage { entries, next }))
}

/// A page of the audit log, newest first; `next` is the `before` of the next page.
#[derive(Serialize)]
struct AuditPage {
    entries: Vec<AuditView>,
    next: Option<String>,
}

/// One admin action: who, what, and its details as written (a JSON document per action).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditView {
    id: String,
    actor_id: String,
    actor_name: Option<String>,
    action: String,
    details: Value,
    created_at: i64,
}

#[derive(Deserialize)]
struct NameQuery {
    name: String,
}

async fn find_users(
    State(edge): State<Arc<Edge>>,
    Admin(_): Admin,
    Query(q): Query<NameQuery>,
) -> Result<Json<UserList>, AppError> {
    if q.name.len() > 64 {
        return Err(AppError::BadRequest("name is too long".into()));
    }
    let users = edge
        .accounts
        .store()
        .find_users(&q.name, USERS_FOUND)
        .await?;
    Ok(Json(UserList {
        users: users.iter().map(UserView::for_admins).collect(),
    }))
}

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
}

/// A placement as admins see it: as the history shows it, with the moderation action it
/// carried out, if any.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminPlacement {
    #[serde(flatten)]
    placement: PlacementView,
    action_id: Option<String>,
}

fn events_json(events: &[HistoryEntry]) -> Vec<AdminPlacement> {
    events
        .iter()
        .map(|e| AdminPlacement {
            placement: PlacementView::from(e),
            action_id: e.action_id.map(|id| id.to_string()),
        })
        .collect()
}

#[derive(Serialize)]
struct Placements {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserView>,
    placements: Vec<AdminPlacement>,
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn user_placements(
    State(edge): State<Arc<Edge>>,
    Admin(_): Admin,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Placements>, AppError> {
    let user = existing_user(&edge, &UserId::Text(id)).await?;
    let limit = q.limit.unwrap_or(EVENTS_DEFAULT).clamp(1, EVENTS_MAX);
    let events = edge.accounts.store().user_events(user.id, limit).await?;
    Ok(Json(Placements {
        user: Some(UserView::for_admins(&user)),
        placements: events_json(&events),
    }))
}

#[derive(Deserialize)]
struct PixelQuery {
    x: u32,
    y: u32,
    limit: Option<i64>,
}

async fn pixel(
    State(edge): State<Arc<Edge>>,
    Admin(_): Admin,
    Query(q): Query<PixelQuery>,
) -> Result<Json<Placements>, AppError> {
    if !edge.geometry().contains(q.x, q.y) {
        return Err(AppError::BadRequest(
            "the pixel is outside the canvas".into(),
        ));
    }
    let limit = q.limit.unwrap_or(10).clamp(1, EVENTS_MAX);
    let events = edge.accounts.store().pixel_events(q.x, q.y, limit).await?;
    Ok(Json(Placements {
        user: None,
        placements: events_json(&events),
    }))
}
