//! [`Store`]: the one storage handle every caller holds, whichever engine is under it.
//!
//! A query is written once, with PostgreSQL's `$1`-style placeholders, which sqlx's SQLite driver
//! reads too (`?NNN` and `$NNN` both name the NNN-th bound value: sqlx-sqlite's
//! `SqliteArguments::bind`). Where the two schemas' column types differ (PostgreSQL's `INT` and
//! `SMALLINT` against SQLite's 64-bit integers) the query casts to `BIGINT`, so both give the same
//! row type. [`on_engine!`] compiles such a body once per engine; code that only one engine has
//! (the embedded store's write gate and WAL copy, PostgreSQL's fences and `COPY`) stays in
//! [`crate::embedded`] and [`crate::postgres`].
//!
//! This module keeps the accounts (users and sessions), the settings, moderation (rollbacks, the
//! audit log, the admin panel's lists and figures) and the cooldowns' source; the other modules
//! add their queries to [`Store`] in their own `impl` blocks.

use futures_util::TryStreamExt;
use place_tiles::{CanvasGeometry, TileId};

use crate::history::HistoryEntry;
use crate::moderation::{
    affected_events, like_prefix, mark_reverted, AuditEntry, LoggedEvent, PlacementStats, Planner,
    RevertPlan, Selection, TOP_PLACERS,
};
use crate::types::{NewEvent, RestoredCanvas, StoreError, TileSnapshotRecord, User, UserLogin};
use crate::{EmbeddedStore, PgStore};

/// The storage of place: SQLite in `place serve`, PostgreSQL in the cluster. Cheap to clone (the
/// engines' pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) engine: Engine,
}

/// The engine under a [`Store`].
#[derive(Debug, Clone)]
pub(crate) enum Engine {
    /// The embedded store.
    Sqlite(EmbeddedStore),
    /// The cluster's store.
    Postgres(PgStore),
}

/// Runs `$body` with `$e` bound to the store's engine (`&EmbeddedStore` or `&PgStore`, each with
/// its `pool`): one body, compiled for each engine.
macro_rules! on_engine {
    ($store:expr, $e:ident => $body:expr) => {
        match &$store.engine {
            $crate::store::Engine::Sqlite($e) => $body,
            $crate::store::Engine::Postgres($e) => $body,
        }
    };
}
pub(crate) use on_engine;

impl From<EmbeddedStore> for Store {
    fn from(store: EmbeddedStore) -> Self {
        Self {
            engine: Engine::Sqlite(store),
        }
    }
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Self {
            engine: Engine::Postgres(store),
        }
    }
}

/// The columns of a [`User`].
const USER_COLUMNS: &str = "id, username, is_guest, is_admin, banned";

/// The columns of an [`AuditEntry`] (the details as text: they are `JSONB` in PostgreSQL).
const AUDIT_ENTRY: &str =
    "SELECT a.id, a.actor_id, u.username, a.action, CAST(a.details AS TEXT), a.created_at \
     FROM admin_audit_log a LEFT JOIN users u ON u.id = a.actor_id";

/// A row of [`AUDIT_ENTRY`].
type AuditRow = (i64, i64, Option<String>, String, String, i64);

impl Store {
    /// The embedded store in `dir` (see [`EmbeddedStore::open`]).
    pub async fn open_sqlite(dir: &std::path::Path) -> Result<Self, StoreError> {
        Ok(EmbeddedStore::open(dir).await?.into())
    }

