-- Bans: a user kept out of one room (public rooms too) until `until`, or
-- until lifted when it is NULL. An expired row bans nobody; housekeeping
-- deletes it later. Suspensions: an account that may not sign in.
CREATE TABLE room_bans (
    room_id    bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      timestamptz,
    banned_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_bans_until_idx ON room_bans (until) WHERE until IS NOT NULL;

ALTER TABLE users ADD COLUMN suspended_at timestamptz;
