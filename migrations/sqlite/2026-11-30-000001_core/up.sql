-- The embedded database: the same tables, keys and counters as
-- migrations/postgres, in SQLite's terms.
--   ids are 16-byte BLOBs and times INTEGER microseconds since the Unix epoch
--   (src/store/sql_types.rs);
--   no partitions (one instance, one file), no stored functions: the writer's
--   append is Rust inside one IMMEDIATE transaction (src/store/append.rs).
-- The keys carry the contract's guarantees exactly as on PostgreSQL:
--   messages PRIMARY KEY (room_id, seq)                 order, no gaps
--   messages UNIQUE (room_id, user_id, client_msg_id)   idempotent sends
--   rooms.last_seq                                      seq allocation in the insert's transaction

CREATE TABLE users (
    id            BLOB PRIMARY KEY CHECK (length(id) = 16),
    username      TEXT NOT NULL CHECK (length(username) BETWEEN 3 AND 32 AND username NOT GLOB '*[^A-Za-z0-9_-]*'),
    password_hash TEXT,
    guest         BOOLEAN NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    retired_at    INTEGER,
    CHECK (guest OR password_hash IS NOT NULL)
);
-- Case-insensitive uniqueness among active accounts ("Alice" cannot
-- impersonate "alice"; a retired guest's name is free again).
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username)) WHERE retired_at IS NULL;
CREATE INDEX users_active_guests_idx ON users (created_at) WHERE guest AND retired_at IS NULL;

-- Only a SHA-256 digest of each 256-bit token is stored.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    last_used_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) WITHOUT ROWID;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_last_used_at_idx ON sessions (last_used_at);
CREATE INDEX sessions_created_at_idx ON sessions (created_at);

CREATE TABLE rooms (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9_-]*'),
    topic        TEXT NOT NULL DEFAULT '',
    private      BOOLEAN NOT NULL DEFAULT 0,
    owner_id     BLOB REFERENCES users (id) ON DELETE SET NULL,
    last_seq     INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    member_count INTEGER NOT NULL DEFAULT 0 CHECK (member_count >= 0)
);

CREATE TABLE room_members (
    room_id   INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user_id_idx ON room_members (user_id, room_id);

-- Room lists show member counts: a counter kept in the membership change's
-- transaction, so the list reads one row per room.
CREATE TRIGGER room_members_count_insert AFTER INSERT ON room_members BEGIN
    UPDATE rooms SET member_count = member_count + 1 WHERE id = NEW.room_id;
END;
CREATE TRIGGER room_members_count_delete AFTER DELETE ON room_members BEGIN
    UPDATE rooms SET member_count = member_count - 1 WHERE id = OLD.room_id;
END;

-- No foreign keys on messages, as on PostgreSQL: rooms and users are never
-- deleted while they have messages, and the append stays one index write.
CREATE TABLE messages (
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
CREATE UNIQUE INDEX messages_idempotency_key
    ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
