-- History: a pixel's placements and a user's, newest first, by keyset pages (see
-- crates/store/src/history.rs). Each page is one range scan of one of these.

-- A pixel's placements in the order its tile applied them. It also serves every lookup by (x, y)
-- the older index did (rollbacks, the admin panel), so that one goes.
CREATE INDEX pixel_events_pixel_seq ON pixel_events (x, y, tile_seq);
DROP INDEX pixel_events_pixel;

-- A user's placements by event id. (user_id, placed_at) stays: rollbacks select by time.
CREATE INDEX pixel_events_user_id ON pixel_events (user_id, id);
