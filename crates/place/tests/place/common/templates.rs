//! The templates scenario both modes can run: a template made through one edge, read and its
//! progress followed through another (`bases[i]` is edge i's URL; `place serve` has one).

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use place_testkit::{call, Player};

/// An RGBA PNG.
fn png(width: u32, height: u32, rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, width, height);
    e.set_color(png::ColorType::Rgba);
    e.set_depth(png::BitDepth::Eight);
    let mut w = e.write_header().expect("png header");
    w.write_image_data(rgba).expect("png data");
    w.finish().expect("png end");
    out
}

fn rgba(hex: &str) -> [u8; 4] {
    let n = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("hex colour");
    [(n >> 16) as u8, (n >> 8) as u8, n as u8, 255]
}

/// `POST /api/v1/templates?x&y` with a PNG body: status and JSON body.
async fn post(base: &str, cookie: Option<&str>, x: u32, y: u32, body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/api/v1/templates?x={x}&y={y}"))
        .header("content-type", "image/png")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("post a template");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn progress(base: &str, id: &str) -> (u64, u64) {
    let a = call(
        base,
        "GET",
        &format!("/api/v1/templates/{id}/progress"),
        None,
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    (
        a.body["total"].as_u64().expect("total"),
        a.body["correct"].as_u64().expect("correct"),
    )
}

/// Made, refused for size, place, colours and rate; read back as JSON and PNG; progress follows
/// placements.
pub async fn templates_made_read_and_followed(bases: &[String]) {
    let (first, last) = (&bases[0], &bases[bases.len() - 1]);
    let info = call(first, "GET", "/api/v1/canvas/info", None, None)
        .await
        .body;
    let palette: Vec<String> = serde_json::from_value(info["palette"].clone()).expect("palette");
    let mut painter = Player::join(first).await;

    // A 3x2 template: palette colours 3, 5 and 6 on top, transparent below but one pixel.
    let clear = [0u8; 4];
    let pixels = [
        rgba(&palette[3]),
        rgba(&palette[5]),
        rgba(&palette[6]),
        clear,
        rgba(&palette[3]),
        clear,
    ];
    let image = png(3, 2, &pixels.concat());

    let (status, _) = post(first, None, 10, 20, image.clone()).await;
    assert_eq!(status, 401, "a session is needed");
    let mut stray = pixels;
    stray[2] = [1, 2, 3, 255];
    let (status, body) = post(
        first,
        Some(&painter.cookie),
        10,
        20,
        png(3, 2, &stray.concat()),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("(2, 0) is #010203"),
        "{body}"
    );
    let width = info["width"].as_u64().expect("width") as u32;
    let (status, body) = post(first, Some(&painter.cookie), width - 2, 20, image.clone()).await;
    assert_eq!(status, 400, "off the canvas: {body}");
    let (status, _) = post(first, Some(&painter.cookie), 0, 0, b"GIF89a".to_vec()).await;
    assert_eq!(status, 400, "not a PNG");

    let (status, made) = post(first, Some(&painter.cookie), 10, 20, image).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 16);
    assert_eq!(
        (
            made["x"].as_u64(),
            made["y"].as_u64(),
            made["total"].as_u64()
        ),
        (Some(10), Some(20), Some(4))
    );

    // Read through another edge: the JSON, then the PNG as it was sent.
    let meta = call(last, "GET", &format!("/api/v1/templates/{id}"), None, None).await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.body["width"], 3);
    assert_eq!(meta.body["image"], format!("/api/v1/templates/{id}/image"));
    let png_back = reqwest::get(format!("{last}/api/v1/templates/{id}/image"))
        .await
        .expect("image")
        .bytes()
        .await
        .expect("image bytes");
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_back))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    reader.next_frame(&mut buf).expect("frame");
    assert_eq!(buf, pixels.concat());
    for bad in ["0123456789abcdef", "nope", "../../etc"] {
        let a = call(
            last,
            "GET",
            &format!("/api/v1/templates/{bad}/progress"),
            None,
            None,
        )
        .await;
        assert_eq!(a.status, 404, "{bad}");
    }

    // Progress follows the canvas.
    assert_eq!(progress(last, &id).await, (4, 0));
    painter
        .paint(&[(10, 20, 3), (12, 20, 6), (11, 20, 2)])
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while progress(last, &id).await != (4, 2) {
        assert!(
            Instant::now() < deadline,
            "progress is {:?}",
            progress(last, &id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One player makes at most PER_OWNER_PER_HOUR an hour.
    let one = png(1, 1, &rgba(&palette[1]));
    for _ in 1..place_edge::templates::PER_OWNER_PER_HOUR {
        let (status, body) = post(first, Some(&painter.cookie), 0, 0, one.clone()).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = post(first, Some(&painter.cookie), 0, 0, one).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
}
