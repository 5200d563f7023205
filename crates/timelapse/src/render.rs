//! The frames of a timelapse, each the exact canvas at its time (see the crate documentation).
//!
//! A [`Renderer`] holds one [`Frame`] (the rectangle's pixels and their seqs: 9 bytes a pixel,
//! 36 MB for a whole 2000x2000 canvas) and moves it forward in time: the first frame starts from
//! the latest snapshot at or before its time, each next one applies the events placed since the
//! previous frame, streamed from the store, or jumps to a later snapshot when that reads fewer
//! events. Frames are handed out one at a time and never kept, so memory does not grow with the
//! frame count.

use place_store::timelapse::SnapshotInfo;
use place_store::Rect;
use place_store::Store;
use place_tiles::CanvasGeometry;
use serde::{Deserialize, Serialize};

use crate::frame::Frame;
use crate::snapshot::{self, Base};
use crate::{TimelapseError, STRAGGLER_WINDOW_MS};

/// Frames a timelapse has at most.
pub const MAX_FRAMES: u32 = 1_000;
/// Pixels (rectangle area times frames) a render job encodes at most: 100 frames of a whole
/// 2000x2000 canvas.
pub const MAX_JOB_PIXELS: u64 = 400_000_000;
/// Milliseconds a frame is shown, at least and at most (GIF counts in hundredths of a second,
/// and browsers slow anything under 20 ms down to 100 ms).
pub const DELAY_MS_RANGE: (u32, u32) = (20, 10_000);
/// A GIF side is a 16-bit number.
pub const MAX_GIF_SIDE: u32 = 65_535;

/// What a timelapse is made into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// An animated GIF (the palette is its colour table).
    Gif,
    /// An animated PNG (APNG): the same frames, losslessly, in any browser.
    Apng,
}

impl Format {
    /// The media type of the result.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Gif => "image/gif",
            Self::Apng => "image/apng",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gif => "gif",
            Self::Apng => "png",
        }
    }
}

/// A timelapse to render: the span, the rectangle, how many frames and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderSpec {
    /// The first frame's time, epoch ms.
    pub from: i64,
    /// The last frame's time, epoch ms.
    pub to: i64,
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Frames, evenly spaced from `from` to `to` (one frame: at `to`).
    pub frames: u32,
    /// Milliseconds each frame is shown.
    pub delay_ms: u32,
    /// What to make.
    pub format: Format,
}

impl RenderSpec {
    /// The rectangle.
    pub fn rect(&self) -> Rect {
        Rect {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
        }
    }

    /// Checks the spec against the canvas and the limits; the message names what is wrong.
    pub fn validate(&self, geometry: CanvasGeometry) -> Result<(), TimelapseError> {
        let invalid = |m: String| Err(TimelapseError::Invalid(m));
        if self.from > self.to {
            return invalid("from must not be after to".into());
        }
        if self.width == 0
            || self.height == 0
            || u64::from(self.x) + u64::from(self.width) > u64::from(geometry.width())
            || u64::from(self.y) + u64::from(self.height) > u64::from(geometry.height())
        {
            return invalid(format!(
                "the rectangle must lie inside the {}x{} canvas",
                geometry.width(),
                geometry.height()
            ));
        }
        if !(1..=MAX_FRAMES).contains(&self.frames) {
            return invalid(format!("frames must be from 1 to {MAX_FRAMES}"));
        }
        let pixels = u64::from(self.width) * u64::from(self.height) * u64::from(self.frames);
        if pixels > MAX_JOB_PIXELS {
            return invalid(format!(
                "width x height x frames is {pixels}, more than {MAX_JOB_PIXELS}: \
                 ask for fewer frames or a smaller rectangle"
            ));
        }
        let (min, max) = DELAY_MS_RANGE;
        if !(min..=max).contains(&self.delay_ms) {
            return invalid(format!("delayMs must be from {min} to {max}"));
        }
        if self.format == Format::Gif && (self.width > MAX_GIF_SIDE || self.height > MAX_GIF_SIDE) {
            return invalid(format!("a GIF is at most {MAX_GIF_SIDE} pixels a side"));
        }
        Ok(())
    }

    /// The frames' times: evenly spaced from `from` to `to`, both included.
    pub fn frame_times(&self) -> Vec<i64> {
        let n = i128::from(self.frames);
        if n <= 1 {
            return vec![self.to];
        }
        let span = i128::from(self.to) - i128::from(self.from);
        (0..n)
            .map(|i| (i128::from(self.from) + span * i / (n - 1)) as i64)
            .collect()
    }
}

