//! The moderation scenario both modes run: the same HTTP and WebSocket steps against one
//! `place serve` or against the edges of a cluster (`bases[i]` is edge i's URL).

use std::time::Duration;

use place::admin::UserStore;
use place::verify::LogSource;
use place_protocol::{ClientMessage, ErrorCode, ServerMessage, TileRequest};
use place_testkit::{call, Client, Player};
use place_tiles::TileId;
use serde_json::{json, Value};

/// Every admin route with a harmless request: `(method, path, body)`.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/admin/ban-user"),
    ("POST", "/api/v1/admin/unban-user"),
    ("GET", "/api/v1/admin/settings"),
    ("PUT", "/api/v1/admin/settings"),
    ("POST", "/api/v1/admin/reset-canvas"),
    ("POST", "/api/v1/admin/rollback"),
    ("GET", "/api/v1/admin/stats"),
    ("GET", "/api/v1/admin/audit-log"),
    ("GET", "/api/v1/admin/users?name=a"),
    ("GET", "/api/v1/admin/users/1/placements"),
    ("GET", "/api/v1/admin/pixel?x=0&y=0"),
    ("GET", "/api/v1/admin/ring"),
    ("POST", "/api/v1/admin/ring/shards"),
    ("DELETE", "/api/v1/admin/ring/shards/shard-1"),
    ("GET", "/api/v1/admin/regions"),
    ("POST", "/api/v1/admin/regions"),
    ("DELETE", "/api/v1/admin/regions/1"),
    ("GET", "/api/v1/admin/alarms"),
    ("PUT", "/api/v1/admin/canvas/size"),
];

/// Makes administrator `name` in `store` and logs it in through `base`; returns its cookie.
pub async fn admin_cookie(store: &UserStore, base: &str, name: &str) -> String {
    let password = "moderator password".to_string();
    place::admin::create_user(store, name, password.clone(), true)
        .await
        .expect("create the administrator");
    let login = place_testkit::credentials(base, "login", name, &password, None).await;
    assert_eq!(login.status, 200, "{}", login.body);
    login.cookie().expect("session cookie")
}

/// Every admin route answers 401 without a session and 403 to a player, whatever the body.
pub async fn non_admins_are_refused(base: &str, player: &str) {
    for (method, path) in ADMIN_ROUTES {
        let body = (*method != "GET").then(|| json!({"userId": "1", "cooldownSeconds": 0}));
        let anonymous = call(base, method, path, None, body.clone()).await;
        assert_eq!(anonymous.status, 401, "{method} {path} without a session");
        let refused = call(base, method, path, Some(player), body).await;
        assert_eq!(refused.status, 403, "{method} {path} as a player");
        assert_eq!(refused.body["error"]["code"], "FORBIDDEN");
    }
}

/// A socket watching tile (0,0), keeping its own copy of the tile from what it receives.
pub struct Watcher {
    socket: Client,
    pixels: Vec<u8>,
}

impl Watcher {
    pub async fn start(base: &str) -> Watcher {
        let mut player = Player::join(base).await;
        player
            .socket
            .send(&ClientMessage::Subscribe {
                tiles: vec![TileRequest {
                    tile: TileId::new(0, 0),
                    seq: None,
                }],
            })
            .await;
        let pixels = player
            .socket
            .recv_until(|m| match m {
                ServerMessage::Tile { pixels, .. } => Some(pixels.to_vec()),
                _ => None,
            })
            .await;
        Watcher {
            socket: player.socket,
            pixels,
        }
    }

    /// Applies the deltas it receives until every pixel of `expected` has its colour.
    pub async fn wait_for(&mut self, expected: &[(u32, u32, u8)]) {
        let matches = |pixels: &[u8]| {
            expected
                .iter()
                .all(|&(x, y, c)| pixels[(y * 64 + x) as usize] == c)
        };
        while !matches(&self.pixels) {
            let changes = self
                .socket
                .recv_until(|m| match m {
                    ServerMessage::Pixels { changes, .. } => Some(changes.clone()),
                    _ => None,
                })
                .await;
            for c in changes {
                self.pixels[usize::from(c.ly) * 64 + usize::from(c.lx)] = c.color;
            }
        }
    }
}

