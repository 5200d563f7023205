-- Protected regions: rectangles of the canvas where placing is restricted (see
-- crates/store/src/regions.rs). `mode` is `locked`, `slow` or `registered`; `cooldown_ms` is a
-- slow region's own cooldown; `until_ms` when it ends by itself (NULL: never). `created_by` is
-- the administrator, or 0 for the server's spike alarm.
CREATE TABLE regions (
    id          BIGSERIAL PRIMARY KEY,
    x           BIGINT NOT NULL,
    y           BIGINT NOT NULL,
    width       BIGINT NOT NULL,
    height      BIGINT NOT NULL,
    mode        TEXT NOT NULL,
    cooldown_ms BIGINT,
    until_ms    BIGINT,
    created_by  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
