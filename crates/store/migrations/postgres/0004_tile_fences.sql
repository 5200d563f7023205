-- Ownership fences for resharding. Each tile has the ring epoch at which it last moved to a new
-- owner; a shard appends a tile's events only while that epoch is not newer than the shard's own
-- ring epoch. The new owner of a tile raises its fence before it loads the tile; the raise waits
-- for every write of the old owner that is under way (they hold the row FOR SHARE), and every
-- write of the old owner after it is refused. So a shard wrongly presumed dead, or one that has
-- not yet seen the new ring, can never write a tile that has moved.
--
-- One row per tile of the canvas, created with epoch 0 when a node first checks the canvas
-- (PgStore::check_canvas).
CREATE TABLE tile_fences (
    tx    INT NOT NULL,
    ty    INT NOT NULL,
    epoch BIGINT NOT NULL,
    PRIMARY KEY (tx, ty)
);
