ALTER TABLE rooms ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0);
UPDATE rooms SET last_seq = (SELECT s.last_seq FROM room_seqs s WHERE s.room_id = rooms.id);
DROP TRIGGER rooms_add_seq;
DROP TABLE room_seqs;
