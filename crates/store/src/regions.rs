//! Protected regions: rectangles of the canvas where placing is restricted, kept across restarts
//! alike in both engines ([`Store`]'s queries, migration `0009_regions`).
//!
//! The store only keeps them; what a mode means is the edge's (`place_edge::regions`), which
//! holds the active ones in memory and checks every placement there, never here. A region that
//! ended (`until_ms` passed) is no longer listed; its row stays, like the audit log's.

use crate::store::on_engine;
use crate::types::StoreError;
use crate::Store;

/// How a region restricts placing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionMode {
    /// Only administrators place.
    Locked,
    /// A cooldown of its own, longer than the canvas's.
    Slow,
    /// Guests may not place.
    Registered,
}

impl RegionMode {
    /// The mode's name in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Locked => "locked",
            Self::Slow => "slow",
            Self::Registered => "registered",
        }
    }

    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "locked" => Some(Self::Locked),
            "slow" => Some(Self::Slow),
            "registered" => Some(Self::Registered),
            _ => None,
        }
    }
}

/// A region as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRecord {
    /// Its id (0 before it is stored).
    pub id: i64,
    /// Column of its top-left pixel.
    pub x: u32,
    /// Row of its top-left pixel.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// What it restricts.
    pub mode: RegionMode,
    /// A slow region's cooldown.
    pub cooldown_ms: Option<i64>,
    /// When it ends by itself, epoch ms; `None`: when deleted.
    pub until_ms: Option<i64>,
    /// The administrator who made it, or 0 for the server itself (the spike alarm).
    pub created_by: i64,
    /// When it was made, epoch ms.
    pub created_at: i64,
}

type Row = (
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

const COLUMNS: &str =
    "id, x, y, width, height, mode, cooldown_ms, until_ms, created_by, created_at";

fn record(row: Row) -> Result<RegionRecord, StoreError> {
    let (id, x, y, width, height, mode, cooldown_ms, until_ms, created_by, created_at) = row;
    let side = |v: i64| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("region {id}: {v} out of range")))
    };
    Ok(RegionRecord {
        id,
        x: side(x)?,
        y: side(y)?,
        width: side(width)?,
        height: side(height)?,
        mode: RegionMode::parse(&mode)
            .ok_or_else(|| StoreError::Corrupt(format!("region {id}: unknown mode {mode:?}")))?,
        cooldown_ms,
        until_ms,
        created_by,
        created_at,
    })
}

impl Store {
    /// Stores a region (its `id` is ignored); returns its id.
    pub async fn add_region(&self, r: &RegionRecord) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO regions (x, y, width, height, mode, cooldown_ms, \
             until_ms, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id";
        Ok(on_engine!(self, e => sqlx::query_scalar(SQL)
            .bind(i64::from(r.x))
            .bind(i64::from(r.y))
            .bind(i64::from(r.width))
            .bind(i64::from(r.height))
            .bind(r.mode.as_str())
            .bind(r.cooldown_ms)
            .bind(r.until_ms)
            .bind(r.created_by)
            .bind(r.created_at)
            .fetch_one(&e.pool)
            .await)?)
    }

    /// Deletes a region; returns it, or `None` when there is none with this id.
    pub async fn delete_region(&self, id: i64) -> Result<Option<RegionRecord>, StoreError> {
        let sql = format!("DELETE FROM regions WHERE id = $1 RETURNING {COLUMNS}");
        let row: Option<Row> =
            on_engine!(self, e => sqlx::query_as(&sql).bind(id).fetch_optional(&e.pool).await)?;
        row.map(record).transpose()
    }

    /// The regions still in force at `now_ms`, oldest first.
    pub async fn active_regions(&self, now_ms: i64) -> Result<Vec<RegionRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM regions WHERE until_ms IS NULL OR until_ms > $1 ORDER BY id"
        );
        let rows: Vec<Row> =
            on_engine!(self, e => sqlx::query_as(&sql).bind(now_ms).fetch_all(&e.pool).await)?;
        rows.into_iter().map(record).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(mode: RegionMode, until_ms: Option<i64>) -> RegionRecord {
        RegionRecord {
            id: 0,
            x: 10,
            y: 20,
            width: 30,
            height: 40,
            mode,
            cooldown_ms: (mode == RegionMode::Slow).then_some(60_000),
            until_ms,
            created_by: 7,
            created_at: 1_000,
        }
    }

    #[test]
    fn modes_have_one_name_each() {
        for mode in [RegionMode::Locked, RegionMode::Slow, RegionMode::Registered] {
            assert_eq!(RegionMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(RegionMode::parse("LOCKED"), None);
    }

    #[tokio::test]
    async fn embedded_keeps_lists_and_deletes_regions_and_drops_ended_ones() {
        let dir = tempfile::tempdir().expect("store");
        let store = Store::open_sqlite(dir.path()).await.expect("store");
        let locked = store
            .add_region(&region(RegionMode::Locked, None))
            .await
            .expect("add");
        let slow = store
            .add_region(&region(RegionMode::Slow, Some(5_000)))
            .await
            .expect("add");
        let at = |now| {
            let store = store.clone();
            async move {
                let ids: Vec<i64> = store
                    .active_regions(now)
                    .await
                    .expect("list")
                    .iter()
                    .map(|r| r.id)
                    .collect();
                ids
            }
        };
        assert_eq!(at(4_999).await, [locked, slow]);
        assert_eq!(at(5_000).await, [locked], "a region ends at its until");
        let listed = store.active_regions(0).await.expect("list");
        assert_eq!(
            listed[1],
            RegionRecord {
                id: slow,
                ..region(RegionMode::Slow, Some(5_000))
            }
        );
        let deleted = store.delete_region(locked).await.expect("delete");
        assert_eq!(deleted.map(|r| r.mode), Some(RegionMode::Locked));
        assert_eq!(store.delete_region(locked).await.expect("delete"), None);
        assert_eq!(at(0).await, [slow]);
    }
}
