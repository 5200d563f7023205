//! Who a player is and what they may do now: sessions, guest users, cooldowns and bans.
//!
//! In `place serve` all of it is local: sessions and users in the embedded store, cooldowns and
//! bans in memory (restored from the store at start). In the cluster every edge shares them:
//! sessions (`session:{hash}`, 24 h, refreshed on use), cooldowns (`cooldown:{user}`: the user's
//! last placement time, checked and set by one Lua script per placement) and bans (`bans`) in
//! Redis under the cluster's key prefix, users in PostgreSQL.
//!
//! Who is an administrator is the users table's `is_admin`. In `place serve` a session's user is
//! read with it on every request, so a promotion (`place admin promote`) counts at once. In the
//! cluster a session record in Redis names its user, and the user's `is_admin` is the Redis set
//! `admins` (checked in the same round trip as the record, by a script): `place admin
//! promote`/`demote` change PostgreSQL, then the set, so every edge sees it at its next request;
//! edges rewrite the set from PostgreSQL when they start and every [`ADMINS_SYNC_EVERY`]
//! (after a Redis restart, say).
//!
//! A session is a random 256-bit id in an HTTP-only cookie. Registering or logging in always
//! starts a new session and revokes the one the request came with ([`Accounts::revoke_session`]),
//! so a session id seen before sign-in is worthless after it. Registering as a guest turns that
//! guest's user into the registered one in place (same id, same placements, same cooldown).
//!
//! Sessions are stored by the SHA-256 of their id ([`session_hash`]), in the embedded store and
//! in Redis alike: every method here takes the id the cookie carries and hashes it, so whoever
//! reads the database or Redis learns no id a player could be impersonated with. (The live
//! "session ended" announcement carries the raw id: it is sent only once the session is deleted,
//! when the id is worthless.) Expired sessions are deleted from the embedded store every minute
//! ([`Accounts::purge_expired_sessions`]); Redis expires its own.
//!
//! A guest's public name is `guest-` and [`GUEST_NAME_CHARS`] random characters, drawn apart
//! from its session id, so that nothing public says anything about a secret.

use dashmap::DashSet;
use place_store::{Store, StoreError, User, UserLogin};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cooldown::{Cooldowns, MAX_COOLDOWN_MS};

/// A backing service failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The embedded store or PostgreSQL.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored session could not be read.
    #[error("session record: {0}")]
    Record(#[from] serde_json::Error),
    /// An ended session could not be announced to the other edges.
    #[error(transparent)]
    Live(#[from] crate::live::LiveError),
    /// The system's random number generator failed.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
}

/// How a session is stored: the SHA-256 of its id, as 64 lowercase hex digits. A lookup hashes
/// the id presented; the id itself (256 random bits) is never stored, and cannot be found from
/// the hash.
pub fn session_hash(session_id: &str) -> String {
    hex::encode(Sha256::digest(session_id.as_bytes()))
}

/// Random characters in a guest's name: base32 (`a`-`z`, `2`-`7`), 5 bits each, 50 bits in all.
pub const GUEST_NAME_CHARS: usize = 10;

/// Names tried for a new guest before giving up: a clash among 2^50 names is rare enough that
/// three in a row mean something else is wrong.
const GUEST_NAME_TRIES: usize = 3;

/// A fresh random suffix for a guest's name ([`GUEST_NAME_CHARS`] base32 characters from the
/// system's CSPRNG).
fn guest_name_suffix() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; GUEST_NAME_CHARS];
    getrandom::fill(&mut bytes)?;
    // 256 is a multiple of 32: every character is equally likely.
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect())
}

/// The cluster's shared account state.
#[derive(Clone)]
pub struct SharedAccounts {
    /// Redis, for sessions, cooldowns and bans.
    pub redis: ConnectionManager,
    /// Prefix of every Redis key of this cluster.
    pub prefix: String,
    /// PostgreSQL, for users.
    pub users: Store,
}

