//! The wall clock: the one place that reads the system's time of day (`.clippy.toml` forbids
//! `SystemTime::now` and std's `Instant::now` everywhere else, so that tests can control time).
//!
//! Times of day are Unix epoch milliseconds: when a pixel was placed, a user's last placement for
//! the cooldown, a session's expiry, a snapshot's time. Code that decides by such a time takes it
//! as an argument (the shard core's `Tick`, `Cooldowns::try_acquire`), so a test passes the time
//! it wants. Monotonic time (deadlines, batch and hold windows, how long something took, a silent
//! shard's silence) is `tokio::time::Instant`, which a test stops and advances with
//! `tokio::time::pause()` and `advance()`.

use std::time::Duration;

/// Now as a duration since the Unix epoch (zero if the system clock is before 1970).
#[allow(clippy::disallowed_methods)] // The one reader of the system clock.
pub fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now as Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}
