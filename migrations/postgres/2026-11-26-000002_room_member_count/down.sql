DROP TRIGGER IF EXISTS room_members_count_insert ON room_members;
DROP TRIGGER IF EXISTS room_members_count_delete ON room_members;
DROP FUNCTION IF EXISTS room_members_count();
ALTER TABLE rooms DROP COLUMN IF EXISTS member_count;