/// Where accounts live.
pub enum Accounts {
    /// `place serve`: the embedded store, with cooldowns and bans in memory.
    Embedded {
        /// The store.
        store: Store,
        /// Cooldowns.
        cooldowns: Cooldowns,
        /// Banned user ids.
        bans: DashSet<i64>,
        /// Placements per client network in the current minute.
        networks: NetworkBudgets,
    },
    /// The cluster: Redis and PostgreSQL, shared by every edge.
    Shared(SharedAccounts),
}

/// A user as kept in a Redis session record.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    id: i64,
    username: String,
    is_guest: bool,
    is_admin: bool,
}

/// How often a cluster's edge rewrites the Redis set of administrators from PostgreSQL.
pub const ADMINS_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The session record (KEYS[1]) and whether its user is in the set of administrators (KEYS[2]),
/// in one round trip; nil when there is no such session.
const SESSION_SCRIPT: &str = r#"
local record = redis.call('GET', KEYS[1])
if not record then return false end
local id = string.match(record, '"id":(%-?%d+)')
return {record, redis.call('SISMEMBER', KEYS[2], id or '')}
"#;

/// The Redis key of a cluster's set of administrators (user ids), under its key `prefix`.
pub fn admins_key(prefix: &str) -> String {
    format!("{prefix}admins")
}

/// Adds a user to the cluster's Redis set of administrators, or takes them out: the edges'
/// sessions of that user have (or lose) administrator rights at their next request.
pub async fn set_admin_in_redis(
    redis: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
    user_id: i64,
    is_admin: bool,
) -> Result<(), redis::RedisError> {
    redis::cmd(if is_admin { "SADD" } else { "SREM" })
        .arg(admins_key(prefix))
        .arg(user_id)
        .query_async(redis)
        .await
}

/// How long `/health/ready` waits for each backing service before calling it unavailable.
pub const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Admits a placement in one round trip: refuses a banned user (the set KEYS[2] holds ARGV[4]);
/// else one still in the cooldown ARGV[2] since the last placement KEYS[1] (answers the ms
/// left); else one whose network KEYS[3] made ARGV[5] placements in this minute (0: no limit;
/// answers the ms to the next minute); else takes the cooldown (the last placement is now,
/// ARGV[1], kept ARGV[3] ms) and counts the network. Answers `{kind, ms}`: 0 admitted,
/// 1 banned, 2 cooling down, 3 network busy. With no cooldown (ARGV[2] = 0) nothing waits, even
/// behind a placement of the same user stamped a moment later (two admitted at once).
static ADMIT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1 then return {1, 0} end
local last = redis.call('GET', KEYS[1])
if last and tonumber(ARGV[2]) > 0 then
  local left = tonumber(last) + tonumber(ARGV[2]) - tonumber(ARGV[1])
  if left > 0 then return {2, left} end
end
local budget = tonumber(ARGV[5])
if budget > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= budget then
    local ttl = redis.call('PTTL', KEYS[3])
    if ttl < 0 then ttl = 60000 end
    return {3, ttl}
  end
  if redis.call('INCR', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], 60000) end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {0, 0}
",
    )
});

/// Whether a user may place now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes: its cooldown is taken; it may place again at this time (epoch ms).
    Admitted {
        /// When the user may place next.
        next_at_ms: i64,
    },
    /// No: the user is banned.
    Banned,
    /// No: the cooldown has this many milliseconds left.
    CoolingDown {
        /// Milliseconds left.
        remaining_ms: i64,
    },
    /// No: the client's network used its placements of this minute; it may place again in
    /// this many milliseconds (the user's cooldown is untouched).
    NetworkBusy {
        /// Milliseconds until the network's next minute.
        retry_ms: i64,
    },
}

/// Where a placement comes from, for the per-network budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client's network ([`crate::address::AddressPolicy::network`]).
    pub network: std::net::IpAddr,
    /// Placements the network may make per minute (0: no limit).
    pub budget_per_minute: u32,
}

/// The window of the per-network budgets.
const NETWORK_WINDOW_MS: i64 = 60_000;

