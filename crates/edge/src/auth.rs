//! Accounts over HTTP: register, login and logout, and the session cookie they (and the guest
//! route in [`crate::http`]) set.
//!
//! - `POST /api/v1/auth/register {username,password}`: a new account; a guest who registers keeps
//!   its user id, and so its cooldown and placements. 201, or 400, 409 `USERNAME_TAKEN`.
//! - `POST /api/v1/auth/login {username,password}`: 200, or 401 `INVALID_CREDENTIALS` whether the
//!   name exists or not (an unknown name is checked against a dummy hash, so it takes as long), or
//!   429 with `Retry-After` past 5 attempts a minute per IP or per name ([`crate::login_limit`]).
//! - `POST /api/v1/auth/logout`: revokes the session at once; 204.
//!
//! Register and login start a fresh session and revoke the request's old one. The cookie is
//! HTTP-only and SameSite=Lax, and `Secure` when the edge is configured so or the proxy says the
//! request came over HTTPS (`X-Forwarded-Proto: https`). These are state-changing requests, so
//! [`crate::http`]'s origin check refuses them from another site.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use place_store::{User, UserLogin};
use serde::Deserialize;

use crate::credentials;
use crate::error::AppError;
use crate::session::{raw_session, session_user, UserView, SECURE_SESSION_COOKIE, SESSION_COOKIE};
use crate::Edge;

/// What register and login take. No `Debug`: it holds a password.
#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// A signed-in answer: status, the jar with the new cookie, the user.
type SignedIn = (StatusCode, CookieJar, Json<UserView>);

/// The account routes.
pub fn routes() -> Router<Arc<Edge>> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
}

async fn register(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<SignedIn, AppError> {
    let Json(c) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    credentials::check_new_username(&c.username)?;
    credentials::check_password(&c.password)?;
    // Each registration costs a password hash: hold it to the guest-session rate per IP.
    edge.check_guest_rate(client_ip(&edge, peer, &headers))?;
    let current = session_user(&edge, &jar).await?;
    let hash = credentials::hash_password(c.password).await?;
    let user = edge
        .accounts
        .register(current.as_ref(), &c.username, &hash, edge.now_ms())
        .await?;
    tracing::info!(
        user_id = user.id,
        was_guest = current
            .as_ref()
            .is_some_and(|u| u.is_guest && u.id == user.id),
        "registered"
    );
    let jar = start_session(&edge, &headers, jar, &user).await?;
    Ok((StatusCode::CREATED, jar, Json(UserView::of(&user))))
}

async fn login(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<SignedIn, AppError> {
    let Json(c) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let ip = client_ip(&edge, peer, &headers);
    let network = edge.config.limits.addresses.network(ip);
    // A name that breaks the rules cannot exist: it is answered like an unknown one, and does
    // not get a counter of its own.
    let name = credentials::check_username(&c.username)
        .is_ok()
        .then_some(c.username.as_str());
    if let Some(wait) = edge.login_limiter.attempt(network, name).await? {
        tracing::warn!(%ip, "login attempts over the limit");
        return Err(AppError::RateLimited(wait.as_millis().div_ceil(1000) as u64));
    }
    // A password registration would refuse cannot be anyone's: refused before any hash (a
    // 2 MB password costs nothing but its upload).
    if credentials::check_password(&c.password).is_err() {
        tracing::info!(%ip, "login refused");
        return Err(AppError::InvalidCredentials);
    }
    let found = match name {
        Some(name) => edge.accounts.user_login(name).await?,
        None => None,
    };
    let (user, hash) = match found {
        Some(UserLogin {
            user,
            password_hash: Some(hash),
        }) => (Some(user), Some(hash)),
        _ => (None, None),
    };
    let matches = credentials::verify_password(c.password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!(%ip, "login refused");
        return Err(AppError::InvalidCredentials);
    };
    tracing::info!(user_id = user.id, %ip, "logged in");
    let jar = start_session(&edge, &headers, jar, &user).await?;
    Ok((StatusCode::OK, jar, Json(UserView::of(&user))))
}

async fn logout(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<(StatusCode, CookieJar), AppError> {
    let Some(id) = raw_session(&jar).map(str::to_owned) else {
        return Ok((StatusCode::NO_CONTENT, jar));
    };
    // A guest who signs out leaves its cooldown to the next guest of its network: signing out
    // is no way around a cooldown.
    if let Some(user) = session_user(&edge, &jar).await?.filter(|u| u.is_guest) {
        let network = edge
            .config
            .limits
            .addresses
            .network(client_ip(&edge, peer, &headers));
        edge.accounts
            .remember_leaving_guest(user.id, network)
            .await?;
    }
    edge.revoke_session(&id).await?;
    tracing::info!("logged out");
    let removal = session_cookie(&edge, &headers, String::new());
    Ok((StatusCode::NO_CONTENT, jar.remove(removal)))
}

/// Starts a new session for `user`, revokes the one the request came with, and returns the jar
/// that sets the new cookie.
async fn start_session(
    edge: &Edge,
    headers: &HeaderMap,
    jar: CookieJar,
    user: &User,
) -> Result<CookieJar, AppError> {
    let session_id = new_session_id()?;
    let ttl = edge.config.session_ttl.as_millis() as i64;
    edge.accounts
        .create_session(&session_id, user, edge.now_ms(), ttl)
        .await?;
    if let Some(old) = raw_session(&jar).map(str::to_owned) {
        edge.revoke_session(&old).await?;
    }
    Ok(jar.add(session_cookie(edge, headers, session_id)))
}

/// A fresh session id: 32 random bytes as 64 hex digits.
pub fn new_session_id() -> Result<String, AppError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| AppError::Unavailable(format!("no randomness: {e}")))?;
    Ok(hex::encode(secret))
}

/// The session cookie carrying `session_id`: HTTP-only, SameSite=Lax, for the whole site, for
/// the session's lifetime, and `Secure` over HTTPS.
pub fn session_cookie(edge: &Edge, headers: &HeaderMap, session_id: String) -> Cookie<'static> {
    let ttl = edge.config.session_ttl;
    let secure = cookies_secure(edge, headers);
    let name = if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    };
    Cookie::build((name, session_id))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::seconds(ttl.as_secs() as i64))
        .build()
}

/// Whether the session cookie is `Secure` (and `__Host-`): always, unless the edge serves plain
/// HTTP on a loopback address (development) and neither its configuration (`secure_cookies`, an
/// `https` public origin) nor a proxy (`X-Forwarded-Proto: https`) says the site is HTTPS.
pub fn cookies_secure(edge: &Edge, headers: &HeaderMap) -> bool {
    let config = &edge.config;
    !config.plain_loopback
        || config.secure_cookies
        || config
            .public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"))
        || forwarded_https(headers)
}

/// Whether a proxy in front says the request came over HTTPS.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The client's address: the peer's, or, behind a trusted proxy (`trust_proxy`), the last
/// address of `X-Forwarded-For` (the one the proxy itself saw).
pub fn client_ip(edge: &Edge, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if edge.config.trust_proxy {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_forwarded_https_makes_cookies_secure() {
        let mut headers = HeaderMap::new();
        assert!(!forwarded_https(&headers));
        for (value, https) in [
            ("https", true),
            ("HTTPS", true),
            ("https, http", true),
            ("http", false),
            ("http, https", false),
        ] {
            headers.insert("x-forwarded-proto", value.parse().expect("header"));
            assert_eq!(forwarded_https(&headers), https, "{value}");
        }
    }
}
