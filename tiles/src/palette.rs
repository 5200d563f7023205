//! The palette: the colours a pixel may take, stored as indices into it.

use thiserror::Error;

/// Why a palette was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PaletteError {
    /// Fewer than 2 or more than 256 colours.
    #[error("a palette holds 2 to 256 colours, got {0}")]
    BadSize(usize),
    /// A colour that is not `#rrggbb`.
    #[error("colour {0:?} is not of the form #rrggbb")]
    BadColor(String),
}

/// An ordered list of RGB colours; a pixel holds an index into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette {
    colors: Vec<[u8; 3]>,
}

/// The 16 colours of r/place 2017, white first so a fresh canvas (all zeroes) is white.
const DEFAULT_COLORS: [&str; 16] = [
    "#ffffff", "#e4e4e4", "#888888", "#222222", "#ffa7d1", "#e50000", "#e59500", "#a06a42",
    "#e5d900", "#94e044", "#02be01", "#00d3dd", "#0083c7", "#0000ea", "#cf6ee4", "#820080",
];

impl Palette {
    /// Parses `#rrggbb` colours.
    pub fn from_hex<S: AsRef<str>>(colors: &[S]) -> Result<Self, PaletteError> {
        if !(2..=256).contains(&colors.len()) {
            return Err(PaletteError::BadSize(colors.len()));
        }
        let colors = colors
            .iter()
            .map(|c| parse_hex(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { colors })
    }

    /// The first `count` colours of the default palette, then greys for any beyond 16.
    pub fn default_with(count: usize) -> Result<Self, PaletteError> {
        if !(2..=256).contains(&count) {
            return Err(PaletteError::BadSize(count));
        }
        let mut colors: Vec<[u8; 3]> = DEFAULT_COLORS
            .iter()
            .take(count)
            .map(|c| parse_hex(c).expect("the default palette is valid hex"))
            .collect();
        let extra = count.saturating_sub(colors.len());
        for i in 0..extra {
            let v = (i * 255 / extra.max(1)) as u8;
            colors.push([v, v, v]);
        }
        Ok(Self { colors })
    }

    /// Number of colours.
    pub fn len(&self) -> usize {
        self.colors.len()
    }

    /// Whether the palette is empty (never, for a checked palette).
    pub fn is_empty(&self) -> bool {
        self.colors.is_empty()
    }

    /// Whether `index` names a colour of this palette.
    pub fn contains(&self, index: u8) -> bool {
        usize::from(index) < self.colors.len()
    }

    /// The RGB value of a colour.
    pub fn rgb(&self, index: u8) -> Option<[u8; 3]> {
        self.colors.get(usize::from(index)).copied()
    }

    /// The colours as `#rrggbb` strings, as the protocol sends them.
    pub fn to_hex(&self) -> Vec<String> {
        self.colors
            .iter()
            .map(|[r, g, b]| format!("#{r:02x}{g:02x}{b:02x}"))
            .collect()
    }
}

impl Default for Palette {
    fn default() -> Self {
        Self::default_with(16).expect("16 colours is a valid palette")
    }
}

fn parse_hex(s: &str) -> Result<[u8; 3], PaletteError> {
    let bad = || PaletteError::BadColor(s.to_owned());
    let digits = s.strip_prefix('#').ok_or_else(bad)?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let byte = |i: usize| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| bad());
    Ok([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_palette_round_trips_through_hex() {
        let p = Palette::default();
        assert_eq!(p.len(), 16);
        assert_eq!(p.to_hex()[0], "#ffffff");
        assert_eq!(Palette::from_hex(&p.to_hex()), Ok(p));
    }

    #[test]
    fn bad_palettes_are_refused() {
        assert_eq!(
            Palette::from_hex(&["#ffffff"]),
            Err(PaletteError::BadSize(1))
        );
        assert!(matches!(
            Palette::from_hex(&["#ffffff", "red"]),
            Err(PaletteError::BadColor(_))
        ));
        assert!(Palette::default_with(257).is_err());
    }

    #[test]
    fn larger_palettes_extend_with_greys() {
        let p = Palette::default_with(256).expect("valid");
        assert_eq!(p.len(), 256);
        assert!(p.contains(255));
        assert!(!Palette::default().contains(16));
    }
}
