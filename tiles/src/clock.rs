//! The wall clock: the one place that reads the system's time of day (`.clippy.toml` forbids
//! `SystemTime::now` and std's `Instant::now` everywhere else, so that tests can control time).
//!
//! Times of day are Unix epoch milliseconds: when a pixel was placed, a user's last placement for
//! the cooldown, a session's expiry, a snapshot's time. Code that decides by such a time takes it
//! as an argument (the shard core's `Tick`, `Cooldowns::try_acquire`), so a test passes the time
//! it wants. Monotonic time (deadlines, batch and hold windows, how long something took, a silent
//! shard's silence) is `tokio::time::Instant`, which a test stops and advances with
//! `tokio::time::pause()` and `advance()`.
//!
//! A component that decides by the time of day holds a [`Clock`] (the edge: cooldowns, sessions,
//! regions' ends, challenges), so that a test moves its day on with [`Clock::advance`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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

/// The time of day as a component reads it: the system's, or (for tests) the system's moved on
/// by an offset that the test advances, so that a cooldown or a session expires without waiting.
/// Reading it is a match and at most one atomic load: no lock, no allocation.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's time of day.
    #[default]
    System,
    /// The system's time of day plus an offset in milliseconds, moved on by [`Clock::advance`].
    Offset(Arc<AtomicI64>),
}

impl Clock {
    /// A clock that starts at the system's time and that [`Clock::advance`] moves on.
    pub fn offset() -> Self {
        Self::Offset(Arc::default())
    }

    /// Now as Unix epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Self::System => now_ms(),
            Self::Offset(offset) => now_ms() + offset.load(Ordering::Relaxed),
        }
    }

    /// Moves an [`Clock::Offset`] clock on by `by`.
    ///
    /// # Panics
    /// On the system clock, which cannot be moved: a test that means to advance time asks for
    /// [`Clock::offset`].
    pub fn advance(&self, by: Duration) {
        match self {
            Self::System => panic!("the system clock cannot be advanced; use Clock::offset()"),
            Self::Offset(offset) => {
                let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
                offset.fetch_add(by, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_moves_on_by_what_it_is_advanced_and_its_clones_follow() {
        let clock = Clock::offset();
        let seen_by_another = clock.clone();
        let before = now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = seen_by_another.now_ms();
        assert!(after >= before + 3_600_000, "{after} vs {before}");
        assert!(after <= now_ms() + 3_600_000);
    }

    #[test]
    #[should_panic(expected = "cannot be advanced")]
    fn the_system_clock_cannot_be_advanced() {
        Clock::System.advance(Duration::from_millis(1));
    }
}
