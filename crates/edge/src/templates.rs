//! Templates, `/api/v1/templates/...`: an image a player lays over the canvas at `(x, y)` to paint
//! by, kept in the store beside the accounts so a link can share it.
//!
//! - `POST /api/v1/templates?x=X&y=Y` with a PNG body (any PNG colour type): 201
//!   `{id, x, y, width, height, total, createdAt}`. It needs a session (a guest's will do). Each
//!   pixel with alpha below 128 is transparent (not part of the template); every other pixel must
//!   be exactly a palette colour, or the template is refused (400, naming the first stray pixel):
//!   the page maps an image to the palette before sending it. At most [`MAX_SIDE`] pixels a side,
//!   [`MAX_BODY_BYTES`] of PNG, lying wholly on the canvas, with at least one opaque pixel. A user
//!   makes at most [`PER_OWNER_PER_HOUR`] an hour (429 `RATE_LIMITED` beyond, counted in the
//!   store so every edge agrees).
//! - `GET /api/v1/templates/{id}`: the same JSON, and `image`, the URL of its PNG.
//! - `GET /api/v1/templates/{id}/image`: the template as an RGBA PNG (transparent where it is
//!   not part of the template). A template never changes, so both are cached for good.
//! - `GET /api/v1/templates/{id}/progress`: `{total, correct}`, how many of its pixels the canvas
//!   shows in the template's colour now.
//!
//! Reads go through the history's per-address rate limit (`history::limit`).
//!
//! Stored pixels are one bit per pixel saying "part of the template" followed by one palette
//! index per pixel (0 where transparent), raw-DEFLATE-compressed ([`encode_pixels`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use place_store::TemplateRecord;
use place_tiles::{TileId, TILE_SIZE};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::session::session_user;
use crate::{now_ms, Edge};

/// The longest side of a template, in pixels.
pub const MAX_SIDE: u32 = 1024;
/// The largest PNG accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Templates one user may make per hour.
pub const PER_OWNER_PER_HOUR: i64 = 20;
/// Alpha below this is a transparent pixel.
const OPAQUE_ALPHA: u8 = 128;
const HOUR_MS: i64 = 3_600_000;
/// Tiles read one by one for a progress answer; past this, the whole canvas at once.
const TILES_ONE_BY_ONE: usize = 16;

/// The template routes.
pub fn routes(edge: &Arc<Edge>) -> Router<Arc<Edge>> {
    Router::new()
        .route(
            "/api/v1/templates",
            post(create).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/api/v1/templates/{id}", get(meta))
        .route("/api/v1/templates/{id}/image", get(image))
        .route("/api/v1/templates/{id}/progress", get(progress))
        .layer(middleware::from_fn_with_state(
            Arc::clone(edge),
            crate::history::limit,
        ))
}

/// A template's pixels: a palette index where it is part of the template, `None` elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePixels {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Row-major.
    pub cells: Vec<Option<u8>>,
}

impl TemplatePixels {
    /// Pixels that are part of the template.
    pub fn total(&self) -> usize {
        self.cells.iter().filter(|c| c.is_some()).count()
    }
}

/// Why an image cannot be a template (the message a client sees, with 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// Not a PNG we can read.
    #[error("not a readable PNG: {0}")]
    Png(String),
    /// Too big or empty.
    #[error("a template is 1 to {MAX_SIDE} pixels a side, this one is {0}x{1}")]
    Size(u32, u32),
    /// Colours outside the palette.
    #[error("{count} pixels are not palette colours, the first at ({x}, {y}) is {color}: map the image to the palette first")]
    OffPalette {
        /// How many.
        count: usize,
        /// The first one's column.
        x: u32,
        /// Its row.
        y: u32,
        /// Its colour, `#rrggbb`.
        color: String,
    },
    /// Nothing opaque.
    #[error("the template has no opaque pixel")]
    Empty,
}

