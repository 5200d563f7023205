//! What moderation reads and writes, and "the colour before": the pure part of a rollback.
//!
//! A rollback (or a reset) **reverts** placements: they stay in the append-only event log, and a
//! row of `reverted_events` says which action took them back. Each pixel they touched then gets
//! the colour of its latest placement that was neither reverted nor itself a restore (or 0, the
//! background, when there is none); the edge applies that colour as an ordinary placement by the
//! acting administrator, carrying the action's id (`pixel_events.action_id`). So:
//!
//! - a replay of the whole log still equals the canvas (restores are events like any other);
//! - a later rollback computes from the players' placements only, so rolling back B and then A
//!   leaves 0 where only A and B painted, however the restores fell in between;
//! - after any sequence of rollbacks with no placement racing them, every pixel shows the replay
//!   of the player placements never reverted (property-tested below).
//!
//! [`Planner`] folds the events of the affected pixels, in each pixel's order, into the restores
//! to make, skipping pixels already at their colour.

use std::collections::HashMap;

use sqlx::{Database, Encode, QueryBuilder, Type};

/// A rectangle of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl Rect {
    /// Whether `(x, y)` lies inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.width && y - self.y < self.height
    }
}

/// Which placements an action reverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// A user's placements at or after `since_ms`.
    User {
        /// The user.
        user_id: i64,
        /// Epoch ms.
        since_ms: i64,
    },
    /// Every placement inside `rect` placed in `[from_ms, to_ms]` (a reset: all time).
    Area {
        /// The rectangle.
        rect: Rect,
        /// Epoch ms, inclusive.
        from_ms: i64,
        /// Epoch ms, inclusive.
        to_ms: i64,
    },
}

impl Selection {
    /// Appends the selection as SQL conditions on `pixel_events` columns (no leading `AND`).
    pub(crate) fn push_where<'a, DB>(&self, q: &mut QueryBuilder<'a, DB>)
    where
        DB: Database,
        i64: Encode<'a, DB> + Type<DB>,
    {
        match *self {
            Selection::User { user_id, since_ms } => {
                q.push("user_id = ").push_bind(user_id);
                q.push(" AND placed_at >= ").push_bind(since_ms);
            }
            Selection::Area {
                rect,
                from_ms,
                to_ms,
            } => {
                let right = i64::from(rect.x) + i64::from(rect.width) - 1;
                let bottom = i64::from(rect.y) + i64::from(rect.height) - 1;
                q.push("x BETWEEN ")
                    .push_bind(i64::from(rect.x))
                    .push(" AND ")
                    .push_bind(right);
                q.push(" AND y BETWEEN ")
                    .push_bind(i64::from(rect.y))
                    .push(" AND ")
                    .push_bind(bottom);
                q.push(" AND placed_at BETWEEN ")
                    .push_bind(from_ms)
                    .push(" AND ")
                    .push_bind(to_ms);
            }
        }
    }
}

/// `INSERT INTO reverted_events` of the player placements `selection` names, not yet reverted,
/// for action `action_id`.
pub(crate) fn mark_reverted<'a, DB>(action_id: i64, selection: &Selection) -> QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("INSERT INTO reverted_events (event_id, action_id) SELECT id, ");
    q.push_bind(action_id);
    q.push(" FROM pixel_events WHERE action_id IS NULL AND ");
    selection.push_where(&mut q);
    q.push(" ON CONFLICT (event_id) DO NOTHING");
    q
}

/// Every event of the pixels the player placements `selection` names touched, as
/// `(x, y, color, restore, reverted)`, each pixel's in its tile's seq order (the order the shard
/// applied them in, in both engines).
pub(crate) fn affected_events<'a, DB>(selection: &Selection) -> QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(
        "SELECT CAST(e.x AS BIGINT), CAST(e.y AS BIGINT), CAST(e.color AS BIGINT), \
         e.action_id IS NOT NULL, r.event_id IS NOT NULL \
         FROM pixel_events e LEFT JOIN reverted_events r ON r.event_id = e.id \
         WHERE (e.x, e.y) IN (SELECT x, y FROM pixel_events WHERE action_id IS NULL AND ",
    );
    selection.push_where(&mut q);
    q.push(") ORDER BY e.tile_seq");
    q
}

/// One event of the log as "the colour before" needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Palette index.
    pub color: u8,
    /// It restored a pixel for a moderation action.
    pub restore: bool,
    /// A moderation action reverted it.
    pub reverted: bool,
}

