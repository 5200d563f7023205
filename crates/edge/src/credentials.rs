//! Names and passwords: what a username may be, what a password must be, and argon2id hashing.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) with the `argon2` crate's
//! defaults, which are OWASP's recommended argon2id parameters. Hashing and verifying take tens of
//! milliseconds of CPU and 19 MiB each, so the async functions run them on tokio's blocking
//! threads, never on the workers that drive the sockets. Verifying with no stored hash (unknown
//! user, or a guest) checks against a dummy hash of the same cost, so a wrong password and an
//! unknown name take the same time. Passwords are never logged, and no type here prints one.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Fewest characters in a username.
pub const USERNAME_MIN: usize = 3;
/// Most characters in a username.
pub const USERNAME_MAX: usize = 32;
/// Fewest characters in a password.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Most bytes in a password (a bound on the work one request can ask for).
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Guests are named `guest-<hex>`; nobody may register such a name.
const GUEST_PREFIX: &str = "guest-";

/// A username or password that breaks the rules; the message is meant for the player.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Not 3 to 32 of the allowed characters.
    #[error("a username is 3 to 32 ASCII letters, digits, '_' or '-'")]
    BadUsername,
    /// Looks like a guest's name.
    #[error("usernames starting with \"guest-\" are kept for guests")]
    ReservedUsername,
    /// Fewer than 8 characters.
    #[error("a password has at least 8 characters")]
    PasswordTooShort,
    /// More than 1024 bytes.
    #[error("a password has at most 1024 bytes")]
    PasswordTooLong,
}

/// Hashing failed (never because of a wrong password: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The argon2 implementation refused (a malformed stored hash, no randomness).
    #[error("password hashing: {0}")]
    Argon2(String),
    /// The blocking task panicked or was cancelled.
    #[error("password hashing task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The hashing queue was closed (never, in practice: it lives as long as the process).
    #[error("password hashing queue: {0}")]
    Queue(#[from] tokio::sync::AcquireError),
}

/// Checks a username: 3 to 32 ASCII letters, digits, `_` or `-`.
pub fn check_username(name: &str) -> Result<(), CredentialsError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&name.len()) || !name.bytes().all(allowed) {
        return Err(CredentialsError::BadUsername);
    }
    Ok(())
}

/// Checks a name someone wants to register: a valid username that is not a guest's.
pub fn check_new_username(name: &str) -> Result<(), CredentialsError> {
    check_username(name)?;
    let reserved = name
        .get(..GUEST_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(GUEST_PREFIX));
    if reserved {
        return Err(CredentialsError::ReservedUsername);
    }
    Ok(())
}

/// Checks a new password: at least 8 characters, at most 1024 bytes.
pub fn check_password(password: &str) -> Result<(), CredentialsError> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(CredentialsError::PasswordTooLong);
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(CredentialsError::PasswordTooShort);
    }
    Ok(())
}

/// Hashes a password with a fresh random salt, on this thread (for the CLI and for
/// [`hash_password`]).
pub fn hash_password_now(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Hashes running at once, at most: one per core. Each costs 19 MiB and tens of milliseconds of
/// a core; a burst of logins waits its turn here instead of taking the memory of hundreds of
/// hashes at once and every blocking thread.
static HASHING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    tokio::sync::Semaphore::new(cores)
});

/// Runs one argon2 job on a blocking thread, under [`HASHING`].
async fn hash_job<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, HashError> + Send + 'static,
) -> Result<T, HashError> {
    let _turn = HASHING.acquire().await?;
    tokio::task::spawn_blocking(job).await?
}

/// Hashes a password on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, HashError> {
    hash_job(move || hash_password_now(&password)).await
}

/// Whether `password` matches the PHC string `hash`, checked on a blocking thread. With no hash
/// it checks against a dummy one and answers `false`, taking as long as a real check.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, HashError> {
    hash_job(move || {
        let matches = verify_now(&password, hash.as_deref().unwrap_or(&DUMMY_HASH))?;
        Ok(matches && hash.is_some())
    })
    .await
}

/// A hash with the same parameters as real ones, made once. Its password and salt need no
/// secrecy: [`verify_password`] never answers `true` against it.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password_with_salt(b"no user has this password", &[0x5a; 16])
        .map(|hash| hash.to_string())
        // Cannot fail: the default parameters and a 16-byte salt are valid, and no randomness
        // is needed.
        .expect("the dummy hash has valid parameters")
});

fn verify_now(password: &str, hash: &str) -> Result<bool, HashError> {
    match Argon2::default().verify_password(password.as_bytes(), hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(HashError::Argon2(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_3_to_32_of_letters_digits_underscore_and_dash() {
        for good in ["abc", "Alice_B-2", &"x".repeat(32), "___", "guest"] {
            assert_eq!(check_username(good), Ok(()), "{good}");
            assert_eq!(check_new_username(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "has space",
            "semi;colon",
            "émile",
            "tab\t",
            "a.b.c",
        ] {
            assert_eq!(
                check_username(bad),
                Err(CredentialsError::BadUsername),
                "{bad}"
            );
        }
    }

    #[test]
    fn guest_names_cannot_be_registered() {
        assert_eq!(check_username("guest-0123abcd"), Ok(()));
        for reserved in ["guest-0123abcd", "GUEST-x", "Guest-"] {
            assert_eq!(
                check_new_username(reserved),
                Err(CredentialsError::ReservedUsername),
                "{reserved}"
            );
        }
    }

    #[test]
    fn passwords_have_at_least_8_characters_and_at_most_1024_bytes() {
        assert_eq!(check_password("12345678"), Ok(()));
        assert_eq!(check_password("ééééééééé"), Ok(()));
        assert_eq!(
            check_password("1234567"),
            Err(CredentialsError::PasswordTooShort)
        );
        // Seven characters in fourteen bytes are still seven characters.
        assert_eq!(
            check_password("ééééééé"),
            Err(CredentialsError::PasswordTooShort)
        );
        assert_eq!(check_password(&"p".repeat(1024)), Ok(()));
        assert_eq!(
            check_password(&"p".repeat(1025)),
            Err(CredentialsError::PasswordTooLong)
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify_only_their_password() {
        let a = hash_password("correct horse".into()).await.expect("hash");
        let b = hash_password("correct horse".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse".into(), Some(a.clone()))
            .await
            .expect("verify"));
        assert!(!verify_password("correct horsE".into(), Some(a))
            .await
            .expect("verify"));
        assert!(
            !verify_password("anything".into(), None)
                .await
                .expect("verify"),
            "no hash never matches"
        );
        assert!(verify_password("x".into(), Some("not a hash".into()))
            .await
            .is_err());
    }
}
