//! Limits on login attempts that protect accounts without handing out lockouts.
//!
//! Two budgets of [`LOGIN_ATTEMPTS_PER_MINUTE`] each, checked in this order:
//! 1. **per client network** (an IPv4 address or an IPv6 /64, see [`crate::address`]): nobody
//!    guesses quickly from one place;
//! 2. **per username and network**: one network's guesses at one name.
//!
//! A request refused by the first is not counted against the second, and no budget is shared by
//! every address trying a name: an attacker hammering `alice` from anywhere cannot make Alice's
//! own login from a clean address answer 429. What guessing costs: 5 tries a minute per network
//! and name, so 1,000 guesses a minute at one account need 200 networks (200 IPv4 addresses or
//! 200 IPv6 /64s), each try a full argon2id verification on the attacker's side of the budget.
//! Passwords that registration would refuse are refused before any hash is computed.
//!
//! In `place serve` the counts are in memory ([`governor`]'s keyed GCRA limiters: a burst of 5,
//! then one more every 12 s). In the cluster they must hold across every edge, so they are Redis
//! counters under the cluster's key prefix (`login:net:{network}`,
//! `login:user:{name}:{network}`): one script per attempt counts the keys in order and stops at
//! the first over its limit; the first count of a minute sets `PEXPIRE 60000`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redis::aio::ConnectionManager;

use crate::accounts::{Accounts, AccountsError};

/// Attempts allowed per IP, and per username, in a minute.
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 5;
/// The window of the Redis counters.
const WINDOW_MS: i64 = 60_000;

/// Counts the attempt against each key in order and answers, at the first key over the limit,
/// its wait in ms (the later keys are not counted); 0 when every key allows it. A key left
/// without an expiry (it cannot happen, but would block forever) gets one.
const ATTEMPT_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  if n > tonumber(ARGV[2]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    return ttl
  end
end
return 0";

/// Where the attempts are counted.
pub enum LoginLimiter {
    /// `place serve`: in memory.
    Local {
        /// Attempts per client network.
        by_network: DefaultKeyedRateLimiter<IpAddr>,
        /// Attempts per lower-cased username and client network.
        by_name: DefaultKeyedRateLimiter<(String, IpAddr)>,
    },
    /// The cluster: in Redis, shared by every edge.
    Shared {
        /// Redis.
        redis: ConnectionManager,
        /// The cluster's key prefix.
        prefix: String,
    },
}

impl LoginLimiter {
    /// The limiter that fits where the accounts live.
    pub fn for_accounts(accounts: &Accounts) -> Self {
        match accounts {
            Accounts::Embedded { .. } => {
                let quota = Quota::per_minute(
                    NonZeroU32::new(LOGIN_ATTEMPTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
                );
                LoginLimiter::Local {
                    by_network: RateLimiter::keyed(quota),
                    by_name: RateLimiter::keyed(quota),
                }
            }
            Accounts::Shared(s) => LoginLimiter::Shared {
                redis: s.redis.clone(),
                prefix: s.prefix.clone(),
            },
        }
    }

    /// Counts a login attempt from the client network `network` for `username` (`None` when
    /// the name cannot exist, so only the network counts): `Ok(None)` when it may go ahead,
    /// `Ok(Some(wait))` when it is refused and may be retried after `wait`.
    pub async fn attempt(
        &self,
        network: IpAddr,
        username: Option<&str>,
    ) -> Result<Option<Duration>, AccountsError> {
        let name = username.map(str::to_ascii_lowercase);
        match self {
            LoginLimiter::Local {
                by_network,
                by_name,
            } => {
                let now = DefaultClock::default().now();
                if let Err(not_until) = by_network.check_key(&network) {
                    return Ok(Some(not_until.wait_time_from(now)));
                }
                Ok(name
                    .and_then(|name| by_name.check_key(&(name, network)).err())
                    .map(|n| n.wait_time_from(now)))
            }
            LoginLimiter::Shared { redis, prefix } => {
                let script = redis::Script::new(ATTEMPT_SCRIPT);
                let mut invocation = script.prepare_invoke();
                invocation.key(format!("{prefix}login:net:{network}"));
                if let Some(name) = name {
                    invocation.key(format!("{prefix}login:user:{name}:{network}"));
                }
                let wait_ms: i64 = invocation
                    .arg(WINDOW_MS)
                    .arg(LOGIN_ATTEMPTS_PER_MINUTE)
                    .invoke_async(&mut redis.clone())
                    .await?;
                Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms as u64)))
            }
        }
    }

    /// Forgets local counts that have fully recovered (Redis expires its own).
    pub fn prune(&self) {
        if let LoginLimiter::Local {
            by_network,
            by_name,
        } = self
        {
            by_network.retain_recent();
            by_name.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LoginLimiter {
        let quota = Quota::per_minute(NonZeroU32::new(LOGIN_ATTEMPTS_PER_MINUTE).expect("5 > 0"));
        LoginLimiter::Local {
            by_network: RateLimiter::keyed(quota),
            by_name: RateLimiter::keyed(quota),
        }
    }

    #[tokio::test]
    async fn the_sixth_attempt_from_one_network_or_at_one_name_from_it_is_refused() {
        let limiter = local();
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        for i in 0..5 {
            let name = format!("user{i}");
            assert_eq!(limiter.attempt(a, Some(&name)).await.expect("local"), None);
        }
        let wait = limiter
            .attempt(a, Some("other"))
            .await
            .expect("local")
            .expect("the network is over its limit");
        assert!(wait > Duration::from_secs(5) && wait <= Duration::from_secs(12));
        // A name that cannot exist counts for the network only.
        assert_eq!(limiter.attempt(b, None).await.expect("local"), None);
    }

    #[tokio::test]
    async fn an_attacker_elsewhere_never_locks_a_name_out() {
        let limiter = local();
        let attacker: IpAddr = [10, 6, 6, 6].into();
        let victim: IpAddr = [10, 1, 1, 1].into();
        let mut refused = 0;
        for _ in 0..50 {
            let name = if refused % 2 == 0 { "Alice" } else { "aLICE" };
            if limiter
                .attempt(attacker, Some(name))
                .await
                .expect("local")
                .is_some()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 45, "five tries, then refused");
        // Refused attempts charged nothing more: the name's budget from the victim's network is
        // whole.
        for _ in 0..5 {
            assert_eq!(
                limiter.attempt(victim, Some("alice")).await.expect("local"),
                None
            );
        }
        // Many attackers, one try each: still nothing for the victim's network.
        for i in 0..100u8 {
            let _ = limiter.attempt([10, 7, 0, i].into(), Some("alice")).await;
        }
        let other_victim_network: IpAddr = [10, 1, 1, 2].into();
        assert_eq!(
            limiter
                .attempt(other_victim_network, Some("alice"))
                .await
                .expect("local"),
            None
        );
    }
}
