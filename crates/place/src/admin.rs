//! `place admin`: operator commands that work on a store directly, with no server running.
//!
//! `place admin create-user NAME [--admin]` makes a registered user, the way to make the first
//! administrator: in the embedded store of `place serve` (`--data-dir`), or in a cluster's
//! PostgreSQL schema (`--cluster`, `--database-url`). The name and password follow the same rules
//! as `POST /api/v1/auth/register`, and the password is hashed the same way (argon2id).
//!
//! `place admin promote NAME` and `demote NAME` make an existing registered user an
//! administrator or not. It counts at once, with the servers running: `place serve` reads a
//! session's user with it, and in a cluster the user is also added to (or taken out of) the Redis
//! set of administrators the edges check (`--redis-url`; see `place_edge::accounts`).

use std::path::PathBuf;

use place_edge::credentials::{self, CredentialsError, HashError};
use place_store::{Store, StoreError, User};

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
        /// The cluster's name (its schema, and its Redis key prefix).
        name: String,
        /// Redis, where the edges look up who is an administrator.
        redis_url: String,
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
    /// No registered user has this name.
    #[error("no registered user is named {0:?}")]
    NoSuchUser(String),
    /// PostgreSQL has the change, Redis could not be told: the edges do not see it yet.
    #[error("the user is changed in PostgreSQL, but Redis ({url}) could not be told, so the edges do not see it yet: run the command again ({reason})")]
    Redis {
        /// Where Redis was looked for.
        url: String,
        /// What failed.
        reason: String,
    },
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
    check_store(store)?;
    let hash = credentials::hash_password(password).await?;
    let now = place_edge::now_ms();
    let users = open(store).await?;
    let created = users.create_user(username, &hash, is_admin, now).await;
    users.close().await;
    let user = created.map_err(|e| match e {
        StoreError::UsernameTaken => AdminError::Taken(username.to_owned()),
        e => AdminError::Store(e),
    })?;
    if user.is_admin {
        tell_the_edges(store, &user).await?;
    }
    Ok(user)
}

/// Makes the registered user `username` an administrator (`is_admin`) or not, at once for every
/// session of theirs.
pub async fn set_admin(
    store: &UserStore,
    username: &str,
    is_admin: bool,
) -> Result<User, AdminError> {
    check_store(store)?;
    let users = open(store).await?;
    let changed = users.set_admin(username, is_admin).await;
    users.close().await;
    let user = changed
        .map_err(AdminError::Store)?
        .ok_or_else(|| AdminError::NoSuchUser(username.to_owned()))?;
    tell_the_edges(store, &user).await?;
    Ok(user)
}

/// The users' store, opened.
async fn open(store: &UserStore) -> Result<Store, AdminError> {
    match store {
        UserStore::DataDir(dir) => Store::open_sqlite(dir).await,
        UserStore::Cluster {
            database_url, name, ..
        } => Store::connect_postgres(database_url, name).await,
    }
    .map_err(AdminError::Store)
}

/// A cluster's name and database URL, checked before anything is touched.
fn check_store(store: &UserStore) -> Result<(), AdminError> {
    if let UserStore::Cluster {
        database_url, name, ..
    } = store
    {
        crate::cluster::check_cluster_name(name)?;
        crate::cluster::check_database_url(database_url)?;
    }
    Ok(())
}

/// In a cluster, puts the user in (or out of) the Redis set of administrators the edges check.
async fn tell_the_edges(store: &UserStore, user: &User) -> Result<(), AdminError> {
    let UserStore::Cluster {
        name, redis_url, ..
    } = store
    else {
        return Ok(());
    };
    let failed = |reason: String| AdminError::Redis {
        url: redis_url.clone(),
        reason,
    };
    let client = redis::Client::open(redis_url.as_str()).map_err(|e| failed(e.to_string()))?;
    let mut redis = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| failed("no answer in 5 s".into()))?
    .map_err(|e| failed(e.to_string()))?;
    let prefix = format!("place:{name}:");
    place_edge::accounts::set_admin_in_redis(&mut redis, &prefix, user.id, user.is_admin)
        .await
        .map_err(|e| failed(e.to_string()))
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
            redis_url: "redis://127.0.0.1:1".into(),
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

    #[tokio::test]
    async fn a_registered_user_is_promoted_and_demoted_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::DataDir(dir.path().to_path_buf());
        create_user(&store, "carol", "a long password".into(), false)
            .await
            .expect("created");
        let promoted = set_admin(&store, "CAROL", true).await.expect("promoted");
        assert!(promoted.is_admin);
        assert_eq!(promoted.username, "carol");
        let demoted = set_admin(&store, "carol", false).await.expect("demoted");
        assert!(!demoted.is_admin);
        let nobody = set_admin(&store, "nobody", true).await;
        assert!(
            matches!(nobody, Err(AdminError::NoSuchUser(_))),
            "{nobody:?}"
        );
        assert!(!nobody.expect_err("refused").is_usage());
    }
}
