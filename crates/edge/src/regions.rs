//! Protected regions: rectangles of the canvas where placing is restricted, in one of three
//! modes ([`RegionMode`]): `locked` (only administrators place: `REGION_LOCKED`), `slow` (a
//! cooldown of its own, longer than the canvas's: `RATE_LIMITED`) and `registered` (guests may
//! not place: `REGION_REGISTERED_ONLY`). Administrators are never held by a region.
//!
//! Regions are kept in the store beside the audit log (SQLite in `place serve`, PostgreSQL in the
//! cluster; [`place_store::regions`]) and every edge holds the ones in force in memory
//! ([`RegionIndex`]), so a placement is checked without a round trip to any store. A change
//! (made through any edge, by an administrator or by the spike alarm) is written to the store and
//! the audit log, then announced on the live changes ([`crate::live`]): every edge reads the
//! regions again within a second. Each edge also reads them every [`REGIONS_REFRESH`], in case
//! an announcement was lost. A region with an end (`until`) stops counting at that moment on
//! every edge by itself.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use place_protocol::{ErrorCode, ErrorMessage};
use place_store::{Rect, RegionMode, RegionRecord, StoreError, User};
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::live::LiveEvent;
use crate::moderation::ModerationError;
use crate::Edge;

/// How often an edge reads the regions again even when no change is announced.
pub const REGIONS_REFRESH: Duration = Duration::from_secs(5);
/// Regions in force at once, at most: each placement looks at every one.
pub const MAX_REGIONS: usize = 256;
/// A slow region's cooldown when none is given.
pub const DEFAULT_SLOW_COOLDOWN: Duration = Duration::from_secs(60);
/// The actor of the audit log rows the server writes by itself (the spike alarm).
pub const SERVER_ACTOR: i64 = 0;

/// A region in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Its id.
    pub id: i64,
    /// Where.
    pub rect: Rect,
    /// What it restricts.
    pub mode: RegionMode,
    /// A slow region's cooldown (ms).
    pub cooldown_ms: Option<i64>,
    /// When it ends by itself (epoch ms).
    pub until_ms: Option<i64>,
    /// Who made it: an administrator's id, or [`SERVER_ACTOR`].
    pub created_by: i64,
    /// When it was made (epoch ms).
    pub created_at: i64,
}

impl Region {
    fn from_record(r: RegionRecord) -> Self {
        Self {
            id: r.id,
            rect: Rect {
                x: r.x,
                y: r.y,
                width: r.width,
                height: r.height,
            },
            mode: r.mode,
            cooldown_ms: r.cooldown_ms,
            until_ms: r.until_ms,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }

    fn contains(&self, x: u32, y: u32) -> bool {
        let r = &self.rect;
        x >= r.x
            && y >= r.y
            && u64::from(x) < u64::from(r.x) + u64::from(r.width)
            && u64::from(y) < u64::from(r.y) + u64::from(r.height)
    }

    fn in_force(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|until| now_ms < until)
    }

    /// Why it holds, as a player reads it (the page's tooltip).
    pub fn reason(&self) -> String {
        match self.mode {
            RegionMode::Locked => "Locked by the moderators: only they may place here".into(),
            RegionMode::Registered => "Registered players only: guests may not place here".into(),
            RegionMode::Slow => format!(
                "Slowed down{}: one pixel every {} s here",
                if self.created_by == SERVER_ACTOR {
                    " after a surge of placements"
                } else {
                    " by the moderators"
                },
                self.cooldown_ms.unwrap_or(0) / 1000
            ),
        }
    }

    /// The region as the API shows it.
    pub fn view(&self) -> RegionView {
        RegionView {
            id: self.id.to_string(),
            x: self.rect.x,
            y: self.rect.y,
            width: self.rect.width,
            height: self.rect.height,
            mode: self.mode.as_str(),
            cooldown_seconds: self.cooldown_ms.map(|ms| ms / 1000),
            until: self.until_ms,
            automatic: self.created_by == SERVER_ACTOR,
            created_at: self.created_at,
            reason: self.reason(),
        }
    }
}

/// A region as the API shows it (players' `GET /api/v1/regions` and the admin routes).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionView {
    id: String,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// `locked`, `slow` or `registered`.
    mode: &'static str,
    /// A `slow` region's own cooldown.
    cooldown_seconds: Option<i64>,
    /// When it ends (epoch ms); `None`: when lifted.
    until: Option<i64>,
    /// Made by the spike alarm, not by an admin.
    automatic: bool,
    created_at: i64,
    /// The sentence a refused player is shown.
    reason: String,
}

