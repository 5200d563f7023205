//! The protected-regions scenario both modes run: regions made through the first edge hold on
//! the last one within a second (`bases[i]` is edge i's URL), each mode refuses whom it should,
//! and bad requests change nothing.

use std::time::Duration;

use place_protocol::{ErrorCode, ServerMessage};
use serde_json::{json, Value};
use tokio::time::Instant;

use place_testkit::Client;
use place_testkit::{call, Player};

/// How long a region change may take to reach every edge.
const EVERY_EDGE_WITHIN: Duration = Duration::from_secs(1);

/// A player on a socket of `base` with session `cookie`.
async fn player_with(base: &str, cookie: String) -> Player {
    let me = place_testkit::me(base, &cookie).await;
    let ws = base.replace("http://", "ws://") + "/ws";
    let mut socket = Client::connect(&ws, Some(&cookie), false).await;
    assert!(matches!(socket.recv().await, ServerMessage::Welcome(_)));
    Player {
        id: me.body["userId"].as_str().expect("userId").to_string(),
        cookie,
        socket,
    }
}

/// The error code of a placement's answer, `None` for a success.
async fn outcome(player: &mut Player, x: i64, y: i64) -> Option<ErrorMessageSummary> {
    match player.place(x, y, 3).await {
        ServerMessage::Success { .. } => None,
        ServerMessage::Error(e) => Some(ErrorMessageSummary {
            code: e.code,
            message: e.message,
            cooldown_remaining: e.cooldown_remaining,
        }),
        other => panic!("a placement answered {other:?}"),
    }
}

#[derive(Debug)]
struct ErrorMessageSummary {
    code: ErrorCode,
    message: String,
    cooldown_remaining: Option<u64>,
}

