//! The canvas size as stored: `canvas_meta.size` (`WIDTHxHEIGHT`), alike in both engines. Each
//! growth is also a row of the audit log (written by the edge).
//!
//! The configured size is the size of a new canvas. Once stored, the stored size is the canvas's:
//! an administrator may grow it (never shrink it, so nothing placed is cut off), and a restart
//! with the configured size it started from keeps the grown size. Tiles are keyed by their
//! column and row (`tx`, `ty`) everywhere they are stored, so a growth renumbers nothing; in
//! PostgreSQL it also creates the ownership fences of the new tiles, in the same transaction.

use place_tiles::CanvasGeometry;

use crate::postgres::CREATE_FENCES;
use crate::store::on_engine;
use crate::types::StoreError;
use crate::Store;

fn size_text(geometry: CanvasGeometry) -> String {
    format!("{}x{}", geometry.width(), geometry.height())
}

fn parse_size(text: &str) -> Result<CanvasGeometry, StoreError> {
    let bad = || StoreError::Corrupt(format!("stored canvas size {text:?}"));
    let (w, h) = text.split_once('x').ok_or_else(bad)?;
    let (w, h) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    CanvasGeometry::new(w, h).map_err(|_| bad())
}

/// The size a `resize-canvas` audit row's details say the canvas grew from.
fn grown_from(details: &str) -> Result<CanvasGeometry, StoreError> {
    let bad = || StoreError::Corrupt(format!("resize-canvas details {details:?}"));
    let value: serde_json::Value = serde_json::from_str(details).map_err(|_| bad())?;
    let side = |name: &str| {
        value["from"][name]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(bad)
    };
    CanvasGeometry::new(side("width")?, side("height")?).map_err(|_| bad())
}

/// The canvas a store holding `stored` serves when configured with `configured`.
fn effective(stored: &str, configured: CanvasGeometry) -> Result<CanvasGeometry, StoreError> {
    let stored_size = parse_size(stored)?;
    if !stored_size.covers(configured) {
        return Err(StoreError::CanvasMismatch {
            stored: stored.to_owned(),
            configured: size_text(configured),
        });
    }
    Ok(stored_size)
}

/// The stored size, if `requested` grows it; `None` if the canvas already has that size (an
/// earlier attempt stored it). Refuses a size smaller on a side.
fn growth(stored: &str, requested: CanvasGeometry) -> Result<Option<CanvasGeometry>, StoreError> {
    let current = parse_size(stored)?;
    if current == requested {
        return Ok(None);
    }
    current
        .grown_to(requested.width(), requested.height())
        .map_err(StoreError::CanvasGrowth)?;
    Ok(Some(current))
}

/// The stored size.
const SELECT_SIZE: &str = "SELECT value FROM canvas_meta WHERE key = 'size'";

impl Store {
    /// The canvas's size at `t_ms` when it has grown since: the size the first growth after
    /// `t_ms` started from (from the audit log); `None` when it has not grown since.
    pub async fn canvas_before_growth(
        &self,
        t_ms: i64,
    ) -> Result<Option<CanvasGeometry>, StoreError> {
        const SQL: &str = "SELECT CAST(details AS TEXT) FROM admin_audit_log \
             WHERE action = 'resize-canvas' AND created_at > $1 ORDER BY created_at, id LIMIT 1";
        let details: Option<String> = on_engine!(self, e => sqlx::query_scalar(SQL)
            .bind(t_ms)
            .fetch_optional(&e.pool)
            .await)?;
        details.as_deref().map(grown_from).transpose()
    }

    /// Records `configured` as the canvas size on first use and returns the canvas's size: the
    /// stored one, which growths may have made larger than `configured`. A stored size smaller
    /// than `configured` on a side is refused (grow it with `place admin resize` instead). In
    /// PostgreSQL, makes sure every tile of it has its fence.
    pub async fn canvas_geometry(
        &self,
        configured: CanvasGeometry,
    ) -> Result<CanvasGeometry, StoreError> {
        const INSERT: &str = "INSERT INTO canvas_meta (key, value) VALUES ('size', $1) \
                              ON CONFLICT (key) DO NOTHING";
        let fenced = self.postgres().is_some();
        on_engine!(self, e => {
            sqlx::query(INSERT)
                .bind(size_text(configured))
                .execute(&e.pool)
                .await?;
            let stored: String = sqlx::query_scalar(SELECT_SIZE).fetch_one(&e.pool).await?;
            let geometry = effective(&stored, configured)?;
            if fenced {
                sqlx::query(CREATE_FENCES)
                    .bind(geometry.tiles_x() as i32)
                    .bind(geometry.tiles_y() as i32)
                    .execute(&e.pool)
                    .await?;
            }
            Ok(geometry)
        })
    }