/// `{"regions": [...]}`: the regions in force.
#[derive(Debug, Serialize)]
pub struct RegionList {
    regions: Vec<RegionView>,
}

/// Who is placing, as far as regions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placer {
    /// An administrator: no region holds them.
    pub is_admin: bool,
    /// A guest: refused in `registered` regions.
    pub is_guest: bool,
}

impl Placer {
    /// The placer `user` is.
    pub fn of(user: &User) -> Self {
        Self {
            is_admin: user.is_admin,
            is_guest: user.is_guest,
        }
    }
}

/// What the regions say about one placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Only the canvas's cooldown holds.
    Free,
    /// The pixel lies in a slow region: this cooldown holds (the longest, if several).
    Slow {
        /// The cooldown (ms).
        cooldown_ms: i64,
    },
    /// The pixel lies in a locked region.
    Locked,
    /// The pixel lies in a region for registered players and the placer is a guest.
    RegisteredOnly,
}

impl Rule {
    /// The cooldown a placement under this rule takes (`canvas_cooldown_ms`, or a slow region's
    /// when longer), or its refusal.
    pub fn cooldown_ms(self, canvas_cooldown_ms: i64) -> Result<i64, ErrorMessage> {
        match self {
            Rule::Free => Ok(canvas_cooldown_ms),
            Rule::Slow { cooldown_ms } => Ok(cooldown_ms.max(canvas_cooldown_ms)),
            Rule::Locked => Err(ErrorMessage::new(
                ErrorCode::RegionLocked,
                "this area is locked by the moderators: only they may place here",
            )),
            Rule::RegisteredOnly => Err(ErrorMessage::new(
                ErrorCode::RegionRegisteredOnly,
                "only registered players may place in this area: sign up to paint here",
            )),
        }
    }

    /// The refusal of a placement under this rule whose cooldown has `remaining_ms` left: the
    /// canvas's cooldown (`cooldownRemaining` set), or a slow region's, which says so in its
    /// message and leaves `cooldownRemaining` out (the player may place elsewhere sooner).
    pub fn cooling_down(self, remaining_ms: i64) -> ErrorMessage {
        let seconds = remaining_ms as f64 / 1000.0;
        match self {
            Rule::Slow { cooldown_ms } => ErrorMessage::new(
                ErrorCode::RateLimited,
                format!(
                    "this area is slowed down to one pixel every {} s: {seconds:.1} s left here",
                    cooldown_ms / 1000
                ),
            ),
            _ => {
                let mut error = ErrorMessage::new(
                    ErrorCode::RateLimited,
                    format!("cooldown: {seconds:.1} s left"),
                );
                error.cooldown_remaining = Some(remaining_ms.max(0) as u64);
                error
            }
        }
    }
}

/// The regions in force, in memory on every edge.
#[derive(Default)]
pub struct RegionIndex {
    regions: RwLock<Arc<Vec<Region>>>,
    /// Reads of the store, one at a time, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl RegionIndex {
    /// What holds for `placer` at pixel `(x, y)` at `now_ms`: a locked region first, then a
    /// registered-only one (for a guest), then the longest slow cooldown.
    pub fn rule(&self, x: u32, y: u32, now_ms: i64, placer: Placer) -> Rule {
        if placer.is_admin {
            return Rule::Free;
        }
        let regions = Arc::clone(&self.regions.read());
        let mut rule = Rule::Free;
        for region in regions
            .iter()
            .filter(|r| r.contains(x, y) && r.in_force(now_ms))
        {
            rule = match (region.mode, rule) {
                (RegionMode::Locked, _) => return Rule::Locked,
                (RegionMode::Registered, _) if placer.is_guest => Rule::RegisteredOnly,
                (RegionMode::Slow, Rule::Free) => Rule::Slow {
                    cooldown_ms: region.cooldown_ms.unwrap_or(0),
                },
                (RegionMode::Slow, Rule::Slow { cooldown_ms }) => Rule::Slow {
                    cooldown_ms: cooldown_ms.max(region.cooldown_ms.unwrap_or(0)),
                },
                (_, rule) => rule,
            };
        }
        rule
    }

    /// The regions in force at `now_ms`.
    pub fn in_force(&self, now_ms: i64) -> Vec<Region> {
        self.regions
            .read()
            .iter()
            .filter(|r| r.in_force(now_ms))
            .cloned()
            .collect()
    }