/// Builds the frames of a span one after the other (see the module documentation).
pub struct Renderer {
    source: Store,
    geometry: CanvasGeometry,
    times: Vec<i64>,
    next: usize,
    frame: Frame,
    snapshots: Vec<SnapshotInfo>,
    /// The snapshot the frame grew from, and its tiles' seqs.
    base: Option<i64>,
    base_seqs: Vec<u64>,
    /// Events placed up to this time are in the frame.
    applied_until: i64,
    events_read: u64,
}

impl Renderer {
    /// A renderer of `rect` at each of `times` (ascending).
    pub async fn new(
        source: Store,
        geometry: CanvasGeometry,
        rect: Rect,
        times: Vec<i64>,
    ) -> Result<Self, TimelapseError> {
        let snapshots = source.snapshots().await?;
        Ok(Self {
            source,
            geometry,
            times,
            next: 0,
            frame: Frame::blank(rect),
            snapshots,
            base: None,
            base_seqs: vec![0; geometry.tile_count()],
            applied_until: i64::MIN,
            events_read: 0,
        })
    }

    /// Events read from the store so far.
    pub fn events_read(&self) -> u64 {
        self.events_read
    }

    /// Frames in all.
    pub fn frame_count(&self) -> usize {
        self.times.len()
    }

    /// The next frame and its time, or `None` after the last.
    pub async fn next_frame(&mut self) -> Result<Option<(i64, &mut Frame)>, TimelapseError> {
        let Some(&t) = self.times.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        if let Some(snapshot) = self.better_snapshot(t) {
            self.start_from(snapshot).await?;
        }
        let rect = self.frame.rect();
        let (geometry, base_seqs, frame) = (self.geometry, &self.base_seqs, &mut self.frame);
        let mut apply = |e: place_store::TimedEvent| {
            // Inside the rectangle, so on the canvas.
            if let Some((tile, _, _)) = geometry.locate(e.x, e.y) {
                if e.tile_seq > base_seqs[geometry.tile_index(tile)] {
                    frame.apply(e);
                }
            }
        };
        let from = self.applied_until;
        if t > from {
            self.events_read += self.source.visit_events(from, t, rect, &mut apply).await?;
            self.applied_until = t;
        }
        Ok(Some((t, &mut self.frame)))
    }

    /// The latest snapshot usable at `t`, if starting from it reads fewer events than going on
    /// from where the frame is (always, for the first frame).
    fn better_snapshot(&self, t: i64) -> Option<SnapshotInfo> {
        let best = self.snapshots.iter().rev().find(|s| s.covers_until <= t)?;
        let newer = Some(best.id) != self.base;
        let first = self.applied_until == i64::MIN;
        (newer && (first || best.covers_until - STRAGGLER_WINDOW_MS > self.applied_until))
            .then_some(*best)
    }

    async fn start_from(&mut self, info: SnapshotInfo) -> Result<(), TimelapseError> {
        let record = self
            .source
            .snapshot(info.id)
            .await?
            .ok_or(TimelapseError::BadSnapshot(info.id))?;
        let Base {
            pixels, tile_seqs, ..
        } = snapshot::decode(self.geometry, &record)?;
        self.frame.load(&pixels, self.geometry.width());
        self.base_seqs = tile_seqs;
        self.base = Some(info.id);
        self.applied_until = info.covers_until.saturating_sub(STRAGGLER_WINDOW_MS);
        Ok(())
    }
}

