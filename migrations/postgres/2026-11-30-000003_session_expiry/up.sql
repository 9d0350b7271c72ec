-- Sessions expire (idle for SESSION_IDLE_DAYS or older than SESSION_MAX_DAYS)
-- and idle guests are retired (GUEST_RETENTION_DAYS).
--
-- last_used_at is refreshed at most every few minutes per token (not per
-- request), so it costs an UPDATE per active token now and then. The two
-- indexes let the cleanup job find expired rows without scanning the table.
ALTER TABLE sessions ADD COLUMN last_used_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX sessions_last_used_at_idx ON sessions (last_used_at);
CREATE INDEX sessions_created_at_idx ON sessions (created_at);

-- A retired guest keeps its row, so its messages keep showing the name it
-- had (messages join users for the name), but it can no longer sign in and
-- its name is free again: uniqueness only covers active accounts.
ALTER TABLE users ADD COLUMN retired_at timestamptz;
DROP INDEX users_username_lower_key;
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username)) WHERE retired_at IS NULL;
-- Candidates for retirement, oldest first.
CREATE INDEX users_active_guests_idx ON users (created_at) WHERE guest AND retired_at IS NULL;
