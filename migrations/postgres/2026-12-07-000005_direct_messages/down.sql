ALTER TABLE rooms DROP CONSTRAINT rooms_dm_key_check;
ALTER TABLE rooms DROP COLUMN dm_key;
ALTER TABLE rooms DROP COLUMN kind;
