-- A user's placements need one index, not two: `pixel_events_user_id (user_id, id)` (the history
-- by user) also finds a rollback's placements (`user_id = ? AND placed_at >= ?`), reading each of
-- that user's placements once, which the cooldown bounds (17,280 a day at 5 s). The index of
-- migration 0003 on `(user_id, placed_at)` cost every placement a random B-tree insert: 16 to 19%
-- of the embedded event log's CPU at 10,000 placements/s (bench/RESULTS.md, section 16); PostgreSQL
-- maintains each index the same way.
DROP INDEX IF EXISTS pixel_events_user;
