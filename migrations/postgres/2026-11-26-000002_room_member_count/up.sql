-- Room lists show member counts. Counting room_members per listed room reads
-- every membership row; a counter on rooms, kept by triggers in the same
-- transaction as the membership change, makes the list read one row per room.
ALTER TABLE rooms ADD COLUMN member_count bigint NOT NULL DEFAULT 0 CHECK (member_count >= 0);

UPDATE rooms r SET member_count = c.n
  FROM (SELECT room_id, count(*) AS n FROM room_members GROUP BY room_id) c
 WHERE c.room_id = r.id;

CREATE FUNCTION room_members_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE rooms SET member_count = member_count + 1 WHERE id = NEW.room_id;
    ELSE
        UPDATE rooms SET member_count = member_count - 1 WHERE id = OLD.room_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER room_members_count_insert AFTER INSERT ON room_members
    FOR EACH ROW EXECUTE FUNCTION room_members_count();
CREATE TRIGGER room_members_count_delete AFTER DELETE ON room_members
    FOR EACH ROW EXECUTE FUNCTION room_members_count();
