//! The embedded store: SQLite (through sqlx) in WAL mode in a local data directory.
//!
//! Durability: `synchronous=FULL`, so a committed transaction survives a crash of the process and
//! of the machine. The shard batches many placements into one [`EmbeddedStore::append_events`]
//! call (group commit): one transaction and one fsync for the whole batch, written by the event
//! log's own thread and connection (`crate::event_log`); every other query goes through the
//! sqlx pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use place_tiles::{decompress_tile, CanvasGeometry, PixelChange, Tile, TileId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use tracing::info;

use crate::event_log::EventLogWriter;
use crate::moderation::{
    affected_events, like_prefix, mark_reverted, AuditEntry, EventRecord, LoggedEvent,
    PlacementStats, Planner, RevertPlan, Selection, TOP_PLACERS,
};
use crate::types::{NewEvent, RestoredCanvas, StoreError, TileSnapshotRecord, User, UserLogin};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "place.sqlite3";
/// Rows per INSERT statement of a checkpoint: 4 values each stays far below SQLite's 32,766 bound
/// parameters.
const INSERT_CHUNK: usize = 1000;

/// The columns of an [`EventRecord`], joined with the placer's name and the revert mark.
const EVENT_RECORD: &str = "SELECT e.id, e.x, e.y, e.color, e.user_id, u.username, e.placed_at, \
     e.action_id, r.event_id IS NOT NULL FROM pixel_events e \
     LEFT JOIN users u ON u.id = e.user_id LEFT JOIN reverted_events r ON r.event_id = e.id";

/// A row of [`EVENT_RECORD`].
type EventRow = (
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

fn event_record(r: EventRow) -> EventRecord {
    EventRecord {
        id: r.0,
        x: r.1 as u32,
        y: r.2 as u32,
        color: r.3 as u8,
        user_id: r.4,
        username: r.5,
        placed_at: r.6,
        action_id: r.7,
        reverted: r.8,
    }
}

/// The embedded store of `place serve`.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    pub(crate) pool: SqlitePool,
    /// Taken by the frequent writes (placements, checkpoints, sessions) so that they queue here,
    /// in order, instead of inside SQLite, where a writer that finds the database locked sleeps
    /// in growing steps (up to 100 ms each) until it is free: a burst of connecting players
    /// (three small writes each) must not make the placements' writer sleep.
    pub(crate) write_gate: Arc<tokio::sync::Mutex<()>>,
    /// The thread that appends placements to the event log, on its own connection.
    event_log: Arc<EventLogWriter>,
}

