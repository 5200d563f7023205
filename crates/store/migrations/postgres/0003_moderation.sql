-- Moderation: rollbacks and resets (the audit log exists since 0001).

-- A placement that restores a pixel for a moderation action carries that action's audit log id;
-- a player's placement has none. Restoring placements are ordinary events otherwise, so a
-- replay of the log still gives the canvas. (A nullable column without a default: no rewrite.)
ALTER TABLE pixel_events ADD COLUMN action_id BIGINT;

-- Placements a rollback or a reset took back, and which action did. pixel_events stays
-- append-only (no updates, so vacuum's all-visible pages keep restores index-only); "the colour
-- before" skips these and the restoring placements.
CREATE TABLE reverted_events (
    event_id  BIGINT PRIMARY KEY,
    action_id BIGINT NOT NULL
);

-- A user's placements (rollback, the admin panel) and a pixel's (who placed it).
CREATE INDEX pixel_events_user ON pixel_events (user_id, placed_at);
CREATE INDEX pixel_events_pixel ON pixel_events (x, y);
