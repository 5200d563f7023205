//! One frame of a timelapse being built: the pixels of a rectangle and, per pixel, the tile seq
//! of the event that set it. Pure: no I/O.
//!
//! Events are applied **by seq, not by arrival**: an event changes a pixel only if its tile seq is
//! higher than the one that set the pixel last. So applying any set of events in any order gives
//! the same pixels as replaying them in the log's order (last write wins per tile seq), which
//! lets the renderer read a time window's events in whatever order the store returns them, and
//! stay exact when two placements' times and seqs disagree (their times come from the edges'
//! clocks, their seqs from the shard's order).

use place_store::{Rect, TimedEvent};

/// A rectangle's pixels at one moment, with the seq behind each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    rect: Rect,
    colors: Vec<u8>,
    seqs: Vec<u64>,
    /// What changed since [`Frame::take_changed`] last ran: min x, min y, max x, max y, relative.
    changed: Option<[u32; 4]>,
}

impl Frame {
    /// A rectangle of colour 0 (the blank canvas), all of it changed.
    pub fn blank(rect: Rect) -> Self {
        let area = rect.width as usize * rect.height as usize;
        Self {
            rect,
            colors: vec![0; area],
            seqs: vec![0; area],
            changed: Some(Self::whole(rect)),
        }
    }

    fn whole(rect: Rect) -> [u32; 4] {
        [0, 0, rect.width - 1, rect.height - 1]
    }

    /// The rectangle.
    pub fn rect(&self) -> Rect {
        self.rect
    }

    /// Row-major palette indices of the rectangle.
    pub fn pixels(&self) -> &[u8] {
        &self.colors
    }

    /// Takes the rectangle from a whole canvas (`canvas_width` wide, row-major) as the base: every
    /// pixel's seq is forgotten (0), so any event applied after it wins. The caller applies only
    /// events after the canvas's position.
    pub fn load(&mut self, canvas: &[u8], canvas_width: u32) {
        let (w, cw) = (self.rect.width as usize, canvas_width as usize);
        for row in 0..self.rect.height as usize {
            let from = (self.rect.y as usize + row) * cw + self.rect.x as usize;
            self.colors[row * w..(row + 1) * w].copy_from_slice(&canvas[from..from + w]);
        }
        self.seqs.fill(0);
        self.changed = Some(Self::whole(self.rect));
    }

    /// Applies an event inside the rectangle if its seq is newer than the pixel's (see the module
    /// documentation); events outside are ignored. Whether it changed the pixel's event.
    pub fn apply(&mut self, e: TimedEvent) -> bool {
        if !self.rect.contains(e.x, e.y) {
            return false;
        }
        let (rx, ry) = (e.x - self.rect.x, e.y - self.rect.y);
        let i = ry as usize * self.rect.width as usize + rx as usize;
        if e.tile_seq <= self.seqs[i] {
            return false;
        }
        self.seqs[i] = e.tile_seq;
        if self.colors[i] != e.color {
            self.colors[i] = e.color;
            self.changed = Some(match self.changed {
                None => [rx, ry, rx, ry],
                Some([x0, y0, x1, y1]) => [x0.min(rx), y0.min(ry), x1.max(rx), y1.max(ry)],
            });
        }
        true
    }

    /// The part of the rectangle whose colours changed since the last call (relative to the
    /// rectangle's corner), and forgets it.
    pub fn take_changed(&mut self) -> Option<Rect> {
        self.changed.take().map(|[x0, y0, x1, y1]| Rect {
            x: x0,
            y: y0,
            width: x1 - x0 + 1,
            height: y1 - y0 + 1,
        })
    }

    /// The pixels of a part of the rectangle (relative coordinates), row-major.
    pub fn crop(&self, part: Rect) -> Vec<u8> {
        let w = self.rect.width as usize;
        let mut out = Vec::with_capacity(part.width as usize * part.height as usize);
        for row in part.y..part.y + part.height {
            let from = row as usize * w + part.x as usize;
            out.extend_from_slice(&self.colors[from..from + part.width as usize]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    fn ev(x: u32, y: u32, color: u8, tile_seq: u64) -> TimedEvent {
        TimedEvent {
            x,
            y,
            color,
            tile_seq,
        }
    }

    #[test]
    fn a_newer_seq_wins_whatever_the_order() {
        let mut f = Frame::blank(rect(10, 10, 4, 3));
        assert_eq!(f.take_changed(), Some(rect(0, 0, 4, 3)));
        assert!(f.apply(ev(11, 12, 5, 7)));
        assert!(
            !f.apply(ev(11, 12, 6, 3)),
            "an older seq arriving late loses"
        );
        assert!(!f.apply(ev(9, 12, 6, 9)), "outside");
        assert_eq!(f.pixels()[2 * 4 + 1], 5);
        assert_eq!(f.take_changed(), Some(rect(1, 2, 1, 1)));
        assert_eq!(f.take_changed(), None);
        f.apply(ev(13, 10, 2, 8));
        f.apply(ev(10, 11, 2, 9));
        assert_eq!(f.take_changed(), Some(rect(0, 0, 4, 2)));
        assert_eq!(f.crop(rect(3, 0, 1, 2)), vec![2, 0]);
    }

    #[test]
    fn a_loaded_base_loses_to_every_later_event() {
        let canvas: Vec<u8> = (0..100).map(|i| i as u8).collect();
        let mut f = Frame::blank(rect(2, 3, 3, 2));
        f.apply(ev(2, 3, 9, 50));
        f.load(&canvas, 10);
        assert_eq!(f.pixels(), &[32, 33, 34, 42, 43, 44]);
        assert!(f.apply(ev(2, 3, 9, 1)));
        assert_eq!(f.pixels()[0], 9);
    }

    proptest! {
        /// Any order of a set of events gives the replay in seq order.
        #[test]
        fn any_order_equals_the_replay(
            mut events in prop::collection::vec((0u32..4, 0u32..4, 0u8..8), 0..60),
            shuffle in prop::collection::vec(any::<u32>(), 60),
        ) {
            let evs: Vec<TimedEvent> = events
                .drain(..)
                .enumerate()
                .map(|(i, (x, y, c))| ev(x, y, c, i as u64 + 1))
                .collect();
            let mut replay = [0u8; 16];
            for e in &evs {
                replay[(e.y * 4 + e.x) as usize] = e.color;
            }
            let mut order: Vec<(u32, TimedEvent)> =
                evs.iter().zip(&shuffle).map(|(e, k)| (*k, *e)).collect();
            order.sort_by_key(|(k, _)| *k);
            let mut f = Frame::blank(rect(0, 0, 4, 4));
            for (_, e) in order {
                f.apply(e);
            }
            prop_assert_eq!(f.pixels(), &replay[..]);
        }
    }
}
