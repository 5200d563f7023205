-- The cluster store: PostgreSQL, one schema per deployment (the connection's search_path names it,
-- so nothing here is schema-qualified). Times are Unix epoch milliseconds.

-- Canvas parameters the data was written for; a start with other sizes is refused.
CREATE TABLE canvas_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT UNIQUE NOT NULL,
    password_hash TEXT,
    is_guest      BOOL NOT NULL,
    is_admin      BOOL NOT NULL DEFAULT false,
    banned        BOOL NOT NULL DEFAULT false,
    created_at    BIGINT NOT NULL
);

-- Append-only: one row per acknowledged placement, carrying its tile (tx, ty) and the seq it gave
-- that tile. The unique (tile, seq) is the fence between shards: two shards can never both write
-- seq N of a tile, so a shard wrongly presumed dead cannot overwrite history.
--
-- Its index is also what restoring a tile reads ("its events after seq S, in seq order"), and it
-- carries the other columns that needs (INCLUDE): the events of a tile are scattered all over the
-- table (every shard appends at once), so fetching them from the table costs a page read each, and
-- reading them from the index alone made restoring 1M events 6x faster. That works for the pages
-- vacuum has marked all-visible, hence the eager autovacuum below (cheap on an append-only table:
-- it only visits the new pages).
CREATE TABLE pixel_events (
    id        BIGSERIAL PRIMARY KEY,
    tx        INT NOT NULL,
    ty        INT NOT NULL,
    x         INT NOT NULL,
    y         INT NOT NULL,
    color     SMALLINT NOT NULL,
    user_id   BIGINT NOT NULL,
    placed_at BIGINT NOT NULL,
    tile_seq  BIGINT NOT NULL,
    CONSTRAINT pixel_events_tile_seq UNIQUE (tx, ty, tile_seq) INCLUDE (id, x, y, color)
) WITH (autovacuum_vacuum_insert_threshold = 100000, autovacuum_vacuum_insert_scale_factor = 0);
CREATE INDEX pixel_events_placed_at ON pixel_events (placed_at);

-- The latest snapshot of each tile (DEFLATE-compressed pixels) at its seq: it reflects exactly the
-- tile's events with tile_seq <= seq. Upserts never move it backwards.
CREATE TABLE tile_snapshots (
    tx         INT NOT NULL,
    ty         INT NOT NULL,
    seq        BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tx, ty)
);

-- What admins did (bans, settings, erasures), for the moderation work.
CREATE TABLE admin_audit_log (
    id         BIGSERIAL PRIMARY KEY,
    actor_id   BIGINT NOT NULL,
    action     TEXT NOT NULL,
    details    JSONB NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX admin_audit_log_created_at ON admin_audit_log (created_at);