/// Places at `(x, y)` until the answer's code is `expected` (`None`: placed), for at most
/// [`EVERY_EDGE_WITHIN`] (the canvas cooldown must be 0).
async fn until_answer(player: &mut Player, (x, y): (i64, i64), expected: Option<ErrorCode>) {
    let deadline = Instant::now() + EVERY_EDGE_WITHIN;
    loop {
        let got = outcome(player, x, y).await;
        if got.as_ref().map(|e| e.code) == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "({x},{y}) still answers {got:?}, not {expected:?}, after {EVERY_EDGE_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn add(base: &str, admin: &str, body: Value) -> place_testkit::Answer {
    call(
        base,
        "POST",
        "/api/v1/admin/regions",
        Some(admin),
        Some(body),
    )
    .await
}

/// Deletes region `id` through `base`; the answer's status.
async fn remove(base: &str, admin: &str, id: &str) -> u16 {
    let path = format!("/api/v1/admin/regions/{id}");
    call(base, "DELETE", &path, Some(admin), None).await.status
}

/// Regions through the first edge: locked, registered and slow, each refusing whom it should on
/// the last edge within a second; an end that passes; deletion; the public list; bad requests;
/// the audit log. The canvas is at least 64x64 with a cooldown of 0. Leaves one region (a
/// `registered` one at (40,40) 8x8) in force, for a restart to find. Returns its id.
pub async fn regions_hold_on_every_edge(bases: &[String], admin: &str) -> String {
    let first = &bases[0];
    let last = &bases[bases.len() - 1];
    let mut guest = Player::join(last).await;
    let registered_cookie = {
        let cookie = place_testkit::guest(last).await;
        let made = place_testkit::credentials(
            last,
            "register",
            "painter1",
            "painter password",
            Some(&cookie),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.body);
        made.cookie().expect("cookie")
    };
    let mut member = player_with(last, registered_cookie).await;
    let mut admin_player = player_with(last, admin.to_string()).await;

    // Locked: nobody but administrators.
    let locked = add(
        first,
        admin,
        json!({"x": 0, "y": 0, "width": 8, "height": 8, "mode": "locked"}),
    )
    .await;
    assert_eq!(locked.status, 201, "{}", locked.body);
    assert_eq!(locked.body["mode"], "locked");
    let locked_id = locked.body["id"].as_str().expect("id").to_string();
    until_answer(&mut guest, (3, 3), Some(ErrorCode::RegionLocked)).await;
    until_answer(&mut member, (7, 7), Some(ErrorCode::RegionLocked)).await;
    assert!(outcome(&mut member, 8, 7).await.is_none(), "outside it");
    assert!(
        outcome(&mut admin_player, 3, 3).await.is_none(),
        "admins place"
    );

    // Registered: guests refused, registered players place.
    let registered = add(
        first,
        admin,
        json!({"x": 40, "y": 40, "width": 8, "height": 8, "mode": "registered"}),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let registered_id = registered.body["id"].as_str().expect("id").to_string();
    until_answer(&mut guest, (41, 41), Some(ErrorCode::RegionRegisteredOnly)).await;
    assert!(outcome(&mut member, 41, 41).await.is_none());

    // Slow: a cooldown of its own there, none elsewhere.
    let slow = add(
        first,
        admin,
        json!({"x": 20, "y": 20, "width": 4, "height": 4, "mode": "slow", "cooldownSeconds": 30}),
    )
    .await;
    assert_eq!(slow.status, 201, "{}", slow.body);
    assert_eq!(slow.body["cooldownSeconds"], 30);
    let slow_id = slow.body["id"].as_str().expect("id").to_string();
    // The member placed moments ago: once the edge knows the region, a placement there waits.
    let deadline = Instant::now() + EVERY_EDGE_WITHIN;
    let refusal = loop {
        if let Some(e) = outcome(&mut member, 21, 21).await {
            break e;
        }
        assert!(Instant::now() < deadline, "the slow region never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refusal.code, ErrorCode::RateLimited, "{refusal:?}");
    assert!(refusal.message.contains("30 s"), "{refusal:?}");
    assert_eq!(
        refusal.cooldown_remaining, None,
        "the player may place elsewhere at once"
    );
    assert!(outcome(&mut member, 30, 30).await.is_none(), "elsewhere");

    // Everyone may read them, with a reason for each.
    let listed: Value = reqwest::get(format!("{last}/api/v1/regions"))
        .await
        .expect("regions")
        .json()
        .await
        .expect("json");
    let regions = listed["regions"].as_array().expect("regions");
    assert_eq!(regions.len(), 3, "{listed}");
    assert!(
        regions
            .iter()
            .all(|r| r["reason"].as_str().is_some_and(|s| !s.is_empty())),
        "{listed}"
    );
    let admin_list = call(last, "GET", "/api/v1/admin/regions", Some(admin), None).await;
    assert_eq!(admin_list.body["regions"].as_array().map(Vec::len), Some(3));

    // Deleted: placements there are the canvas's again, on every edge within a second.
    assert_eq!(remove(first, admin, &locked_id).await, 200);
    until_answer(&mut guest, (3, 3), None).await;
    assert_eq!(remove(first, admin, &locked_id).await, 404);
    assert_eq!(remove(last, admin, &slow_id).await, 200);

    // One with an end stops holding by itself.
    let until = place_edge::now_ms() + 1_500;
    let ending = add(
        first,
        admin,
        json!({"x": 50, "y": 0, "width": 4, "height": 4, "mode": "locked", "until": until}),
    )
    .await;
    assert_eq!(ending.status, 201, "{}", ending.body);
    until_answer(&mut guest, (51, 1), Some(ErrorCode::RegionLocked)).await;
    tokio::time::sleep(Duration::from_millis(
        (until - place_edge::now_ms()).max(0) as u64
    ))
    .await;
    assert!(outcome(&mut guest, 51, 1).await.is_none(), "ended");

    // Bad requests change nothing.
    for bad in [
        json!({"x": 0, "y": 0, "width": 4, "height": 4, "mode": "frozen"}),
        json!({"x": 0, "y": 0, "width": 0, "height": 4, "mode": "locked"}),
        json!({"x": 0, "y": 0, "width": 100000, "height": 4, "mode": "locked"}),
        json!({"x": 0, "y": 0, "mode": "locked"}),
        json!({"x": 0, "y": 0, "width": 4, "height": 4, "mode": "locked", "cooldownSeconds": 9}),
        json!({"x": 0, "y": 0, "width": 4, "height": 4, "mode": "slow", "cooldownSeconds": 0}),
        json!({"x": 0, "y": 0, "width": 4, "height": 4, "mode": "slow", "cooldownSeconds": 3601}),
        json!({"x": 0, "y": 0, "width": 4, "height": 4, "mode": "locked", "until": 5}),
        json!({"x": 0, "y": 0, "width": 4, "height": 4}),
    ] {
        let refused = add(first, admin, bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
    }
    let not_an_id = call(
        first,
        "DELETE",
        "/api/v1/admin/regions/abc",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(not_an_id.status, 400);
    let listed = call(first, "GET", "/api/v1/admin/regions", Some(admin), None).await;
    assert_eq!(
        listed.body["regions"].as_array().map(Vec::len),
        Some(1),
        "only the registered region: {}",
        listed.body
    );

    let (actions, audit) = super::moderation::audit_actions(first, admin).await;
    assert_eq!(
        actions,
        [
            "region-add",
            "region-remove",
            "region-remove",
            "region-add",
            "region-add",
            "region-add"
        ],
        "{audit}"
    );
    assert_eq!(audit["entries"][5]["details"]["mode"], "locked", "{audit}");
    registered_id
}
