DROP TABLE messages;
DROP TRIGGER room_members_count_delete;
DROP TRIGGER room_members_count_insert;
DROP TABLE room_members;
DROP TABLE rooms;
DROP TABLE sessions;
DROP TABLE users;
