-- Direct messages: a private room of exactly two members, owned by neither,
-- one per pair. `dm_key` is the pair's two user ids in order, so the same
-- pair always finds the same room whichever of them opens it, and two
-- instances opening it at once insert it once.
ALTER TABLE rooms ADD COLUMN kind text NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm'));
ALTER TABLE rooms ADD COLUMN dm_key text UNIQUE;
ALTER TABLE rooms ADD CONSTRAINT rooms_dm_key_check CHECK ((kind = 'dm') = (dm_key IS NOT NULL));