/// Reads a PNG and maps it to the palette (`#rrggbb` strings).
pub fn decode_template(
    png_bytes: &[u8],
    palette: &[String],
) -> Result<TemplatePixels, TemplateError> {
    let png_err = |e: png::DecodingError| TemplateError::Png(e.to_string());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    // The decoder never allocates more than a template of the largest size needs.
    decoder.set_limits(png::Limits {
        bytes: (MAX_SIDE * MAX_SIDE * 4) as usize,
    });
    let mut reader = decoder.read_info().map_err(png_err)?;
    let (width, height) = {
        let info = reader.info();
        (info.width, info.height)
    };
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(TemplateError::Size(width, height));
    }
    let mut buf = vec![
        0u8;
        reader
            .output_buffer_size()
            .ok_or(TemplateError::Size(width, height))?
    ];
    let frame = reader.next_frame(&mut buf).map_err(png_err)?;
    let channels = frame.color_type.samples();
    let index: HashMap<[u8; 3], u8> = palette
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((parse_hex(c)?, u8::try_from(i).ok()?)))
        .collect();
    let mut cells = Vec::with_capacity((width * height) as usize);
    let mut stray: Option<(usize, u32, u32, [u8; 3])> = None;
    for y in 0..height {
        let row = &buf[y as usize * frame.line_size..][..width as usize * channels];
        for (x, px) in (0..width).zip(row.chunks_exact(channels)) {
            let (rgb, alpha) = match px {
                [g] => ([*g, *g, *g], 255),
                [g, a] => ([*g, *g, *g], *a),
                [r, g, b] => ([*r, *g, *b], 255),
                [r, g, b, a] => ([*r, *g, *b], *a),
                _ => return Err(TemplateError::Png("unexpected colour type".into())),
            };
            if alpha < OPAQUE_ALPHA {
                cells.push(None);
                continue;
            }
            match index.get(&rgb) {
                Some(&i) => cells.push(Some(i)),
                None => {
                    let s = stray.get_or_insert((0, x, y, rgb));
                    s.0 += 1;
                    cells.push(None);
                }
            }
        }
    }
    if let Some((count, x, y, [r, g, b])) = stray {
        return Err(TemplateError::OffPalette {
            count,
            x,
            y,
            color: format!("#{r:02x}{g:02x}{b:02x}"),
        });
    }
    let t = TemplatePixels {
        width,
        height,
        cells,
    };
    if t.total() == 0 {
        return Err(TemplateError::Empty);
    }
    Ok(t)
}

fn parse_hex(c: &str) -> Option<[u8; 3]> {
    let h = c.trim().strip_prefix('#').unwrap_or(c.trim());
    if h.len() != 6 {
        return None;
    }
    let n = u32::from_str_radix(h, 16).ok()?;
    Some([(n >> 16) as u8, (n >> 8) as u8, n as u8])
}

/// The stored form: a "part of the template" bit per pixel, then an index per pixel, deflated.
pub fn encode_pixels(t: &TemplatePixels) -> Vec<u8> {
    let n = t.cells.len();
    let mut raw = vec![0u8; n.div_ceil(8) + n];
    for (i, c) in t.cells.iter().enumerate() {
        if let Some(color) = c {
            raw[i / 8] |= 1 << (i % 8);
            raw[n.div_ceil(8) + i] = *color;
        }
    }
    miniz_oxide::deflate::compress_to_vec(&raw, 6)
}

/// The inverse of [`encode_pixels`] for a `width` x `height` template.
pub fn decode_pixels(bytes: &[u8], width: u32, height: u32) -> Option<TemplatePixels> {
    let n = (width as usize).checked_mul(height as usize)?;
    let mask = n.div_ceil(8);
    let raw = miniz_oxide::inflate::decompress_to_vec_with_limit(bytes, mask + n).ok()?;
    if raw.len() != mask + n {
        return None;
    }
    let cells = (0..n)
        .map(|i| (raw[i / 8] & (1 << (i % 8)) != 0).then_some(raw[mask + i]))
        .collect();
    Some(TemplatePixels {
        width,
        height,
        cells,
    })
}

/// The template as an RGBA PNG.
fn encode_png(t: &TemplatePixels, palette: &[String]) -> Result<Vec<u8>, AppError> {
    let rgba: Vec<u8> = t
        .cells
        .iter()
        .flat_map(
            |c| match c.and_then(|i| parse_hex(palette.get(usize::from(i))?)) {
                Some([r, g, b]) => [r, g, b, 255],
                None => [0, 0, 0, 0],
            },
        )
        .collect();
    let mut out = Vec::new();
    let failed = |e: png::EncodingError| AppError::Unavailable(format!("encoding a PNG: {e}"));
    let mut encoder = png::Encoder::new(&mut out, t.width, t.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&rgba).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

#[derive(Deserialize)]
struct Place {
    x: Option<String>,
    y: Option<String>,
}

/// A template as the API shows it: where it lies, how many pixels it sets, and its image.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateView {
    id: String,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// The pixels it sets (its transparent ones set nothing).
    total: usize,
    created_at: i64,
    /// Where its PNG is.
    image: String,
}

