//! `place timelapse`: renders a timelapse straight from a store (the embedded one of a data
//! directory, or a cluster's PostgreSQL) into a file, with a progress bar: an animated GIF
//! (`.gif`), an animated PNG (`.png`, `.apng`), or one PNG per frame in a directory (a path
//! ending in `/`, or an existing directory). Every frame is exact: the same renderer as the
//! server's jobs ([`place_timelapse::render::Renderer`]).
//!
//! Times are epoch milliseconds, RFC 3339 (`2026-11-25T18:00:00Z`, `...+01:00`), `now`,
//! `now-90m` (any span `humantime` reads: `90m`, `1h30m`, `2days`), or `start` (the first
//! placement of the log).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use place_store::{Rect, Store};
use place_tiles::{CanvasGeometry, Palette};
use place_timelapse::encode::{png_image, Animation};
use place_timelapse::now_ms;
use place_timelapse::render::{Format, RenderSpec, Renderer};
use tokio::time::Instant;

/// What `place timelapse` was asked, as given.
#[derive(Debug, Clone)]
pub struct Request {
    /// The first frame's time, as typed.
    pub from: String,
    /// The last frame's time, as typed.
    pub to: String,
    /// `x,y,width,height`, or the whole canvas.
    pub rect: Option<String>,
    /// Frames.
    pub frames: u32,
    /// Milliseconds each frame is shown.
    pub delay_ms: u32,
    /// Where to write.
    pub out: PathBuf,
}

/// What `render` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Frames written.
    pub frames: u32,
    /// Events read from the log.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The span rendered, epoch ms.
    pub span: (i64, i64),
}

/// Where the frames go.
enum Output {
    Animation(Format),
    Directory,
}

fn output_of(path: &Path) -> anyhow::Result<Output> {
    let text = path.to_string_lossy();
    if text.ends_with('/') || path.is_dir() {
        return Ok(Output::Directory);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("gif") => Ok(Output::Animation(Format::Gif)),
        Some("png" | "apng") => Ok(Output::Animation(Format::Apng)),
        _ => bail!("--out must end in .gif, .png or .apng, or name a directory (ending in /)"),
    }
}

/// Renders `request` from `source` and writes it, showing progress when `progress` is true.
pub async fn render(
    source: &Store,
    geometry: CanvasGeometry,
    palette: &Palette,
    request: &Request,
    progress: bool,
) -> anyhow::Result<Summary> {
    let now = now_ms();
    let first = source.event_time_range().await?.map(|(first, _)| first);
    let from = parse_time(&request.from, now, first).context("--from")?;
    let to = parse_time(&request.to, now, first).context("--to")?;
    let rect = match &request.rect {
        Some(text) => parse_rect(text).context("--rect")?,
        None => Rect {
            x: 0,
            y: 0,
            width: geometry.width(),
            height: geometry.height(),
        },
    };
    let output = output_of(&request.out)?;
    let spec = RenderSpec {
        from,
        to,
        x: rect.x,
        y: rect.y,
        width: rect.width,
        height: rect.height,
        frames: request.frames,
        delay_ms: request.delay_ms,
        format: match output {
            Output::Animation(format) => format,
            Output::Directory => Format::Apng,
        },
    };
    spec.validate(geometry)?;
    let bar = if progress {
        ProgressBar::new(u64::from(spec.frames))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} frames, {elapsed} (eta {eta}) {msg}")
            .context("progress template")?,
    );
    let mut renderer = Renderer::new(source.clone(), geometry, rect, spec.frame_times()).await?;
    let bytes = match output {
        Output::Animation(format) => {
            let file = std::fs::File::create(&request.out)
                .with_context(|| format!("creating {}", request.out.display()))?;
            let mut out = BufWriter::new(file);
            let mut animation = Animation::new(
                format,
                &mut out,
                rect.width,
                rect.height,
                spec.frames,
                spec.delay_ms,
                palette,
            )?;
            while let Some((_, frame)) = renderer.next_frame().await? {
                animation.add(frame)?;
                bar.inc(1);
            }
            animation.finish()?;
            out.flush()?;
            std::fs::metadata(&request.out)?.len()
        }
        Output::Directory => {
            std::fs::create_dir_all(&request.out)
                .with_context(|| format!("creating {}", request.out.display()))?;
            let mut written = 0;
            let mut i = 0;
            while let Some((_, frame)) = renderer.next_frame().await? {
                let png = png_image(frame.pixels(), rect.width, rect.height, palette)?;
                let path = request.out.join(format!("frame-{i:05}.png"));
                std::fs::write(&path, &png)
                    .with_context(|| format!("writing {}", path.display()))?;
                written += png.len() as u64;
                i += 1;
                bar.inc(1);
            }
            written
        }
    };
    bar.finish_and_clear();
    Ok(Summary {
        frames: spec.frames,
        events: renderer.events_read(),
        bytes,
        span: (from, to),
    })
}

