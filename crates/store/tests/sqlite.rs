//! [`Store`] on SQLite (the embedded engine, in a temporary directory: no service needed), held
//! to the same behaviour as on PostgreSQL (`tests/postgres.rs`).

mod behaviour;

use place_store::Store;

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite(dir.path()).await.expect("open");
    (dir, store)
}

#[tokio::test]
async fn admin_lists_and_rollbacks_follow_tile_seqs() {
    let (_dir, store) = open().await;
    behaviour::admin_lists_and_rollbacks_follow_tile_seqs(&store).await;
}

#[tokio::test]
async fn sessions_settings_and_administrators() {
    let (_dir, store) = open().await;
    behaviour::sessions_settings_and_administrators(&store).await;
}

#[tokio::test]
async fn guests_register_in_place_and_names_are_unique_in_any_case() {
    let (_dir, store) = open().await;
    behaviour::guests_register_in_place_and_names_are_unique_in_any_case(&store).await;
}
