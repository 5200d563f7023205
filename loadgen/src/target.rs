//! The endpoints a run drives: `--url ws://host:port` becomes the HTTP base (guest sessions,
//! canvas info) and the WebSocket URL of the chosen format.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use tokio_tungstenite::tungstenite::http::Uri;

use crate::cli::WireFormat;

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, for the HTTP API.
    pub http_base: String,
    /// The WebSocket URL, with `?format=json` for JSON.
    pub ws_url: String,
    /// `host:port`, to resolve.
    pub authority: String,
}

/// Parses `ws://host:port[/path]` (or `http://`); the path defaults to `/ws`.
pub fn parse(url: &str, format: WireFormat) -> anyhow::Result<Target> {
    let uri: Uri = url.parse().context("not a URL like ws://127.0.0.1:3000")?;
    match uri.scheme_str() {
        Some("ws" | "http") => {}
        Some("wss" | "https") => {
            bail!("TLS is not supported: point loadgen at a plain ws:// endpoint")
        }
        _ => bail!("the URL must start with ws:// (or http://)"),
    }
    let Some(authority) = uri.authority() else {
        bail!("the URL has no host");
    };
    let port = authority.port_u16().unwrap_or(80);
    let authority = format!("{}:{port}", authority.host());
    let path = match uri.path() {
        "" | "/" => "/ws",
        path => path,
    };
    let query = match (uri.query(), format) {
        (None, WireFormat::Binary) => String::new(),
        (Some(q), WireFormat::Binary) => format!("?{q}"),
        (None, WireFormat::Json) => "?format=json".to_string(),
        (Some(q), WireFormat::Json) => format!("?{q}&format=json"),
    };
    Ok(Target {
        http_base: format!("http://{authority}"),
        ws_url: format!("ws://{authority}{path}{query}"),
        authority,
    })
}

impl Target {
    /// The socket address to connect to (the first the name resolves to).
    pub async fn resolve(&self) -> anyhow::Result<SocketAddr> {
        tokio::net::lookup_host(&self.authority)
            .await
            .with_context(|| format!("resolving {}", self.authority))?
            .next()
            .with_context(|| format!("{} resolves to no address", self.authority))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_endpoints() {
        let t = parse("ws://127.0.0.1:3000", WireFormat::Binary).expect("valid");
        assert_eq!(t.http_base, "http://127.0.0.1:3000");
        assert_eq!(t.ws_url, "ws://127.0.0.1:3000/ws");
        let t = parse("http://localhost:8080/", WireFormat::Json).expect("valid");
        assert_eq!(t.ws_url, "ws://localhost:8080/ws?format=json");
        assert_eq!(t.authority, "localhost:8080");
        let t = parse("ws://example.invalid/edge/ws", WireFormat::Binary).expect("valid");
        assert_eq!(t.ws_url, "ws://example.invalid:80/edge/ws");
    }

    #[test]
    fn unsupported_urls_are_refused() {
        assert!(parse("wss://x:1", WireFormat::Binary).is_err());
        assert!(parse("ftp://x:1", WireFormat::Binary).is_err());
        assert!(parse("not a url", WireFormat::Binary).is_err());
        assert!(parse("/ws", WireFormat::Binary).is_err());
    }
}
