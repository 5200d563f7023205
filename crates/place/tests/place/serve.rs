//! `place serve` in this process, on an ephemeral port, with real WebSocket clients: what the
//! binary wires around the edge (its store across restarts, the administrator made with `place
//! admin`, the log `place verify` replays, the timelapse and its CLI) and the scenarios it shares
//! with the cluster. The edge's own behaviour is tested in `crates/edge/tests`.

use std::time::Duration;

use place::config::{EdgeSection, ServeConfig, SnapshotSection};
use place_protocol::ServerMessage;
use place_testkit::{place_message as place, subscribe as sub};
use place_tiles::{PixelChange, TileId};

use crate::common::{config, Server};

#[tokio::test]
async fn a_restart_keeps_the_canvas_and_the_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 200, 100, 0)).await;
    let mut c = server.client(&server.guest().await, false).await;
    for i in 0..30 {
        c.send(&place(i * 6, (i * 3) % 100, (i % 15) + 1, i as u32))
            .await;
        c.expect_success().await;
    }
    c.send(&sub(&[(0, 0)])).await;
    let seq_before = c.snapshot_seq(TileId::new(0, 0)).await;
    let canvas_before = reqwest::get(format!("{}/api/v1/canvas", server.base))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    drop(c);
    server.stop().await;

    let server = Server::start(config(dir.path(), 200, 100, 0)).await;
    let canvas_after = reqwest::get(format!("{}/api/v1/canvas", server.base))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(canvas_before.len(), 200 * 100);
    assert_eq!(canvas_before, canvas_after);
    let mut c = server.client(&server.guest().await, false).await;
    c.send(&sub(&[(0, 0)])).await;
    assert_eq!(c.snapshot_seq(TileId::new(0, 0)).await, seq_before);
    c.send(&place(1, 1, 2, 1)).await;
    c.expect_success().await;
    assert_eq!(
        c.recv().await,
        ServerMessage::Pixels {
            tile: TileId::new(0, 0),
            first_seq: seq_before + 1,
            changes: vec![PixelChange {
                lx: 1,
                ly: 1,
                color: 2
            }]
        },
        "seqs continue where they stopped"
    );
    server.stop().await;

    // Another size on the same data is refused.
    let valid = config(dir.path(), 300, 100, 0).validate().expect("valid");
    assert!(place::serve::start(&valid).await.is_err());
}

#[test]
fn the_list_of_admin_routes_whose_refusals_are_tested_has_every_admin_route() {
    crate::common::moderation::admin_routes_are_all_listed();
}

#[tokio::test]
async fn moderation_rolls_back_to_exact_colours_and_the_log_still_replays() {
    use crate::common::moderation;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 128, 0)).await;
    let bases = [server.base.clone()];
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let player = server.guest().await;
    moderation::non_admins_are_refused(&server.base, &player).await;
    let admin = moderation::admin_cookie(&store, &server.base, "root").await;
    // A state-changing admin request from another site is refused like the others.
    let evil = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/reset-canvas", server.base))
        .header("cookie", &admin)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(evil.status(), 403);
    let log = place::verify::LogSource::DataDir(dir.path().to_path_buf());
    moderation::rollbacks_restore_exact_colours(&bases, &admin, &log).await;
    server.stop().await;
}

