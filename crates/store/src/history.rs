//! The public history of the canvas: who placed what where and when, by pages, and the heatmap of
//! recent activity: queries of [`Store`], written once for both engines.
//!
//! Every listing is newest first and paginated by **keyset**, never by `OFFSET`: a page is "the
//! next `limit` rows below the last key seen", one index range scan whatever the depth:
//!
//! | listing | where | order and key | index (migration 0005) |
//! | --- | --- | --- | --- |
//! | [`Scope::Pixel`] | `x = ? AND y = ?` | `tile_seq` | `pixel_events_pixel_seq (x, y, tile_seq)` |
//! | [`Scope::User`] | `user_id = ?` | `id` | `pixel_events_user_id (user_id, id)` |
//! | [`Scope::Recent`] | everything | `id` | the primary key |
//!
//! A pixel's events are ordered by its tile's seq, the order the shard applied them in (the
//! event id is that order too in `place serve`, but in the cluster several shards take ids from
//! one sequence concurrently). Rolled-back placements are listed, marked `reverted`; placements
//! that restored a pixel for a moderation action are marked `restore`.
//!
//! The heatmap counts the players' placements of a recent window per square cell. It scans at
//! most a fixed number of the newest events (a primary-key range, found through the
//! `placed_at` index), so its cost is bounded however busy the window was; it says when the
//! window held more.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::store::on_engine;
use crate::types::StoreError;
use crate::{PgStore, Store};

/// Which placements a history page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every placement on one pixel.
    Pixel {
        /// Column.
        x: u32,
        /// Row.
        y: u32,
    },
    /// One user's placements.
    User(i64),
    /// Everybody's.
    Recent,
}

impl Scope {
    /// The column that orders and pages this listing.
    fn key_column(self) -> &'static str {
        match self {
            Scope::Pixel { .. } => "e.tile_seq",
            Scope::User(_) | Scope::Recent => "e.id",
        }
    }
}

/// One placement as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The event's id.
    pub id: i64,
    /// The seq it gave its tile.
    pub tile_seq: i64,
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Palette index.
    pub color: u8,
    /// Who placed it.
    pub user_id: i64,
    /// Their name, if the user exists.
    pub username: Option<String>,
    /// When, epoch ms.
    pub placed_at: i64,
    /// The moderation action it carried out, for a placement that restored a pixel (placed by
    /// the acting administrator); `None` for a player's placement.
    pub action_id: Option<i64>,
    /// A moderation action rolled it back.
    pub reverted: bool,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// At most the `limit` asked for.
    pub entries: Vec<HistoryEntry>,
    /// The key to pass as `before` for the next page; `None` when this page is the last.
    pub next: Option<i64>,
}

/// Recent placements counted per cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeatmapCounts {
    /// `(column, row, placements)` of every cell with at least one, cells being
    /// `cell_size`-pixel squares from the top left.
    pub cells: Vec<(u32, u32, i64)>,
    /// Placements counted.
    pub total: i64,
    /// The window held more than the events scanned: only the newest were counted.
    pub truncated: bool,
    /// When the oldest placement counted was made (epoch ms), if any was.
    pub oldest_ms: Option<i64>,
}

/// A row of [`page_query`]: id, tile seq, x, y, colour, user, name, time, action, reverted.
type HistoryRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
    Option<i64>,
    bool,
);

fn entry(r: HistoryRow) -> HistoryEntry {
    HistoryEntry {
        id: r.0,
        tile_seq: r.1,
        x: r.2 as u32,
        y: r.3 as u32,
        color: r.4 as u8,
        user_id: r.5,
        username: r.6,
        placed_at: r.7,
        action_id: r.8,
        reverted: r.9,
    }
}

