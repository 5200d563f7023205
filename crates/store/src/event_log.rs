//! The event log's writer in the embedded store: one thread owning one SQLite connection
//! (rusqlite), fed by one channel, that appends each group commit of placements in one
//! transaction (one fsync) with a prepared single-row `INSERT` run once per event.
//!
//! Why a thread of its own: through sqlx, each write was a round trip to sqlx's worker thread
//! of a pooled connection (a flume channel and a wake-up each way), and a batch was one
//! `INSERT` of up to 1,000 rows whose SQL text, different for every batch size, SQLite parsed
//! again and again. Here the statement is prepared once, and the only hand-offs are the job in
//! and the answer out.
//!
//! The thread takes the store's write gate for each commit, so it queues behind (and ahead of)
//! the store's other writes in order, exactly as a write through the pool does. Its connection
//! has the pool's settings: WAL, `synchronous=FULL`, no automatic WAL checkpoint (the store's
//! background task copies the WAL once a second under the gate).

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::types::{NewEvent, StoreError};

/// The one statement of an append, prepared once per connection.
const INSERT_EVENT: &str = "INSERT INTO pixel_events \
     (x, y, color, user_id, placed_at, tile_seq, action_id) VALUES (?, ?, ?, ?, ?, ?, ?)";

/// A job for the writer thread.
enum Job {
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
    /// Stops the thread (its connection closes); later appends fail.
    Stop,
}

/// The handle of the writer thread; cheap to share. The thread stops when the last handle is
/// dropped or [`EventLogWriter::stop`] is called.
#[derive(Debug)]
pub(crate) struct EventLogWriter {
    jobs: mpsc::Sender<Job>,
}

impl EventLogWriter {
    /// Opens a connection to the database at `path` (its schema already applied) and starts the
    /// thread that owns it.
    pub(crate) fn start(
        path: &Path,
        write_gate: Arc<tokio::sync::Mutex<()>>,
    ) -> Result<Self, StoreError> {
        let conn = open(path).map_err(writer_error)?;
        let (jobs, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("place-event-log".into())
            .spawn(move || run(conn, receiver, &write_gate))
            .map_err(|e| StoreError::Writer(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Appends `events` in one transaction; returns the id of the last one (consecutive ids in
    /// the order given). An empty batch writes nothing and returns the current last id.
    pub(crate) async fn append(&self, events: Vec<NewEvent>) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Append { events, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stops the thread once the jobs before this one are done.
    pub(crate) fn stop(&self) {
        let _ = self.jobs.send(Job::Stop);
    }
}

fn stopped() -> StoreError {
    StoreError::Writer("the event log's writer has stopped".into())
}

fn writer_error(e: rusqlite::Error) -> StoreError {
    StoreError::Writer(e.to_string())
}

/// The connection, with the settings of the store's pool.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "temp_store", "memory")?;
    // The indexes of the log are updated at random places: 64 MiB of page cache keeps them in
    // memory instead of a `pread` per page touched again.
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 536_870_912)?;
    Ok(conn)
}

fn run(mut conn: Connection, jobs: mpsc::Receiver<Job>, write_gate: &tokio::sync::Mutex<()>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Append { events, reply } => {
                let written = {
                    let _writing = write_gate.blocking_lock();
                    append(&mut conn, &events)
                };
                let _ = reply.send(written.map_err(writer_error));
            }
            Job::Stop => break,
        }
    }
}

/// One transaction: every event, then the last id.
fn append(conn: &mut Connection, events: &[NewEvent]) -> rusqlite::Result<i64> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT)?;
        for e in events {
            insert.execute(params![
                e.x,
                e.y,
                e.color,
                e.user_id,
                e.placed_at,
                e.tile_seq as i64,
                e.action_id
            ])?;
        }
    }
    let last: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM pixel_events", [], |row| {
        row.get(0)
    })?;
    tx.commit()?;
    Ok(last)
}
