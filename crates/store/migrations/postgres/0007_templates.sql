-- Templates: an image a player lays over the canvas at (x, y) to paint by, shared by its id
-- (see crates/store/src/templates.rs). `pixels` is opaque here: the edge's compressed encoding.
CREATE TABLE templates (
    id         TEXT PRIMARY KEY,
    owner_id   BIGINT NOT NULL,
    x          BIGINT NOT NULL,
    y          BIGINT NOT NULL,
    width      BIGINT NOT NULL,
    height     BIGINT NOT NULL,
    pixels     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
-- The per-owner rate: templates made since a moment.
CREATE INDEX templates_owner_created ON templates (owner_id, created_at);