/// `limit + 1` rows of `scope` with a key below `before`, newest first: the extra row only says
/// whether another page follows. The casts give both stores the same row type.
fn page_query<'a, DB>(scope: Scope, before: Option<i64>, limit: i64) -> QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
{
    let key = scope.key_column();
    let mut q = QueryBuilder::new(
        "SELECT e.id, CAST(e.tile_seq AS BIGINT), CAST(e.x AS BIGINT), CAST(e.y AS BIGINT), \
         CAST(e.color AS BIGINT), e.user_id, u.username, e.placed_at, \
         e.action_id, r.event_id IS NOT NULL \
         FROM pixel_events e LEFT JOIN users u ON u.id = e.user_id \
         LEFT JOIN reverted_events r ON r.event_id = e.id WHERE ",
    );
    match scope {
        Scope::Pixel { x, y } => {
            q.push("e.x = ").push_bind(i64::from(x));
            q.push(" AND e.y = ").push_bind(i64::from(y));
            q.push(" AND ");
        }
        Scope::User(user_id) => {
            q.push("e.user_id = ").push_bind(user_id).push(" AND ");
        }
        Scope::Recent => {}
    }
    q.push(key)
        .push(" < ")
        .push_bind(before.unwrap_or(i64::MAX));
    q.push(" ORDER BY ")
        .push(key)
        .push(" DESC LIMIT ")
        .push_bind(limit + 1);
    q
}

/// The values [`page_query`] binds, in order.
fn page_binds(scope: Scope, before: Option<i64>, limit: i64) -> Vec<i64> {
    let mut binds = match scope {
        Scope::Pixel { x, y } => vec![i64::from(x), i64::from(y)],
        Scope::User(user_id) => vec![user_id],
        Scope::Recent => Vec::new(),
    };
    binds.extend([before.unwrap_or(i64::MAX), limit + 1]);
    binds
}

/// Cuts the extra row of [`page_query`] off, keeping its key as the next cursor.
fn into_page(scope: Scope, rows: Vec<HistoryRow>, limit: i64) -> HistoryPage {
    let mut entries: Vec<HistoryEntry> = rows.into_iter().map(entry).collect();
    let more = entries.len() as i64 > limit;
    entries.truncate(limit.max(0) as usize);
    let next = more.then(|| entries.last()).flatten().map(|e| match scope {
        Scope::Pixel { .. } => e.tile_seq,
        Scope::User(_) | Scope::Recent => e.id,
    });
    HistoryPage { entries, next }
}

/// The id range a heatmap counts: from the first event of the window, but no more than
/// `max_events` below the newest. `None` when the window is empty.
fn heatmap_range(
    first_in_window: Option<i64>,
    newest: Option<i64>,
    max_events: i64,
) -> Option<(i64, i64, bool)> {
    let (first, newest) = (first_in_window?, newest?);
    let floor = newest - max_events + 1;
    Some((first.max(floor), newest, floor > first))
}

/// `(column, row, count)` per cell of the player placements with ids in `[low, high]` made at or
/// after `since_ms`, and the oldest time among them.
fn heatmap_query<'a, DB>(cell: u32, low: i64, high: i64, since_ms: i64) -> QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
{
    let cell = i64::from(cell);
    let mut q = QueryBuilder::new("SELECT CAST(e.x / ");
    q.push_bind(cell).push(" AS BIGINT) AS cx, CAST(e.y / ");
    q.push_bind(cell)
        .push(" AS BIGINT) AS cy, COUNT(*), MIN(e.placed_at) ");
    q.push("FROM pixel_events e WHERE e.id BETWEEN ")
        .push_bind(low)
        .push(" AND ")
        .push_bind(high);
    q.push(" AND e.placed_at >= ")
        .push_bind(since_ms)
        .push(" AND e.action_id IS NULL GROUP BY cx, cy");
    q
}

fn heatmap_counts(rows: Vec<(i64, i64, i64, i64)>, truncated: bool) -> HeatmapCounts {
    let total = rows.iter().map(|r| r.2).sum();
    let oldest_ms = rows.iter().map(|r| r.3).min();
    let mut cells: Vec<(u32, u32, i64)> = rows
        .into_iter()
        .map(|(cx, cy, n, _)| (cx as u32, cy as u32, n))
        .collect();
    cells.sort_unstable_by_key(|c| (c.1, c.0));
    HeatmapCounts {
        cells,
        total,
        truncated,
        oldest_ms,
    }
}

/// The first event of the window, by the `placed_at` index.
const FIRST_IN_WINDOW: &str =
    "SELECT id FROM pixel_events WHERE placed_at >= $1 ORDER BY placed_at LIMIT 1";
/// The newest event, by the primary key.
const NEWEST: &str = "SELECT MAX(id) FROM pixel_events";

