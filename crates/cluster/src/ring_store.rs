//! The ring in Redis: one JSON value under the cluster's key prefix, read by every edge and
//! shard. A change is announced on the channel `{prefix}ring:changed` in the same script that
//! stores it, so watchers that follow the channel read the new ring within a round trip; every
//! watcher also polls it (twenty times a second), so a change reaches every node within about
//! 50 ms even while its pub/sub connection is down.
//!
//! Beside it: the lock that makes ring changes go one at a time (`{prefix}ring:lock`), and each
//! shard's report of itself (`{prefix}shard:{id}`, see [`crate::reshard`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::ring::{Ring, RingError};

/// How often a shard reports.
pub const REPORT_EVERY: Duration = Duration::from_millis(250);
/// How long a report lives: a shard silent this long (four reports missed) is down. A failover
/// acts after a further silence of the shards' `--failover-after-secs` (see
/// [`crate::failover`]).
pub const REPORT_TTL: Duration = Duration::from_secs(1);

/// What a shard says about itself. The figures after `placements_per_sec` are for operators
/// (an edge's `/metrics` shows them per shard); absent in an older shard's report, they read 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    /// Its id.
    pub id: String,
    /// The ring epoch it works at.
    pub epoch: u64,
    /// How many tiles it owns.
    pub owned: usize,
    /// How many of them it is still loading after a ring change.
    pub acquiring: usize,
    /// Placements it made durable per second, lately.
    pub placements_per_sec: f64,
    /// When it began to work at `epoch` (epoch ms): it stopped taking placements for the tiles
    /// it lost then, and began loading those it gained.
    #[serde(default)]
    pub epoch_since_ms: Option<i64>,
    /// When every tile it gained at `epoch` was loaded and serving (epoch ms).
    #[serde(default)]
    pub ready_at_ms: Option<i64>,
    /// Placements it made durable since it started.
    #[serde(default)]
    pub placed_total: u64,
    /// Placements waiting to be written.
    #[serde(default)]
    pub queue_depth: usize,
    /// Group commits since it started.
    #[serde(default)]
    pub writes_total: u64,
    /// How long a group commit takes lately (a moving average), in seconds.
    #[serde(default)]
    pub write_seconds: f64,
}

/// Stores the ring only while the caller holds the change lock, and announces it (`KEYS[1]`
/// lock, `KEYS[2]` ring, `KEYS[3]` the channel, `ARGV[1]` the holder's token, `ARGV[2]` the ring,
/// `ARGV[3]` its epoch).
const REPLACE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', KEYS[3], ARGV[3])
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
    /// For the pub/sub connection of [`RingStore::watch`], when it follows announcements.
    announcements: Option<redis::Client>,
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
            announcements: None,
            prefix: prefix.to_owned(),
            key: format!("{prefix}ring"),
        }
    }

    /// Makes [`RingStore::watch`] follow the announcements of changes too, over a pub/sub
    /// connection of `client`, so nodes see a change within a round trip instead of a poll.
    pub fn following_announcements(mut self, client: redis::Client) -> Self {
        self.announcements = Some(client);
        self
    }

    fn channel(&self) -> String {
        format!("{}ring:changed", self.prefix)
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
            place_tiles::clock::now_ms()
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
            .key(self.channel())
            .arg(&lock.token)
            .arg(serde_json::to_string(ring)?)
            .arg(ring.epoch())
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
        let announced = Arc::new(Notify::new());
        if let Some(client) = self.announcements.clone() {
            tokio::spawn(follow_announcements(
                client,
                self.channel(),
                Arc::downgrade(&announced),
            ));
        }
        tokio::spawn(async move {
            let mut every = tokio::time::interval(POLL_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_raw: Option<String> = None;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = announced.notified() => {}
                }
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

/// Wakes the ring's watcher (`wake`) whenever a change is announced on `channel`, for as long as
/// the watcher lives, subscribing again after a break (with backoff and jitter; the watcher's
/// poll covers the gap).
async fn follow_announcements(client: redis::Client, channel: String, wake: Weak<Notify>) {
    let mut backoff = Duration::from_millis(100);
    while wake.strong_count() > 0 {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    loop {
                        // Checks now and then that the watcher still lives, even when nothing
                        // is announced.
                        match tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
                            Ok(Some(_)) => match wake.upgrade() {
                                Some(wake) => wake.notify_one(),
                                None => return,
                            },
                            Ok(None) => break,
                            Err(_) if wake.strong_count() == 0 => return,
                            Err(_) => {}
                        }
                    }
                    warn!("the ring's announcements stopped; subscribing again");
                }
                Err(error) => warn!(%error, "cannot follow the ring's announcements"),
            },
            Err(error) => warn!(%error, "cannot connect to follow the ring's announcements"),
        }
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::test_shard as shard;

    #[tokio::test]
    async fn a_stored_change_is_announced_and_wakes_the_watchers_that_follow() {
        let client = redis::Client::open("redis://127.0.0.1:6379").expect("url");
        let redis = client
            .get_connection_manager()
            .await
            .expect("Redis must be running on 127.0.0.1:6379");
        let prefix = format!("place:test_announce_{}:", rand::random::<u32>());
        let store = RingStore::new(redis.clone(), &prefix);
        let wake = Arc::new(Notify::new());
        tokio::spawn(follow_announcements(
            client,
            store.channel(),
            Arc::downgrade(&wake),
        ));
        // Wait until the follower listens.
        let started = tokio::time::Instant::now();
        loop {
            let (_, listeners): (String, u32) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(store.channel())
                .query_async(&mut redis.clone())
                .await
                .expect("numsub");
            if listeners > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never subscribed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first = Ring::new(1, vec![shard(1)]).expect("ring");
        store.init(&first, false).await.expect("init");
        let lock = store
            .lock_changes("test", Duration::from_secs(5))
            .await
            .expect("redis")
            .expect("free");
        store
            .replace(&lock, &first.with_shard(shard(2)).expect("add"))
            .await
            .expect("replace");
        let announced = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
        store.unlock_changes(&lock).await.expect("unlock");
        let _: () = redis::cmd("DEL")
            .arg(&store.key)
            .query_async(&mut redis.clone())
            .await
            .expect("clean up");
        announced.expect("the change woke the follower");
    }
}