/// The exact canvas of `rect` at `t`.
pub async fn frame_at(
    source: &Store,
    geometry: CanvasGeometry,
    rect: Rect,
    t: i64,
) -> Result<Frame, TimelapseError> {
    let mut renderer = Renderer::new(source.clone(), geometry, rect, vec![t]).await?;
    renderer.next_frame().await?;
    Ok(renderer.frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RenderSpec {
        RenderSpec {
            from: 1_000,
            to: 2_000,
            x: 0,
            y: 0,
            width: 100,
            height: 50,
            frames: 5,
            delay_ms: 100,
            format: Format::Gif,
        }
    }

    #[test]
    fn frames_are_evenly_spaced_and_end_at_to() {
        assert_eq!(
            spec().frame_times(),
            vec![1_000, 1_250, 1_500, 1_750, 2_000]
        );
        let one = RenderSpec {
            frames: 1,
            ..spec()
        };
        assert_eq!(one.frame_times(), vec![2_000]);
    }

    #[test]
    fn requests_outside_the_limits_are_refused_with_a_reason() {
        let g = CanvasGeometry::new(100, 50).expect("size");
        assert!(spec().validate(g).is_ok());
        let refused = |s: RenderSpec| match s.validate(g) {
            Err(TimelapseError::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused(RenderSpec {
            from: 3_000,
            ..spec()
        })
        .contains("from"));
        assert!(refused(RenderSpec { x: 1, ..spec() }).contains("rectangle"));
        assert!(refused(RenderSpec {
            height: 0,
            ..spec()
        })
        .contains("rectangle"));
        assert!(refused(RenderSpec {
            frames: 0,
            ..spec()
        })
        .contains("frames"));
        assert!(refused(RenderSpec {
            frames: 1_001,
            ..spec()
        })
        .contains("frames"));
        assert!(refused(RenderSpec {
            delay_ms: 5,
            ..spec()
        })
        .contains("delayMs"));
        let big = CanvasGeometry::new(20_000, 20_000).expect("size");
        let huge = RenderSpec {
            width: 20_000,
            height: 20_000,
            frames: 2,
            ..spec()
        };
        assert!(refused_on(big, huge).contains("width x height x frames"));
    }

    fn refused_on(g: CanvasGeometry, s: RenderSpec) -> String {
        match s.validate(g) {
            Err(TimelapseError::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod exact {
    //! Frames against replays of the log, on a real embedded store, with placement times that
    //! disagree with the seqs (as edges' clocks make them) and snapshots taken between batches.

    use super::*;
    use place_store::NewEvent;
    use rand::{Rng, SeedableRng};

    fn crop(canvas: &[u8], width: u32, rect: Rect) -> Vec<u8> {
        (rect.y..rect.y + rect.height)
            .flat_map(|y| {
                let at = (y * width + rect.x) as usize;
                canvas[at..at + rect.width as usize].to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn every_frame_equals_the_replay_of_the_log_up_to_its_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let g = CanvasGeometry::new(130, 70).expect("size");
        let source = store.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut seqs = vec![0u64; g.tile_count()];
        let start = 1_000_000;
        for batch in 0..20 {
            let events: Vec<NewEvent> = (0..100)
                .map(|i| {
                    let (x, y) = (rng.random_range(0..130), rng.random_range(0..70));
                    let (tile, _, _) = g.locate(x, y).expect("on the canvas");
                    let seq = &mut seqs[g.tile_index(tile)];
                    *seq += 1;
                    NewEvent {
                        x,
                        y,
                        color: rng.random_range(0..16),
                        user_id: 1,
                        // Ten a second, each up to 300 ms early or late.
                        placed_at: start + (batch * 100 + i) * 100 + rng.random_range(-300..300),
                        tile_seq: *seq,
                        action_id: None,
                    }
                })
                .collect();
            store.append_events(&events).await.expect("append");
            if batch % 6 == 5 {
                let id = snapshot::take(&source, g, std::time::Duration::ZERO).await;
                assert!(
                    id.expect("snapshot").is_some(),
                    "a snapshot after batch {batch}"
                );
            }
        }
        assert_eq!(source.snapshots().await.expect("list").len(), 3);
        let rect = Rect {
            x: 50,
            y: 20,
            width: 70,
            height: 45,
        };
        let end = start + 2_000 * 100;
        let times: Vec<i64> = (0..41)
            .map(|i| start - 500 + i * (end - start + 1_000) / 40)
            .collect();
        let mut renderer = Renderer::new(source.clone(), g, rect, times.clone())
            .await
            .expect("renderer");
        while let Some((t, frame)) = renderer.next_frame().await.expect("frame") {
            let replay = store.replay_log_until(g, t).await.expect("replay");
            assert_eq!(
                frame.pixels(),
                &crop(&replay, 130, rect)[..],
                "frame at {t}"
            );
        }
        for _ in 0..10 {
            let t = rng.random_range(start - 500..end + 500);
            let whole = Rect {
                x: 0,
                y: 0,
                width: 130,
                height: 70,
            };
            let frame = frame_at(&source, g, whole, t).await.expect("frame");
            let replay = store.replay_log_until(g, t).await.expect("replay");
            assert_eq!(frame.pixels(), &replay[..], "whole canvas at {t}");
        }
    }
}
