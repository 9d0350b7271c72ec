-- Direct messages: a private room of exactly two members, owned by neither,
-- one per pair (`dm_key`: the pair's two user ids in order).
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm'));
ALTER TABLE rooms ADD COLUMN dm_key TEXT CHECK ((kind = 'dm') = (dm_key IS NOT NULL));
CREATE UNIQUE INDEX rooms_dm_key_key ON rooms (dm_key);