    /// The PostgreSQL store in `schema` (see [`PgStore::connect`]).
    pub async fn connect_postgres(url: &str, schema: &str) -> Result<Self, StoreError> {
        Ok(PgStore::connect(url, schema).await?.into())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_engine!(self, e => sqlx::query("SELECT 1").execute(&e.pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes the pool, waiting for queries in flight.
    pub async fn close(&self) {
        on_engine!(self, e => e.pool.close().await);
    }

    /// The embedded store under this handle, if that is the engine (its data directory's WAL
    /// copy and write gate have no PostgreSQL counterpart).
    pub fn embedded(&self) -> Option<&EmbeddedStore> {
        match &self.engine {
            Engine::Sqlite(s) => Some(s),
            Engine::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store under this handle, if that is the engine.
    pub fn postgres(&self) -> Option<&PgStore> {
        match &self.engine {
            Engine::Postgres(s) => Some(s),
            Engine::Sqlite(_) => None,
        }
    }

    /// Waits for the embedded store's write gate (see [`EmbeddedStore`]); PostgreSQL has none.
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.engine {
            Engine::Sqlite(s) => Some(s.write_gate.lock().await),
            Engine::Postgres(_) => None,
        }
    }

    /// The type the audit log's details have: `JSONB` in PostgreSQL, `TEXT` in SQLite (where a
    /// cast to an unknown type name would make a number of the text).
    fn json_type(&self) -> &'static str {
        match &self.engine {
            Engine::Sqlite(_) => "TEXT",
            Engine::Postgres(_) => "JSONB",
        }
    }
}

// The event log and the tiles' snapshots: how each engine writes and restores them differs (see
// `crate::embedded` and `crate::postgres`).
impl Store {
    /// Appends placements in one transaction (one fsync) and returns the largest id written (0
    /// for an empty batch). Ids grow in the order given; in the embedded store they are
    /// consecutive. Fences are not checked: for writers outside the ring (tools, tests); a shard
    /// uses [`Store::append_events_at_epoch`].
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<i64, StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.append_events(events).await,
            Engine::Postgres(s) => s.append_events(events).await,
        }
    }

    /// [`Store::append_events`] as a shard of ring `epoch`: PostgreSQL refuses the batch with
    /// [`StoreError::Fenced`], writing nothing, when some of its tiles moved to another shard at
    /// a newer epoch (see [`PgStore::raise_fences`]); the embedded store has one shard and no
    /// fences.
    pub async fn append_events_at_epoch(
        &self,
        events: &[NewEvent],
        epoch: u64,
    ) -> Result<i64, StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.append_events(events).await,
            Engine::Postgres(s) => s.append_events_at_epoch(events, epoch).await,
        }
    }

    /// Raises the fences of tiles this shard takes over to its ring epoch (PostgreSQL; the
    /// embedded store has nothing to fence).
    pub async fn raise_fences(&self, tiles: &[TileId], epoch: u64) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(s) => s.raise_fences(tiles, epoch).await,
        }
    }

    /// Saves tile snapshots covering every event up to `through_event_id` (see each engine's
    /// `write_checkpoint`).
    pub async fn write_checkpoint(
        &self,
        snapshots: &[TileSnapshotRecord],
        through_event_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        on_engine!(self, e => e.write_checkpoint(snapshots, through_event_id, now_ms).await)
    }

    /// Restores the tiles `owned` says are the caller's (every tile in the embedded store, which
    /// has one shard): their snapshots, then their events after them.
    pub async fn load_canvas(
        &self,
        geometry: CanvasGeometry,
        owned: &(dyn Fn(TileId) -> bool + Sync),
    ) -> Result<RestoredCanvas, StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.load_canvas(geometry).await,
            Engine::Postgres(s) => s.load_canvas(geometry, owned).await,
        }
    }

    /// The canvas as the event log alone says it is (each pixel's events replayed in order,
    /// snapshots ignored): `width*height` palette indices, row-major. For `place verify`.
    pub async fn replay_log(&self, geometry: CanvasGeometry) -> Result<Vec<u8>, StoreError> {
        self.replay_log_until(geometry, i64::MAX).await
    }

    /// [`Store::replay_log`] of only the events placed at or before `until_ms`: the canvas as it
    /// was then (what every timelapse frame must equal). The log is read in each engine's
    /// primary order that keeps every tile's events in seq order: by id in SQLite (one writer),
    /// by tile and seq in PostgreSQL (where ids of several shards interleave).
    pub async fn replay_log_until(
        &self,
        geometry: CanvasGeometry,
        until_ms: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let order = match &self.engine {
            Engine::Sqlite(_) => "id",
            Engine::Postgres(_) => "tx, ty, tile_seq",
        };
        let sql = format!(
            "SELECT CAST(x AS BIGINT), CAST(y AS BIGINT), CAST(color AS BIGINT) \
             FROM pixel_events WHERE placed_at <= $1 ORDER BY {order}"
        );
        let width = geometry.width() as usize;
        let mut canvas = vec![0u8; width * geometry.height() as usize];
        on_engine!(self, e => {
            let mut events = sqlx::query_as::<_, (i64, i64, i64)>(&sql)
                .bind(until_ms)
                .fetch(&e.pool);
            while let Some((x, y, color)) = events.try_next().await? {
                let inside = u32::try_from(x)
                    .ok()
                    .zip(u32::try_from(y).ok())
                    .is_some_and(|(x, y)| geometry.contains(x, y));
                if !inside {
                    return Err(StoreError::Corrupt(format!(
                        "event at ({x},{y}) is outside the canvas"
                    )));
                }
                canvas[y as usize * width + x as usize] = color as u8;
            }
        });
        Ok(canvas)
    }
}

