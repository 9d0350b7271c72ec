-- Core schema. The keys carry the contract's guarantees:
--   messages PRIMARY KEY (room_id, seq)          one gap-free sequence per room (order)
--   messages UNIQUE (room_id, user_id, client_msg_id)  idempotent sends
--   rooms.last_seq                               seq allocation in the same transaction as the insert
-- Every unique key on messages starts with room_id, so the table is partitioned
-- by room without changing any query.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9_-]{3,32}$'),
    password_hash text,
    guest         boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (guest OR password_hash IS NOT NULL)
);
-- Case-insensitive uniqueness: "Alice" cannot impersonate "alice".
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- Only a SHA-256 digest of each 256-bit token is stored.
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE rooms (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    topic      text NOT NULL DEFAULT '',
    private    boolean NOT NULL DEFAULT false,
    owner_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_members (
    room_id   bigint NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
-- "Which private rooms is this user in" for the room list.
CREATE INDEX room_members_user_id_idx ON room_members (user_id, room_id);

-- No foreign keys here on purpose: each one would run a row-locking lookup per
-- inserted message on the hottest path. The writer only inserts for rooms and
-- users it has just read, and neither is ever deleted while it has messages.
CREATE TABLE messages (
    room_id       bigint NOT NULL,
    seq           bigint NOT NULL CHECK (seq > 0),
    id            uuid NOT NULL,
    user_id       uuid NOT NULL,
    body          text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000),
    client_msg_id text CHECK (octet_length(client_msg_id) BETWEEN 1 AND 128),
    sent_at       timestamptz NOT NULL,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, id)
) PARTITION BY HASH (room_id);

CREATE UNIQUE INDEX messages_idempotency_key
    ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE messages_p%s PARTITION OF messages FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
    END LOOP;
END $$;

-- Appends a batch of messages in one round trip and one transaction:
--   1. lock the batch's rooms in id order (concurrent writers on other
--      instances queue here instead of deadlocking);
--   2. find sends already stored, by (room, user, client_msg_id) or by id (a
--      retry after a commit whose outcome was unknown); under the room lock
--      this sees every earlier commit, so it is not a race;
--   3. allocate consecutive seqs per room with one UPDATE of rooms.last_seq;
--   4. insert the new rows in one statement.
-- The unique keys still stand behind step 2: if anything slipped past it, the
-- statement fails and the writer retries; it never writes a second row or a gap.
CREATE FUNCTION append_messages(
    p_room_ids       bigint[],
    p_user_ids       uuid[],
    p_ids            uuid[],
    p_bodies         text[],
    p_client_msg_ids text[],
    p_sent_ats       timestamptz[]
) RETURNS TABLE (
    out_ord     int,
    out_seq     bigint,
    out_id      uuid,
    out_body    text,
    out_sent_at timestamptz,
    out_existed boolean
)
LANGUAGE plpgsql
-- A custom plan per call costs milliseconds of planning over 16 partitions; the
-- generic plan prunes partitions at run time and is planned once per connection.
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM 1 FROM rooms r WHERE r.id = ANY (p_room_ids) ORDER BY r.id FOR UPDATE;

    RETURN QUERY
    WITH input AS (
        SELECT t.ord::int AS ord, t.room_id, t.user_id, t.id, t.body, t.client_msg_id, t.sent_at
        FROM unnest(p_room_ids, p_user_ids, p_ids, p_bodies, p_client_msg_ids, p_sent_ats)
             WITH ORDINALITY AS t (room_id, user_id, id, body, client_msg_id, sent_at, ord)
    ),
    existing AS (
        SELECT i.ord, e.seq, e.id, e.body, e.sent_at
        FROM input i
        CROSS JOIN LATERAL (
            SELECT m.seq, m.id, m.body, m.sent_at FROM (
                (SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM messages m1
                  WHERE i.client_msg_id IS NOT NULL
                    AND m1.room_id = i.room_id AND m1.user_id = i.user_id
                    AND m1.client_msg_id = i.client_msg_id
                  LIMIT 1)
                UNION ALL
                (SELECT m2.seq, m2.id, m2.body, m2.sent_at FROM messages m2
                  WHERE m2.room_id = i.room_id AND m2.id = i.id
                  LIMIT 1)
            ) m
            LIMIT 1
        ) e
    ),
    fresh AS (
        SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.ord) AS n
        FROM input i
        WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.ord = i.ord)
    ),
    bumped AS (
        UPDATE rooms r
           SET last_seq = r.last_seq + c.k
          FROM (SELECT f.room_id, count(*) AS k FROM fresh f GROUP BY f.room_id) c
         WHERE r.id = c.room_id
        RETURNING r.id AS room_id, r.last_seq - c.k AS base
    ),
    inserted AS (
        INSERT INTO messages (room_id, seq, id, user_id, body, client_msg_id, sent_at)
        SELECT f.room_id, b.base + f.n, f.id, f.user_id, f.body, f.client_msg_id, f.sent_at
          FROM fresh f JOIN bumped b ON b.room_id = f.room_id
        RETURNING 1
    )
    SELECT f.ord, b.base + f.n, f.id, f.body, f.sent_at, false
      FROM fresh f JOIN bumped b ON b.room_id = f.room_id
    UNION ALL
    SELECT x.ord, x.seq, x.id, x.body, x.sent_at, true
      FROM existing x;
END
$$;