    /// The regions in force at `now_ms`, as the API lists them.
    pub fn list(&self, now_ms: i64) -> RegionList {
        RegionList {
            regions: self.in_force(now_ms).iter().map(Region::view).collect(),
        }
    }

    fn replace(&self, regions: Vec<Region>) {
        *self.regions.write() = Arc::new(regions);
    }
}

/// A region an administrator (or the spike alarm) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegion {
    /// Where (already checked to lie on the canvas).
    pub rect: Rect,
    /// What it restricts.
    pub mode: RegionMode,
    /// A slow region's cooldown.
    pub cooldown: Option<Duration>,
    /// When it ends by itself (epoch ms).
    pub until_ms: Option<i64>,
}

/// A region that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// Too many in force.
    #[error("at most {MAX_REGIONS} regions may be in force at once")]
    TooMany,
    /// The end is not in the future.
    #[error("until must be a time in the future (epoch ms)")]
    EndsInThePast,
    /// A slow region's cooldown out of range, or a cooldown for another mode.
    #[error("{0}")]
    Cooldown(String),
    /// Storing or announcing it failed.
    #[error(transparent)]
    Moderation(#[from] ModerationError),
}

impl From<StoreError> for RegionError {
    fn from(e: StoreError) -> Self {
        Self::Moderation(e.into())
    }
}

/// A region's details in the audit log.
fn audit_details(region: &Region) -> Value {
    let mut details = serde_json::to_value(region.view()).unwrap_or_default();
    if let Some(details) = details.as_object_mut() {
        details.remove("reason");
        details.remove("createdAt");
        details.insert("regionId".into(), details["id"].clone());
        details.remove("id");
    }
    details
}

impl Edge {
    /// The regions this edge holds, for the placement path.
    pub fn regions(&self) -> &RegionIndex {
        &self.regions
    }

    /// Makes a region in the name of `actor` (an administrator's id, or [`SERVER_ACTOR`]):
    /// stored, written to the audit log (`region-add`), in force on this edge when this returns
    /// and on every other within a second.
    pub async fn add_region(&self, actor: i64, new: NewRegion) -> Result<Region, RegionError> {
        let now = self.now_ms();
        if new.until_ms.is_some_and(|until| until <= now) {
            return Err(RegionError::EndsInThePast);
        }
        let cooldown_ms = match (new.mode, new.cooldown) {
            (RegionMode::Slow, cooldown) => {
                let cooldown = cooldown.unwrap_or(DEFAULT_SLOW_COOLDOWN);
                let ms = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
                if !(1_000..=crate::cooldown::MAX_COOLDOWN_MS).contains(&ms) {
                    return Err(RegionError::Cooldown(format!(
                        "a slow region's cooldownSeconds must be 1 to {}",
                        crate::cooldown::MAX_COOLDOWN_MS / 1000
                    )));
                }
                Some(ms)
            }
            (_, Some(_)) => {
                return Err(RegionError::Cooldown(
                    "cooldownSeconds is for slow regions only".into(),
                ))
            }
            (_, None) => None,
        };
        let store = self.accounts.store();
        if store.active_regions(now).await?.len() >= MAX_REGIONS {
            return Err(RegionError::TooMany);
        }
        let mut record = RegionRecord {
            id: 0,
            x: new.rect.x,
            y: new.rect.y,
            width: new.rect.width,
            height: new.rect.height,
            mode: new.mode,
            cooldown_ms,
            until_ms: new.until_ms,
            created_by: actor,
            created_at: now,
        };
        record.id = store.add_region(&record).await?;
        let region = Region::from_record(record);
        self.audit_as(actor, "region-add", &audit_details(&region))
            .await?;
        info!(
            actor,
            region = region.id,
            mode = region.mode.as_str(),
            "region added"
        );
        self.regions_changed().await?;
        Ok(region)
    }

    /// Deletes a region in the name of `actor`; `None` when there is none with this id.
    pub async fn delete_region(
        &self,
        actor: &User,
        id: i64,
    ) -> Result<Option<Region>, ModerationError> {
        let store = self.accounts.store();
        let Some(record) = store.delete_region(id).await? else {
            return Ok(None);
        };
        let region = Region::from_record(record);
        self.audit_as(actor.id, "region-remove", &audit_details(&region))
            .await?;
        info!(actor = actor.id, region = id, "region removed");
        self.regions_changed().await?;
        Ok(Some(region))
    }

