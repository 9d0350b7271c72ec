ALTER TABLE room_members DROP COLUMN last_read;
