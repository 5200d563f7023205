-- Moderation: rollbacks and resets, the audit log, settings an administrator changes.

-- A placement that restores a pixel for a moderation action carries that action's audit log id;
-- a player's placement has none. Restoring placements are ordinary events otherwise, so a
-- replay of the log still gives the canvas.
ALTER TABLE pixel_events ADD COLUMN action_id INTEGER;

-- Placements a rollback or a reset took back, and which action did. The event log itself stays
-- append-only; "the colour before" skips these and the restoring placements.
CREATE TABLE reverted_events (
    event_id  INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL
);

-- A user's placements (rollback, the admin panel) and a pixel's (who placed it).
CREATE INDEX pixel_events_user ON pixel_events (user_id, placed_at);
CREATE INDEX pixel_events_pixel ON pixel_events (x, y);

-- What administrators did: who, what, when, the details as JSON text.
CREATE TABLE admin_audit_log (
    id         INTEGER PRIMARY KEY,
    actor_id   INTEGER NOT NULL,
    action     TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX admin_audit_log_created_at ON admin_audit_log (created_at);

-- Settings an administrator changed while running (the cooldown), kept across restarts.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