/// A pixel to set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restore {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// The colour it gets.
    pub color: u8,
}

/// What reverting found: the action's audit log id, the placements it newly reverted and the
/// pixels to set back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertPlan {
    /// The audit log row of the action.
    pub action_id: i64,
    /// Placements this action reverted (those reverted before are not counted again).
    pub reverted: u64,
    /// Pixels whose colour must change, in row-major order.
    pub restores: Vec<Restore>,
}

/// Folds events into the restores to make. Feed every event of each affected pixel, each
/// pixel's in the order they were applied (the events of different pixels may interleave).
#[derive(Debug, Default)]
pub struct Planner {
    /// Per pixel: its colour now, and the colour its kept placements give it.
    pixels: HashMap<(u32, u32), (u8, u8)>,
}

impl Planner {
    /// Takes the next event of its pixel.
    pub fn push(&mut self, e: LoggedEvent) {
        let (current, kept) = self.pixels.entry((e.x, e.y)).or_insert((0, 0));
        *current = e.color;
        if !e.restore && !e.reverted {
            *kept = e.color;
        }
    }

    /// The pixels whose colour differs from what their kept placements give, row-major.
    pub fn finish(self) -> Vec<Restore> {
        let mut restores: Vec<Restore> = self
            .pixels
            .into_iter()
            .filter(|(_, (current, kept))| current != kept)
            .map(|((x, y), (_, color))| Restore { x, y, color })
            .collect();
        restores.sort_unstable_by_key(|r| (r.y, r.x));
        restores
    }
}

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its id (newest is largest).
    pub id: i64,
    /// The administrator who acted.
    pub actor_id: i64,
    /// Their name, if the user still exists.
    pub actor_name: Option<String>,
    /// What (`ban-user`, `rollback`, ...).
    pub action: String,
    /// The details, a JSON object as text.
    pub details: String,
    /// When, epoch ms.
    pub created_at: i64,
}

/// Placement figures for the admin panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementStats {
    /// Placements in the last minute.
    pub last_minute: i64,
    /// The users with the most placements in the last hour, most first: `(id, name, count)`.
    pub top_placers: Vec<(i64, Option<String>, i64)>,
    /// Banned users.
    pub banned: i64,
}

/// How many top placers the stats list.
pub const TOP_PLACERS: i64 = 10;

impl From<(i64, i64, Option<String>, String, String, i64)> for AuditEntry {
    fn from(r: (i64, i64, Option<String>, String, String, i64)) -> Self {
        Self {
            id: r.0,
            actor_id: r.1,
            actor_name: r.2,
            action: r.3,
            details: r.4,
            created_at: r.5,
        }
    }
}

