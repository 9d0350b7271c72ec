-- The counter back in `rooms`, and the batch function as the first migration made it.
ALTER TABLE rooms ADD COLUMN last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0);
UPDATE rooms r SET last_seq = s.last_seq FROM room_seqs s WHERE s.room_id = r.id;
DROP TRIGGER rooms_add_seq ON rooms;
DROP FUNCTION rooms_add_seq();
DROP TABLE room_seqs;

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
