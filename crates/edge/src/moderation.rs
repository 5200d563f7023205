//! Moderation as the edge carries it out: bans, the cooldown, rollbacks and resets, each written
//! to the audit log (the embedded store in `place serve`, PostgreSQL in the cluster).
//!
//! A rollback or a reset goes in two steps:
//! 1. **Plan** (one store call, [`place_store::moderation`]): the action's audit row and the marks
//!    on the placements it reverts are written in one transaction; then every event of the pixels
//!    concerned is read and folded into "the colour before" of each pixel, skipping the reverted
//!    placements and earlier restores, and leaving out pixels already at that colour.
//! 2. **Apply**: each colour is placed as an ordinary placement by the acting administrator,
//!    carrying the action's id, through the normal shard path (durable, seq'd, sent to watchers
//!    as `pixels` deltas), without cooldown. Placements go in batches of [`RESTORE_BATCH`], at
//!    most [`RESTORE_CONCURRENCY`] at once (each batch split per owning shard in the cluster).
//!
//! A player's placement racing a rollback: last write wins. A placement applied before the
//! restore of its pixel is overwritten by it (it stays in the log, not reverted, and a later
//! rollback of anyone on that pixel brings it back); one applied after stands. Either way the
//! canvas equals a replay of the log.

use std::time::Duration;

use futures_util::{stream, StreamExt};
use place_shard::PlaceRequest;
use place_store::{Restore, RevertPlan, Selection, StoreError, User};
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::accounts::{Accounts, AccountsError};
use crate::live::LiveError;
use crate::{now_ms, Edge};

/// Restoring placements per batch sent to the shards.
pub const RESTORE_BATCH: usize = 4096;
/// Batches in flight at once.
pub const RESTORE_CONCURRENCY: usize = 4;

/// A moderation action failed.
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    /// The store (audit log, event log, users).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bans in the accounts.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// The cooldown could not be announced (or is out of range).
    #[error(transparent)]
    Live(#[from] LiveError),
}

/// What a rollback or a reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollbackOutcome {
    /// The audit log row.
    pub action_id: i64,
    /// Placements reverted by this action.
    pub reverted: u64,
    /// Pixels set back.
    pub restored: u64,
    /// Pixels that could not be set back now (a shard unavailable): repeating the action
    /// restores them.
    pub failed: u64,
}

impl Edge {
    /// Bans or unbans a user on every edge at once, and writes it to the audit log.
    pub async fn moderate_ban(
        &self,
        actor: &User,
        user: &User,
        banned: bool,
    ) -> Result<(), ModerationError> {
        self.accounts.set_banned(user.id, banned).await?;
        let action = if banned { "ban-user" } else { "unban-user" };
        let details = json!({"userId": user.id.to_string(), "username": user.username});
        self.audit(actor, action, &details).await?;
        info!(actor = actor.id, user_id = user.id, banned, "ban changed");
        Ok(())
    }

    /// Sets the cooldown on every edge, keeps it across restarts (the embedded store; the
    /// cluster keeps it in Redis), and writes it to the audit log.
    pub async fn moderate_cooldown(
        &self,
        actor: &User,
        cooldown: Duration,
    ) -> Result<(), ModerationError> {
        let previous_ms = self.cooldown_ms();
        self.set_cooldown(cooldown).await?;
        let cooldown_ms = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
        if let Accounts::Embedded { store, .. } = &self.accounts {
            store.save_cooldown_ms(cooldown_ms).await?;
        }
        let details = json!({
            "cooldownSeconds": cooldown.as_secs(),
            "previousSeconds": previous_ms / 1000,
        });
        self.audit(actor, "settings", &details).await?;
        Ok(())
    }

    /// Reverts the placements `selection` names and sets every pixel concerned back to its
    /// colour before them (see the module documentation). `details` describe the request in
    /// the audit log; the outcome is added once known.
    pub async fn rollback(
        &self,
        actor: &User,
        action: &str,
        mut details: serde_json::Value,
        selection: Selection,
    ) -> Result<RollbackOutcome, ModerationError> {
        let started = Instant::now();
        let store = self.accounts.store();
        let plan = store
            .revert(actor.id, action, &details.to_string(), &selection, now_ms())
            .await?;
        let planned_ms = started.elapsed().as_millis() as u64;
        let (restored, failed) = self.apply_restores(actor.id, &plan).await;
        let outcome = RollbackOutcome {
            action_id: plan.action_id,
            reverted: plan.reverted,
            restored,
            failed,
        };
        details["reverted"] = json!(outcome.reverted);
        details["restored"] = json!(outcome.restored);
        details["failed"] = json!(outcome.failed);
        store
            .update_audit(plan.action_id, &details.to_string())
            .await?;
        info!(
            actor = actor.id,
            action,
            action_id = plan.action_id,
            reverted = outcome.reverted,
            restored,
            failed,
            planned_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "moderation rollback done"
        );
        Ok(outcome)
    }

    /// Places the plan's colours as the administrator, batch by batch; returns how many were
    /// placed and how many refused.
    async fn apply_restores(&self, actor: i64, plan: &RevertPlan) -> (u64, u64) {
        let placed_at = now_ms();
        let mut requests: Vec<PlaceRequest> = plan
            .restores
            .iter()
            .map(|&Restore { x, y, color }| PlaceRequest {
                x,
                y,
                color,
                user_id: actor,
                placed_at,
                action_id: Some(plan.action_id),
                placement_id: 0,
            })
            .collect();
        // Tile by tile, so a batch touches few tiles (and, in the cluster, few shards).
        let tile_size = place_tiles::TILE_SIZE;
        requests.sort_unstable_by_key(|r| (r.y / tile_size, r.x / tile_size, r.y, r.x));
        let total = requests.len();
        let mut done = 0usize;
        let (mut restored, mut failed) = (0u64, 0u64);
        let batches: Vec<Vec<PlaceRequest>> =
            requests.chunks(RESTORE_BATCH).map(<[_]>::to_vec).collect();
        let shards = &self.shards;
        let mut batches = stream::iter(batches)
            .map(|batch| async move { shards.place_batch(&batch).await })
            .buffer_unordered(RESTORE_CONCURRENCY);
        while let Some(results) = batches.next().await {
            done += results.len();
            for result in results {
                match result {
                    Ok(()) => restored += 1,
                    Err(error) => {
                        failed += 1;
                        if failed == 1 {
                            warn!(%error, action_id = plan.action_id, "a restoring placement was refused");
                        }
                    }
                }
            }
            tracing::debug!(action_id = plan.action_id, done, total, "restoring");
        }
        (restored, failed)
    }

    /// Writes one row of the audit log.
    pub async fn audit(
        &self,
        actor: &User,
        action: &str,
        details: &serde_json::Value,
    ) -> Result<i64, ModerationError> {
        self.audit_as(actor.id, action, details).await
    }

    /// Writes one row of the audit log in the name of `actor_id` (a user, or
    /// [`crate::regions::SERVER_ACTOR`] for what the server does by itself).
    pub async fn audit_as(
        &self,
        actor_id: i64,
        action: &str,
        details: &serde_json::Value,
    ) -> Result<i64, ModerationError> {
        Ok(self
            .accounts
            .store()
            .append_audit(actor_id, action, &details.to_string(), now_ms())
            .await?)
    }
}