impl Store {
    /// A page of `scope`'s placements with keys below `before` (from the start when `None`).
    pub async fn history(
        &self,
        scope: Scope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<HistoryPage, StoreError> {
        let rows = on_engine!(self, e => page_query(scope, before, limit)
            .build_query_as::<HistoryRow>()
            .fetch_all(&e.pool)
            .await)?;
        Ok(into_page(scope, rows, limit))
    }

    /// The player placements made at or after `since_ms` per `cell`-pixel square, counting at
    /// most the newest `max_events`.
    pub async fn heatmap(
        &self,
        since_ms: i64,
        cell: u32,
        max_events: i64,
    ) -> Result<HeatmapCounts, StoreError> {
        let (first, newest): (Option<i64>, Option<i64>) = on_engine!(self, e => (
            sqlx::query_scalar(FIRST_IN_WINDOW)
                .bind(since_ms)
                .fetch_optional(&e.pool)
                .await?,
            sqlx::query_scalar(NEWEST).fetch_one(&e.pool).await?,
        ));
        let Some((low, high, truncated)) = heatmap_range(first, newest, max_events) else {
            return Ok(heatmap_counts(Vec::new(), false));
        };
        let rows = on_engine!(self, e => heatmap_query(cell, low, high, since_ms)
            .build_query_as::<(i64, i64, i64, i64)>()
            .fetch_all(&e.pool)
            .await)?;
        Ok(heatmap_counts(rows, truncated))
    }
}

impl PgStore {
    /// PostgreSQL's plan of a history page, run (`EXPLAIN (ANALYZE, BUFFERS)`): one line per
    /// step. For benchmarks and operators checking that a page is an index range scan.
    pub async fn explain_history(
        &self,
        scope: Scope,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        // The page's placeholders are $1..$n in the order page_query binds them.
        let sql = format!(
            "EXPLAIN (ANALYZE, BUFFERS) {}",
            page_query::<sqlx::Postgres>(scope, before, limit).sql()
        );
        let mut explain = sqlx::query_scalar::<_, String>(&sql);
        for value in page_binds(scope, before, limit) {
            explain = explain.bind(value);
        }
        Ok(explain.fetch_all(&self.pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query_plan::plan;
    use crate::NewEvent;

    fn event(x: u32, y: u32, color: u8, user_id: i64, placed_at: i64, tile_seq: u64) -> NewEvent {
        NewEvent {
            x,
            y,
            color,
            user_id,
            placed_at,
            tile_seq,
            action_id: None,
        }
    }

    #[test]
    fn the_heatmap_range_is_bounded() {
        assert_eq!(heatmap_range(None, Some(10), 5), None);
        assert_eq!(heatmap_range(Some(3), None, 5), None);
        assert_eq!(heatmap_range(Some(8), Some(10), 5), Some((8, 10, false)));
        assert_eq!(heatmap_range(Some(6), Some(10), 5), Some((6, 10, false)));
        assert_eq!(heatmap_range(Some(1), Some(10), 5), Some((6, 10, true)));
    }

    #[tokio::test]
    async fn every_listing_is_one_index_range_scan_without_sorting() {
        let dir = tempfile::tempdir().expect("test step");
        let store = Store::open_sqlite(dir.path()).await.expect("test step");
        for (scope, uses) in [
            (
                Scope::Pixel { x: 1, y: 2 },
                "USING INDEX pixel_events_pixel_seq (x=? AND y=? AND tile_seq<?)",
            ),
            (
                Scope::User(7),
                "USING INDEX pixel_events_user_id (user_id=? AND id<?)",
            ),
            (Scope::Recent, "USING INTEGER PRIMARY KEY (rowid<?)"),
        ] {
            let plan = plan(&store, page_query(scope, Some(10), 50)).await;
            assert!(plan.contains(uses), "{scope:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{scope:?} sorts: {plan}");
        }
        let plan = plan(&store, heatmap_query(8, 1, 100, 0)).await;
        assert!(
            plan.contains("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn pages_follow_each_other_without_gaps_or_repeats() {
        let dir = tempfile::tempdir().expect("test step");
        let store = Store::open_sqlite(dir.path()).await.expect("test step");
        let alice = store.create_guest("a", 0).await.expect("test step");
        let bob = store.create_guest("b", 0).await.expect("test step");
        // Pixel (1, 1) painted 7 times, alternately by alice and bob; (2, 1) once by bob.
        let mut events: Vec<NewEvent> = (0..7)
            .map(|i| {
                let who = if i % 2 == 0 { alice.id } else { bob.id };
                event(1, 1, i as u8, who, 1_000 + i, i as u64 + 1)
            })
            .collect();
        events.push(event(2, 1, 9, bob.id, 2_000, 8));
        store.append_events(&events).await.expect("test step");

        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .history(Scope::Pixel { x: 1, y: 1 }, before, 3)
                .await
                .expect("test step");
            assert!(page.entries.len() <= 3);
            seen.extend(page.entries.iter().map(|e| e.color));
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            vec![6, 5, 4, 3, 2, 1, 0],
            "newest first, every one once"
        );

        let bobs = store
            .history(Scope::User(bob.id), None, 10)
            .await
            .expect("test step");
        let colors: Vec<u8> = bobs.entries.iter().map(|e| e.color).collect();
        assert_eq!(colors, vec![9, 5, 3, 1]);
        assert_eq!(bobs.next, None);
        assert_eq!(
            bobs.entries[0].username.as_deref(),
            Some(bob.username.as_str())
        );

        let recent = store
            .history(Scope::Recent, None, 2)
            .await
            .expect("test step");
        assert_eq!(
            recent.entries.iter().map(|e| e.color).collect::<Vec<_>>(),
            vec![9, 6]
        );
        let rest = store
            .history(Scope::Recent, recent.next, 500)
            .await
            .expect("test step");
        assert_eq!(rest.entries.len(), 6);
        assert_eq!(rest.next, None);

        let nobody = store
            .history(Scope::User(999), None, 10)
            .await
            .expect("test step");
        assert!(nobody.entries.is_empty() && nobody.next.is_none());
    }

    #[tokio::test]
    async fn rolled_back_and_restoring_placements_are_marked() {
        let dir = tempfile::tempdir().expect("test step");
        let store = Store::open_sqlite(dir.path()).await.expect("test step");
        let alice = store.create_guest("a", 0).await.expect("test step");
        store
            .append_events(&[event(3, 3, 5, alice.id, 1_000, 1)])
            .await
            .expect("test step");
        let plan = store
            .revert(
                alice.id,
                "rollback",
                "{}",
                &crate::Selection::User {
                    user_id: alice.id,
                    since_ms: 0,
                },
                2_000,
            )
            .await
            .expect("test step");
        let mut restore = event(3, 3, 0, alice.id, 2_001, 2);
        restore.action_id = Some(plan.action_id);
        store.append_events(&[restore]).await.expect("test step");

        let page = store
            .history(Scope::Pixel { x: 3, y: 3 }, None, 10)
            .await
            .expect("test step");
        let marks: Vec<(u8, bool, bool)> = page
            .entries
            .iter()
            .map(|e| (e.color, e.action_id.is_some(), e.reverted))
            .collect();
        assert_eq!(marks, vec![(0, true, false), (5, false, true)]);

        // The heatmap counts players' placements only.
        let heat = store.heatmap(0, 4, 1_000).await.expect("test step");
        assert_eq!(heat.cells, vec![(0, 0, 1)]);
        assert_eq!(heat.total, 1);
    }

    #[tokio::test]
    async fn the_heatmap_counts_the_window_and_at_most_the_newest_events() {
        let dir = tempfile::tempdir().expect("test step");
        let store = Store::open_sqlite(dir.path()).await.expect("test step");
        let events: Vec<NewEvent> = (0..10)
            .map(|i| event(i * 10, 5, 1, 1, 1_000 * i64::from(i), u64::from(i) + 1))
            .collect();
        store.append_events(&events).await.expect("test step");

        // Since t=5000: x = 50..90; cells of 32 px: column 1 (50, 60), column 2 (70, 80, 90).
        let heat = store.heatmap(5_000, 32, 1_000).await.expect("test step");
        assert_eq!(heat.cells, vec![(1, 0, 2), (2, 0, 3)]);
        assert_eq!(
            (heat.total, heat.truncated, heat.oldest_ms),
            (5, false, Some(5_000))
        );

        // At most the newest 2 events: 80 and 90.
        let heat = store.heatmap(0, 32, 2).await.expect("test step");
        assert_eq!(heat.cells, vec![(2, 0, 2)]);
        assert!(heat.truncated);
        assert_eq!(heat.oldest_ms, Some(8_000));

        let empty = store.heatmap(20_000, 32, 1_000).await.expect("test step");
        assert!(empty.cells.is_empty() && !empty.truncated && empty.total == 0);
    }
}
