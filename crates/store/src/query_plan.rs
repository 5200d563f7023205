//! Tests' view of SQLite's query plans: which index a query reads, and whether it sorts.

use sqlx::QueryBuilder;

use crate::Store;

/// SQLite's plan of a query, its steps joined by newlines. The plan does not depend on the
/// values, so every placeholder is bound to NULL.
pub(crate) async fn plan(store: &Store, q: QueryBuilder<'_, sqlx::Sqlite>) -> String {
    let sql = format!("EXPLAIN QUERY PLAN {}", q.sql());
    let mut explain = sqlx::query_as::<_, (i64, i64, i64, String)>(&sql);
    for _ in 0..sql.matches('?').count() {
        explain = explain.bind(None::<i64>);
    }
    let pool = &store.embedded().expect("sqlite").pool;
    let rows = explain.fetch_all(pool).await.expect("test step");
    rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
}
