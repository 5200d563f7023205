//! The timelapse scenario both modes run: players paint in rounds while snapshots are taken,
//! then every image the timelapse makes (a snapshot, an exact frame, a render job's GIF, the
//! CLI's files) is compared with a replay of the event log up to its time, pixel for pixel.

use std::time::Duration;

use place_store::Rect;
use place_testkit::{call, wait_for_job, Player};
use place_tiles::CanvasGeometry;
use serde_json::{json, Value};

/// The pixels of `rect` in a row-major canvas `width` wide.
pub fn crop(canvas: &[u8], width: u32, rect: Rect) -> Vec<u8> {
    (rect.y..rect.y + rect.height)
        .flat_map(|y| {
            let at = (y * width + rect.x) as usize;
            canvas[at..at + rect.width as usize].to_vec()
        })
        .collect()
}

/// A PNG's palette indices.
pub fn png_pixels(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Indexed);
    buf.truncate(info.width as usize * info.height as usize);
    (info.width, info.height, buf)
}

/// Every frame of a GIF as whole pictures (each frame drawn over the ones before).
pub fn gif_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(bytes).expect("a GIF");
    let (w, h) = (decoder.width() as usize, decoder.height() as usize);
    let mut picture = vec![0u8; w * h];
    let mut frames = Vec::new();
    while let Some(f) = decoder.read_next_frame().expect("a frame") {
        for row in 0..f.height as usize {
            let to = (f.top as usize + row) * w + f.left as usize;
            let from = row * f.width as usize;
            picture[to..to + f.width as usize]
                .copy_from_slice(&f.buffer[from..from + f.width as usize]);
        }
        frames.push(picture.clone());
    }
    frames
}

async fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.expect("request");
    (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
}

/// Paints `rounds` rounds of placements through the edges in turn, pausing between rounds so
/// that snapshots fall between them; the first and last placement times.
pub async fn paint_rounds(bases: &[String], rounds: usize, pause: Duration) -> (i64, i64) {
    let mut players = Vec::new();
    for base in bases {
        players.push(Player::join(base).await);
    }
    let started = place_edge::now_ms();
    for round in 0..rounds {
        for i in 0..30i64 {
            let player = &mut players[(round + i as usize) % bases.len()];
            let (x, y) = (
                (i * 7 + round as i64 * 13) % 100,
                (i * 3 + round as i64) % 90,
            );
            player.paint(&[(x, y, (i + round as i64) % 16)]).await;
        }
        tokio::time::sleep(pause).await;
    }
    (started, place_edge::now_ms())
}

