//! The history scenario both modes run: placements through one edge, the history read through
//! another (`bases[i]` is edge i's URL; `place serve` has one), without a session.

use serde_json::{json, Value};

use place_testkit::{call, Player};

/// `GET` of a history route without a cookie: status and body.
async fn get(base: &str, path: &str) -> (u16, Value) {
    let a = call(base, "GET", path, None, None).await;
    (a.status, a.body)
}

/// `(colour, username, reverted, restore)` of each item of a page.
fn items(page: &Value) -> Vec<(u64, String, bool, bool)> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["color"].as_u64().expect("color"),
                i["username"].as_str().expect("username").to_owned(),
                i["reverted"].as_bool().expect("reverted"),
                i["restore"].as_bool().expect("restore"),
            )
        })
        .collect()
}

async fn username(base: &str, cookie: &str) -> String {
    place_testkit::me(base, cookie).await.body["username"]
        .as_str()
        .expect("username")
        .to_owned()
}

/// Pages of a pixel's, a user's and everyone's placements, marks after a rollback, the errors
/// of bad parameters, and the heatmap.
pub async fn history_pages_marks_and_heatmap(bases: &[String], admin: &str) {
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
    let mut a = Player::join(first).await;
    let mut b = Player::join(last).await;
    let (name_a, name_b) = (
        username(first, &a.cookie).await,
        username(last, &b.cookie).await,
    );
    let started = place_edge::now_ms();
    a.paint(&[(5, 5, 1), (5, 5, 2), (6, 5, 3)]).await;
    b.paint(&[(5, 5, 4), (40, 33, 6)]).await;

    // A pixel's placements, newest first, two pages.
    let (status, page) = get(last, "/api/v1/history/pixel?x=5&y=5&limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        items(&page),
        vec![
            (4, name_b.clone(), false, false),
            (2, name_a.clone(), false, false)
        ]
    );
    let item = &page["items"][0];
    assert_eq!((item["x"].as_u64(), item["y"].as_u64()), (Some(5), Some(5)));
    assert_eq!(item["userId"], Value::String(b.id.clone()));
    let placed_at = item["placedAt"].as_i64().expect("placedAt");
    assert!(placed_at >= started && placed_at <= place_edge::now_ms());
    let cursor = page["nextCursor"].as_str().expect("a next page");
    let (status, rest) = get(
        first,
        &format!("/api/v1/history/pixel?x=5&y=5&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(items(&rest), vec![(1, name_a.clone(), false, false)]);
    assert_eq!(rest["nextCursor"], Value::Null);
    // A cursor of one listing is refused by another.
    let (status, refused) = get(
        first,
        &format!("/api/v1/history/pixel?x=6&y=5&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "BAD_REQUEST");
    let (status, _) = get(first, &format!("/api/v1/history/recent?cursor={cursor}")).await;
    assert_eq!(status, 400);

    // A user's placements, and everyone's.
    let (status, mine) = get(first, &format!("/api/v1/history/user/{}", a.id)).await;
    assert_eq!(status, 200, "{mine}");
    let colors: Vec<u64> = items(&mine).iter().map(|i| i.0).collect();
    assert_eq!(colors, vec![3, 2, 1]);
    assert_eq!(mine["user"]["username"], Value::String(name_a.clone()));
    assert_eq!(mine["nextCursor"], Value::Null);
    let (status, recent) = get(last, "/api/v1/history/recent?limit=3").await;
    assert_eq!(status, 200, "{recent}");
    let colors: Vec<u64> = items(&recent).iter().map(|i| i.0).collect();
    assert_eq!(colors, vec![6, 4, 3]);
    let cursor = recent["nextCursor"].as_str().expect("more");
    let (_, older) = get(
        last,
        &format!("/api/v1/history/recent?limit=500&cursor={cursor}"),
    )
    .await;
    let colors: Vec<u64> = items(&older).iter().map(|i| i.0).collect();
    assert_eq!(colors, vec![2, 1], "the admin's settings placed nothing");
    assert_eq!(older["nextCursor"], Value::Null);

    // Bad parameters get 400 with a message; an unknown user 404.
    for path in [
        "/api/v1/history/pixel?x=5",
        "/api/v1/history/pixel?x=5&y=-1",
        "/api/v1/history/pixel?x=100000&y=5",
        "/api/v1/history/pixel?x=5&y=5&limit=0",
        "/api/v1/history/pixel?x=5&y=5&limit=501",
        "/api/v1/history/pixel?x=5&y=5&cursor=nonsense",
        "/api/v1/history/recent?limit=ten",
        "/api/v1/history/user/alice",
        "/api/v1/history/heatmap?minutes=0",
        "/api/v1/history/heatmap?minutes=1441",
        "/api/v1/history/heatmap?minutes=7",
    ] {
        let (status, body) = get(last, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST", "{path}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = get(last, "/api/v1/history/user/987654321").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("NOT_FOUND")));

    // A rollback of b: its placement stays in the history, marked, under the administrator's
    // restore.
    let done = call(
        first,
        "POST",
        "/api/v1/admin/rollback",
        Some(admin),
        Some(json!({"userId": b.id})),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let (_, page) = get(last, "/api/v1/history/pixel?x=5&y=5&limit=3").await;
    assert_eq!(
        items(&page),
        vec![
            (2, "root".to_owned(), false, true),
            (4, name_b.clone(), true, false),
            (2, name_a.clone(), false, false)
        ]
    );

    // The heatmap: the players' five placements, restores left out, in cells.
    let (status, heat) = get(first, "/api/v1/history/heatmap?minutes=5").await;
    assert_eq!(status, 200, "{heat}");
    assert_eq!(heat["minutes"], 5);
    assert_eq!(heat["total"], 5, "{heat}");
    assert_eq!(heat["truncated"], false);
    let cell = heat["cellSize"].as_u64().expect("cellSize");
    let cells = heat["cells"].as_array().expect("cells");
    let count_at = |x: u64, y: u64| -> u64 {
        cells
            .iter()
            .filter(|c| c[0] == x / cell && c[1] == y / cell)
            .map(|c| c[2].as_u64().expect("count"))
            .sum()
    };
    assert_eq!(count_at(40, 33), 1);
    assert!(count_at(5, 5) >= 3);
    assert_eq!(
        heat["max"].as_u64(),
        cells.iter().map(|c| c[2].as_u64().expect("n")).max()
    );
    let default = get(first, "/api/v1/history/heatmap").await;
    assert_eq!((default.0, &default.1["minutes"]), (200, &json!(60)));
    drop((a.socket, b.socket));
}
