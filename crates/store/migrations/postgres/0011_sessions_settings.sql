-- The tables `place serve` keeps sessions and settings in, so that one store handle answers the
-- same queries on both engines (the cluster's edges keep sessions and settings in Redis and leave
-- these empty). Sessions are kept by the SHA-256 of their id, never the id itself.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Settings an administrator changed while running, kept across restarts.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