/// A `LIKE` pattern (with `\` as the escape) for names starting with `prefix`, lower-cased.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query_plan::plan;
    use crate::Store;
    use proptest::prelude::*;

    /// A rollback by user reads the user's placements through the history's index on
    /// `(user_id, id)`: the one index a user's placements have (migration 0011).
    #[tokio::test]
    async fn a_rollback_by_user_reads_the_users_index() {
        let dir = tempfile::tempdir().expect("test step");
        let store = Store::open_sqlite(dir.path()).await.expect("test step");
        let selection = Selection::User {
            user_id: 7,
            since_ms: 1_000,
        };
        for query in [mark_reverted(1, &selection), affected_events(&selection)] {
            let plan = plan(&store, query).await;
            assert!(
                plan.contains("USING INDEX pixel_events_user_id (user_id=?)"),
                "{plan}"
            );
        }
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pixel_events' \
             ORDER BY name",
        )
        .fetch_all(&store.embedded().expect("sqlite").pool)
        .await
        .expect("test step");
        assert_eq!(
            indexes,
            [
                "pixel_events_pixel_seq",
                "pixel_events_placed_at",
                "pixel_events_user_id"
            ]
        );
    }

    fn at(x: u32, color: u8) -> LoggedEvent {
        LoggedEvent {
            x,
            y: 0,
            color,
            restore: false,
            reverted: false,
        }
    }

    #[test]
    fn the_colour_before_skips_reverted_placements_and_restores() {
        let mut planner = Planner::default();
        // Pixel 0: A paints 1, B paints 2 (reverted): back to 1.
        planner.push(at(0, 1));
        planner.push(LoggedEvent {
            reverted: true,
            ..at(0, 2)
        });
        // Pixel 1: only a reverted placement, then a restore to 4 from an earlier action: 0.
        planner.push(LoggedEvent {
            reverted: true,
            ..at(1, 3)
        });
        planner.push(LoggedEvent {
            restore: true,
            ..at(1, 4)
        });
        // Pixel 2: a later player's placement stands: nothing to do.
        planner.push(LoggedEvent {
            reverted: true,
            ..at(2, 5)
        });
        planner.push(at(2, 6));
        assert_eq!(
            planner.finish(),
            vec![
                Restore {
                    x: 0,
                    y: 0,
                    color: 1
                },
                Restore {
                    x: 1,
                    y: 0,
                    color: 0
                },
            ]
        );
    }

    /// A step of a moderated game on a few pixels.
    #[derive(Debug, Clone)]
    enum Step {
        Place { user: i64, pixel: u32, color: u8 },
        RollBackUser { user: i64, since: usize },
        Reset { from_pixel: u32, to_pixel: u32 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3i64, 0..4u32, 1..5u8).prop_map(|(user, pixel, color)| Step::Place { user, pixel, color }),
            1 => (0..3i64, 0..20usize).prop_map(|(user, since)| Step::RollBackUser { user, since }),
            1 => (0..4u32, 0..4u32).prop_map(|(a, b)| Step::Reset { from_pixel: a.min(b), to_pixel: a.max(b) }),
        ]
    }

    /// An event of the simulated log.
    #[derive(Debug, Clone, Copy)]
    struct Event {
        pixel: u32,
        color: u8,
        user: i64,
        time: usize,
        restore: bool,
        reverted: bool,
    }

    proptest! {
        /// After any sequence of placements, rollbacks and resets (none racing), every pixel
        /// shows the replay of the player placements never reverted, and the canvas is the
        /// replay of the whole log.
        #[test]
        fn rollbacks_leave_the_replay_of_the_placements_kept(steps in prop::collection::vec(step(), 1..40)) {
            let mut log: Vec<Event> = Vec::new();
            let mut canvas = [0u8; 4];
            for (time, s) in steps.into_iter().enumerate() {
                let selected: Box<dyn Fn(&Event) -> bool> = match s {
                    Step::Place { user, pixel, color } => {
                        log.push(Event { pixel, color, user, time, restore: false, reverted: false });
                        canvas[pixel as usize] = color;
                        continue;
                    }
                    Step::RollBackUser { user, since } => Box::new(move |e: &Event| e.user == user && e.time >= since),
                    Step::Reset { from_pixel, to_pixel } => Box::new(move |e: &Event| (from_pixel..=to_pixel).contains(&e.pixel)),
                };
                let mut affected = Vec::new();
                for e in log.iter_mut().filter(|e| !e.restore && selected(e)) {
                    e.reverted = true;
                    affected.push(e.pixel);
                }
                let mut planner = Planner::default();
                for e in log.iter().filter(|e| affected.contains(&e.pixel)) {
                    planner.push(LoggedEvent { x: e.pixel, y: 0, color: e.color, restore: e.restore, reverted: e.reverted });
                }
                for r in planner.finish() {
                    prop_assert_ne!(canvas[r.x as usize], r.color, "a restore that changes nothing");
                    log.push(Event { pixel: r.x, color: r.color, user: 99, time, restore: true, reverted: false });
                    canvas[r.x as usize] = r.color;
                }
            }
            let mut kept = [0u8; 4];
            let mut replay = [0u8; 4];
            for e in &log {
                replay[e.pixel as usize] = e.color;
                if !e.restore && !e.reverted {
                    kept[e.pixel as usize] = e.color;
                }
            }
            prop_assert_eq!(canvas, replay);
            prop_assert_eq!(canvas, kept);
        }
    }

    #[test]
    fn name_prefixes_match_literally() {
        assert_eq!(like_prefix("Guest_1%"), "guest\\_1\\%%");
    }

    #[test]
    fn rects_contain_their_pixels_only() {
        let r = Rect {
            x: 10,
            y: 20,
            width: 2,
            height: 3,
        };
        assert!(r.contains(10, 20) && r.contains(11, 22));
        assert!(!r.contains(12, 20) && !r.contains(10, 23) && !r.contains(9, 21));
    }
}