/// Tile (0,0) as `base` serves it, once it has every colour of `expected` (within 5 s).
pub async fn wait_for_tile(base: &str, expected: &[(u32, u32, u8)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let tile = reqwest::get(format!("{base}/api/v1/tiles/0/0"))
            .await
            .expect("tile")
            .bytes()
            .await
            .expect("tile body");
        let wrong: Vec<_> = expected
            .iter()
            .filter(|&&(x, y, c)| tile[(y * 64 + x) as usize] != c)
            .collect();
        if wrong.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tile (0,0) at {base} still differs at {wrong:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rolls back, resets and checks every viewer sees it, the audit log, and that the canvas is
/// still a replay of the log. `bases` are the edges (one in `place serve`).
pub async fn rollbacks_restore_exact_colours(bases: &[String], admin: &str, log: &LogSource) {
    let first = &bases[0];
    let last = &bases[bases.len() - 1];
    let set = call(
        first,
        "PUT",
        "/api/v1/admin/settings",
        Some(admin),
        Some(json!({"cooldownSeconds": 0})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let mut watcher = Watcher::start(last).await;
    let mut a = Player::join(first).await;
    let mut b = Player::join(last).await;

    a.paint(&[(1, 1, 3), (2, 1, 3), (3, 1, 3)]).await;
    let before_b = place_edge::now_ms();
    b.paint(&[(1, 1, 5), (2, 1, 5), (4, 1, 5)]).await;
    watcher.wait_for(&[(1, 1, 5), (4, 1, 5)]).await;

    // Roll back B: A's colours come back, and 0 where only B painted.
    let rollback = json!({"userId": b.id, "since": before_b});
    let done = call(
        first,
        "POST",
        "/api/v1/admin/rollback",
        Some(admin),
        Some(rollback),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        (
            done.body["reverted"].as_u64(),
            done.body["restored"].as_u64(),
            done.body["failed"].as_u64()
        ),
        (Some(3), Some(3), Some(0))
    );
    let after_b = [(1, 1, 3), (2, 1, 3), (3, 1, 3), (4, 1, 0)];
    watcher.wait_for(&after_b).await;
    wait_for_tile(last, &after_b).await;

    // A paints over one pixel again; then roll back A entirely: 0 where only A (and the
    // reverted B) painted.
    a.paint(&[(3, 1, 7)]).await;
    let rollback = json!({"userId": a.id.parse::<i64>().expect("numeric id")});
    let done = call(
        last,
        "POST",
        "/api/v1/admin/rollback",
        Some(admin),
        Some(rollback),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        (
            done.body["reverted"].as_u64(),
            done.body["restored"].as_u64()
        ),
        (Some(4), Some(3))
    );
    let after_a = [(1, 1, 0), (2, 1, 0), (3, 1, 0), (4, 1, 0)];
    watcher.wait_for(&after_a).await;

    // A rectangle and a time window: only B's later placements inside it go.
    a.paint(&[(10, 10, 2)]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let window_start = place_edge::now_ms();
    b.paint(&[(10, 10, 4), (11, 10, 4), (12, 10, 4)]).await;
    let window = json!({"x": 10, "y": 10, "width": 2, "height": 1, "from": window_start, "to": place_edge::now_ms()});
    let done = call(
        first,
        "POST",
        "/api/v1/admin/rollback",
        Some(admin),
        Some(window.clone()),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let after_window = [(10, 10, 2), (11, 10, 0), (12, 10, 4)];
    watcher.wait_for(&after_window).await;

    // A reset takes only an explicit JSON body: without one (no body, or a body of another
    // type) it is refused and resets nothing (the pixels below stay, and the audit log at the
    // end has no such reset).
    a.paint(&[(20, 20, 9), (21, 20, 9), (30, 30, 6)]).await;
    let url = format!("{first}/api/v1/admin/reset-canvas");
    let http = reqwest::Client::new();
    for (content_type, body) in [
        (None, ""),
        (None, "{}"),
        (Some("text/plain"), "{}"),
        (Some("application/x-www-form-urlencoded"), "x=0"),
        (Some("application/json"), ""),
        (Some("application/json"), "{\"x\":"),
    ] {
        let mut request = http
            .post(&url)
            .header("cookie", admin)
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let refused = place_testkit::Answer::of(request.send().await.expect("request")).await;
        assert!(
            matches!(refused.status, 400 | 415),
            "{content_type:?} {body:?}: {} {}",
            refused.status,
            refused.body
        );
    }
    watcher
        .wait_for(&[(20, 20, 9), (21, 20, 9), (30, 30, 6)])
        .await;

    // Reset a rectangle: back to the background, whoever painted; outside it nothing moves.
    let reset = json!({"x": 20, "y": 20, "width": 5, "height": 5});
    let done = call(
        first,
        "POST",
        "/api/v1/admin/reset-canvas",
        Some(admin),
        Some(reset),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["restored"].as_u64(), Some(2));
    let after_reset = [(20, 20, 0), (21, 20, 0), (30, 30, 6), (12, 10, 4)];
    watcher.wait_for(&after_reset).await;
    wait_for_tile(first, &after_reset).await;

    // Repeating a rollback changes nothing more.
    let again = call(
        first,
        "POST",
        "/api/v1/admin/rollback",
        Some(admin),
        Some(window),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["restored"].as_u64(), Some(0), "{}", again.body);

    // Bad requests.
    for bad in [
        json!({}),
        json!({"x": 1, "y": 1}),
        json!({"x": 0, "y": 0, "width": 100000, "height": 1}),
    ] {
        let refused = call(
            first,
            "POST",
            "/api/v1/admin/rollback",
            Some(admin),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
    }

    // Who placed a pixel, a user's placements, found by name.
    let pixel = call(
        first,
        "GET",
        "/api/v1/admin/pixel?x=12&y=10",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(
        pixel.body["placements"][0]["userId"],
        b.id.as_str(),
        "{}",
        pixel.body
    );
    let placements = call(
        last,
        "GET",
        &format!("/api/v1/admin/users/{}/placements", b.id),
        Some(admin),
        None,
    )
    .await;
    let list = placements.body["placements"]
        .as_array()
        .expect("placements");
    assert_eq!(list.len(), 6, "{}", placements.body);
    assert_eq!(list.iter().filter(|p| p["reverted"] == true).count(), 5);

    // The audit log, newest first, in pages.
    let page = call(
        last,
        "GET",
        "/api/v1/admin/audit-log?limit=3",
        Some(admin),
        None,
    )
    .await;
    let entries = page.body["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["rollback", "reset-canvas", "rollback"],
        "{}",
        page.body
    );
    assert_eq!(entries[1]["details"]["restored"], 2);
    assert_eq!(entries[1]["details"]["rect"]["width"], 5);
    assert!(entries[0]["actorName"].is_string());
    let next = page.body["next"].as_str().expect("a next page");
    let rest = call(
        first,
        "GET",
        &format!("/api/v1/admin/audit-log?before={next}"),
        Some(admin),
        None,
    )
    .await;
    let rest: Vec<&str> = rest.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(rest, ["rollback", "rollback", "settings"]);

    // The canvas is still a replay of the log.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = place::verify::verify(first, log).await.expect("verify");
    assert_eq!(report.differing, 0, "{:?}", report.differences);
}

/// A ban made through the first edge holds on the last one at once (the player's open socket
/// gets `BANNED`), and an unban lifts it; the cooldown set through the first reaches a socket of
/// the last and its settings.
pub async fn bans_and_settings_reach_every_edge(bases: &[String], admin: &str) {
    let first = &bases[0];
    let last = &bases[bases.len() - 1];
    let mut player = Player::join(last).await;
    let ban = call(
        first,
        "POST",
        "/api/v1/admin/ban-user",
        Some(admin),
        Some(json!({"userId": player.id})),
    )
    .await;
    assert_eq!(ban.status, 200, "{}", ban.body);
    assert_eq!(ban.body["banned"], true);
    match player.place(5, 5, 1).await {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::Banned),
        other => panic!("a banned player placed: {other:?}"),
    }
    let stats = call(last, "GET", "/api/v1/admin/stats", Some(admin), None).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["bannedUsers"], 1, "{}", stats.body);
    assert!(
        stats.body["playersOnline"].as_u64().unwrap_or(0) >= 1,
        "{}",
        stats.body
    );
    let shards = stats.body["shards"].as_array().expect("shards");
    assert!(
        !shards.is_empty() && shards.iter().all(|s| s["status"] == "ok"),
        "{}",
        stats.body
    );
    let unban = call(
        last,
        "POST",
        "/api/v1/admin/unban-user",
        Some(admin),
        Some(json!({"userId": player.id})),
    )
    .await;
    assert_eq!(unban.status, 200, "{}", unban.body);
    assert!(matches!(
        player.place(5, 5, 1).await,
        ServerMessage::Success { .. }
    ));
    let unknown = call(
        first,
        "POST",
        "/api/v1/admin/ban-user",
        Some(admin),
        Some(json!({"userId": "999999"})),
    )
    .await;
    assert_eq!(unknown.status, 404);

    let set = call(
        first,
        "PUT",
        "/api/v1/admin/settings",
        Some(admin),
        Some(json!({"cooldownSeconds": 42})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let cooldown = player
        .socket
        .recv_until(|m| match m {
            ServerMessage::Cooldown { cooldown, .. } => Some(*cooldown),
            _ => None,
        })
        .await;
    assert_eq!(cooldown, 42);
    let read = call(last, "GET", "/api/v1/admin/settings", Some(admin), None).await;
    assert_eq!(read.body["cooldownSeconds"], 42, "{}", read.body);
    let too_long = call(
        first,
        "PUT",
        "/api/v1/admin/settings",
        Some(admin),
        Some(json!({"cooldownSeconds": 3601})),
    )
    .await;
    assert_eq!(too_long.status, 400);
    let (actions, audit) = audit_actions(first, admin).await;
    assert_eq!(actions, ["settings", "unban-user", "ban-user"], "{audit}");
}

/// The actions of the audit log's first page at `base`, newest first, and the page itself.
pub async fn audit_actions(base: &str, admin: &str) -> (Vec<String>, Value) {
    let audit = call(base, "GET", "/api/v1/admin/audit-log", Some(admin), None).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let actions = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_owned())
        .collect();
    (actions, audit.body)
}

/// Every `(method, route pattern)` the edge serves under `/api/v1/admin/`, read from its source
/// (`.route("...", get(..).put(..))` in `admin.rs` and `ring_admin.rs`), so a new admin route
/// not in [`ADMIN_ROUTES`] fails [`admin_routes_are_all_listed`].
pub fn admin_routes_in_source() -> Vec<(String, String)> {
    let sources = [
        include_str!("../../../../edge/src/admin.rs"),
        include_str!("../../../../edge/src/ring_admin.rs"),
        include_str!("../../../../edge/src/canvas_size.rs"),
    ];
    let mut routes = Vec::new();
    for source in sources {
        for (start, _) in source.match_indices(".route(\"/api/v1/admin") {
            let call = &source[start + ".route(".len()..];
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("a closed .route(...)");
            let call = &call[..end];
            let path = call.split('"').nth(1).expect("a quoted path").to_owned();
            for method in ["get", "post", "put", "delete", "patch"] {
                let named = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[i - 1] != b'_'
                });
                if named {
                    routes.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

/// Whether a concrete request path (query allowed) matches a route pattern with `{param}`s.
fn matches_pattern(path: &str, pattern: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (a, b): (Vec<&str>, Vec<&str>) = (path.split('/').collect(), pattern.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(p, q)| p == q || (q.starts_with('{') && q.ends_with('}')))
}

/// Every admin route of the source is in [`ADMIN_ROUTES`], which the 401/403 checks walk.
pub fn admin_routes_are_all_listed() {
    let routes = admin_routes_in_source();
    assert!(routes.len() >= 14, "the admin routes are found: {routes:?}");
    for (method, pattern) in &routes {
        assert!(
            ADMIN_ROUTES
                .iter()
                .any(|(m, p)| m == method && matches_pattern(p, pattern)),
            "{method} {pattern} is an admin route missing from ADMIN_ROUTES: add it, so that its 401 and 403 are tested"
        );
    }
}

/// Whether the session `cookie` is an administrator at `base`, by `/auth/me` and by an admin
/// route (both must agree).
pub async fn is_admin_at(base: &str, cookie: &str) -> bool {
    let me = place_testkit::me(base, cookie).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let settings = call(base, "GET", "/api/v1/admin/settings", Some(cookie), None).await;
    let by_route = match settings.status {
        200 => true,
        403 => false,
        other => panic!("GET /api/v1/admin/settings: {other} {}", settings.body),
    };
    assert_eq!(me.body["isAdmin"], by_route, "{}", me.body);
    by_route
}

/// A registered user signed in at `bases[0]` is promoted, then demoted, by name (`place admin
/// promote`/`demote`): their live session has and loses the rights at once on every edge.
/// Returns their cookie.
pub async fn promotion_and_demotion_count_at_once(store: &UserStore, bases: &[String]) -> String {
    let password = "carol's password".to_string();
    place::admin::create_user(store, "carol", password.clone(), false)
        .await
        .expect("create carol");
    let login = place_testkit::credentials(&bases[0], "login", "carol", &password, None).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login.cookie().expect("session cookie");
    for base in bases {
        assert!(!is_admin_at(base, &cookie).await, "not yet at {base}");
    }
    let promoted = place::admin::set_admin(store, "Carol", true)
        .await
        .expect("promote");
    assert!(promoted.is_admin);
    for base in bases {
        assert!(
            is_admin_at(base, &cookie).await,
            "promoted at once at {base}"
        );
    }
    place::admin::set_admin(store, "carol", false)
        .await
        .expect("demote");
    for base in bases {
        assert!(
            !is_admin_at(base, &cookie).await,
            "demoted at once at {base}"
        );
    }
    place::admin::set_admin(store, "carol", true)
        .await
        .expect("promote again");
    cookie
}
