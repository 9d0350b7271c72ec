-- Edits and deletes are room events (see the PostgreSQL migration of the same
-- name): rows of kind 1 (edit) and 2 (delete) beside the messages (kind 0),
-- one seq each. SQLite cannot change a CHECK in place, so the table is
-- rebuilt with the new columns and the relaxed body check.
CREATE TABLE messages_new (
    room_id       INTEGER NOT NULL,
    seq           INTEGER NOT NULL CHECK (seq > 0),
    id            BLOB NOT NULL CHECK (length(id) = 16),
    user_id       BLOB NOT NULL,
    body          TEXT NOT NULL,
    client_msg_id TEXT CHECK (length(CAST(client_msg_id AS BLOB)) BETWEEN 1 AND 128),
    sent_at       INTEGER NOT NULL,
    kind          INTEGER NOT NULL DEFAULT 0 CHECK (kind IN (0, 1, 2)),
    target_id     BLOB CHECK (target_id IS NULL OR length(target_id) = 16),
    edited_at     INTEGER,
    deleted       BOOLEAN NOT NULL DEFAULT 0,
    CHECK ((kind = 0) = (target_id IS NULL)),
    CHECK (length(body) <= 4000 AND (length(body) >= 1 OR deleted OR kind = 2)),
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, id)
) WITHOUT ROWID;
INSERT INTO messages_new (room_id, seq, id, user_id, body, client_msg_id, sent_at)
    SELECT room_id, seq, id, user_id, body, client_msg_id, sent_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_idempotency_key
    ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
