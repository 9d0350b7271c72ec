-- A room's message counter gets a narrow table of its own, as on
-- PostgreSQL: the writer's one UPDATE per commit rewrites two integers
-- instead of the whole `rooms` row.
CREATE TABLE room_seqs (
    room_id  INTEGER PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);
INSERT INTO room_seqs (room_id, last_seq) SELECT id, last_seq FROM rooms;

-- Every room has its counter from the moment it exists, however it is made.
CREATE TRIGGER rooms_add_seq AFTER INSERT ON rooms BEGIN
    INSERT INTO room_seqs (room_id) VALUES (NEW.id);
END;

ALTER TABLE rooms DROP COLUMN last_seq;
