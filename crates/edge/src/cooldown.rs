//! Per-user placement cooldowns, checked and set in one atomic step.
//!
//! Reddit's 2017 canvas let about 15,000 extra pixels through a check-then-set race. Here the
//! check and the set happen under the map's entry lock, so one user on many sockets gets exactly
//! one placement per cooldown.
//!
//! What is kept is each user's last placement time, not an expiry: the cooldown is applied when
//! checked, so when an administrator changes it, every player's wait follows at once (shorter or
//! longer), measured from their last placement. The shared (Redis) cooldowns in
//! [`crate::accounts`] work the same way.

use dashmap::DashMap;

/// The longest cooldown that may be set, and so how long a placement time must be remembered.
pub const MAX_COOLDOWN_MS: i64 = 3_600_000;

/// When each user last placed (epoch ms).
#[derive(Debug, Default)]
pub struct Cooldowns {
    last: DashMap<i64, i64>,
}

impl Cooldowns {
    /// Takes the user's cooldown if it has run out, recording `now_ms` as its last placement:
    /// returns when it may place next, or the milliseconds still to wait.
    pub fn try_acquire(&self, user: i64, now_ms: i64, cooldown_ms: i64) -> Result<i64, i64> {
        let mut last = self.last.entry(user).or_insert(i64::MIN);
        if let Some(left) = left(*last, now_ms, cooldown_ms) {
            return Err(left);
        }
        *last = now_ms;
        Ok(now_ms + cooldown_ms)
    }

    /// Gives back the cooldown taken at `taken_at_ms` for a placement that was not made, if no
    /// later placement replaced it.
    pub fn release(&self, user: i64, taken_at_ms: i64) {
        self.last.remove_if(&user, |_, last| *last == taken_at_ms);
    }

    /// Milliseconds until the user may place (0 when it may now).
    pub fn remaining(&self, user: i64, now_ms: i64, cooldown_ms: i64) -> i64 {
        self.last
            .get(&user)
            .and_then(|last| left(*last, now_ms, cooldown_ms))
            .unwrap_or(0)
    }

    /// The user's last placement, if it is remembered.
    pub fn last_placement(&self, user: i64) -> Option<i64> {
        self.last
            .get(&user)
            .map(|at| *at)
            .filter(|at| *at != i64::MIN)
    }

    /// Restores a user's last placement (after a restart, from the event log).
    pub fn restore(&self, user: i64, placed_at_ms: i64) {
        self.last
            .entry(user)
            .and_modify(|last| *last = (*last).max(placed_at_ms))
            .or_insert(placed_at_ms);
    }

    /// Forgets placements older than any cooldown could reach, so the map holds only users who
    /// placed within [`MAX_COOLDOWN_MS`].
    pub fn prune(&self, now_ms: i64) {
        self.last
            .retain(|_, last| now_ms.saturating_sub(*last) < MAX_COOLDOWN_MS);
    }
}

/// Milliseconds left of a cooldown that began at `last_ms`, if any.
fn left(last_ms: i64, now_ms: i64, cooldown_ms: i64) -> Option<i64> {
    // No cooldown: nothing to wait for, even behind a placement of the same player stamped a
    // moment later (two of its placements admitted at once, in either order).
    if cooldown_ms <= 0 {
        return None;
    }
    let left = last_ms.saturating_add(cooldown_ms).saturating_sub(now_ms);
    (left > 0).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_placement_per_cooldown() {
        let c = Cooldowns::default();
        assert_eq!(c.try_acquire(1, 1000, 5000), Ok(6000));
        assert_eq!(c.try_acquire(1, 2000, 5000), Err(4000));
        assert_eq!(c.remaining(1, 2000, 5000), 4000);
        assert_eq!(
            c.try_acquire(2, 2000, 5000),
            Ok(7000),
            "other users are independent"
        );
        assert_eq!(c.try_acquire(1, 6000, 5000), Ok(11000));
    }

    #[test]
    fn without_a_cooldown_placements_stamped_out_of_order_are_all_admitted() {
        let c = Cooldowns::default();
        assert_eq!(c.try_acquire(1, 2000, 0), Ok(2000));
        assert_eq!(
            c.try_acquire(1, 1999, 0),
            Ok(1999),
            "stamped a moment earlier"
        );
        assert_eq!(c.remaining(1, 1998, 0), 0);
        // With a cooldown, the earlier stamp is the second placement of the cooldown: refused.
        assert_eq!(c.try_acquire(2, 2000, 5000), Ok(7000));
        assert_eq!(c.try_acquire(2, 1999, 5000), Err(5001));
    }

    #[test]
    fn a_changed_cooldown_applies_to_waits_already_running() {
        let c = Cooldowns::default();
        c.try_acquire(1, 1000, 60_000).expect("free");
        assert_eq!(c.remaining(1, 2000, 60_000), 59_000);
        assert_eq!(c.remaining(1, 2000, 5_000), 4_000, "shortened");
        assert_eq!(c.try_acquire(1, 6000, 5_000), Ok(11_000));
        assert_eq!(c.try_acquire(1, 20_000, 30_000), Err(16_000), "lengthened");
    }

    #[test]
    fn release_gives_back_only_its_own_cooldown() {
        let c = Cooldowns::default();
        c.try_acquire(1, 0, 5000).expect("free");
        c.release(1, 1);
        assert_eq!(
            c.remaining(1, 0, 5000),
            5000,
            "a stale release does nothing"
        );
        c.release(1, 0);
        assert_eq!(c.remaining(1, 0, 5000), 0);
    }

    #[test]
    fn restore_and_prune() {
        let c = Cooldowns::default();
        c.restore(1, 10_000);
        c.restore(1, 4_000);
        assert_eq!(
            c.remaining(1, 12_000, 5_000),
            3_000,
            "the latest placement counts"
        );
        c.try_acquire(3, 0, 10).expect("free");
        c.prune(MAX_COOLDOWN_MS + 5_000);
        assert_eq!(c.last.len(), 1, "only the recent placement is kept");
    }

    #[test]
    fn racing_threads_get_exactly_one_placement() {
        let c = Arc::new(Cooldowns::default());
        let wins: usize = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| c.try_acquire(42, 1, 5000).is_ok())
                        .count()
                })
            })
            .map(|t| t.join().expect("thread"))
            .sum();
        assert_eq!(wins, 1);
    }
}
