-- Sessions are kept by the SHA-256 of their id (64 hex digits), never the id itself: a copy of
-- the database does not let anyone act as its players. The ids stored so far were raw, so those
-- sessions end here (their players get a new guest, or sign in again).
DELETE FROM sessions;
ALTER TABLE sessions RENAME COLUMN id TO id_hash;