/// Runs `place timelapse` and prints what it made.
pub async fn run(
    source: &Store,
    geometry: CanvasGeometry,
    palette: &Palette,
    request: &Request,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let summary = render(source, geometry, palette, request, true).await?;
    println!(
        "{} frames of {} from {} to {} ({} events) in {:.1} s: {} bytes",
        summary.frames,
        request.out.display(),
        summary.span.0,
        summary.span.1,
        summary.events,
        started.elapsed().as_secs_f64(),
        summary.bytes
    );
    Ok(())
}

/// `x,y,width,height`.
pub fn parse_rect(text: &str) -> anyhow::Result<Rect> {
    let parts: Vec<u32> = text
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{text:?} is not x,y,width,height"))?;
    let [x, y, width, height] = parts[..] else {
        bail!("{text:?} is not x,y,width,height");
    };
    Ok(Rect {
        x,
        y,
        width,
        height,
    })
}

/// A time as the module documentation says, in epoch ms.
pub fn parse_time(text: &str, now: i64, first_event: Option<i64>) -> anyhow::Result<i64> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if text == "start" {
        return first_event.context("the log is empty: there is no start");
    }
    if let Some(ago) = text.strip_prefix("now-") {
        return Ok(now - duration_ms(ago)?);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    rfc3339_ms(text)
        .with_context(|| format!("{text:?} is not epoch ms, RFC 3339, now, now-90m or start"))
}

/// A span like `90m`, `2h`, `1h30m` or `3days`, in ms.
fn duration_ms(text: &str) -> anyhow::Result<i64> {
    let span = humantime::parse_duration(text)
        .with_context(|| format!("{text:?} is not a span like 90m, 2h or 1h30m"))?;
    i64::try_from(span.as_millis()).with_context(|| format!("{text:?} is too long"))
}

/// An RFC 3339 date and time (`2026-11-25T18:00:00Z`, `...+01:00`), in epoch ms.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let moment =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(moment.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_every_form() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("now", now, None).expect("now"), now);
        assert_eq!(
            parse_time("now-90m", now, None).expect("ago"),
            now - 5_400_000
        );
        assert_eq!(parse_time("start", now, Some(5)).expect("start"), 5);
        assert!(parse_time("start", now, None).is_err());
        assert_eq!(parse_time("12345", now, None).expect("ms"), 12_345);
        assert_eq!(
            parse_time("1970-01-01T00:00:01Z", now, None).expect("z"),
            1_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5Z", now, None).expect("fraction"),
            1_700_000_000_500
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00", now, None).expect("offset"),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("now-1h30m", now, None).expect("compound"),
            now - 5_400_000
        );
        assert!(parse_time("yesterday", now, None).is_err());
        assert!(parse_time("now-3x", now, None).is_err());
        assert!(
            parse_time("2026-02-31T00:00:00Z", now, None).is_err(),
            "there is no 31 February"
        );
        assert!(parse_time("2026-01-01T24:00:00Z", now, None).is_err());
    }

    #[test]
    fn rectangles_and_outputs_are_read() {
        assert_eq!(
            parse_rect("1, 2,30,40").expect("rect"),
            Rect {
                x: 1,
                y: 2,
                width: 30,
                height: 40
            }
        );
        assert!(parse_rect("1,2,3").is_err());
        assert!(matches!(
            output_of(Path::new("a.GIF")),
            Ok(Output::Animation(Format::Gif))
        ));
        assert!(matches!(
            output_of(Path::new("a.png")),
            Ok(Output::Animation(Format::Apng))
        ));
        assert!(matches!(
            output_of(Path::new("frames/")),
            Ok(Output::Directory)
        ));
        assert!(output_of(Path::new("a.mp4")).is_err());
    }
}
