//! The ring in Redis: one JSON value under the cluster's key prefix, read by every edge and
//! shard. Watchers poll it (twenty times a second), so a change reaches every node within about
//! 50 ms without depending on a pub/sub connection staying up.
//!
//! Beside it: the lock that makes ring changes go one at a time (`{prefix}ring:lock`), and each
//! shard's report of itself (`{prefix}shard:{id}`, see [`crate::reshard`]).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::reshard::{ShardReport, REPORT_TTL};
use crate::ring::{Ring, RingError};

/// Stores the ring only while the caller holds the change lock (`KEYS[1]` lock, `KEYS[2]` ring,
/// `ARGV[1]` the holder's token, `ARGV[2]` the ring).
const REPLACE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1";

/// Releases the change lock if the caller still holds it.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// How often watchers read the ring: a change reaches every node within this (plus a round
/// trip), which bounds how long a moving tile waits for its edges and shards to agree. An
/// unchanged ring costs one small `GET` and no parsing.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// What can go wrong with the stored ring.
#[derive(Debug, Error)]
pub enum RingStoreError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The stored value is not a ring.
    #[error("stored ring: {0}")]
    Decode(#[from] serde_json::Error),
    /// The ring is invalid.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// The change lock was lost (it expired) before the ring was stored.
    #[error("the ring change lock expired before the change was stored; nothing changed")]
    LockLost,
    /// No ring has been stored yet.
    #[error("no ring in Redis under {0:?}: run `place ring init` first")]
    Missing(String),
    /// `init` found a ring already.
    #[error("a ring (epoch {0}) already exists; use --force to replace it")]
    Exists(u64),
}

/// The ring's home in Redis.
#[derive(Clone)]
pub struct RingStore {
    redis: ConnectionManager,
    prefix: String,
    key: String,
}

/// The right to change the ring, until it expires.
#[derive(Debug)]
pub struct ChangeLock {
    token: String,
}

impl RingStore {
    /// The ring under `{prefix}ring`.
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            key: format!("{prefix}ring"),
        }
    }

    fn lock_key(&self) -> String {
        format!("{}ring:lock", self.prefix)
    }

    fn report_key(&self, id: &str) -> String {
        format!("{}shard:{id}", self.prefix)
    }

    /// Takes the change lock for `ttl`: `Ok(Err(holder))` when someone else holds it.
    pub async fn lock_changes(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Result<ChangeLock, String>, RingStoreError> {
        let token = format!(
            "{holder} (pid {}, since {} ms)",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let set: Option<String> = redis::cmd("SET")
            .arg(self.lock_key())
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.redis.clone())
            .await?;
        if set.is_some() {
            return Ok(Ok(ChangeLock { token }));
        }
        let holder: Option<String> = redis::cmd("GET")
            .arg(self.lock_key())
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(Err(
            holder.unwrap_or_else(|| "a change that just ended".into())
        ))
    }

    /// Releases the change lock.
    pub async fn unlock_changes(&self, lock: &ChangeLock) -> Result<(), RingStoreError> {
        let _: i64 = redis::Script::new(UNLOCK_SCRIPT)
            .key(self.lock_key())
            .arg(&lock.token)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Stores `ring` as the cluster's ring, if `lock` is still held.
    pub async fn replace(&self, lock: &ChangeLock, ring: &Ring) -> Result<(), RingStoreError> {
        let stored: i64 = redis::Script::new(REPLACE_SCRIPT)
            .key(self.lock_key())
            .key(&self.key)
            .arg(&lock.token)
            .arg(serde_json::to_string(ring)?)
            .invoke_async(&mut self.redis.clone())
            .await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(RingStoreError::LockLost)
        }
    }

    /// Publishes a shard's report of itself, for [`REPORT_TTL`] (and notes its id in the set of
    /// reporting shards, so reading them never scans Redis's keys).
    pub async fn report(&self, report: &ShardReport) -> Result<(), RingStoreError> {
        let _: () = redis::pipe()
            .cmd("SADD")
            .arg(format!("{}shards", self.prefix))
            .arg(&report.id)
            .ignore()
            .cmd("SET")
            .arg(self.report_key(&report.id))
            .arg(serde_json::to_string(report)?)
            .arg("PX")
            .arg(REPORT_TTL.as_millis() as u64)
            .ignore()
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// The live reports of every shard that has reported (in the ring or not).
    pub async fn reports(
        &self,
    ) -> Result<std::collections::BTreeMap<String, ShardReport>, RingStoreError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}shards", self.prefix))
            .query_async(&mut self.redis.clone())
            .await?;
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.report_key(id)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.redis.clone())
            .await?;
        let mut reports = std::collections::BTreeMap::new();
        for value in values.into_iter().flatten() {
            let report: ShardReport = serde_json::from_str(&value)?;
            reports.insert(report.id.clone(), report);
        }
        Ok(reports)
    }

    /// The stored ring, if any.
    pub async fn load(&self) -> Result<Option<Ring>, RingStoreError> {
        let value = self.load_json().await?;
        Ok(value.map(|v| serde_json::from_str(&v)).transpose()?)
    }

    /// The stored ring as its JSON text, if any.
    async fn load_json(&self) -> Result<Option<String>, redis::RedisError> {
        redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// The stored ring, which must exist.
    pub async fn require(&self) -> Result<Ring, RingStoreError> {
        self.load()
            .await?
            .ok_or_else(|| RingStoreError::Missing(self.key.clone()))
    }

    /// Stores a first ring; refuses to replace one unless `force`.
    pub async fn init(&self, ring: &Ring, force: bool) -> Result<(), RingStoreError> {
        let value = serde_json::to_string(ring)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.key).arg(value);
        if !force {
            cmd.arg("NX");
        }
        let set: Option<String> = cmd.query_async(&mut self.redis.clone()).await?;
        if set.is_none() {
            let existing = self.require().await?;
            return Err(RingStoreError::Exists(existing.epoch()));
        }
        Ok(())
    }

    /// Follows the stored ring: the receiver holds the latest ring and changes when its epoch
    /// rises. Needs a ring to exist when called.
    pub async fn watch(&self) -> Result<watch::Receiver<Arc<Ring>>, RingStoreError> {
        let first = self.require().await?;
        let (tx, rx) = watch::channel(Arc::new(first));
        let store = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(POLL_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_raw: Option<String> = None;
            loop {
                every.tick().await;
                if tx.is_closed() {
                    return;
                }
                let raw = match store.load_json().await {
                    Ok(Some(raw)) => raw,
                    Ok(None) => continue,
                    Err(error) => {
                        warn!(%error, "cannot read the ring; keeping the last one");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if last_raw.as_deref() == Some(raw.as_str()) {
                    continue;
                }
                match serde_json::from_str::<Ring>(&raw) {
                    Ok(ring) if ring.epoch() > tx.borrow().epoch() => {
                        info!(
                            epoch = ring.epoch(),
                            shards = ring.shards().len(),
                            "ring changed"
                        );
                        let _ = tx.send(Arc::new(ring));
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "the stored ring is invalid; keeping the last one"),
                }
                last_raw = Some(raw);
            }
        });
        Ok(rx)
    }
}
