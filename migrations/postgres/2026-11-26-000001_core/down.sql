DROP FUNCTION IF EXISTS append_messages(bigint[], uuid[], uuid[], text[], text[], timestamptz[]);
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS room_members;
DROP TABLE IF EXISTS rooms;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS users;
