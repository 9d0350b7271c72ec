-- A room's message counter gets a narrow table of its own. The writer bumps
-- it once per commit; in `rooms` that UPDATE wrote a new version of the
-- whole row (name, topic, kind...) and re-checked every CHECK of `rooms`,
-- the name's regular expression included, on every message. Here it writes
-- two integers and checks one (docs/performance.md, "The room's counter in
-- a table of its own"). The row lock on it is what orders a room's writers,
-- on every instance.
CREATE TABLE room_seqs (
    room_id  bigint PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);
INSERT INTO room_seqs (room_id, last_seq) SELECT id, last_seq FROM rooms;

-- Every room has its counter from the moment it exists, however it is made.
CREATE FUNCTION rooms_add_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO room_seqs (room_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER rooms_add_seq AFTER INSERT ON rooms FOR EACH ROW EXECUTE FUNCTION rooms_add_seq();

ALTER TABLE rooms DROP COLUMN last_seq;

-- The batch function of the first migration, with the counter in its new place.
CREATE OR REPLACE FUNCTION append_messages(
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
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM 1 FROM room_seqs s WHERE s.room_id = ANY (p_room_ids) ORDER BY s.room_id FOR UPDATE;

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
        UPDATE room_seqs s
           SET last_seq = s.last_seq + c.k
          FROM (SELECT f.room_id, count(*) AS k FROM fresh f GROUP BY f.room_id) c
         WHERE s.room_id = c.room_id
        RETURNING s.room_id, s.last_seq - c.k AS base
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
