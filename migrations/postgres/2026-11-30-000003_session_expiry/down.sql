DROP INDEX users_active_guests_idx;
DROP INDEX users_username_lower_key;
-- Fails if a retired name was taken again; rename those first.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
ALTER TABLE users DROP COLUMN retired_at;
DROP INDEX sessions_created_at_idx;
DROP INDEX sessions_last_used_at_idx;
ALTER TABLE sessions DROP COLUMN last_used_at;
