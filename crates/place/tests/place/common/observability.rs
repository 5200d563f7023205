//! The observability scenario both modes run: placements and a watcher, then `/metrics` of the
//! edges involved must show every series the operators rely on, with plausible values.

use std::time::Duration;

use place_protocol::{ClientMessage, ErrorCode, RequestId, ServerMessage, TileRequest};
use place_tiles::TileId;
use tokio::time::Instant;

use place_testkit::Client;

/// The text of `GET {base}/metrics`.
pub async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

/// The value of the series `series` (name and labels exactly as rendered), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find(|rest| rest.starts_with(' '))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Scrapes `base` until `check` holds, or fails after 10 s with the last text.
pub async fn scrape_until(base: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(base).await;
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} never showed:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `painter` (an edge with a cooldown) places in tile (0,0) twice (the second is refused by the
/// cooldown) while `watcher` watches that tile, possibly through another edge. Then the
/// painter's edge shows the placement series, the watcher's the broadcast latency, and both the
/// HTTP and connection series; `shards` (their ids) are up with their figures.
pub async fn metrics_after_placements(
    painter_base: &str,
    painter: &mut Client,
    watcher_base: &str,
    watcher: &mut Client,
    shards: &[&str],
) {
    // The recorder is per process and other tests run beside this one: compare before and after.
    let broadcasts = |t: &str| metric(t, "rplace_broadcast_duration_seconds_count").unwrap_or(0.0);
    let placed = |t: &str| metric(t, "rplace_pixels_placed_total{color=\"13\"}").unwrap_or(0.0);
    let painter_before = scrape(painter_base).await;
    let watcher_before = scrape(watcher_base).await;

    let tile = TileId::new(0, 0);
    watcher
        .send(&ClientMessage::Subscribe {
            tiles: vec![TileRequest { tile, seq: None }],
        })
        .await;
    watcher
        .recv_until(|m| matches!(m, ServerMessage::Tile { .. }).then_some(()))
        .await;
    // One after the other: sent together, either could take the cooldown first.
    for (id, x) in [(1, 3), (2, 4)] {
        painter
            .send(&ClientMessage::Place {
                x,
                y: 5,
                color: 13,
                request_id: Some(RequestId::Number(id)),
            })
            .await;
        let answer = painter
            .recv_until(|m| {
                matches!(m, ServerMessage::Success { .. } | ServerMessage::Error(_))
                    .then(|| m.clone())
            })
            .await;
        match (id, answer) {
            (1, ServerMessage::Success { .. }) => {}
            (2, ServerMessage::Error(e)) if e.code == ErrorCode::RateLimited => {}
            (id, other) => panic!("placement {id}: {other:?}"),
        }
    }
    watcher
        .recv_until(|m| matches!(m, ServerMessage::Pixels { .. }).then_some(()))
        .await;

    // The broadcast is timed once the last socket watching the tile has written the batch.
    let watched = scrape_until(watcher_base, "the broadcast latency", |t| {
        broadcasts(t) > broadcasts(&watcher_before)
    })
    .await;
    let count = broadcasts(&watched);
    let sum = metric(&watched, "rplace_broadcast_duration_seconds_sum").expect("sum");
    assert!(
        sum / count < 2.0,
        "a broadcast takes milliseconds, not {} s on average",
        sum / count
    );
    assert!(watched.contains("rplace_broadcast_duration_seconds_bucket{le=\"0.1\"}"));

    let painted = scrape(painter_base).await;
    // The recorder is the process's: other tests running beside this one may place colour 13 too.
    assert!(
        placed(&painted) - placed(&painter_before) >= 1.0,
        "{painted}"
    );
    assert!(
        metric(&painted, "rplace_rate_limit_hits_total{why=\"cooldown\"}").unwrap_or(0.0) >= 1.0
    );
    assert!(metric(&painted, "rplace_placement_duration_seconds_count").unwrap_or(0.0) >= 1.0);
    for text in [&painted, &watched] {
        assert!(metric(text, "rplace_active_connections").unwrap_or(0.0) >= 1.0);
        assert!(metric(text, "rplace_active_users").unwrap_or(0.0) >= 1.0);
        assert!(
            text.contains(
                "rplace_http_requests_total{method=\"POST\",path=\"/api/v1/auth/guest\",status=\"200\"}"
            ),
            "{text}"
        );
        assert!(text.contains(
            "rplace_http_request_duration_seconds_bucket{method=\"GET\",path=\"/metrics\""
        ));
    }

    // Each shard's figures; the one that wrote the placement shows it (shards report every
    // 250 ms in a cluster, so wait for it).
    let shard = |name: &str, id: &str| format!("{name}{{shard=\"{id}\"}}");
    // The recorder is the process's, and other tests' clusters name their shards alike: a
    // scrape may show another cluster's figures for a shard id, written between this edge's
    // refresh and its rendering. Scrape until one shows this cluster's, consistent throughout.
    let figures = scrape_until(painter_base, "the shards' figures", |t| {
        shards.iter().all(|id| {
            let placed = metric(t, &shard("rplace_shard_placements_total", id)).unwrap_or(0.0);
            let write = metric(t, &shard("rplace_shard_write_batch_seconds", id)).unwrap_or(0.0);
            metric(t, &shard("rplace_shard_up", id)) == Some(1.0)
                && metric(t, &shard("rplace_shard_tiles_owned", id)).unwrap_or(0.0) >= 1.0
                && (placed < 1.0 || write > 0.0)
        }) && shards
            .iter()
            .any(|id| metric(t, &shard("rplace_shard_placements_total", id)).unwrap_or(0.0) >= 1.0)
    })
    .await;
    for id in shards {
        let queue = metric(&figures, &shard("rplace_shard_queue_depth", id)).expect("queue depth");
        assert!((0.0..100.0).contains(&queue), "{id}: queue {queue}");
        assert!(metric(&figures, &shard("rplace_shard_epoch", id)).is_some());
        let placed = metric(&figures, &shard("rplace_shard_placements_total", id)).expect("placed");
        let writes = metric(&figures, &shard("rplace_shard_writes_total", id)).expect("writes");
        let write =
            metric(&figures, &shard("rplace_shard_write_batch_seconds", id)).expect("write");
        if placed >= 1.0 {
            assert!(writes >= 1.0, "{id}: {placed} placed in {writes} writes");
            assert!(
                write > 0.0 && write < 2.0,
                "{id}: a group commit takes {write} s"
            );
        }
    }
}
