//! The ring in Redis: one JSON value under the cluster's key prefix, read by every edge and
//! shard. Watchers poll it (four times a second), so a change reaches every node within about
//! 250 ms without depending on a pub/sub connection staying up.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ring::{Ring, RingError};

const POLL_EVERY: Duration = Duration::from_millis(250);

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
    key: String,
}

impl RingStore {
    /// The ring under `{prefix}ring`.
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            key: format!("{prefix}ring"),
        }
    }

    /// The stored ring, if any.
    pub async fn load(&self) -> Result<Option<Ring>, RingStoreError> {
        let value: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(value.map(|v| serde_json::from_str(&v)).transpose()?)
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
            loop {
                every.tick().await;
                if tx.is_closed() {
                    return;
                }
                match store.load().await {
                    Ok(Some(ring)) if ring.epoch() > tx.borrow().epoch() => {
                        info!(
                            epoch = ring.epoch(),
                            shards = ring.shards().len(),
                            "ring changed"
                        );
                        let _ = tx.send(Arc::new(ring));
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "cannot read the ring; keeping the last one"),
                }
            }
        });
        Ok(rx)
    }
}
