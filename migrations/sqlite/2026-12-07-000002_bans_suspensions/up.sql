-- Bans: a user kept out of one room (public rooms too) until `until`
-- (microseconds since the epoch), or until lifted when it is NULL.
-- Suspensions: an account that may not sign in.
CREATE TABLE room_bans (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      INTEGER,
    banned_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_bans_until_idx ON room_bans (until) WHERE until IS NOT NULL;

ALTER TABLE users ADD COLUMN suspended_at INTEGER;
