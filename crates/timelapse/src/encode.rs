//! Images of frames, in the canvas's palette: animated GIF (up to 256 colours, exactly the
//! palette's), animated PNG, and still PNG.
//!
//! A GIF frame after the first carries only the part of the rectangle that changed since the
//! frame before (kept underneath), so a quiet canvas makes a small file; an APNG carries whole
//! frames.

use std::io::Write;

use place_tiles::Palette;

use crate::frame::Frame;
use crate::render::Format;
use crate::TimelapseError;

fn encode_error(e: impl std::fmt::Display) -> TimelapseError {
    TimelapseError::Encode(e.to_string())
}

/// The palette as `r, g, b` bytes.
pub fn palette_bytes(palette: &Palette) -> Vec<u8> {
    (0..palette.len())
        .flat_map(|i| palette.rgb(i as u8).unwrap_or_default())
        .collect()
}

/// An animation being written: frames in order, then [`Animation::finish`].
pub enum Animation<W: Write> {
    /// GIF.
    Gif(gif::Encoder<W>, u16),
    /// APNG.
    Apng(png::Writer<W>),
}

impl<W: Write> Animation<W> {
    /// Starts an animation of `frames` frames of `width` x `height`, each shown `delay_ms`.
    pub fn new(
        format: Format,
        out: W,
        width: u32,
        height: u32,
        frames: u32,
        delay_ms: u32,
        palette: &Palette,
    ) -> Result<Self, TimelapseError> {
        let colors = palette_bytes(palette);
        match format {
            Format::Gif => {
                let (w, h) = (side(width)?, side(height)?);
                let mut encoder = gif::Encoder::new(out, w, h, &colors).map_err(encode_error)?;
                encoder
                    .set_repeat(gif::Repeat::Infinite)
                    .map_err(encode_error)?;
                let delay = (delay_ms / 10).clamp(2, u32::from(u16::MAX)) as u16;
                Ok(Self::Gif(encoder, delay))
            }
            Format::Apng => {
                let mut encoder = indexed_png(out, width, height, colors);
                encoder.set_animated(frames, 0).map_err(encode_error)?;
                let delay = delay_ms.min(u32::from(u16::MAX)) as u16;
                encoder.set_frame_delay(delay, 1000).map_err(encode_error)?;
                Ok(Self::Apng(encoder.write_header().map_err(encode_error)?))
            }
        }
    }

    /// Adds the next frame.
    pub fn add(&mut self, frame: &mut Frame) -> Result<(), TimelapseError> {
        match self {
            Self::Gif(encoder, delay) => {
                // Nothing changed: one unchanged pixel keeps the frame's time.
                let part = frame.take_changed().unwrap_or(place_store::Rect {
                    x: 0,
                    y: 0,
                    width: 1,
                    height: 1,
                });
                let gif_frame = gif::Frame {
                    delay: *delay,
                    dispose: gif::DisposalMethod::Keep,
                    left: side(part.x)?,
                    top: side(part.y)?,
                    width: side(part.width)?,
                    height: side(part.height)?,
                    buffer: frame.crop(part).into(),
                    ..gif::Frame::default()
                };
                encoder.write_frame(&gif_frame).map_err(encode_error)
            }
            Self::Apng(writer) => {
                frame.take_changed();
                writer
                    .write_image_data(frame.pixels())
                    .map_err(encode_error)
            }
        }
    }

    /// Ends the file (the output stays with the caller, who lent the writer).
    pub fn finish(self) -> Result<(), TimelapseError> {
        match self {
            Self::Gif(encoder, _) => encoder.into_inner().map(drop).map_err(encode_error),
            Self::Apng(writer) => writer.finish().map_err(encode_error),
        }
    }
}

fn side(v: u32) -> Result<u16, TimelapseError> {
    u16::try_from(v).map_err(|_| encode_error(format!("{v} does not fit a GIF")))
}

fn indexed_png<W: Write>(
    out: W,
    width: u32,
    height: u32,
    colors: Vec<u8>,
) -> png::Encoder<'static, W> {
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(colors);
    encoder.set_compression(png::Compression::Fast);
    encoder
}

/// A still PNG of `width` x `height` palette indices.
pub fn png_image(
    pixels: &[u8],
    width: u32,
    height: u32,
    palette: &Palette,
) -> Result<Vec<u8>, TimelapseError> {
    let mut out = Vec::new();
    let mut writer = indexed_png(&mut out, width, height, palette_bytes(palette))
        .write_header()
        .map_err(encode_error)?;
    writer.write_image_data(pixels).map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use place_store::{Rect, TimedEvent};

    #[test]
    fn a_gif_holds_every_frame_in_the_palette() {
        let palette = Palette::default_with(16).expect("palette");
        let rect = Rect {
            x: 0,
            y: 0,
            width: 8,
            height: 4,
        };
        let mut frame = Frame::blank(rect);
        let mut bytes = Vec::new();
        let mut gif = Animation::new(Format::Gif, &mut bytes, 8, 4, 3, 100, &palette).expect("gif");
        gif.add(&mut frame).expect("first");
        frame.apply(TimedEvent {
            x: 5,
            y: 2,
            color: 5,
            tile_seq: 1,
        });
        gif.add(&mut frame).expect("second");
        gif.add(&mut frame).expect("unchanged");
        gif.finish().expect("finish");
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut decoder = options.read_info(&bytes[..]).expect("decode");
        let mut frames = Vec::new();
        while let Some(f) = decoder.read_next_frame().expect("frame") {
            frames.push((
                [f.left, f.top, f.width, f.height, f.delay],
                f.buffer.to_vec(),
            ));
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].0, [0, 0, 8, 4, 10]);
        assert_eq!(frames[1], ([5, 2, 1, 1, 10], vec![5]));
        assert_eq!(frames[2].0, [0, 0, 1, 1, 10]);
        let global = decoder.global_palette().expect("palette");
        assert_eq!(&global[15..18], &palette.rgb(5).expect("red")[..]);
    }

    #[test]
    fn a_png_decodes_to_its_pixels() {
        let palette = Palette::default_with(4).expect("palette");
        let pixels = [0u8, 1, 2, 3, 3, 2];
        let bytes = png_image(&pixels, 3, 2, &palette).expect("png");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("info");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("frame");
        assert_eq!(
            (info.width, info.height, info.color_type),
            (3, 2, png::ColorType::Indexed)
        );
        assert_eq!(&buf[..6], &pixels);
    }
}