/// Placements per network in fixed one-minute windows, and the last placement of the latest
/// guest who signed out on each network (`place serve`; the cluster keeps both in Redis).
#[derive(Default)]
pub struct NetworkBudgets {
    windows: dashmap::DashMap<std::net::IpAddr, (i64, u32)>,
    last_guest_placement: dashmap::DashMap<std::net::IpAddr, i64>,
}

impl NetworkBudgets {
    /// Counts a placement of `origin` at `now_ms`: `Err(retry_ms)` when its network is over its
    /// budget for the minute.
    fn take(&self, origin: &Origin, now_ms: i64) -> Result<(), i64> {
        if origin.budget_per_minute == 0 {
            return Ok(());
        }
        let window = now_ms - now_ms.rem_euclid(NETWORK_WINDOW_MS);
        let mut entry = self.windows.entry(origin.network).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= origin.budget_per_minute {
            return Err(window + NETWORK_WINDOW_MS - now_ms);
        }
        entry.1 += 1;
        Ok(())
    }

    fn prune(&self, now_ms: i64) {
        self.windows
            .retain(|_, (window, _)| *window + NETWORK_WINDOW_MS > now_ms);
        self.last_guest_placement
            .retain(|_, at| *at + MAX_COOLDOWN_MS > now_ms);
    }
}