impl EmbeddedStore {
    /// Opens (creating when needed) the store in `dir` and applies the schema.
    ///
    /// The directory is made private to the process's user (0700) and so are the database and
    /// its companions (0600: SQLite gives its WAL, shared-memory and journal files the
    /// database's mode), including those of an existing directory made before.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        make_private(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(DATABASE_FILE);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Statement journals (an INSERT of many rows keeps one) stay in memory instead of a
            // temporary file: a profile of ingest put 8% of the server's time in writing them.
            .pragma("temp_store", "memory")
            // 32 MiB of page cache per connection (the default is 2 MiB): the event log's
            // indexes are updated at random places, and pages read again cost a `pread` each.
            .pragma("cache_size", "-32768")
            // The WAL is copied into the database once a second by a background task holding
            // the write gate (`checkpoint_wal`), not by whichever commit crosses 1,000 pages.
            .pragma("wal_autocheckpoint", "0")
            // A WAL that grew (a long read holds old frames) is cut back to 64 MiB once copied.
            .pragma("journal_size_limit", "67108864");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file does not drop connections: no ping (a round trip) before each use.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let write_gate = Arc::default();
        let event_log = Arc::new(EventLogWriter::start(&path, Arc::clone(&write_gate))?);
        tokio::spawn(checkpoint_wal(pool.clone(), Arc::clone(&write_gate)));
        Ok(Self {
            pool,
            write_gate,
            event_log,
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Appends placements to the event log in one transaction (one fsync) and returns the id of
    /// the last one. Events get consecutive ids in the order given.
    ///
    /// The event log's own thread writes them (`crate::event_log`): a prepared single-row
    /// `INSERT` per event inside one transaction, after the write gate.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<i64, StoreError> {
        self.event_log.append(events.to_vec()).await
    }

    /// Saves tile snapshots and marks them as covering every event up to `through_event_id`.
    pub async fn write_checkpoint(
        &self,
        snapshots: &[TileSnapshotRecord],
        through_event_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.write_gate.lock().await;
        let mut tx = self.pool.begin().await?;
        // Many rows per statement: each statement is a round trip to the connection's thread,
        // which under load waits for a core, and the writer's slot is held meanwhile (a
        // checkpoint of 400 tiles row by row stalled placements for 400 ms under fan-out load).
        for chunk in snapshots.chunks(INSERT_CHUNK) {
            let mut insert =
                QueryBuilder::new("INSERT OR REPLACE INTO tile_snapshots (tx, ty, seq, data) ");
            insert.push_values(chunk, |mut row, s| {
                row.push_bind(i64::from(s.tile.tx))
                    .push_bind(i64::from(s.tile.ty))
                    .push_bind(s.seq as i64)
                    .push_bind(&s.data);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO checkpoints (through_event_id, created_at) VALUES (?, ?)")
            .bind(through_event_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM checkpoints WHERE id < (SELECT MAX(id) FROM checkpoints)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Restores every tile: the latest snapshots, then the events after the last checkpoint.
    pub async fn load_canvas(
        &self,
        geometry: CanvasGeometry,
    ) -> Result<RestoredCanvas, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let restored = load_canvas_on(&mut conn, geometry).await?;
        info!(
            events_replayed = restored.events_replayed,
            last_event_id = restored.last_event_id,
            "canvas restored"
        );
        Ok(restored)
    }

    /// The canvas as the event log alone says it is (every event replayed in order, snapshots
    /// ignored): `width*height` palette indices, row-major. For `place verify`.
    pub async fn replay_log(&self, geometry: CanvasGeometry) -> Result<Vec<u8>, StoreError> {
        self.replay_log_until(geometry, i64::MAX).await
    }

    /// [`EmbeddedStore::replay_log`] of only the events placed at or before `until_ms`: the
    /// canvas as it was then (what every timelapse frame must equal).
    pub async fn replay_log_until(
        &self,
        geometry: CanvasGeometry,
        until_ms: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let width = geometry.width() as usize;
        let mut canvas = vec![0u8; width * geometry.height() as usize];
        let mut events = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT x, y, color FROM pixel_events WHERE placed_at <= ? ORDER BY id",
        )
        .bind(until_ms)
        .fetch(&self.pool);
        while let Some((x, y, color)) = events.try_next().await? {
            if !geometry.contains(x as u32, y as u32) {
                return Err(StoreError::Corrupt(format!(
                    "event at ({x},{y}) is outside the canvas"
                )));
            }
            canvas[y as usize * width + x as usize] = color as u8;
        }
        Ok(canvas)
    }

    /// The latest placement time of each user who placed at or after `since_ms`, to restore
    /// cooldowns after a restart.
    pub async fn recent_placements(&self, since_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT user_id, MAX(placed_at) FROM pixel_events WHERE placed_at >= ? GROUP BY user_id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Makes a guest user named `guest-<name_suffix>`; [`StoreError::UsernameTaken`] if that
    /// name is taken.
    pub async fn create_guest(&self, name_suffix: &str, now_ms: i64) -> Result<User, StoreError> {
        let _writing = self.write_gate.lock().await;
        let username = format!("guest-{name_suffix}");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, is_guest, created_at) VALUES (?, 1, ?) RETURNING id",
        )
        .bind(&username)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::from_user_write)?;
        Ok(User {
            id,
            username,
            is_guest: true,
            is_admin: false,
            banned: false,
        })
    }

    /// Stores a session for a user. Sessions are kept by a hash of their id (`id_hash`: the
    /// caller's, the edge's SHA-256), never by the id the cookie carries.
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.write_gate.lock().await;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a session (by its id's hash) that has not expired.
    pub async fn session_user(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.username, u.is_guest, u.is_admin, u.banned FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND s.expires_at > ?",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deletes a session (logout), by its id's hash: from now on it is unknown.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let _writing = self.write_gate.lock().await;
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes every session expired at `now_ms` (none of them is usable any more); returns
    /// how many. The edge calls it every minute, so the table holds only live sessions.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        let _writing = self.write_gate.lock().await;
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A user found by name in any letter case, with the password hash login checks.
    pub async fn user_login(&self, username: &str) -> Result<Option<UserLogin>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, username, is_guest, is_admin, banned, password_hash FROM users \
             WHERE lower(username) = lower(?)",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Makes a registered user; [`StoreError::UsernameTaken`] if the name is taken in any case.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        sqlx::query_as(
            "INSERT INTO users (username, password_hash, is_guest, is_admin, created_at) \
             VALUES (?, ?, 0, ?, ?) RETURNING id, username, is_guest, is_admin, banned",
        )
        .bind(username)
        .bind(password_hash)
        .bind(is_admin)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
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
        sqlx::query_as(
            "UPDATE users SET username = ?, password_hash = ?, is_guest = 0 \
             WHERE id = ? AND is_guest RETURNING id, username, is_guest, is_admin, banned",
        )
        .bind(username)
        .bind(password_hash)
        .bind(guest_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from_user_write)
    }

    /// Extends a session's expiry (sliding sessions), by its id's hash.
    pub async fn touch_session(&self, id_hash: &str, expires_at_ms: i64) -> Result<(), StoreError> {
        let _writing = self.write_gate.lock().await;
        sqlx::query("UPDATE sessions SET expires_at = ? WHERE id_hash = ?")
            .bind(expires_at_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Bans or unbans a user.
    pub async fn set_banned(&self, user_id: i64, banned: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET banned = ? WHERE id = ?")
            .bind(banned)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes the registered user `username` (any letter case) an administrator or not; `None`
    /// when there is no such registered user. Its sessions see the change at their next request
    /// (a session's user is read with it).
    pub async fn set_admin(
        &self,
        username: &str,
        is_admin: bool,
    ) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as(
            "UPDATE users SET is_admin = ? WHERE lower(username) = lower(?) AND is_guest = 0 \
             RETURNING id, username, is_guest, is_admin, banned",
        )
        .bind(is_admin)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The ids of banned users.
    pub async fn banned_users(&self) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE banned = 1")
            .fetch_all(&self.pool)
            .await?)
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, username, is_guest, is_admin, banned FROM users WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Users whose name starts with `prefix` in any letter case, by name, at most `limit`.
    pub async fn find_users(&self, prefix: &str, limit: i64) -> Result<Vec<User>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, username, is_guest, is_admin, banned FROM users \
             WHERE lower(username) LIKE ? ESCAPE '\\' ORDER BY lower(username) LIMIT ?",
        )
        .bind(like_prefix(prefix))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Reverts the placements `selection` names for a moderation action, and plans the restores:
    /// writes the action's audit log row (`actor_id`, `action`, `details` as JSON text) and the
    /// revert marks in one transaction, then reads every event of the pixels concerned. See
    /// [`crate::moderation`].
    pub async fn revert(
        &self,
        actor_id: i64,
        action: &str,
        details: &str,
        selection: &Selection,
        now_ms: i64,
    ) -> Result<RevertPlan, StoreError> {
        let mut tx = self.pool.begin().await?;
        let action_id = insert_audit(&mut *tx, actor_id, action, details, now_ms).await?;
        let reverted = mark_reverted(action_id, selection)
            .build()
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;

        let mut read = affected_events(selection, "e.id");
        let mut planner = Planner::default();
        let mut rows = read
            .build_query_as::<(i64, i64, i64, bool, bool)>()
            .fetch(&self.pool);
        while let Some((x, y, color, restore, reverted)) = rows.try_next().await? {
            planner.push(LoggedEvent {
                x: x as u32,
                y: y as u32,
                color: color as u8,
                restore,
                reverted,
            });
        }
        Ok(RevertPlan {
            action_id,
            reverted,
            restores: planner.finish(),
        })
    }

    /// Writes a row of the audit log; returns its id.
    pub async fn append_audit(
        &self,
        actor_id: i64,
        action: &str,
        details: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        insert_audit(&self.pool, actor_id, action, details, now_ms).await
    }

    /// Replaces the details of an audit log row (an action's outcome, once it is known).
    pub async fn update_audit(&self, id: i64, details: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE admin_audit_log SET details = ? WHERE id = ?")
            .bind(details)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The audit log, newest first: at most `limit` rows with an id below `before` (all when
    /// `None`).
    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, i64, Option<String>, String, String, i64)>(
            "SELECT a.id, a.actor_id, u.username, a.action, a.details, a.created_at \
             FROM admin_audit_log a LEFT JOIN users u ON u.id = a.actor_id \
             WHERE a.id < ? ORDER BY a.id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
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
        let rows = sqlx::query_as::<_, (i64, i64, Option<String>, String, String, i64)>(
            "SELECT a.id, a.actor_id, u.username, a.action, a.details, a.created_at \
             FROM admin_audit_log a LEFT JOIN users u ON u.id = a.actor_id \
             WHERE a.action = ? AND a.created_at >= ? ORDER BY a.id DESC LIMIT ?",
        )
        .bind(action)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// The latest placements on pixel `(x, y)`, newest first.
    pub async fn pixel_events(
        &self,
        x: u32,
        y: u32,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{EVENT_RECORD} WHERE e.x = ? AND e.y = ? ORDER BY e.id DESC LIMIT ?"
        ))
        .bind(i64::from(x))
        .bind(i64::from(y))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(event_record).collect())
    }

    /// A user's latest placements, newest first.
    pub async fn user_events(
        &self,
        user_id: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{EVENT_RECORD} WHERE e.user_id = ? ORDER BY e.placed_at DESC, e.id DESC LIMIT ?"
        ))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(event_record).collect())
    }

    /// Placements in the last minute, the top placers of the last hour, the bans.
    pub async fn placement_stats(&self, now_ms: i64) -> Result<PlacementStats, StoreError> {
        let last_minute: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pixel_events WHERE placed_at >= ?")
                .bind(now_ms - 60_000)
                .fetch_one(&self.pool)
                .await?;
        let top_placers = sqlx::query_as(
            "SELECT e.user_id, u.username, COUNT(*) AS n FROM pixel_events e \
             LEFT JOIN users u ON u.id = e.user_id \
             WHERE e.placed_at >= ? AND e.action_id IS NULL \
             GROUP BY e.user_id, u.username ORDER BY n DESC, e.user_id LIMIT ?",
        )
        .bind(now_ms - 3_600_000)
        .bind(TOP_PLACERS)
        .fetch_all(&self.pool)
        .await?;
        let banned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE banned")
            .fetch_one(&self.pool)
            .await?;
        Ok(PlacementStats {
            last_minute,
            top_placers,
            banned,
        })
    }

    /// The cooldown an administrator set, if one ever did.
    pub async fn stored_cooldown_ms(&self) -> Result<Option<u64>, StoreError> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'cooldown_ms'")
                .fetch_optional(&self.pool)
                .await?;
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| StoreError::Corrupt(format!("stored cooldown {v:?}")))
            })
            .transpose()
    }

    /// Keeps the cooldown an administrator set, for the next start.
    pub async fn save_cooldown_ms(&self, cooldown_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('cooldown_ms', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(cooldown_ms.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the pool, waiting for queries in flight, and stops the event log's writer.
    pub async fn close(&self) {
        self.event_log.stop();
        self.pool.close().await;
    }
}

/// Writes an audit log row through `executor` (the pool, or a transaction); returns its id.
async fn insert_audit<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    actor_id: i64,
    action: &str,
    details: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO admin_audit_log (actor_id, action, details, created_at) \
         VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(actor_id)
    .bind(action)
    .bind(details)
    .bind(now_ms)
    .fetch_one(executor)
    .await?)
}

