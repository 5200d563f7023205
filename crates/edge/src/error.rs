//! [`AppError`]: how every HTTP handler fails, as `{"error":{"code","message"}}` with a status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An HTTP error answer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid session.
    #[error("no valid session")]
    Unauthorized,
    /// 401: login refused. The same answer whether the name exists or not.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// 403: not allowed (foreign origin, not an admin).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("not found")]
    NotFound,
    /// 409: registration with a name someone has (in any letter case).
    #[error("this username is taken")]
    UsernameTaken,
    /// 409: the state does not allow it now (another ring change is under way).
    #[error("{0}")]
    Conflict(String),
    /// 429: too many requests; retry after this many seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// 400: a new guest's proof of work is missing or wrong (`CHALLENGE_FAILED`).
    #[error("{0}")]
    ChallengeFailed(String),
    /// 429: a cap on open things (WebSockets of a session or an address) is reached; retry
    /// when one closes.
    #[error("{0}")]
    TooMany(String),
    /// 503: a backing service failed.
    #[error("{0}")]
    Unavailable(String),
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            Self::ChallengeFailed(_) => (StatusCode::BAD_REQUEST, "CHALLENGE_FAILED"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            Self::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Self::UsernameTaken => (StatusCode::CONFLICT, "USERNAME_TAKEN"),
            Self::RateLimited(_) | Self::TooMany(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
            }
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
        }
    }
}

impl From<crate::accounts::AccountsError> for AppError {
    fn from(e: crate::accounts::AccountsError) -> Self {
        if let crate::accounts::AccountsError::Store(place_store::StoreError::UsernameTaken) = e {
            return Self::UsernameTaken;
        }
        tracing::error!(error = %e, "a backing service failed");
        Self::Unavailable("a backing service is unavailable".into())
    }
}

impl From<place_store::StoreError> for AppError {
    fn from(e: place_store::StoreError) -> Self {
        crate::accounts::AccountsError::Store(e).into()
    }
}

impl From<crate::credentials::CredentialsError> for AppError {
    fn from(e: crate::credentials::CredentialsError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<crate::credentials::HashError> for AppError {
    fn from(e: crate::credentials::HashError) -> Self {
        tracing::error!(error = %e, "password hashing failed");
        Self::Unavailable("password hashing failed".into())
    }
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize)]
struct ErrorDetail {
    /// A stable code from [`AppError::status_and_code`], for programs.
    code: &'static str,
    /// A sentence for people.
    message: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        });
        let mut response = (status, body).into_response();
        if let Self::RateLimited(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
