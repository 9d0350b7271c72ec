-- Tried and not kept (docs/performance.md, "Tried, not kept: the rooms' CHECKs
-- as domains"): the one-column CHECKs of rooms as domains, checked only where
-- a value of the column is written. The two-column rule stays a CHECK unless
-- rooms-dm-key-as-trigger.sql follows:
--   APPEND_COST_B="scripts/append-cost/rooms-checks-as-domains.sql scripts/append-cost/rooms-dm-key-as-trigger.sql" scripts/append-cost.sh
CREATE DOMAIN room_name AS text CHECK (VALUE ~ '^[a-z0-9_-]{1,64}$');
CREATE DOMAIN room_kind AS text CHECK (VALUE IN ('room', 'dm'));
CREATE DOMAIN counter AS bigint CHECK (VALUE >= 0);
ALTER TABLE rooms
    DROP CONSTRAINT rooms_name_check,
    DROP CONSTRAINT rooms_kind_check,
    DROP CONSTRAINT rooms_last_seq_check,
    DROP CONSTRAINT rooms_member_count_check,
    ALTER COLUMN name TYPE room_name,
    ALTER COLUMN kind TYPE room_kind,
    ALTER COLUMN last_seq TYPE counter,
    ALTER COLUMN member_count TYPE counter;
