//! Templates: an image a player lays over the canvas at `(x, y)` to paint by, kept so a link can
//! share it. Both stores keep them alike ([`EmbeddedStore`] and [`PgStore`], migration
//! `0007_templates`). A template never changes once made; its pixels are opaque here (the edge
//! encodes and compresses them).
//!
//! Making one is admitted in one statement with the owner's rate: at most `max_recent` made
//! since a moment, counted through the `(owner_id, created_at)` index.

use crate::store::on_engine;
use crate::types::StoreError;
use crate::Store;

/// A template as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    /// Its public id (what a share link carries).
    pub id: String,
    /// Who made it.
    pub owner_id: i64,
    /// Column of its top-left pixel on the canvas.
    pub x: u32,
    /// Row of its top-left pixel.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The edge's encoding of its pixels.
    pub pixels: Vec<u8>,
    /// When it was made, epoch ms.
    pub created_at: i64,
}

type Row = (String, i64, i64, i64, i64, i64, Vec<u8>, i64);

fn record(row: Row) -> Result<TemplateRecord, StoreError> {
    let (id, owner_id, x, y, width, height, pixels, created_at) = row;
    let side = |v: i64| {
        u32::try_from(v)
            .map_err(|_| StoreError::Corrupt(format!("template {id}: {v} out of range")))
    };
    Ok(TemplateRecord {
        x: side(x)?,
        y: side(y)?,
        width: side(width)?,
        height: side(height)?,
        id: id.clone(),
        owner_id,
        pixels,
        created_at,
    })
}

impl Store {
    /// Stores a template unless its owner made `max_recent` or more since `since_ms`; false then.
    pub async fn admit_template(
        &self,
        t: &TemplateRecord,
        since_ms: i64,
        max_recent: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO templates \
             (id, owner_id, x, y, width, height, pixels, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE (SELECT COUNT(*) FROM templates WHERE owner_id = $2 AND created_at > $9) < $10";
        let inserted = on_engine!(self, e => sqlx::query(SQL)
            .bind(&t.id)
            .bind(t.owner_id)
            .bind(i64::from(t.x))
            .bind(i64::from(t.y))
            .bind(i64::from(t.width))
            .bind(i64::from(t.height))
            .bind(&t.pixels)
            .bind(t.created_at)
            .bind(since_ms)
            .bind(max_recent)
            .execute(&e.pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// The template with this id.
    pub async fn template(&self, id: &str) -> Result<Option<TemplateRecord>, StoreError> {
        const SQL: &str = "SELECT id, owner_id, x, y, width, height, pixels, created_at \
                           FROM templates WHERE id = $1";
        let row: Option<Row> =
            on_engine!(self, e => sqlx::query_as(SQL).bind(id).fetch_optional(&e.pool).await)?;
        row.map(record).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(id: &str, owner_id: i64, created_at: i64) -> TemplateRecord {
        TemplateRecord {
            id: id.into(),
            owner_id,
            x: 5,
            y: 6,
            width: 2,
            height: 2,
            pixels: vec![9, 8, 7],
            created_at,
        }
    }

    #[tokio::test]
    async fn embedded_keeps_templates_and_limits_each_owner() {
        let dir = tempfile::tempdir().expect("store");
        let store = Store::open_sqlite(dir.path()).await.expect("store");
        assert!(store
            .admit_template(&template("a", 1, 100), 0, 1)
            .await
            .expect("store"));
        assert!(!store
            .admit_template(&template("b", 1, 200), 0, 1)
            .await
            .expect("store"));
        assert!(
            store
                .admit_template(&template("b", 2, 200), 0, 1)
                .await
                .expect("store"),
            "another owner"
        );
        assert!(
            store
                .admit_template(&template("c", 1, 300), 100, 1)
                .await
                .expect("store"),
            "past the window"
        );
        assert_eq!(
            store.template("a").await.expect("store"),
            Some(template("a", 1, 100))
        );
        assert_eq!(store.template("zz").await.expect("store"), None);
    }
}
