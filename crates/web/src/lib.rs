//! The browser client of place, embedded in the binary.
//!
//! `build.rs` builds `web/` (TypeScript, Vite) into `$OUT_DIR/web`, or takes a
//! prebuilt directory from `PLACE_WEB_DIST`; this crate embeds those files and
//! hands them to the edge, which serves `GET /` as `asset("index.html")` and
//! `GET /{path}` as `asset(path)`.

use std::borrow::Cow;

use rust_embed::RustEmbed;

/// The files of the built client.
#[derive(RustEmbed)]
#[folder = "$PLACE_WEB_DIST_DIR"]
struct Dist;

/// An embedded file of the built browser client.
pub struct Asset {
    /// The file's bytes.
    pub body: Cow<'static, [u8]>,
    /// Its `Content-Type` (with `charset=utf-8` for text).
    pub content_type: String,
    /// A strong `ETag` (quoted) derived from the file's SHA-256.
    pub etag: String,
}

/// Looks up a file by its path without the leading slash ("index.html", "assets/index-abc.js").
pub fn asset(path: &str) -> Option<Asset> {
    let file = Dist::get(path)?;
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Some(Asset {
        body: file.data,
        content_type: content_type(path),
        etag,
    })
}

fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == "text" || mime.subtype() == "javascript" || mime.subtype() == "json";
    if text && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_html_is_embedded() {
        let index = asset("index.html").expect("the build embeds index.html");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(String::from_utf8_lossy(&index.body).contains("<canvas id=\"board\""));
        assert_eq!(index.etag.len(), 34);
    }

    #[test]
    fn scripts_are_embedded_and_referenced() {
        let index = asset("index.html").expect("the build embeds index.html");
        let html = String::from_utf8_lossy(&index.body);
        let start = html
            .find("/assets/")
            .expect("index.html loads a built script");
        let end = start + html[start..].find('"').expect("a quoted src");
        let script = asset(&html[start + 1..end]).expect("the referenced script is embedded");
        assert!(script.content_type.contains("javascript"));
    }

    #[test]
    fn unknown_paths_are_none() {
        assert!(asset("nope.txt").is_none());
        assert!(asset("../Cargo.toml").is_none());
    }
}
