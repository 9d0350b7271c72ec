DELETE FROM messages WHERE kind <> 0 OR deleted;
ALTER TABLE messages DROP CONSTRAINT messages_body_check;
ALTER TABLE messages ADD CONSTRAINT messages_body_check CHECK (char_length(body) BETWEEN 1 AND 4000);
ALTER TABLE messages DROP CONSTRAINT messages_event_target_check;
ALTER TABLE messages DROP COLUMN kind, DROP COLUMN target_id, DROP COLUMN edited_at, DROP COLUMN deleted;