/// How often the WAL is copied into the database file.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the WAL into the database every [`WAL_CHECKPOINT_EVERY`], so that no commit pays for
/// the copy. It holds the write gate meanwhile, so none of the frequent writes runs and the copy
/// completes; the next write then starts the WAL again from its beginning (a copy racing a steady
/// writer never completes, and the WAL grew by gigabytes while the benchmark seeded its log). The
/// rare writes that do not take the gate (accounts, moderation, timelapse jobs) can only delay
/// that restart to the next second. The frequent writes wait for at most one second's worth of
/// WAL. Ends when the pool is closed.
/// The files SQLite keeps beside the database: write-ahead log, shared memory, rollback journal.
const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Makes `dir` (created when missing) readable by the process's user only (0700), creates the
/// database file 0600 when missing (SQLite gives its companion files the database's mode) and
/// puts the database and its companions back to 0600 if they were made otherwise (by an earlier
/// version, say).
fn make_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let database = dir.join(DATABASE_FILE);
        // Neither `truncate` nor `create_new`: an existing database is opened untouched.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&database)?;
        let companions = COMPANION_SUFFIXES.map(|suffix| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            std::path::PathBuf::from(name)
        });
        for file in std::iter::once(database).chain(companions) {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

async fn checkpoint_wal(pool: SqlitePool, write_gate: Arc<tokio::sync::Mutex<()>>) {
    let mut every = tokio::time::interval(WAL_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        let _writing = write_gate.lock().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; the next one will copy what is left");
        }
    }
}

