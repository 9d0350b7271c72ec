-- Edits and deletes are room events: each takes the next seq of the room, so
-- they live in `messages` beside the messages they change (one sequence, one
-- primary key, one replay query). A row is
--   kind 0: a message; `edited_at` and `deleted` hold its current state
--           (the edit or delete also rewrites its body in place);
--   kind 1: an edit of message `target_id`, `body` the new text;
--   kind 2: a delete of message `target_id`, `body` empty.
-- History lists kind 0 only; replay lists every kind in seq order.
ALTER TABLE messages
    ADD COLUMN kind      smallint NOT NULL DEFAULT 0 CHECK (kind IN (0, 1, 2)),
    ADD COLUMN target_id uuid,
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN deleted   boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD CONSTRAINT messages_event_target_check CHECK ((kind = 0) = (target_id IS NULL));

-- A deleted message and a delete event have an empty body.
ALTER TABLE messages DROP CONSTRAINT messages_body_check;
ALTER TABLE messages ADD CONSTRAINT messages_body_check
    CHECK (char_length(body) <= 4000 AND (char_length(body) >= 1 OR deleted OR kind = 2));
