-- Accounts: usernames are unique whatever their letter case, so "Alice" cannot register beside
-- "alice", and login finds a user by any case of its name (through this index).
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
