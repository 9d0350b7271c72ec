ALTER TABLE users DROP COLUMN suspended_at;
DROP TABLE room_bans;
