DROP INDEX rooms_dm_key_key;
ALTER TABLE rooms DROP COLUMN dm_key;
ALTER TABLE rooms DROP COLUMN kind;