/// The latest placement time of each user who placed at or after `$1`, by reading that window of
/// the log. The `+` keeps SQLite from grouping by walking a user index over the whole log (which
/// it prefers for `GROUP BY` without statistics): it reads the window through
/// `pixel_events_placed_at`, and sorts it. About 0.8 µs a placement in the window.
const RECENT_BY_TIME: &str = "SELECT +user_id, MAX(placed_at) FROM pixel_events \
                              WHERE placed_at >= $1 GROUP BY +user_id";

/// The same by asking each user for their last placement (one seek in `pixel_events_user_id`
/// each, then the event): about 4 µs a user, whatever the length of the log or the window.
const RECENT_BY_USER: &str = "SELECT u.id, e.placed_at FROM users u \
     JOIN pixel_events e ON e.id = (SELECT MAX(l.id) FROM pixel_events l WHERE l.user_id = u.id) \
     WHERE e.placed_at >= $1";

/// What the two reads would cost: the placements in the window (from the window's first event
/// to the last event; an estimate where ids and times do not follow each other exactly), and the
/// users there are (by the highest id).
const WINDOW_AND_USERS: &str = "SELECT \
     COALESCE((SELECT MAX(id) FROM pixel_events) - (SELECT id FROM pixel_events \
       WHERE placed_at >= $1 ORDER BY placed_at LIMIT 1) + 1, 0), \
     COALESCE((SELECT MAX(id) FROM users), 0)";

/// Whether a window of `placements` is cheaper to read by time than `users` users one by one
/// (about 0.8 µs a placement against 4 µs a user, measured in `bench/RESULTS.md` section 16).
fn read_window_by_time(placements: i64, users: i64) -> bool {
    placements <= 5 * users
}

/// The users who placed most since `$1`, at most `$2` of them; read by time window, as
/// [`RECENT_BY_TIME`].
const TOP_PLACERS_SINCE: &str = "SELECT +e.user_id, u.username, COUNT(*) AS n \
     FROM pixel_events e LEFT JOIN users u ON u.id = e.user_id \
     WHERE e.placed_at >= $1 AND e.action_id IS NULL \
     GROUP BY +e.user_id, u.username ORDER BY n DESC, +e.user_id LIMIT $2";

// Users and sessions.
impl Store {
    /// The latest placement time of each user who placed at or after `since_ms`, to restore
    /// cooldowns after a restart.
    pub async fn recent_placements(&self, since_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        // The window of a restart is an hour: nearly empty after a quiet hour, or most of the log
        // after a busy one, when asking each user is cheaper than sorting the window.
        Ok(on_engine!(self, e => {
            let (placements, users): (i64, i64) =
                sqlx::query_as(WINDOW_AND_USERS).bind(since_ms).fetch_one(&e.pool).await?;
            let sql = if read_window_by_time(placements, users) {
                RECENT_BY_TIME
            } else {
                RECENT_BY_USER
            };
            sqlx::query_as(sql).bind(since_ms).fetch_all(&e.pool).await
        })?)
    }

    /// Makes a guest user named `guest-<name_suffix>`; [`StoreError::UsernameTaken`] if that
    /// name is taken (in any letter case).
    pub async fn create_guest(&self, name_suffix: &str, now_ms: i64) -> Result<User, StoreError> {
        const SQL: &str = "INSERT INTO users (username, is_guest, created_at) \
                           VALUES ($1, true, $2) RETURNING id";
        let username = format!("guest-{name_suffix}");
        let _writing = self.write_gate().await;
        let id: i64 = on_engine!(self, e => sqlx::query_scalar(SQL)
            .bind(&username)
            .bind(now_ms)
            .fetch_one(&e.pool)
            .await)
        .map_err(StoreError::from_user_write)?;
        Ok(User {
            id,
            username,
            is_guest: true,
            is_admin: false,
            banned: false,
        })
    }