fn template_json(r: &TemplateRecord, total: usize) -> TemplateView {
    TemplateView {
        id: r.id.clone(),
        x: r.x,
        y: r.y,
        width: r.width,
        height: r.height,
        total,
        created_at: r.created_at,
        image: format!("/api/v1/templates/{}/image", r.id),
    }
}

/// How much of a template the canvas matches now.
#[derive(Serialize)]
struct Progress {
    total: usize,
    correct: usize,
}

async fn create(
    State(edge): State<Arc<Edge>>,
    jar: CookieJar,
    Query(at): Query<Place>,
    body: Bytes,
) -> Result<Response, AppError> {
    let user = session_user(&edge, &jar)
        .await?
        .ok_or(AppError::Unauthorized)?;
    let coord = |v: &Option<String>, name: &str| {
        v.as_deref()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| AppError::BadRequest(format!("{name} must be a whole number of pixels")))
    };
    let (x, y) = (coord(&at.x, "x")?, coord(&at.y, "y")?);
    let info = edge.canvas_info();
    let pixels =
        decode_template(&body, &info.palette).map_err(|e| AppError::BadRequest(e.to_string()))?;
    if u64::from(x) + u64::from(pixels.width) > u64::from(info.width)
        || u64::from(y) + u64::from(pixels.height) > u64::from(info.height)
    {
        return Err(AppError::BadRequest(format!(
            "a {}x{} template at ({x}, {y}) does not lie on the {}x{} canvas",
            pixels.width, pixels.height, info.width, info.height
        )));
    }
    let now = now_ms();
    let record = TemplateRecord {
        id: new_template_id()?,
        owner_id: user.id,
        x,
        y,
        width: pixels.width,
        height: pixels.height,
        pixels: encode_pixels(&pixels),
        created_at: now,
    };
    let store = edge.accounts.store();
    if !store
        .admit_template(&record, now - HOUR_MS, PER_OWNER_PER_HOUR)
        .await?
    {
        return Err(AppError::RateLimited(60));
    }
    tracing::info!(template = %record.id, user = user.id, width = record.width, height = record.height, "template made");
    Ok((
        StatusCode::CREATED,
        Json(template_json(&record, pixels.total())),
    )
        .into_response())
}

fn new_template_id() -> Result<String, AppError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| AppError::Unavailable(format!("no randomness: {e}")))?;
    Ok(hex::encode(id))
}

/// The stored template and its pixels; 404 for an unknown or malformed id.
async fn load(edge: &Edge, id: &str) -> Result<(TemplateRecord, TemplatePixels), AppError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let record = edge
        .accounts
        .store()
        .template(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let pixels = decode_pixels(&record.pixels, record.width, record.height)
        .ok_or_else(|| AppError::Unavailable(format!("template {id} is unreadable")))?;
    Ok((record, pixels))
}

const FOREVER: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");

async fn meta(State(edge): State<Arc<Edge>>, Path(id): Path<String>) -> Result<Response, AppError> {
    let (record, pixels) = load(&edge, &id).await?;
    Ok((
        [(header::CACHE_CONTROL, FOREVER)],
        Json(template_json(&record, pixels.total())),
    )
        .into_response())
}

async fn image(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (_, pixels) = load(&edge, &id).await?;
    let png = encode_png(&pixels, &edge.canvas_info().palette)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, FOREVER),
        ],
        png,
    )
        .into_response())
}

async fn progress(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (record, pixels) = load(&edge, &id).await?;
    let tiles = read_tiles(&edge, &record).await?;
    let (total, correct) = count_correct(&record, &pixels, &tiles);
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(Progress { total, correct }),
    )
        .into_response())
}

type TilePixels = HashMap<TileId, Box<[u8; place_tiles::TILE_AREA]>>;

