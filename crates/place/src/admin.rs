//! `place admin`: operator commands that work on a store directly, with no server running.
//!
//! `place admin create-user NAME [--admin]` makes a registered user, the way to make the first
//! administrator: in the embedded store of `place serve` (`--data-dir`), or in a cluster's
//! PostgreSQL schema (`--cluster`, `--database-url`). The name and password follow the same rules
//! as `POST /api/v1/auth/register`, and the password is hashed the same way (argon2id).

use std::path::PathBuf;

use place_edge::credentials::{self, CredentialsError, HashError};
use place_store::{EmbeddedStore, PgStore, StoreError, User};

use crate::config::ConfigError;

/// Which store holds the users.
#[derive(Debug, Clone)]
pub enum UserStore {
    /// The embedded store of `place serve`, in this directory.
    DataDir(PathBuf),
    /// A cluster's PostgreSQL schema.
    Cluster {
        /// PostgreSQL.
        database_url: String,
        /// The cluster's name (its schema).
        name: String,
    },
}

/// Why a user was not made.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A bad name or password (a usage error: exit 64).
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A bad cluster name or database URL (a usage error: exit 64).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Someone has this name already.
    #[error("the username {0:?} is taken")]
    Taken(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl AdminError {
    /// Whether the command was used wrongly (rather than failing).
    pub fn is_usage(&self) -> bool {
        matches!(self, AdminError::Credentials(_) | AdminError::Config(_))
    }
}

/// Checks the name, password and store settings before touching anything, then makes the user.
pub async fn create_user(
    store: &UserStore,
    username: &str,
    password: String,
    is_admin: bool,
) -> Result<User, AdminError> {
    credentials::check_new_username(username)?;
    credentials::check_password(&password)?;
    if let UserStore::Cluster { database_url, name } = store {
        crate::cluster::check_cluster_name(name)?;
        crate::cluster::check_database_url(database_url)?;
    }
    let hash = credentials::hash_password(password).await?;
    let now = place_edge::now_ms();
    let created = match store {
        UserStore::DataDir(dir) => {
            let store = EmbeddedStore::open(dir).await.map_err(AdminError::Store)?;
            let created = store.create_user(username, &hash, is_admin, now).await;
            store.close().await;
            created
        }
        UserStore::Cluster { database_url, name } => {
            let store = PgStore::connect(database_url, name)
                .await
                .map_err(AdminError::Store)?;
            let created = store.create_user(username, &hash, is_admin, now).await;
            store.close().await;
            created
        }
    };
    created.map_err(|e| match e {
        StoreError::UsernameTaken => AdminError::Taken(username.to_owned()),
        e => AdminError::Store(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_input_is_a_usage_error_before_anything_is_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::DataDir(dir.path().join("data"));
        for (name, password) in [
            ("x", "long enough"),
            ("alice", "short"),
            ("guest-1", "12345678"),
        ] {
            let err = create_user(&store, name, password.into(), true)
                .await
                .expect_err("refused");
            assert!(err.is_usage(), "{name}: {err}");
        }
        let bad_cluster = UserStore::Cluster {
            database_url: "mysql://x".into(),
            name: "demo".into(),
        };
        let err = create_user(&bad_cluster, "alice", "12345678".into(), true)
            .await
            .expect_err("refused");
        assert!(err.is_usage(), "{err}");
        assert!(!dir.path().join("data").exists(), "nothing was created");
    }

    #[tokio::test]
    async fn an_admin_is_made_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::DataDir(dir.path().to_path_buf());
        let admin = create_user(&store, "root", "a long password".into(), true)
            .await
            .expect("created");
        assert!(admin.is_admin && !admin.is_guest);
        let again = create_user(&store, "ROOT", "a long password".into(), false).await;
        assert!(matches!(again, Err(AdminError::Taken(_))));
    }
}