#[tokio::test]
async fn protected_regions_hold_and_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = crate::common::moderation::admin_cookie(&store, &server.base, "root").await;
    let kept = crate::common::regions::regions_hold_on_every_edge(
        std::slice::from_ref(&server.base),
        &admin,
    )
    .await;
    server.stop().await;
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let regions: serde_json::Value = reqwest::get(format!("{}/api/v1/regions", server.base))
        .await
        .expect("regions")
        .json()
        .await
        .expect("json");
    assert_eq!(regions["regions"][0]["id"], kept.as_str(), "{regions}");
    assert_eq!(regions["regions"].as_array().map(Vec::len), Some(1));
    let mut guest = place_testkit::Player::join(&server.base).await;
    match guest.place(41, 41, 2).await {
        place_protocol::ServerMessage::Error(e) => {
            assert_eq!(e.code, place_protocol::ErrorCode::RegionRegisteredOnly)
        }
        other => panic!("a guest placed in a registered region after a restart: {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_spike_of_many_guests_raises_the_alarm_and_slows_the_area_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (webhook, received) = crate::common::spikes::webhook_receiver().await;
    let config = config(dir.path(), 128, 128, 0);
    let server = Server::start(ServeConfig {
        edge: EdgeSection {
            // Every guest is 127.0.0.1: the per-network limits would stop the crowd.
            placements_per_address_per_minute: 0,
            spike_min_rate: 5,
            spike_factor: 3,
            spike_slow_minutes: 2,
            spike_slow_cooldown_secs: 60,
            spike_webhook: Some(webhook),
            ..config.edge
        },
        ..config
    })
    .await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = crate::common::moderation::admin_cookie(&store, &server.base, "root").await;
    crate::common::spikes::a_spike_is_alarmed_and_slowed_down(
        &server.base,
        &admin,
        60,
        60,
        received,
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn moderation_bans_and_a_cooldown_that_outlives_a_restart() {
    use crate::common::moderation;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = moderation::admin_cookie(&store, &server.base, "root").await;
    moderation::bans_and_settings_reach_every_edge(std::slice::from_ref(&server.base), &admin)
        .await;
    server.stop().await;
    // The cooldown the administrator set is the one after a restart, not the configured one.
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    let info: serde_json::Value = reqwest::get(format!("{}/api/v1/canvas/info", server.base))
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(info["cooldownSeconds"], 42);
    server.stop().await;
}

#[tokio::test]
async fn the_canvas_grows_under_load_and_keeps_its_size_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 100, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = crate::common::moderation::admin_cookie(&store, &server.base, "root").await;
    let log = place::verify::LogSource::DataDir(dir.path().to_path_buf());
    // Before the growth: one pixel, and a timelapse snapshot of the 128x100 canvas.
    let mut early = place_testkit::Player::join(&server.base).await;
    early.paint(&[(127, 99, 3)]).await;
    let source = server.store.clone();
    let small = place_tiles::CanvasGeometry::new(128, 100).expect("valid");
    let snapshot = place_timelapse::snapshot::take(&source, small, Duration::ZERO)
        .await
        .expect("take a snapshot")
        .expect("a snapshot of the painted canvas");
    let before_growth = place_edge::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    crate::common::growth::canvas_grows_under_load(
        std::slice::from_ref(&server.base),
        &admin,
        &log,
    )
    .await;
    // The snapshot keeps its own size, and so does a frame of before the growth (a rectangle
    // is cut to the canvas of its time, one wholly beyond it refused); a frame of now is of the
    // grown canvas and has the new pixel.
    let base = server.base.clone();
    let png = |path: String| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(&url).await.expect("png");
            assert_eq!(response.status(), 200, "{url}");
            crate::common::timelapse::png_pixels(&response.bytes().await.expect("png body"))
        }
    };
    let (w, h, pixels) = png(format!("/api/v1/timelapse/snapshot/{snapshot}")).await;
    assert_eq!((w, h, pixels[99 * 128 + 127]), (128, 100, 3));
    let (w, h, pixels) = png(format!("/api/v1/timelapse/frame?t={before_growth}")).await;
    assert_eq!((w, h), (128, 100), "the canvas of that time");
    let painted: Vec<usize> = (0..pixels.len()).filter(|&i| pixels[i] != 0).collect();
    assert_eq!(
        painted,
        vec![99 * 128 + 127],
        "only the pixel placed before"
    );
    let (w, h, pixels) = png(format!(
        "/api/v1/timelapse/frame?t={before_growth}&x=100&y=90&width=100&height=50"
    ))
    .await;
    assert_eq!((w, h), (28, 10), "cut to the canvas of that time");
    assert_eq!(pixels[9 * 28 + 27], 3);
    let beyond = reqwest::get(format!(
        "{}/api/v1/timelapse/frame?t={before_growth}&x=150&y=0&width=10&height=10",
        server.base
    ))
    .await
    .expect("frame");
    assert_eq!(
        beyond.status(),
        400,
        "wholly beyond the canvas of that time"
    );
    let (w, h, pixels) = png("/api/v1/timelapse/frame".to_owned()).await;
    assert_eq!((w, h), (228, 164));
    assert_eq!(pixels[130 * 228 + 178], 5);
    server.stop().await;
    // Restarted with the configured size it started from, it serves the grown canvas, with
    // the pixel placed in the new area.
    let server = Server::start(config(dir.path(), 128, 100, 0)).await;
    let info = place_testkit::call(&server.base, "GET", "/api/v1/canvas/info", None, None)
        .await
        .body;
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(228), Some(164))
    );
    let tile = reqwest::get(format!("{}/api/v1/tiles/2/2", server.base))
        .await
        .expect("tile")
        .bytes()
        .await
        .expect("tile body");
    // (178, 130) is (50, 2) in tile (2, 2).
    assert_eq!(tile[2 * 64 + 50], 5);
    let report = place::verify::verify(&server.base, &log)
        .await
        .expect("verify");
    assert_eq!(report.differing, 0, "{:?}", report.differences);
    server.stop().await;
}