    /// Reads the regions again here, then has every other edge do so.
    async fn regions_changed(&self) -> Result<(), ModerationError> {
        self.reload_regions().await?;
        self.live_bus
            .announce(&self.live, LiveEvent::RegionsChanged)
            .await?;
        Ok(())
    }

    /// Reads the regions in force from the store into this edge's index.
    pub async fn reload_regions(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.regions.reloading.lock().await;
        let records = self.accounts.store().active_regions(self.now_ms()).await?;
        let regions: Vec<Region> = records.into_iter().map(Region::from_record).collect();
        debug!(regions = regions.len(), "regions read");
        self.regions.replace(regions);
        Ok(())
    }
}

/// Keeps this edge's regions current for as long as the edge lives (whoever builds the edge
/// reads them once before serving): read at once, on every
/// announced change, and every [`REGIONS_REFRESH`].
pub(crate) async fn keep_current(edge: std::sync::Weak<Edge>) {
    let Some(mut changes) = edge.upgrade().map(|e| e.live.watch_regions()) else {
        return;
    };
    let mut every = tokio::time::interval(REGIONS_REFRESH);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            changed = changes.changed() => if changed.is_err() { return },
        }
        let Some(edge) = edge.upgrade() else { return };
        if let Err(error) = edge.reload_regions().await {
            warn!(%error, "cannot read the regions now");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: i64, mode: RegionMode, cooldown_ms: Option<i64>, until: Option<i64>) -> Region {
        Region {
            id,
            rect: Rect {
                x: 10,
                y: 10,
                width: 10,
                height: 10,
            },
            mode,
            cooldown_ms,
            until_ms: until,
            created_by: 1,
            created_at: 0,
        }
    }

    const GUEST: Placer = Placer {
        is_admin: false,
        is_guest: true,
    };
    const MEMBER: Placer = Placer {
        is_admin: false,
        is_guest: false,
    };
    const ADMIN: Placer = Placer {
        is_admin: true,
        is_guest: false,
    };

    #[test]
    fn a_region_holds_inside_its_rectangle_only_and_until_it_ends() {
        let index = RegionIndex::default();
        index.replace(vec![region(1, RegionMode::Locked, None, Some(100))]);
        assert_eq!(index.rule(10, 10, 0, MEMBER), Rule::Locked);
        assert_eq!(index.rule(19, 19, 0, MEMBER), Rule::Locked);
        assert_eq!(index.rule(20, 19, 0, MEMBER), Rule::Free, "right of it");
        assert_eq!(index.rule(9, 10, 0, MEMBER), Rule::Free, "left of it");
        assert_eq!(index.rule(10, 20, 0, MEMBER), Rule::Free, "below it");
        assert_eq!(index.rule(10, 10, 100, MEMBER), Rule::Free, "ended");
        assert_eq!(index.in_force(100), []);
    }

    #[test]
    fn modes_combine_locked_first_then_registered_then_the_longest_slow_cooldown() {
        let index = RegionIndex::default();
        index.replace(vec![
            region(1, RegionMode::Slow, Some(30_000), None),
            region(2, RegionMode::Slow, Some(90_000), None),
            region(3, RegionMode::Registered, None, None),
        ]);
        assert_eq!(index.rule(12, 12, 0, GUEST), Rule::RegisteredOnly);
        assert_eq!(
            index.rule(12, 12, 0, MEMBER),
            Rule::Slow {
                cooldown_ms: 90_000
            }
        );
        assert_eq!(index.rule(12, 12, 0, ADMIN), Rule::Free);
        index.replace(vec![
            region(3, RegionMode::Registered, None, None),
            region(4, RegionMode::Locked, None, None),
        ]);
        assert_eq!(index.rule(12, 12, 0, GUEST), Rule::Locked);
        assert_eq!(index.rule(12, 12, 0, ADMIN), Rule::Free, "admins place");
    }

    #[test]
    fn a_region_at_the_canvas_limit_does_not_overflow() {
        let index = RegionIndex::default();
        let mut far = region(1, RegionMode::Locked, None, None);
        far.rect = Rect {
            x: u32::MAX - 1,
            y: u32::MAX - 1,
            width: 1,
            height: 1,
        };
        index.replace(vec![far]);
        assert_eq!(
            index.rule(u32::MAX - 1, u32::MAX - 1, 0, MEMBER),
            Rule::Locked
        );
        assert_eq!(index.rule(u32::MAX, u32::MAX, 0, MEMBER), Rule::Free);
    }
}