/// [`EmbeddedStore::load_canvas`] on one connection (or inside a transaction, for a consistent
/// read: [`EmbeddedStore::read_canvas`]).
pub(crate) async fn load_canvas_on(
    conn: &mut sqlx::SqliteConnection,
    geometry: CanvasGeometry,
) -> Result<RestoredCanvas, StoreError> {
    let mut tiles: Vec<Tile> = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    let rows = sqlx::query("SELECT tx, ty, seq, data FROM tile_snapshots")
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let tile = TileId::new(
            row.try_get::<i64, _>("tx")? as u16,
            row.try_get::<i64, _>("ty")? as u16,
        );
        if !geometry.contains_tile(tile) {
            return Err(StoreError::Corrupt(format!(
                "snapshot of tile {tile} outside the canvas"
            )));
        }
        let pixels = decompress_tile(row.try_get::<&[u8], _>("data")?)
            .map_err(|e| StoreError::Corrupt(format!("snapshot of tile {tile}: {e}")))?;
        let seq = row.try_get::<i64, _>("seq")? as u64;
        tiles[geometry.tile_index(tile)] = Tile::from_pixels(seq, pixels);
    }
    let through: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(through_event_id), 0) FROM checkpoints")
            .fetch_one(&mut *conn)
            .await?;
    let mut replayed = 0u64;
    let mut last_event_id = through;
    let mut events = sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
        "SELECT id, x, y, color, tile_seq FROM pixel_events WHERE id > ? ORDER BY id",
    )
    .bind(through)
    .fetch(&mut *conn);
    while let Some((id, x, y, color, tile_seq)) = events.try_next().await? {
        let (tile_id, lx, ly) = geometry.locate(x as u32, y as u32).ok_or_else(|| {
            StoreError::Corrupt(format!("event {id} at ({x},{y}) is outside the canvas"))
        })?;
        let tile = &mut tiles[geometry.tile_index(tile_id)];
        let tile_seq = tile_seq as u64;
        if tile_seq <= tile.seq() {
            // Already in the snapshot (a checkpoint written while this batch was in flight).
            last_event_id = id;
            continue;
        }
        if tile_seq != tile.seq() + 1 {
            return Err(StoreError::Corrupt(format!(
                "event {id} has seq {tile_seq} but tile {tile_id} is at {}",
                tile.seq()
            )));
        }
        tile.apply(PixelChange {
            lx,
            ly,
            color: color as u8,
        });
        replayed += 1;
        last_event_id = id;
    }
    Ok(RestoredCanvas {
        tiles,
        last_event_id,
        events_replayed: replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn appended_events_get_consecutive_ids_in_order_whatever_the_batch_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        // An empty batch writes nothing and answers the last id so far.
        let sizes = [0, 1, 1000, 1500, 0, 3];
        let mut expected_last = 0;
        let mut seq = 0;
        for size in sizes {
            let events: Vec<NewEvent> = (0..size)
                .map(|_| {
                    seq += 1;
                    event(
                        (seq % 2000) as u32,
                        (seq / 2000) as u32,
                        (seq % 16) as u8,
                        seq,
                    )
                })
                .collect();
            expected_last += size as i64;
            let last = store.append_events(&events).await.expect("append");
            assert_eq!(last, expected_last, "a batch of {size}");
        }
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT id, x, tile_seq FROM pixel_events ORDER BY id")
                .fetch_all(&store.pool)
                .await
                .expect("read");
        assert_eq!(rows.len() as i64, expected_last);
        for (id, x, tile_seq) in rows {
            assert_eq!(
                tile_seq, id,
                "ids follow the order the events were given in"
            );
            assert_eq!(x, id % 2000);
        }
    }

    #[tokio::test]
    async fn events_and_checkpoints_restore_the_canvas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let geometry = CanvasGeometry::new(100, 100).expect("valid");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        store.canvas_geometry(geometry).await.expect("first use");

        let last = store
            .append_events(&[event(1, 1, 3, 1), event(70, 1, 4, 1), event(1, 1, 5, 2)])
            .await
            .expect("append");
        assert_eq!(last, 3);

        // Checkpoint tile (0,0) at seq 2, then more events after it.
        let mut t00 = Tile::new();
        t00.apply(PixelChange {
            lx: 1,
            ly: 1,
            color: 3,
        });
        t00.apply(PixelChange {
            lx: 1,
            ly: 1,
            color: 5,
        });
        let mut t10 = Tile::new();
        t10.apply(PixelChange {
            lx: 6,
            ly: 1,
            color: 4,
        });
        let records = [(TileId::new(0, 0), &t00), (TileId::new(1, 0), &t10)].map(|(tile, t)| {
            TileSnapshotRecord {
                tile,
                seq: t.seq(),
                data: place_tiles::compress_tile(t.pixels()),
            }
        });
        store
            .write_checkpoint(&records, last, 2000)
            .await
            .expect("checkpoint");
        store
            .append_events(&[event(2, 2, 7, 3)])
            .await
            .expect("append");
        store.close().await;

        let store = EmbeddedStore::open(dir.path()).await.expect("reopen");
        let restored = store.load_canvas(geometry).await.expect("load");
        assert_eq!(restored.events_replayed, 1);
        assert_eq!(restored.last_event_id, 4);
        let tile = &restored.tiles[geometry.tile_index(TileId::new(0, 0))];
        assert_eq!((tile.seq(), tile.get(1, 1), tile.get(2, 2)), (3, 5, 7));
        assert_eq!(
            restored.tiles[geometry.tile_index(TileId::new(1, 0))].get(6, 1),
            4
        );
    }

    #[tokio::test]
    async fn a_different_canvas_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        store
            .canvas_geometry(CanvasGeometry::new(100, 100).expect("valid"))
            .await
            .expect("first");
        let err = store
            .canvas_geometry(CanvasGeometry::new(200, 100).expect("valid"))
            .await;
        assert!(matches!(err, Err(StoreError::CanvasMismatch { .. })));
    }

    #[tokio::test]
    async fn a_gap_in_tile_seqs_is_reported_as_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let geometry = CanvasGeometry::new(64, 64).expect("valid");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        store
            .append_events(&[event(1, 1, 3, 1), event(1, 1, 3, 3)])
            .await
            .expect("append");
        assert!(matches!(
            store.load_canvas(geometry).await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn expired_sessions_are_purged_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        let user = store.create_guest("ab12", 0).await.expect("guest");
        for (id, expires) in [("old", 100), ("edge", 200), ("live", 300)] {
            store
                .create_session(id, user.id, 0, expires)
                .await
                .expect("session");
        }
        assert_eq!(store.delete_expired_sessions(200).await.expect("purge"), 2);
        let left: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM sessions")
            .fetch_all(&store.pool)
            .await
            .expect("read");
        assert_eq!(left, vec!["live".to_owned()]);
        assert_eq!(store.delete_expired_sessions(200).await.expect("purge"), 0);
    }

    #[tokio::test]
    async fn a_second_guest_with_a_taken_name_is_refused_as_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        store.create_guest("ab12", 0).await.expect("guest");
        assert!(matches!(
            store.create_guest("AB12", 0).await,
            Err(StoreError::UsernameTaken)
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_data_directory_and_its_files_are_private_even_when_made_before() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("data");
        let store = EmbeddedStore::open(&dir).await.expect("open");
        let user = store.create_guest("ab12", 0).await.expect("guest");
        store
            .create_session("h", user.id, 0, 1)
            .await
            .expect("write");
        assert_eq!(mode(&dir), 0o700);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
        assert!(files >= 3, "the database, its WAL and shared memory");
        store.pool.close().await;

        // A directory and files left world-readable by an earlier version are made private.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let store = EmbeddedStore::open(&dir).await.expect("open again");
        assert_eq!(mode(&dir), 0o700);
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        store.pool.close().await;
    }

    #[tokio::test]
    async fn sessions_expire_and_cooldowns_come_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
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
        store.append_events(&[e]).await.expect("append");
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

    #[tokio::test]
    async fn guests_register_in_place_and_names_are_unique_in_any_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).await.expect("open");
        let guest = store.create_guest("ab12", 0).await.expect("guest");
        store
            .create_session("s1", guest.id, 0, 100)
            .await
            .expect("session");
        let alice = store
            .register_guest(guest.id, "Alice", "$hash")
            .await
            .expect("register")
            .expect("was a guest");
        assert_eq!((alice.id, alice.is_guest), (guest.id, false));
        assert_eq!(
            store.session_user("s1", 1).await.expect("query"),
            Some(alice.clone())
        );
        // Only once: it is no guest any more.
        assert_eq!(
            store
                .register_guest(guest.id, "Alice2", "$hash")
                .await
                .expect("query"),
            None
        );
        let found = store
            .user_login("aLiCe")
            .await
            .expect("query")
            .expect("found");
        assert_eq!(
            (found.user, found.password_hash.as_deref()),
            (alice, Some("$hash"))
        );
        assert!(matches!(
            store.create_user("ALICE", "$h", false, 0).await,
            Err(StoreError::UsernameTaken)
        ));
        let other = store.create_guest("cd34", 0).await.expect("guest");
        assert!(matches!(
            store.register_guest(other.id, "alice", "$h").await,
            Err(StoreError::UsernameTaken)
        ));
        let admin = store
            .create_user("root", "$h", true, 0)
            .await
            .expect("create");
        assert!(admin.is_admin && !admin.is_guest);

        store.delete_session("s1").await.expect("delete");
        assert_eq!(store.session_user("s1", 1).await.expect("query"), None);
    }
}