#[tokio::test]
async fn metrics_show_placements_broadcasts_the_shard_and_requests_with_request_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 30)).await;
    let mut painter = server.client(&server.guest().await, false).await;
    let mut watcher = server.client(&server.guest().await, true).await;
    crate::common::observability::metrics_after_placements(
        &server.base,
        &mut painter,
        &server.base,
        &mut watcher,
        &["serve"],
    )
    .await;
    let text = crate::common::observability::scrape(&server.base).await;
    let tiles =
        crate::common::observability::metric(&text, "rplace_shard_tiles_owned{shard=\"serve\"}");
    assert_eq!(tiles, Some(1.0), "a 64x64 canvas is one tile");
    assert!(
        text.contains("rplace_shard_write_duration_seconds_count"),
        "the in-process shard's own histogram"
    );
    assert!(
        text.contains("rplace_shard_write_batch_size_bucket{le=\"4096\"}"),
        "batch sizes in placements, not seconds"
    );
    // Every response names its correlation id: the client's, or a fresh one.
    let client = reqwest::Client::new();
    let mine = client
        .get(format!("{}/api/v1/canvas/info", server.base))
        .header("x-request-id", "my-request-7")
        .send()
        .await
        .expect("info");
    assert_eq!(mine.headers()["x-request-id"], "my-request-7");
    let fresh = client
        .get(format!("{}/api/v1/canvas/info", server.base))
        .send()
        .await
        .expect("info");
    let id = fresh.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    server.stop().await;
}

#[tokio::test]
async fn history_lists_pixels_users_and_recent_placements_by_pages_and_a_heatmap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 128, 128, 0)).await;
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    let admin = crate::common::moderation::admin_cookie(&store, &server.base, "root").await;
    crate::common::history::history_pages_marks_and_heatmap(
        std::slice::from_ref(&server.base),
        &admin,
    )
    .await;
    server.stop().await;
}