    /// Makes a registered user; [`StoreError::UsernameTaken`] if the name is taken in any case.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO users (username, password_hash, is_guest, is_admin, created_at) \
             VALUES ($1, $2, false, $3, $4) RETURNING {USER_COLUMNS}"
        );
        on_engine!(self, e => sqlx::query_as(&sql)
            .bind(username)
            .bind(password_hash)
            .bind(is_admin)
            .bind(now_ms)
            .fetch_one(&e.pool)
            .await)
        .map_err(StoreError::from_user_write)
    }

    /// Turns guest `guest_id` into a registered user in place: same id, so its placements and
    /// cooldown stay its own. `None` if that user is not a guest (any more).
    pub async fn register_guest(
        &self,
        guest_id: i64,
        username: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "UPDATE users SET username = $1, password_hash = $2, is_guest = false \
             WHERE id = $3 AND is_guest RETURNING {USER_COLUMNS}"
        );
        on_engine!(self, e => sqlx::query_as(&sql)
            .bind(username)
            .bind(password_hash)
            .bind(guest_id)
            .fetch_optional(&e.pool)
            .await)
        .map_err(StoreError::from_user_write)
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(on_engine!(self, e => sqlx::query_as(&sql).bind(id).fetch_optional(&e.pool).await)?)
    }

    /// A user found by name in any letter case, with the password hash login checks.
    pub async fn user_login(&self, username: &str) -> Result<Option<UserLogin>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)"
        );
        Ok(on_engine!(self, e => sqlx::query_as(&sql)
            .bind(username)
            .fetch_optional(&e.pool)
            .await)?)
    }

    /// Users whose name starts with `prefix` in any letter case, by name, at most `limit`.
    pub async fn find_users(&self, prefix: &str, limit: i64) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) LIKE $1 ESCAPE '\\' \
             ORDER BY lower(username) LIMIT $2"
        );
        Ok(on_engine!(self, e => sqlx::query_as(&sql)
            .bind(like_prefix(prefix))
            .bind(limit)
            .fetch_all(&e.pool)
            .await)?)
    }

    /// Bans or unbans a user.
    pub async fn set_banned(&self, user_id: i64, banned: bool) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET banned = $1 WHERE id = $2";
        on_engine!(self, e => sqlx::query(SQL).bind(banned).bind(user_id).execute(&e.pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Makes the registered user `username` (any letter case) an administrator or not; `None`
    /// when there is no such registered user. `place serve` reads a session's user with it, so
    /// its sessions see the change at their next request; a cluster's edges take who is an
    /// administrator from Redis, kept from this table (see `place_edge::accounts`).
    pub async fn set_admin(
        &self,
        username: &str,
        is_admin: bool,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "UPDATE users SET is_admin = $1 WHERE lower(username) = lower($2) AND NOT is_guest \
             RETURNING {USER_COLUMNS}"
        );
        Ok(on_engine!(self, e => sqlx::query_as(&sql)
            .bind(is_admin)
            .bind(username)
            .fetch_optional(&e.pool)
            .await)?)
    }

    /// The ids of the administrators, in order.
    pub async fn admin_ids(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM users WHERE is_admin ORDER BY id";
        Ok(on_engine!(self, e => sqlx::query_scalar(SQL).fetch_all(&e.pool).await)?)
    }

    /// The ids of banned users, in order.
    pub async fn banned_users(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM users WHERE banned ORDER BY id";
        Ok(on_engine!(self, e => sqlx::query_scalar(SQL).fetch_all(&e.pool).await)?)
    }

    /// Stores a session for a user. Sessions are kept by a hash of their id (`id_hash`: the
    /// caller's, the edge's SHA-256), never by the id the cookie carries. (The cluster's edges
    /// keep their sessions in Redis.)
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) \
                           VALUES ($1, $2, $3, $4)";
        let _writing = self.write_gate().await;
        on_engine!(self, e => sqlx::query(SQL)
            .bind(id_hash)
            .bind(user_id)
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(&e.pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The user of a session (by its id's hash) that has not expired.
    pub async fn session_user(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> Result<Option<User>, StoreError> {
        const SQL: &str = "SELECT u.id, u.username, u.is_guest, u.is_admin, u.banned \
                           FROM sessions s JOIN users u ON u.id = s.user_id \
                           WHERE s.id_hash = $1 AND s.expires_at > $2";
        Ok(on_engine!(self, e => sqlx::query_as(SQL)
            .bind(id_hash)
            .bind(now_ms)
            .fetch_optional(&e.pool)
            .await)?)
    }

    /// Extends a session's expiry (sliding sessions), by its id's hash.
    pub async fn touch_session(&self, id_hash: &str, expires_at_ms: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sessions SET expires_at = $1 WHERE id_hash = $2";
        let _writing = self.write_gate().await;
        on_engine!(self, e => sqlx::query(SQL)
            .bind(expires_at_ms)
            .bind(id_hash)
            .execute(&e.pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Deletes a session (logout), by its id's hash: from now on it is unknown.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE id_hash = $1";
        let _writing = self.write_gate().await;
        on_engine!(self, e => sqlx::query(SQL).bind(id_hash).execute(&e.pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Deletes every session expired at `now_ms` (none of them is usable any more); returns
    /// how many. The edge calls it every minute, so the table holds only live sessions.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE expires_at <= $1";
        let _writing = self.write_gate().await;
        let done = on_engine!(self, e => sqlx::query(SQL)
            .bind(now_ms)
            .execute(&e.pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(done)
    }

    /// The cooldown an administrator set, if one ever did.
    pub async fn stored_cooldown_ms(&self) -> Result<Option<u64>, StoreError> {
        const SQL: &str = "SELECT value FROM settings WHERE key = 'cooldown_ms'";
        let value: Option<String> =
            on_engine!(self, e => sqlx::query_scalar(SQL).fetch_optional(&e.pool).await)?;
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| StoreError::Corrupt(format!("stored cooldown {v:?}")))
            })
            .transpose()
    }

    /// Keeps the cooldown an administrator set, for the next start.
    pub async fn save_cooldown_ms(&self, cooldown_ms: u64) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO settings (key, value) VALUES ('cooldown_ms', $1) \
                           ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        on_engine!(self, e => sqlx::query(SQL)
            .bind(cooldown_ms.to_string())
            .execute(&e.pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}

// Moderation.
impl Store {
    /// Reverts the placements `selection` names for a moderation action, and plans the restores:
    /// writes the action's audit log row (`actor_id`, `action`, `details` as JSON text) and the
    /// revert marks in one transaction, then reads every event of the pixels concerned, each
    /// pixel's in its tile's seq order. See [`crate::moderation`].
    pub async fn revert(
        &self,
        actor_id: i64,
        action: &str,
        details: &str,
        selection: &Selection,
        now_ms: i64,
    ) -> Result<RevertPlan, StoreError> {
        let insert = self.insert_audit_sql();
        let (action_id, reverted) = on_engine!(self, e => {
            let mut tx = e.pool.begin().await?;
            let action_id: i64 = sqlx::query_scalar(&insert)
                .bind(actor_id)
                .bind(action)
                .bind(details)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
            let reverted = mark_reverted(action_id, selection)
                .build()
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            (action_id, reverted)
        });
        let mut planner = Planner::default();
        on_engine!(self, e => {
            let mut read = affected_events(selection);
            let mut rows = read
                .build_query_as::<(i64, i64, i64, bool, bool)>()
                .fetch(&e.pool);
            while let Some((x, y, color, restore, reverted)) = rows.try_next().await? {
                planner.push(LoggedEvent {
                    x: x as u32,
                    y: y as u32,
                    color: color as u8,
                    restore,
                    reverted,
                });
            }
        });
        Ok(RevertPlan {
            action_id,
            reverted,
            restores: planner.finish(),
        })
    }

    /// The `INSERT` of an audit log row returning its id: `$3` is the details, JSON text.
    fn insert_audit_sql(&self) -> String {
        format!(
            "INSERT INTO admin_audit_log (actor_id, action, details, created_at) \
             VALUES ($1, $2, CAST($3 AS {}), $4) RETURNING id",
            self.json_type()
        )
    }

    /// Writes a row of the audit log (`details`: a JSON object as text); returns its id.
    pub async fn append_audit(
        &self,
        actor_id: i64,
        action: &str,
        details: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let sql = self.insert_audit_sql();
        Ok(on_engine!(self, e => sqlx::query_scalar(&sql)
            .bind(actor_id)
            .bind(action)
            .bind(details)
            .bind(now_ms)
            .fetch_one(&e.pool)
            .await)?)
    }

    /// Replaces the details of an audit log row (an action's outcome, once it is known).
    pub async fn update_audit(&self, id: i64, details: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE admin_audit_log SET details = CAST($1 AS {}) WHERE id = $2",
            self.json_type()
        );
        on_engine!(self, e => sqlx::query(&sql).bind(details).bind(id).execute(&e.pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The audit log, newest first: at most `limit` rows with an id below `before` (all when
    /// `None`).
    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("{AUDIT_ENTRY} WHERE a.id < $1 ORDER BY a.id DESC LIMIT $2");
        let rows: Vec<AuditRow> = on_engine!(self, e => sqlx::query_as(&sql)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&e.pool)
            .await)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// The audit log's rows of `action` made at or after `since_ms`, newest first, at most
    /// `limit`.
    pub async fn audit_of_action(
        &self,
        action: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "{AUDIT_ENTRY} WHERE a.action = $1 AND a.created_at >= $2 ORDER BY a.id DESC LIMIT $3"
        );
        let rows: Vec<AuditRow> = on_engine!(self, e => sqlx::query_as(&sql)
            .bind(action)
            .bind(since_ms)
            .bind(limit)
            .fetch_all(&e.pool)
            .await)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// The latest placements on pixel `(x, y)`, newest first: by its tile's seq, the order the
    /// shard applied them in (the history's order, [`crate::Scope::Pixel`]).
    pub async fn pixel_events(
        &self,
        x: u32,
        y: u32,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .history(crate::Scope::Pixel { x, y }, None, limit)
            .await?
            .entries)
    }

    /// A user's latest placements, newest first (by id, [`crate::Scope::User`]).
    pub async fn user_events(
        &self,
        user_id: i64,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .history(crate::Scope::User(user_id), None, limit)
            .await?
            .entries)
    }

    /// Placements in the last minute, the top placers of the last hour, the bans.
    pub async fn placement_stats(&self, now_ms: i64) -> Result<PlacementStats, StoreError> {
        const LAST_MINUTE: &str = "SELECT COUNT(*) FROM pixel_events WHERE placed_at >= $1";
        const BANNED: &str = "SELECT COUNT(*) FROM users WHERE banned";
        Ok(on_engine!(self, e => {
            let last_minute: i64 = sqlx::query_scalar(LAST_MINUTE)
                .bind(now_ms - 60_000)
                .fetch_one(&e.pool)
                .await?;
            let top_placers = sqlx::query_as(TOP_PLACERS_SINCE)
                .bind(now_ms - 3_600_000)
                .bind(TOP_PLACERS)
                .fetch_all(&e.pool)
                .await?;
            let banned: i64 = sqlx::query_scalar(BANNED).fetch_one(&e.pool).await?;
            PlacementStats {
                last_minute,
                top_placers,
                banned,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query_plan::plan;
    use crate::NewEvent;

    /// Both ways of finding each user's last placement in a window agree, and the one asking
    /// each user seeks that user's last event instead of reading the log.
    #[tokio::test]
    async fn a_windows_last_placements_are_the_same_read_by_time_or_by_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let mut users = Vec::new();
        for name in ["a", "b", "c", "d"] {
            users.push(store.create_guest(name, 0).await.expect("guest").id);
        }
        // a: before and inside the window; b: only before; c: twice inside; d: never.
        let placed = [(0, 1_000), (1, 1_500), (0, 5_000), (2, 6_000), (2, 7_000)];
        let events: Vec<NewEvent> = placed
            .iter()
            .enumerate()
            .map(|(i, &(who, at))| {
                let mut e = event(i as u32, 0, 1, i as u64 + 1);
                e.user_id = users[who];
                e.placed_at = at;
                e
            })
            .collect();
        store.append_events(&events).await.expect("append");
        let pool = &store.embedded().expect("sqlite").pool;
        for since in [0, 2_000, 6_500, 8_000] {
            let mut by_time: Vec<(i64, i64)> = sqlx::query_as(RECENT_BY_TIME)
                .bind(since)
                .fetch_all(pool)
                .await
                .expect("by time");
            let mut by_user: Vec<(i64, i64)> = sqlx::query_as(RECENT_BY_USER)
                .bind(since)
                .fetch_all(pool)
                .await
                .expect("by user");
            by_time.sort();
            by_user.sort();
            assert_eq!(by_time, by_user, "since {since}");
            let mut chosen = store.recent_placements(since).await.expect("recent");
            chosen.sort();
            assert_eq!(chosen, by_time, "since {since}");
        }
        let (window, known): (i64, i64) = sqlx::query_as(WINDOW_AND_USERS)
            .bind(2_000)
            .fetch_one(pool)
            .await
            .expect("estimate");
        assert_eq!((window, known), (3, users[3]));
        let plan = plan(&store, sqlx::QueryBuilder::new(RECENT_BY_USER)).await;
        assert!(
            plan.contains("USING COVERING INDEX pixel_events_user_id (user_id=?)"),
            "{plan}"
        );
        assert!(
            plan.contains("USING INTEGER PRIMARY KEY (rowid=?)"),
            "{plan}"
        );
    }

    #[test]
    fn a_window_is_read_by_time_unless_it_holds_many_placements_per_user() {
        assert!(read_window_by_time(0, 0));
        assert!(read_window_by_time(50_000, 100_000));
        assert!(read_window_by_time(500_000, 100_000));
        assert!(!read_window_by_time(5_000_000, 100_000));
    }

    /// The queries over a recent window of the log read that window by time, never the whole
    /// log by user (the restart's cooldowns, the admin panel's top placers).
    #[tokio::test]
    async fn recent_windows_are_read_by_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        for sql in [RECENT_BY_TIME, TOP_PLACERS_SINCE] {
            let plan = plan(&store, sqlx::QueryBuilder::new(sql)).await;
            assert!(
                plan.contains("SEARCH e USING INDEX pixel_events_placed_at (placed_at>?)")
                    || plan.contains(
                        "SEARCH pixel_events USING INDEX pixel_events_placed_at (placed_at>?)"
                    ),
                "{plan}"
            );
        }
    }

    fn event(x: u32, y: u32, color: u8, tile_seq: u64) -> NewEvent {
        NewEvent {
            x,
            y,
            color,
            user_id: 1,
            placed_at: 1000,
            tile_seq,
            action_id: None,
        }
    }

    #[tokio::test]
    async fn expired_sessions_are_purged_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let user = store.create_guest("ab12", 0).await.expect("guest");
        for (id, expires) in [("old", 100), ("edge", 200), ("live", 300)] {
            store
                .create_session(id, user.id, 0, expires)
                .await
                .expect("session");
        }
        assert_eq!(store.delete_expired_sessions(200).await.expect("purge"), 2);
        let left: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM sessions")
            .fetch_all(&store.embedded().expect("sqlite").pool)
            .await
            .expect("read");
        assert_eq!(left, vec!["live".to_owned()]);
        assert_eq!(store.delete_expired_sessions(200).await.expect("purge"), 0);
    }

    #[tokio::test]
    async fn a_second_guest_with_a_taken_name_is_refused_as_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        store.create_guest("ab12", 0).await.expect("guest");
        assert!(matches!(
            store.create_guest("AB12", 0).await,
            Err(StoreError::UsernameTaken)
        ));
    }

    #[tokio::test]
    async fn sessions_expire_and_cooldowns_come_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(dir.path()).await.expect("open");
        let user = store.create_guest("ab12", 0).await.expect("guest");
        store
            .create_session("s1", user.id, 0, 100)
            .await
            .expect("session");
        assert_eq!(
            store.session_user("s1", 50).await.expect("query"),
            Some(user.clone())
        );
        assert_eq!(store.session_user("s1", 100).await.expect("query"), None);
        assert_eq!(store.session_user("nope", 0).await.expect("query"), None);
        store.touch_session("s1", 500).await.expect("touch");
        assert!(store
            .session_user("s1", 200)
            .await
            .expect("query")
            .is_some());

        let mut e = event(1, 1, 1, 1);
        e.user_id = user.id;
        e.placed_at = 5000;
        store
            .embedded()
            .expect("sqlite")
            .append_events(&[e])
            .await
            .expect("append");
        assert_eq!(
            store.recent_placements(4000).await.expect("query"),
            vec![(user.id, 5000)]
        );
        assert!(store
            .recent_placements(6000)
            .await
            .expect("query")
            .is_empty());
    }
}
