-- Timelapse: canvas snapshots taken now and then, and render jobs (see
-- crates/store/src/timelapse.rs).

-- A snapshot is the whole canvas at an exact position of the log: for each tile, every event up
-- to the seq in `tile_seqs` and none after. `covers_until` is the latest placed_at among those
-- events, so the snapshot serves every frame at or after it. Pixels (row-major palette indices)
-- and tile seqs (u64 little-endian, in tile index order) are raw-DEFLATE-compressed.
CREATE TABLE timelapse_snapshots (
    id           INTEGER PRIMARY KEY,
    taken_at     INTEGER NOT NULL,
    covers_until INTEGER NOT NULL,
    event_count  INTEGER NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    tile_seqs    BLOB NOT NULL,
    pixels       BLOB NOT NULL
);
CREATE INDEX timelapse_snapshots_covers_until ON timelapse_snapshots (covers_until);

-- A render job: who asked, what (params as JSON), how far it got, and its result.
CREATE TABLE timelapse_jobs (
    id           TEXT PRIMARY KEY,
    owner_id     INTEGER NOT NULL,
    params       TEXT NOT NULL,
    status       TEXT NOT NULL,
    frames_done  INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    content_type TEXT,
    result       BLOB,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);
CREATE INDEX timelapse_jobs_owner ON timelapse_jobs (owner_id, status);
CREATE INDEX timelapse_jobs_status ON timelapse_jobs (status);