    /// Grows the canvas to `to` and returns the size it had, or `None` when it already is `to`
    /// (nothing written: repeating a growth is harmless). Refused ([`StoreError::CanvasGrowth`])
    /// when `to` is smaller on a side. In PostgreSQL the new tiles' fences are made in the same
    /// transaction, and two growths at once are taken one after the other (the size row is read
    /// `FOR UPDATE`; in SQLite the write gate orders them).
    pub async fn grow_canvas(
        &self,
        to: CanvasGeometry,
    ) -> Result<Option<CanvasGeometry>, StoreError> {
        const UPDATE: &str = "UPDATE canvas_meta SET value = $1 WHERE key = 'size'";
        let fenced = self.postgres().is_some();
        let select = if fenced {
            format!("{SELECT_SIZE} FOR UPDATE")
        } else {
            SELECT_SIZE.to_owned()
        };
        let _writing = self.write_gate().await;
        on_engine!(self, e => {
            let mut tx = e.pool.begin().await?;
            let stored: String = sqlx::query_scalar(&select).fetch_one(&mut *tx).await?;
            let Some(from) = growth(&stored, to)? else {
                return Ok(None);
            };
            sqlx::query(UPDATE)
                .bind(size_text(to))
                .execute(&mut *tx)
                .await?;
            if fenced {
                sqlx::query(CREATE_FENCES)
                    .bind(to.tiles_x() as i32)
                    .bind(to.tiles_y() as i32)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(Some(from))
        })
    }

    /// The canvas as it is now: `at_least` (the size the process started with) grown to the
    /// stored size, which an administrator may have grown since.
    pub async fn canvas(&self, at_least: CanvasGeometry) -> Result<CanvasGeometry, StoreError> {
        let stored = self.stored_canvas().await?;
        Ok(stored.map_or(at_least, |s| at_least.union(s)))
    }

    /// The canvas's size at `t_ms`: `now` unless it has grown since (see
    /// [`Store::canvas_before_growth`]).
    pub async fn canvas_at(
        &self,
        t_ms: i64,
        now: CanvasGeometry,
    ) -> Result<CanvasGeometry, StoreError> {
        Ok(self.canvas_before_growth(t_ms).await?.unwrap_or(now))
    }

    /// The stored canvas size, `None` before the first start.
    pub async fn stored_canvas(&self) -> Result<Option<CanvasGeometry>, StoreError> {
        let stored: Option<String> =
            on_engine!(self, e => sqlx::query_scalar(SELECT_SIZE).fetch_optional(&e.pool).await)?;
        stored.as_deref().map(parse_size).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(w: u32, h: u32) -> CanvasGeometry {
        CanvasGeometry::new(w, h).expect("valid")
    }

    #[tokio::test]
    async fn the_canvas_grows_durably_and_never_shrinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open_sqlite(dir.path()).await.expect("open");
            assert_eq!(
                store.canvas_geometry(g(100, 70)).await.expect("new"),
                g(100, 70)
            );
            let grow = |to| store.grow_canvas(to);
            assert_eq!(grow(g(200, 70)).await.expect("grow"), Some(g(100, 70)));
            assert!(matches!(
                grow(g(150, 80)).await,
                Err(StoreError::CanvasGrowth(_))
            ));
            assert_eq!(grow(g(200, 70)).await.expect("again"), None, "a repeat");
            assert_eq!(grow(g(200, 300)).await.expect("grow"), Some(g(200, 70)));
        }
        let store = Store::open_sqlite(dir.path()).await.expect("reopen");
        assert_eq!(
            store.stored_canvas().await.expect("read"),
            Some(g(200, 300))
        );
        // The configured size it started from gives the grown canvas; a larger one is refused.
        assert_eq!(
            store.canvas_geometry(g(100, 70)).await.expect("grown"),
            g(200, 300)
        );
        assert!(matches!(
            store.canvas_geometry(g(300, 70)).await,
            Err(StoreError::CanvasMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn a_different_canvas_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        store
            .canvas_geometry(CanvasGeometry::new(100, 100).expect("valid"))
            .await
            .expect("first");
        let err = store
            .canvas_geometry(CanvasGeometry::new(200, 100).expect("valid"))
            .await;
        assert!(matches!(err, Err(StoreError::CanvasMismatch { .. })));
    }
}
