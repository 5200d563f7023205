//! Limits on login attempts: [`LOGIN_ATTEMPTS_PER_MINUTE`] per client IP and per username,
//! whether the attempts succeed or not, so nobody can guess passwords quickly from one address or
//! against one account from many.
//!
//! In `place serve` the counts are in memory ([`governor`]'s keyed GCRA limiters: a burst of 5,
//! then one more every 12 s). In the cluster they must hold across every edge, so they are Redis
//! counters under the cluster's key prefix (`login:ip:{ip}`, `login:user:{name}`): one `INCR` per
//! attempt, and the first of a minute sets `PEXPIRE 60000`; a sixth within the minute is refused
//! until the key expires.

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

/// Counts each key's attempt and answers the longest wait, in ms, of the keys over the limit
/// (0: allowed). A key left without an expiry (it cannot happen, but would block forever) gets
/// one.
const ATTEMPT_SCRIPT: &str = r"
local wait = 0
for _, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  if n > tonumber(ARGV[2]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    if ttl > wait then wait = ttl end
  end
end
return wait";

/// Where the attempts are counted.
pub enum LoginLimiter {
    /// `place serve`: in memory.
    Local {
        /// Attempts per client IP.
        by_ip: DefaultKeyedRateLimiter<IpAddr>,
        /// Attempts per lower-cased username.
        by_name: DefaultKeyedRateLimiter<String>,
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
                    by_ip: RateLimiter::keyed(quota),
                    by_name: RateLimiter::keyed(quota),
                }
            }
            Accounts::Shared(s) => LoginLimiter::Shared {
                redis: s.redis.clone(),
                prefix: s.prefix.clone(),
            },
        }
    }

    /// Counts a login attempt from `ip` for `username` (`None` when the name cannot exist, so
    /// only the IP counts): `Ok(None)` when it may go ahead, `Ok(Some(wait))` when it is refused
    /// and may be retried after `wait`.
    pub async fn attempt(
        &self,
        ip: IpAddr,
        username: Option<&str>,
    ) -> Result<Option<Duration>, AccountsError> {
        let name = username.map(str::to_ascii_lowercase);
        match self {
            LoginLimiter::Local { by_ip, by_name } => {
                let now = DefaultClock::default().now();
                let ip_wait = by_ip.check_key(&ip).err().map(|n| n.wait_time_from(now));
                let name_wait = name
                    .and_then(|name| by_name.check_key(&name).err())
                    .map(|n| n.wait_time_from(now));
                Ok(ip_wait.max(name_wait))
            }
            LoginLimiter::Shared { redis, prefix } => {
                let script = redis::Script::new(ATTEMPT_SCRIPT);
                let mut invocation = script.prepare_invoke();
                invocation.key(format!("{prefix}login:ip:{ip}"));
                if let Some(name) = name {
                    invocation.key(format!("{prefix}login:user:{name}"));
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
        if let LoginLimiter::Local { by_ip, by_name } = self {
            by_ip.retain_recent();
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
            by_ip: RateLimiter::keyed(quota),
            by_name: RateLimiter::keyed(quota),
        }
    }

    #[tokio::test]
    async fn the_sixth_attempt_from_one_ip_or_for_one_name_is_refused() {
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
            .expect("the IP is over its limit");
        assert!(wait > Duration::from_secs(5) && wait <= Duration::from_secs(12));

        // One name from many addresses, in any letter case.
        for i in 0..5 {
            let ip: IpAddr = [10, 1, 0, i].into();
            let name = if i % 2 == 0 { "Alice" } else { "aLICE" };
            assert_eq!(limiter.attempt(ip, Some(name)).await.expect("local"), None);
        }
        assert!(limiter
            .attempt(b, Some("alice"))
            .await
            .expect("local")
            .is_some());
        // Another name from a fresh address is unaffected; a name that cannot exist counts
        // for the IP only.
        assert_eq!(limiter.attempt(b, Some("bob")).await.expect("local"), None);
        assert_eq!(limiter.attempt(b, None).await.expect("local"), None);
    }
}
