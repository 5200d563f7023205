//! `place admin resize WIDTH HEIGHT --url URL --user NAME`: grows the canvas of a running server
//! (`place serve`, or any edge of a cluster) through its admin API, `PUT
//! /api/v1/admin/canvas/size`, signed in as administrator `NAME` (the password is read like
//! `place admin create-user` reads one). The server does the growth itself, so it is the same in
//! both modes and live: every shard takes the new tiles, every edge and open page hears the new
//! size, and the audit log names the administrator.

use anyhow::{bail, Context};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{json, Value};

/// What `place admin resize` asks for.
#[derive(Debug, Clone)]
pub struct ResizeRequest {
    /// The server, `http://host:port`.
    pub url: String,
    /// An administrator's username.
    pub username: String,
    /// Their password.
    pub password: String,
    /// The new width.
    pub width: u32,
    /// The new height.
    pub height: u32,
}

/// Signs in and grows the canvas; returns the server's answer (`from`, `width`, `height`).
pub async fn resize(request: &ResizeRequest) -> anyhow::Result<Value> {
    let base = request.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": request.username, "password": request.password}))
        .send()
        .await
        .with_context(|| format!("signing in at {base}"))?;
    if !login.status().is_success() {
        bail!(
            "signing in as {:?} was refused: {}",
            request.username,
            answer(login).await
        );
    }
    // The session cookie's `name=value`, whatever its name (`__Host-` over HTTPS).
    let cookie = login
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.contains("place_session="))
        .context("the server set no session cookie")?
        .to_owned();
    let response = client
        .put(format!("{base}/api/v1/admin/canvas/size"))
        .header(COOKIE, &cookie)
        .json(&json!({"width": request.width, "height": request.height}))
        .send()
        .await
        .with_context(|| format!("asking {base} to grow the canvas"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("the server refused ({status}): {}", answer(response).await);
    }
    let grown: Value = response.json().await.context("reading the answer")?;
    // Best effort: the session is not needed any more.
    let _ = client
        .post(format!("{base}/api/v1/auth/logout"))
        .header(COOKIE, &cookie)
        .send()
        .await;
    Ok(grown)
}

/// The error message of a refusal, or its body.
async fn answer(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text)
}
