-- Tried and not kept (docs/performance.md, "Tried, not kept: the rooms' CHECKs
-- as domains"): the rooms' CHECKs as domains and a constraint trigger, for
-- APPEND_COST_B=scripts/append-cost/rooms-checks-as-domains.sql scripts/append-cost.sh
CREATE DOMAIN room_name AS text CHECK (VALUE ~ '^[a-z0-9_-]{1,64}$');
CREATE DOMAIN room_kind AS text CHECK (VALUE IN ('room', 'dm'));
CREATE DOMAIN counter AS bigint CHECK (VALUE >= 0);
ALTER TABLE rooms
    DROP CONSTRAINT rooms_name_check,
    DROP CONSTRAINT rooms_kind_check,
    DROP CONSTRAINT rooms_last_seq_check,
    DROP CONSTRAINT rooms_member_count_check,
    DROP CONSTRAINT rooms_dm_key_check,
    ALTER COLUMN name TYPE room_name,
    ALTER COLUMN kind TYPE room_kind,
    ALTER COLUMN last_seq TYPE counter,
    ALTER COLUMN member_count TYPE counter;
CREATE FUNCTION rooms_dm_key_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.kind = 'dm') IS DISTINCT FROM (NEW.dm_key IS NOT NULL) THEN
        RAISE EXCEPTION 'new row for relation "rooms" violates check constraint "rooms_dm_key_check"'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'rooms_dm_key_check', TABLE = 'rooms';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER rooms_dm_key_check AFTER INSERT OR UPDATE OF kind, dm_key ON rooms
    FOR EACH ROW EXECUTE FUNCTION rooms_dm_key_check();
