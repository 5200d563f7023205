//! Compact tile snapshots: the 4096 pixel bytes compressed with raw DEFLATE (RFC 1951).
//!
//! Raw DEFLATE is what the wire protocol sends (a browser reads it with
//! `DecompressionStream("deflate-raw")`) and what the stores keep, so a snapshot is compressed
//! once and served many times.

use thiserror::Error;

use crate::geometry::TILE_AREA;

/// Compression level: 6 is the usual balance; tiles are small so this costs microseconds.
const LEVEL: u8 = 6;

/// Why snapshot bytes could not be read back.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not valid DEFLATE data, or it inflates to more than a tile.
    #[error("snapshot data is corrupt")]
    Corrupt,
    /// It inflates to something other than exactly one tile.
    #[error("snapshot inflates to {0} bytes, not {TILE_AREA}")]
    WrongSize(usize),
}

/// Compresses a tile's pixels.
pub fn compress_tile(pixels: &[u8; TILE_AREA]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec(pixels, LEVEL)
}

/// Inflates a compressed tile, refusing anything that is not exactly one tile (and never
/// allocating more than one tile's worth, whatever the input claims).
pub fn decompress_tile(data: &[u8]) -> Result<Box<[u8; TILE_AREA]>, SnapshotError> {
    let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(data, TILE_AREA)
        .map_err(|_| SnapshotError::Corrupt)?;
    let len = bytes.len();
    bytes
        .into_boxed_slice()
        .try_into()
        .map_err(|_| SnapshotError::WrongSize(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blank_tile_compresses_to_a_few_bytes() {
        let blank = [0u8; TILE_AREA];
        let c = compress_tile(&blank);
        assert!(c.len() < 32, "blank tile took {} bytes", c.len());
        assert_eq!(*decompress_tile(&c).expect("valid"), blank);
    }

    #[test]
    fn wrong_sizes_and_garbage_are_refused() {
        let short = miniz_oxide::deflate::compress_to_vec(&[1u8; 100], 6);
        assert_eq!(decompress_tile(&short), Err(SnapshotError::WrongSize(100)));
        let long = miniz_oxide::deflate::compress_to_vec(&[1u8; TILE_AREA + 1], 6);
        assert_eq!(decompress_tile(&long), Err(SnapshotError::Corrupt));
        assert_eq!(
            decompress_tile(&[0xff, 0xff, 0xff]),
            Err(SnapshotError::Corrupt)
        );
    }

    proptest! {
        #[test]
        fn any_tile_round_trips(pixels in prop::collection::vec(0u8..16, TILE_AREA)) {
            let pixels: [u8; TILE_AREA] = pixels.try_into().expect("right length");
            prop_assert_eq!(*decompress_tile(&compress_tile(&pixels)).expect("valid"), pixels);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decompress_tile(&data);
        }
    }
}