/// The history stays exact under load: with other players placing all the while, each
/// acknowledged placement is the newest of its pixel in `GET /api/v1/history/pixel` within one
/// second of its acknowledgement. (In `place serve` it is there at once: the event log's
/// indexes are written in the transaction the acknowledgement waits for.)
#[tokio::test]
async fn an_acknowledged_placement_is_in_the_history_within_a_second_under_load() {
    use place_testkit::{call, Player};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 256, 256, 0)).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Every acknowledged placement of the others, counted as it comes.
    let by_others = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut painters = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (base, stop) = (server.base.clone(), Arc::clone(&stop));
        let by_others = Arc::clone(&by_others);
        painters.spawn(async move {
            let mut painter = Player::join(&base).await;
            let mut placed = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let k = i64::from(placed);
                painter.paint(&[(100 + i, k % 128, 1 + k % 15)]).await;
                placed += 1;
                by_others.fetch_add(1, Ordering::Relaxed);
                // Under the 50 frames a second a socket may send.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            placed
        });
    }
    let mut me = Player::join(&server.base).await;
    let mut seen = 0;
    for k in 0..30i64 {
        // Under load: another player's placement was acknowledged since my last one (on a busy
        // machine, this loop could otherwise outrun the painters' joins and sleeps).
        let waiting = tokio::time::Instant::now();
        while by_others.load(Ordering::Relaxed) <= seen {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "the other players stopped placing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = by_others.load(Ordering::Relaxed);
        let (x, y, color) = (k, 7, 1 + k % 15);
        me.paint(&[(x, y, color)]).await;
        let acked = tokio::time::Instant::now();
        loop {
            let page = call(
                &server.base,
                "GET",
                &format!("/api/v1/history/pixel?x={x}&y={y}&limit=1"),
                None,
                None,
            )
            .await;
            assert_eq!(page.status, 200, "{}", page.body);
            let newest = &page.body["items"][0];
            if newest["color"].as_i64() == Some(color) && newest["userId"].as_str() == Some(&me.id)
            {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "({x},{y}) colour {color} acknowledged {:?} ago and not in the history: {}",
                acked.elapsed(),
                page.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut others = 0;
    while let Some(placed) = painters.join_next().await {
        others += placed.expect("painter");
    }
    assert!(others >= 30, "the others placed meanwhile: {others}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelapse_snapshots_frames_jobs_and_the_cli_equal_replays_of_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServeConfig {
        snapshots: SnapshotSection {
            timelapse_snapshot_secs: 1,
        },
        ..config(dir.path(), 128, 96, 0)
    })
    .await;
    let store = place_store::Store::open_sqlite(dir.path())
        .await
        .expect("the same store");
    let source = store.clone();
    let geometry = place_tiles::CanvasGeometry::new(128, 96).expect("size");
    let bases = [server.base.clone()];
    crate::common::timelapse::frames_equal_replays(
        &bases,
        &source,
        geometry,
        Duration::from_secs(1),
    )
    .await;

    // `place timelapse` into a GIF and into a directory of PNGs, from the same store.
    let palette = place_tiles::Palette::default_with(16).expect("palette");
    let (first, last) = store
        .event_time_range()
        .await
        .expect("range")
        .expect("events");
    let out = tempfile::tempdir().expect("tempdir");
    let rect = place_store::Rect {
        x: 10,
        y: 0,
        width: 100,
        height: 96,
    };
    let mut request = place::timelapse_cli::Request {
        from: "start".into(),
        to: last.to_string(),
        rect: Some("10,0,100,96".into()),
        frames: 7,
        delay_ms: 100,
        out: out.path().join("t.gif"),
    };
    let summary = place::timelapse_cli::render(&source, geometry, &palette, &request, false)
        .await
        .expect("render the GIF");
    assert_eq!((summary.frames, summary.span), (7, (first, last)));
    let gif = std::fs::read(out.path().join("t.gif")).expect("the GIF");
    let frames = crate::common::timelapse::gif_frames(&gif);
    request.out = out.path().join("frames/");
    place::timelapse_cli::render(&source, geometry, &palette, &request, false)
        .await
        .expect("render PNGs");
    let spec = place_timelapse::render::RenderSpec {
        from: first,
        to: last,
        x: 10,
        y: 0,
        width: 100,
        height: 96,
        frames: 7,
        delay_ms: 100,
        format: place_timelapse::render::Format::Gif,
    };
    for (i, t) in spec.frame_times().into_iter().enumerate() {
        let replay = store.replay_log_until(geometry, t).await.expect("replay");
        let expected = crate::common::timelapse::crop(&replay, 128, rect);
        assert_eq!(frames[i], expected, "GIF frame {i} at {t}");
        let png = std::fs::read(out.path().join(format!("frames/frame-{i:05}.png"))).expect("png");
        assert_eq!(
            crate::common::timelapse::png_pixels(&png).2,
            expected,
            "PNG {i}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_user_promoted_or_demoted_by_name_has_or_loses_the_rights_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 64, 64, 0)).await;
    // The store is changed beside the running server, as `place admin promote --data-dir` does.
    let store = place::admin::UserStore::DataDir(dir.path().to_path_buf());
    crate::common::moderation::promotion_and_demotion_count_at_once(
        &store,
        std::slice::from_ref(&server.base),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn templates_are_made_from_palette_pngs_read_back_and_their_progress_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), 256, 256, 0)).await;
    crate::common::templates::templates_made_read_and_followed(std::slice::from_ref(&server.base))
        .await;
    server.stop().await;
}
