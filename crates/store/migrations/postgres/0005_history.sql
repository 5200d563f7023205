-- History: a pixel's placements and a user's, newest first, by keyset pages (see
-- crates/store/src/history.rs). Each page is one range scan of one of these.
--
-- Built in the migration's transaction, which blocks writes to pixel_events while it runs (about
-- a minute per 10M events on the 2-core machine of bench/RESULTS.md): run it at a quiet time on a
-- large log.

-- A pixel's placements in the order its tile applied them (a pixel lies in one tile, and its seq
-- is the order the owning shard applied them, whichever shard that was). It also serves every
-- lookup by (x, y) the older index did (rollbacks, the admin panel), so that one goes.
CREATE INDEX pixel_events_pixel_seq ON pixel_events (x, y, tile_seq);
DROP INDEX pixel_events_pixel;

-- A user's placements by event id. (user_id, placed_at) stays: rollbacks select by time.
CREATE INDEX pixel_events_user_id ON pixel_events (user_id, id);
