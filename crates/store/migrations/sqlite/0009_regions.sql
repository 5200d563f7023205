-- Protected regions: rectangles of the canvas where placing is restricted (see
-- crates/store/src/regions.rs). `mode` is `locked`, `slow` or `registered`; `cooldown_ms` is a
-- slow region's own cooldown; `until_ms` when it ends by itself (NULL: never). `created_by` is
-- the administrator, or 0 for the server's spike alarm.
CREATE TABLE regions (
    id          INTEGER PRIMARY KEY,
    x           INTEGER NOT NULL,
    y           INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    mode        TEXT NOT NULL,
    cooldown_ms INTEGER,
    until_ms    INTEGER,
    created_by  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