/// Gives a cooldown back only if it is still the one this placement took.
const RELEASE_SCRIPT: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl Accounts {
    /// The store holding users, the event log and the audit log.
    pub fn store(&self) -> &Store {
        match self {
            Accounts::Embedded { store, .. } => store,
            Accounts::Shared(s) => &s.users,
        }
    }

    /// Local accounts over the embedded store, restoring bans and the last placement of every
    /// user who placed within [`MAX_COOLDOWN_MS`] (the longest cooldown there can be).
    pub async fn embedded(store: Store, now_ms: i64) -> Result<Self, AccountsError> {
        let cooldowns = Cooldowns::default();
        for (user, placed_at) in store.recent_placements(now_ms - MAX_COOLDOWN_MS).await? {
            cooldowns.restore(user, placed_at);
        }
        let bans = store.banned_users().await?.into_iter().collect();
        Ok(Accounts::Embedded {
            store,
            cooldowns,
            bans,
            networks: NetworkBudgets::default(),
        })
    }

    /// The user of a live session.
    pub async fn session_user(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> Result<Option<User>, AccountsError> {
        match self {
            Accounts::Embedded { store, .. } => Ok(store
                .session_user(&session_hash(session_id), now_ms)
                .await?),
            Accounts::Shared(s) => {
                let found: Option<(String, bool)> = redis::Script::new(SESSION_SCRIPT)
                    .key(s.session_key(session_id))
                    .key(admins_key(&s.prefix))
                    .invoke_async(&mut s.redis.clone())
                    .await?;
                let Some((record, is_admin)) = found else {
                    return Ok(None);
                };
                let r: SessionRecord = serde_json::from_str(&record)?;
                Ok(Some(User {
                    id: r.id,
                    username: r.username,
                    is_guest: r.is_guest,
                    // The set, not the record: a promotion or demotion counts at once.
                    is_admin,
                    banned: false,
                }))
            }
        }
    }

    /// Makes a guest user and a session `session_id` for it, living `ttl_ms`.
    pub async fn create_guest_session(
        &self,
        session_id: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<User, AccountsError> {
        let user = self.create_guest(now_ms).await?;
        self.create_session(session_id, &user, now_ms, ttl_ms)
            .await?;
        Ok(user)
    }

    /// Makes a guest user with a random name (drawn again should it be taken).
    async fn create_guest(&self, now_ms: i64) -> Result<User, AccountsError> {
        let mut tries = 0;
        loop {
            let suffix = guest_name_suffix()?;
            let made = self.store().create_guest(&suffix, now_ms).await;
            tries += 1;
            match made {
                Err(StoreError::UsernameTaken) if tries < GUEST_NAME_TRIES => continue,
                made => return Ok(made?),
            }
        }
    }

    /// Stores a session `session_id` of `user`, living `ttl_ms`.
    pub async fn create_session(
        &self,
        session_id: &str,
        user: &User,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<(), AccountsError> {
        match self {
            Accounts::Embedded { store, .. } => {
                store
                    .create_session(&session_hash(session_id), user.id, now_ms, now_ms + ttl_ms)
                    .await?
            }
            Accounts::Shared(s) => {
                let record = serde_json::to_string(&SessionRecord {
                    id: user.id,
                    username: user.username.clone(),
                    is_guest: user.is_guest,
                    is_admin: user.is_admin,
                })?;
                redis::cmd("SET")
                    .arg(s.session_key(session_id))
                    .arg(record)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut s.redis.clone())
                    .await?;
            }
        }
        Ok(())
    }

    /// Ends a session at once: it is deleted from the embedded store or from Redis, so the next
    /// request with its cookie, on any edge, has no session. Its open WebSockets are closed by
    /// [`crate::Edge::revoke_session`], which calls this.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), AccountsError> {
        match self {
            Accounts::Embedded { store, .. } => {
                store.delete_session(&session_hash(session_id)).await?
            }
            Accounts::Shared(s) => {
                redis::cmd("DEL")
                    .arg(s.session_key(session_id))
                    .query_async::<()>(&mut s.redis.clone())
                    .await?;
            }
        }
        Ok(())
    }

    /// A user by name, in any letter case, with the password hash login checks.
    pub async fn user_login(&self, username: &str) -> Result<Option<UserLogin>, AccountsError> {
        Ok(self.store().user_login(username).await?)
    }

    /// Registers `username` with an argon2id `password_hash`. A guest (`guest`, the request's
    /// current user, when it is a guest) becomes that user in place and keeps its id; anyone else
    /// gets a new user. A taken name fails with [`StoreError::UsernameTaken`].
    pub async fn register(
        &self,
        guest: Option<&User>,
        username: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<User, AccountsError> {
        if let Some(guest) = guest.filter(|u| u.is_guest) {
            let upgraded = self
                .store()
                .register_guest(guest.id, username, password_hash)
                .await?;
            if let Some(user) = upgraded {
                return Ok(user);
            }
        }
        Ok(self
            .create_user(username, password_hash, false, now_ms)
            .await?)
    }

    /// Makes a registered user (not from a guest).
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        self.store()
            .create_user(username, password_hash, is_admin, now_ms)
            .await
    }

    /// Extends a session to live `ttl_ms` from now.
    pub async fn touch_session(
        &self,
        session_id: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<(), AccountsError> {
        match self {
            Accounts::Embedded { store, .. } => Ok(store
                .touch_session(&session_hash(session_id), now_ms + ttl_ms)
                .await?),
            Accounts::Shared(s) => {
                redis::cmd("PEXPIRE")
                    .arg(s.session_key(session_id))
                    .arg(ttl_ms)
                    .query_async::<()>(&mut s.redis.clone())
                    .await?;
                Ok(())
            }
        }
    }

    /// Admits a placement by `user` at `now_ms`: refused if the user is banned or still cooling
    /// down; otherwise takes the cooldown, atomically across every socket and edge, recording
    /// `now_ms` as its last placement. In the cluster this is one Redis round trip.
    pub async fn admit_placement(
        &self,
        user: i64,
        origin: Origin,
        now_ms: i64,
        cooldown_ms: i64,
    ) -> Result<Admission, AccountsError> {
        let (kind, ms) = match self {
            Accounts::Embedded {
                cooldowns,
                bans,
                networks,
                ..
            } => {
                if bans.contains(&user) {
                    return Ok(Admission::Banned);
                }
                match cooldowns.try_acquire(user, now_ms, cooldown_ms) {
                    Err(left) => (2, left),
                    Ok(_) => match networks.take(&origin, now_ms) {
                        Err(retry) => {
                            cooldowns.release(user, now_ms);
                            (3, retry)
                        }
                        Ok(()) => (0, 0),
                    },
                }
            }
            Accounts::Shared(s) => {
                let answer: (i64, i64) = ADMIT_SCRIPT
                    .key(s.key(&format!("cooldown:{user}")))
                    .key(s.key("bans"))
                    .key(s.key(&format!("placenet:{}", origin.network)))
                    .arg(now_ms)
                    .arg(cooldown_ms)
                    .arg(MAX_COOLDOWN_MS)
                    .arg(user)
                    .arg(origin.budget_per_minute)
                    .invoke_async(&mut s.redis.clone())
                    .await?;
                answer
            }
        };
        Ok(match kind {
            0 => Admission::Admitted {
                next_at_ms: now_ms + cooldown_ms,
            },
            1 => Admission::Banned,
            2 => Admission::CoolingDown { remaining_ms: ms },
            _ => Admission::NetworkBusy { retry_ms: ms },
        })
    }

    /// A guest signs out on `network`: its last placement is remembered there for a cooldown,
    /// for [`Accounts::inherit_guest_cooldown`].
    pub async fn remember_leaving_guest(
        &self,
        user: i64,
        network: std::net::IpAddr,
    ) -> Result<(), AccountsError> {
        match self {
            Accounts::Embedded {
                cooldowns,
                networks,
                ..
            } => {
                if let Some(at) = cooldowns.last_placement(user) {
                    let mut latest = networks.last_guest_placement.entry(network).or_insert(at);
                    *latest = (*latest).max(at);
                }
            }
            Accounts::Shared(s) => {
                s.copy_placement_time(&format!("cooldown:{user}"), &format!("guestnet:{network}"))
                    .await?;
            }
        }
        Ok(())
    }

    /// Gives a new guest from `network` the cooldown of the last guest who signed out there, so
    /// signing out and coming back as a fresh guest does not skip a cooldown. (Players behind
    /// one address who never sign out are not tied to each other.)
    pub async fn inherit_guest_cooldown(
        &self,
        user: i64,
        network: std::net::IpAddr,
    ) -> Result<(), AccountsError> {
        match self {
            Accounts::Embedded {
                cooldowns,
                networks,
                ..
            } => {
                if let Some(at) = networks.last_guest_placement.get(&network) {
                    cooldowns.restore(user, *at);
                }
            }
            Accounts::Shared(s) => {
                s.copy_placement_time(&format!("guestnet:{network}"), &format!("cooldown:{user}"))
                    .await?;
            }
        }
        Ok(())
    }

    /// Gives back the cooldown taken at `taken_at_ms` for a placement that was not made, unless
    /// a later placement replaced it.
    pub async fn release_cooldown(&self, user: i64, taken_at_ms: i64) -> Result<(), AccountsError> {
        match self {
            Accounts::Embedded { cooldowns, .. } => {
                cooldowns.release(user, taken_at_ms);
                Ok(())
            }
            Accounts::Shared(s) => {
                redis::Script::new(RELEASE_SCRIPT)
                    .key(s.key(&format!("cooldown:{user}")))
                    .arg(taken_at_ms)
                    .invoke_async::<i64>(&mut s.redis.clone())
                    .await?;
                Ok(())
            }
        }
    }

    /// Milliseconds until the user may place under `cooldown_ms` (0: now).
    pub async fn cooldown_remaining(
        &self,
        user: i64,
        now_ms: i64,
        cooldown_ms: i64,
    ) -> Result<i64, AccountsError> {
        match self {
            Accounts::Embedded { cooldowns, .. } => {
                Ok(cooldowns.remaining(user, now_ms, cooldown_ms))
            }
            Accounts::Shared(s) => {
                let last: Option<i64> = redis::cmd("GET")
                    .arg(s.key(&format!("cooldown:{user}")))
                    .query_async(&mut s.redis.clone())
                    .await?;
                Ok(last.map_or(0, |last| (last + cooldown_ms - now_ms).max(0)))
            }
        }
    }

    /// Bans or unbans a user, at once for every socket (and, in the cluster, every edge).
    pub async fn set_banned(&self, user: i64, banned: bool) -> Result<(), AccountsError> {
        self.store().set_banned(user, banned).await?;
        match self {
            Accounts::Embedded { bans, .. } => {
                if banned {
                    bans.insert(user);
                } else {
                    bans.remove(&user);
                }
            }
            Accounts::Shared(s) => {
                redis::cmd(if banned { "SADD" } else { "SREM" })
                    .arg(s.key("bans"))
                    .arg(user)
                    .query_async::<()>(&mut s.redis.clone())
                    .await?;
            }
        }
        Ok(())
    }

    /// Each backing service and whether it answers within [`READINESS_TIMEOUT`], for
    /// `/health/ready`.
    pub async fn readiness(&self) -> Vec<(&'static str, bool)> {
        async fn answers<T, E>(check: impl std::future::Future<Output = Result<T, E>>) -> bool {
            matches!(
                tokio::time::timeout(READINESS_TIMEOUT, check).await,
                Ok(Ok(_))
            )
        }
        match self {
            Accounts::Embedded { store, .. } => vec![("store", answers(store.ping()).await)],
            Accounts::Shared(s) => {
                let mut redis = s.redis.clone();
                let ping = redis::cmd("PING");
                let (redis_ok, postgres_ok) = tokio::join!(
                    answers(ping.query_async::<String>(&mut redis)),
                    answers(s.users.ping())
                );
                vec![("redis", redis_ok), ("postgres", postgres_ok)]
            }
        }
    }

    /// Rewrites the cluster's Redis set of administrators from PostgreSQL (nothing to do in
    /// `place serve`); returns how many there are.
    ///
    /// A promotion or demotion writes PostgreSQL first, then the set. So that a rewrite racing
    /// with one never puts back what it changed, PostgreSQL is read again after the rewrite and
    /// the set rewritten until the two reads agree: a change committed before the second read is
    /// then in the set, and one committed after it writes the set itself, after this rewrite.
    pub async fn sync_admins(&self) -> Result<usize, AccountsError> {
        let Accounts::Shared(s) = self else {
            return Ok(0);
        };
        let key = admins_key(&s.prefix);
        let mut ids = s.users.admin_ids().await?;
        loop {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("DEL").arg(&key).ignore();
            if !ids.is_empty() {
                pipe.cmd("SADD").arg(&key).arg(&ids).ignore();
            }
            pipe.query_async::<()>(&mut s.redis.clone()).await?;
            let again = s.users.admin_ids().await?;
            if again == ids {
                return Ok(ids.len());
            }
            ids = again;
        }
    }

    /// Forgets local placement times no cooldown can reach any more (Redis expires its own).
    pub fn prune(&self, now_ms: i64) {
        if let Accounts::Embedded {
            cooldowns,
            networks,
            ..
        } = self
        {
            cooldowns.prune(now_ms);
            networks.prune(now_ms);
        }
    }

    /// Deletes the sessions expired at `now_ms` from the embedded store, returning how many
    /// (Redis expires its own: nothing to do in the cluster).
    pub async fn purge_expired_sessions(&self, now_ms: i64) -> Result<u64, AccountsError> {
        match self {
            Accounts::Embedded { store, .. } => Ok(store.delete_expired_sessions(now_ms).await?),
            Accounts::Shared(_) => Ok(0),
        }
    }
}

impl SharedAccounts {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Copies a placement time from the key `from` to `to` (both under the prefix), kept for the
    /// longest cooldown there can be; nothing when `from` holds none. One round trip.
    async fn copy_placement_time(&self, from: &str, to: &str) -> Result<(), AccountsError> {
        redis::Script::new(
            r"
local at = redis.call('GET', KEYS[1])
if at then redis.call('SET', KEYS[2], at, 'PX', ARGV[1]) end
return 0",
        )
        .key(self.key(from))
        .key(self.key(to))
        .arg(MAX_COOLDOWN_MS)
        .invoke_async::<i64>(&mut self.redis.clone())
        .await?;
        Ok(())
    }

    /// The Redis key of a session: `session:` and the hash of its id, never the id.
    fn session_key(&self, session_id: &str) -> String {
        self.key(&format!("session:{}", session_hash(session_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_stored_by_the_sha256_of_its_id() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            session_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn guest_names_are_random_base32() {
        let a = guest_name_suffix().expect("random");
        let b = guest_name_suffix().expect("random");
        assert_eq!(a.len(), GUEST_NAME_CHARS);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        assert_ne!(a, b, "50 random bits twice alike");
    }

    /// The cluster's admission script on the machine's Redis (`PLACE_TEST_REDIS_URL`, default
    /// `redis://127.0.0.1:6379`), under keys of its own, removed at the end.
    #[tokio::test]
    async fn the_shared_admission_waits_only_for_a_cooldown() {
        let url = std::env::var("PLACE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let mut redis = redis::Client::open(url.as_str())
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} is unreachable ({e}): this test needs it"));
        let prefix = format!(
            "place:test_admit_{}_{}:",
            std::process::id(),
            guest_name_suffix().expect("random")
        );
        let key = |name: &str| format!("{prefix}{name}");
        async fn admit(
            redis: &mut redis::aio::MultiplexedConnection,
            prefix: &str,
            (user, now_ms, cooldown_ms): (i64, i64, i64),
        ) -> (i64, i64) {
            ADMIT_SCRIPT
                .key(format!("{prefix}cooldown:{user}"))
                .key(format!("{prefix}bans"))
                .key(format!("{prefix}placenet:127.0.0.1"))
                .arg(now_ms)
                .arg(cooldown_ms)
                .arg(MAX_COOLDOWN_MS)
                .arg(user)
                .arg(0)
                .invoke_async(redis)
                .await
                .expect("the script runs")
        }
        assert_eq!(admit(&mut redis, &prefix, (1, 2000, 0)).await, (0, 0));
        assert_eq!(
            admit(&mut redis, &prefix, (1, 1999, 0)).await,
            (0, 0),
            "no cooldown: stamped a moment earlier, admitted"
        );
        assert_eq!(admit(&mut redis, &prefix, (2, 2000, 5000)).await, (0, 0));
        assert_eq!(
            admit(&mut redis, &prefix, (2, 1999, 5000)).await,
            (2, 5001),
            "a cooldown: refused"
        );
        assert_eq!(admit(&mut redis, &prefix, (2, 7000, 5000)).await, (0, 0));
        let _: () = redis::cmd("DEL")
            .arg(key("cooldown:1"))
            .arg(key("cooldown:2"))
            .query_async(&mut redis)
            .await
            .expect("clean up");
    }

    #[tokio::test]
    async fn sessions_are_stored_hashed_found_by_their_id_and_purged_when_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let accounts = Accounts::embedded(store.clone(), 0)
            .await
            .expect("accounts");
        let id = "ab".repeat(32);
        let user = accounts
            .create_guest_session(&id, 0, 1_000)
            .await
            .expect("guest");
        assert!(user.username.starts_with("guest-"));
        assert!(!id.contains(&user.username["guest-".len()..]));
        assert_eq!(store.session_user(&id, 1).await.expect("read"), None);
        assert_eq!(
            store
                .session_user(&session_hash(&id), 1)
                .await
                .expect("read"),
            Some(user.clone())
        );
        assert_eq!(
            accounts.session_user(&id, 1).await.expect("read"),
            Some(user.clone())
        );
        accounts
            .touch_session(&id, 500, 1_000)
            .await
            .expect("touch");
        assert_eq!(
            accounts.purge_expired_sessions(1_000).await.expect("purge"),
            0
        );
        assert_eq!(
            accounts.purge_expired_sessions(1_500).await.expect("purge"),
            1
        );
        assert_eq!(accounts.session_user(&id, 1).await.expect("read"), None);

        let other = "cd".repeat(32);
        accounts
            .create_session(&other, &user, 0, 1_000)
            .await
            .expect("session");
        accounts.revoke_session(&other).await.expect("revoke");
        assert_eq!(accounts.session_user(&other, 1).await.expect("read"), None);
    }
}
