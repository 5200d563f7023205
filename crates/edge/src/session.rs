//! The session cookie: its names, reading the session id and its user from a request's cookies,
//! and how a user is shown. Every route module uses this one and it uses none of them, so the
//! route modules stay leaves (no module imports one that imports it back).

use axum_extra::extract::cookie::{Cookie, CookieJar};
use place_store::User;
use serde::Serialize;

use crate::error::AppError;
use crate::Edge;

/// The session cookie, over plain HTTP on loopback (development, tests).
pub const SESSION_COOKIE: &str = "place_session";
/// The session cookie everywhere else: `Secure`, and `__Host-` so that only this exact origin
/// over HTTPS can set it (no subdomain, no plain-HTTP page can plant one).
pub const SECURE_SESSION_COOKIE: &str = "__Host-place_session";

/// The user of the request's session cookie, if it is valid.
pub async fn session_user(edge: &Edge, jar: &CookieJar) -> Result<Option<User>, AppError> {
    let Some(id) = session_id(jar) else {
        return Ok(None);
    };
    Ok(edge.accounts.session_user(id, edge.now_ms()).await?)
}

/// The session id the request's cookies carry, if it has the shape of one (64 hex digits):
/// anything else is no session, and is never looked up.
pub fn session_id(jar: &CookieJar) -> Option<&str> {
    let id = raw_session(jar)?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// The session cookie's value as sent, under either name (the `__Host-` one first).
pub fn raw_session(jar: &CookieJar) -> Option<&str> {
    jar.get(SECURE_SESSION_COOKIE)
        .or_else(|| jar.get(SESSION_COOKIE))
        .map(Cookie::value)
}

/// A user as the API shows it: `{userId, username, isGuest, isAdmin}`, and to admins also
/// `banned`. Ids are strings: JavaScript's numbers cannot hold every `i64`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    user_id: String,
    username: String,
    is_guest: bool,
    is_admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    banned: Option<bool>,
}

impl UserView {
    /// The user as it sees itself.
    pub fn of(user: &User) -> Self {
        Self {
            user_id: user.id.to_string(),
            username: user.username.clone(),
            is_guest: user.is_guest,
            is_admin: user.is_admin,
            banned: None,
        }
    }

    /// The user as admins see it: with whether it is banned.
    pub fn for_admins(user: &User) -> Self {
        Self {
            banned: Some(user.banned),
            ..Self::of(user)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderMap, HeaderValue};
    use place_protocol::fuzzing;
    use proptest::prelude::*;

    /// The session id that `Cookie` header values carry, as a request's would be read.
    fn session_in(values: &[Vec<u8>]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            // A value HTTP cannot carry never reaches a handler (hyper refuses it).
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::COOKIE, value);
            }
        }
        session_id(&CookieJar::from_headers(&headers)).map(str::to_owned)
    }

    /// A `Cookie` header with the session among other cookies.
    fn cookie_header() -> impl Strategy<Value = (String, String)> {
        (
            "[0-9a-f]{64}",
            prop::collection::vec(("[a-z_]{1,8}", "[!-:<-~]{0,16}"), 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(id, others, at)| {
                let mut cookies: Vec<String> =
                    others.iter().map(|(k, v)| format!("{k}={v}")).collect();
                cookies.retain(|c| !c.starts_with(&format!("{SESSION_COOKIE}=")));
                let at = at.index(cookies.len() + 1);
                cookies.insert(at, format!("{SESSION_COOKIE}={id}"));
                (cookies.join("; "), id)
            })
    }

    proptest! {
        #[test]
        fn the_session_cookie_is_found_among_others((header, id) in cookie_header()) {
            prop_assert_eq!(session_in(&[header.into_bytes()]), Some(id));
        }

        /// Arbitrary and mutated `Cookie` headers (one or several): no panic, and a session id
        /// only of the right shape, taken from the request.
        #[test]
        fn fuzz_session_cookies(values in prop::collection::vec(prop_oneof![
            fuzzing::bytes(200),
            fuzzing::mutated(cookie_header().prop_map(|(header, _)| header.into_bytes())),
        ], 1..3)) {
            if let Some(id) = session_in(&values) {
                prop_assert_eq!(id.len(), 64);
                prop_assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
                let id = id.as_bytes();
                prop_assert!(values.iter().any(|v| v.windows(64).any(|w| w == id)));
            }
        }
    }
}
