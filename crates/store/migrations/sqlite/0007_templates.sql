-- Templates: an image a player lays over the canvas at (x, y) to paint by, shared by its id
-- (see crates/store/src/templates.rs). `pixels` is opaque here: the edge's compressed encoding.
CREATE TABLE templates (
    id         TEXT PRIMARY KEY,
    owner_id   INTEGER NOT NULL,
    x          INTEGER NOT NULL,
    y          INTEGER NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    pixels     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
-- The per-owner rate: templates made since a moment.
CREATE INDEX templates_owner_created ON templates (owner_id, created_at);