/// The tiles under a template: the edge's live mirrors where it has them, else from the shards.
async fn read_tiles(edge: &Edge, r: &TemplateRecord) -> Result<TilePixels, AppError> {
    let unavailable = || AppError::Unavailable("the shard is unavailable".into());
    let (tx0, ty0) = (r.x / TILE_SIZE, r.y / TILE_SIZE);
    let (tx1, ty1) = (
        (r.x + r.width - 1) / TILE_SIZE,
        (r.y + r.height - 1) / TILE_SIZE,
    );
    let mut tiles = TilePixels::new();
    let mut missing = Vec::new();
    for ty in ty0..=ty1 {
        for tx in tx0..=tx1 {
            let (Ok(tx), Ok(ty)) = (u16::try_from(tx), u16::try_from(ty)) else {
                return Err(AppError::NotFound);
            };
            let tile = TileId::new(tx, ty);
            match edge.hub.mirror(tile) {
                Some((_, pixels)) => {
                    tiles.insert(tile, pixels);
                }
                None => missing.push(tile),
            }
        }
    }
    if missing.len() > TILES_ONE_BY_ONE {
        for t in edge.shards.read_tiles().await.ok_or_else(unavailable)? {
            if missing.contains(&t.tile) {
                tiles.insert(t.tile, t.pixels);
            }
        }
    } else {
        for tile in missing {
            let t = edge.shards.read_tile(tile).await.ok_or_else(unavailable)?;
            tiles.insert(tile, t.pixels);
        }
    }
    Ok(tiles)
}

/// How many pixels are part of the template, and how many of them the canvas shows right.
fn count_correct(r: &TemplateRecord, t: &TemplatePixels, tiles: &TilePixels) -> (usize, usize) {
    let (mut total, mut correct) = (0, 0);
    for (i, cell) in t.cells.iter().enumerate() {
        let Some(want) = cell else { continue };
        total += 1;
        let x = r.x + i as u32 % t.width;
        let y = r.y + i as u32 / t.width;
        let (Ok(tx), Ok(ty)) = (u16::try_from(x / TILE_SIZE), u16::try_from(y / TILE_SIZE)) else {
            continue;
        };
        let shown = tiles
            .get(&TileId::new(tx, ty))
            .map(|p| p[((y % TILE_SIZE) * TILE_SIZE + x % TILE_SIZE) as usize]);
        if shown == Some(*want) {
            correct += 1;
        }
    }
    (total, correct)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn palette() -> Vec<String> {
        ["#ffffff", "#222222", "#e50000"].map(String::from).to_vec()
    }

    fn png(width: u32, height: u32, rgba: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, width, height);
        e.set_color(png::ColorType::Rgba);
        e.set_depth(png::BitDepth::Eight);
        let mut w = e.write_header().expect("test image");
        w.write_image_data(rgba).expect("test image");
        w.finish().expect("test image");
        out
    }

    #[test]
    fn a_png_maps_to_palette_indices_with_transparency() {
        let img = png(3, 1, &[0x22, 0x22, 0x22, 255, 0, 0, 0, 0, 0xe5, 0, 0, 200]);
        let t = decode_template(&img, &palette()).expect("test image");
        assert_eq!(t.cells, vec![Some(1), None, Some(2)]);
        assert_eq!(t.total(), 2);
    }

    #[test]
    fn colours_off_the_palette_are_refused_naming_the_first() {
        let img = png(2, 1, &[0x22, 0x22, 0x22, 255, 1, 2, 3, 255]);
        assert_eq!(
            decode_template(&img, &palette()),
            Err(TemplateError::OffPalette {
                count: 1,
                x: 1,
                y: 0,
                color: "#010203".into()
            })
        );
    }

    #[test]
    fn empty_oversized_and_garbage_images_are_refused() {
        assert_eq!(
            decode_template(&png(1, 1, &[0, 0, 0, 0]), &palette()),
            Err(TemplateError::Empty)
        );
        let wide = png(MAX_SIDE + 1, 1, &vec![255; (MAX_SIDE as usize + 1) * 4]);
        assert_eq!(
            decode_template(&wide, &palette()),
            Err(TemplateError::Size(MAX_SIDE + 1, 1))
        );
        assert!(matches!(
            decode_template(b"not a png", &palette()),
            Err(TemplateError::Png(_))
        ));
    }

    #[test]
    fn stored_pixels_round_trip() {
        let t = TemplatePixels {
            width: 3,
            height: 3,
            cells: vec![
                Some(0),
                None,
                Some(255),
                None,
                None,
                Some(7),
                Some(1),
                None,
                None,
            ],
        };
        let bytes = encode_pixels(&t);
        assert_eq!(decode_pixels(&bytes, 3, 3), Some(t));
        assert_eq!(decode_pixels(&bytes, 4, 4), None, "another size is refused");
    }
}