/// Waits until at least `n` snapshots are listed; the listing.
pub async fn wait_for_snapshots(base: &str, n: usize, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let list = call(base, "GET", "/api/v1/timelapse/snapshots", None, None).await;
        assert_eq!(list.status, 200, "{}", list.body);
        if list.body["snapshots"].as_array().expect("snapshots").len() >= n {
            return list.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} snapshots after {within:?}: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Snapshots, exact frames and a render job through the edges, each against the log.
pub async fn frames_equal_replays(
    bases: &[String],
    source: &place_store::Store,
    geometry: CanvasGeometry,
    snapshot_every: Duration,
) {
    let (start, end) = paint_rounds(bases, 4, snapshot_every + Duration::from_millis(300)).await;
    let list = wait_for_snapshots(&bases[0], 2, Duration::from_secs(20)).await;
    let width = geometry.width();

    // Each snapshot is the log up to its coversUntil.
    for s in list["snapshots"].as_array().expect("snapshots") {
        let (status, body) =
            get_bytes(&format!("{}{}", bases[0], s["url"].as_str().expect("url"))).await;
        assert_eq!(status, 200);
        let (w, h, pixels) = png_pixels(&body);
        assert_eq!((w, h), (geometry.width(), geometry.height()));
        let replay = source
            .replay_log_until(geometry, s["coversUntil"].as_i64().expect("coversUntil"))
            .await
            .expect("replay");
        assert_eq!(pixels, replay, "snapshot {s}");
    }

    // Exact frames at times between and around the snapshots, through every edge.
    let rect = Rect {
        x: 3,
        y: 5,
        width: 90,
        height: 80,
    };
    for (i, t) in (0..8).map(|i| (i, start - 50 + i * (end - start + 100) / 7)) {
        let base = &bases[i as usize % bases.len()];
        let url = format!(
            "{base}/api/v1/timelapse/frame?t={t}&x={}&y={}&width={}&height={}",
            rect.x, rect.y, rect.width, rect.height
        );
        let (status, body) = get_bytes(&url).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let replay = source.replay_log_until(geometry, t).await.expect("replay");
        assert_eq!(
            png_pixels(&body).2,
            crop(&replay, width, rect),
            "frame at {t}"
        );
    }
    let (status, _) = get_bytes(&format!("{}/api/v1/timelapse/frame?width=100000", bases[0])).await;
    assert_eq!(status, 400, "a rectangle off the canvas");

    // A render job: refused without a session, to a guest, or with bad parameters, then polled
    // and downloaded from another edge; every frame equals the replay at its time.
    let spec = json!({"from": start - 100, "to": end + 100, "x": rect.x, "y": rect.y,
                      "width": rect.width, "height": rect.height, "frames": 12, "delayMs": 50});
    let render = |cookie: Option<String>| {
        let (base, spec) = (bases[0].clone(), spec.clone());
        async move {
            call(
                &base,
                "POST",
                "/api/v1/timelapse/render",
                cookie.as_deref(),
                Some(spec),
            )
            .await
        }
    };
    assert_eq!(render(None).await.status, 401);
    let guest = Player::join(&bases[0]).await;
    let refused = render(Some(guest.cookie.clone())).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("account")),
        "{}",
        refused.body
    );
    let player = Player::account(&bases[0], "renderer").await;
    for (bad, why) in [
        (json!({"frames": 0}), "frames"),
        (json!({"frames": 5000}), "frames"),
        (json!({"from": end, "to": start}), "from"),
        (json!({"width": 5000}), "rectangle"),
        (json!({"delayMs": 1}), "delayMs"),
    ] {
        let mut body = spec.clone();
        for (k, v) in bad.as_object().expect("object") {
            body[k] = v.clone();
        }
        let refused = call(
            &bases[0],
            "POST",
            "/api/v1/timelapse/render",
            Some(&player.cookie),
            Some(body),
        )
        .await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
        let message = refused.body["error"]["message"].as_str().expect("message");
        assert!(message.contains(why), "{bad}: {message}");
    }
    let accepted = call(
        &bases[0],
        "POST",
        "/api/v1/timelapse/render",
        Some(&player.cookie),
        Some(spec),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let job_id = accepted.body["jobId"].as_str().expect("jobId").to_owned();
    let last = &bases[bases.len() - 1];
    let done = wait_for_job(last, &job_id, Duration::from_secs(60)).await;
    assert_eq!(done["framesDone"], 12);
    let (status, gif) = get_bytes(&format!(
        "{last}{}",
        done["downloadUrl"].as_str().expect("url")
    ))
    .await;
    assert_eq!(status, 200);
    let frames = gif_frames(&gif);
    assert_eq!(frames.len(), 12);
    let spec = place_timelapse::render::RenderSpec {
        from: start - 100,
        to: end + 100,
        x: rect.x,
        y: rect.y,
        width: rect.width,
        height: rect.height,
        frames: 12,
        delay_ms: 50,
        format: place_timelapse::render::Format::Gif,
    };
    for (frame, t) in frames.iter().zip(spec.frame_times()) {
        let replay = source.replay_log_until(geometry, t).await.expect("replay");
        assert_eq!(frame, &crop(&replay, width, rect), "GIF frame at {t}");
    }
    let unknown = call(
        last,
        "GET",
        &format!("/api/v1/timelapse/jobs/{}", "0".repeat(32)),
        None,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
}
