CREATE TABLE messages_old (
    room_id       INTEGER NOT NULL,
    seq           INTEGER NOT NULL CHECK (seq > 0),
    id            BLOB NOT NULL CHECK (length(id) = 16),
    user_id       BLOB NOT NULL,
    body          TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    client_msg_id TEXT CHECK (length(CAST(client_msg_id AS BLOB)) BETWEEN 1 AND 128),
    sent_at       INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, id)
) WITHOUT ROWID;
INSERT INTO messages_old SELECT room_id, seq, id, user_id, body, client_msg_id, sent_at
    FROM messages WHERE kind = 0 AND NOT deleted;
DROP TABLE messages;
ALTER TABLE messages_old RENAME TO messages;
CREATE UNIQUE INDEX messages_idempotency_key
    ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
