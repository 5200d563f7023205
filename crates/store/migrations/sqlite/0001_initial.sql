-- The embedded store of `place serve`.

-- Canvas parameters the data was written for; a restart with other sizes is refused.
CREATE TABLE canvas_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_guest      INTEGER NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    banned        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions(expires_at);

-- Append-only: one row per acknowledged placement. `id` orders all events; `tile_seq` is the
-- seq the placement gave its tile.
CREATE TABLE pixel_events (
    id        INTEGER PRIMARY KEY,
    x         INTEGER NOT NULL,
    y         INTEGER NOT NULL,
    color     INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    placed_at INTEGER NOT NULL,
    tile_seq  INTEGER NOT NULL
);
CREATE INDEX pixel_events_placed_at ON pixel_events(placed_at);

-- The latest snapshot of each tile (DEFLATE-compressed pixels) at its seq.
CREATE TABLE tile_snapshots (
    tx   INTEGER NOT NULL,
    ty   INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tx, ty)
);

-- A checkpoint says: every tile snapshot reflects exactly the events with id <= through_event_id.
CREATE TABLE checkpoints (
    id               INTEGER PRIMARY KEY,
    through_event_id INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
