-- After rooms-checks-as-domains.sql: the rule over two columns (kind,
-- dm_key) as a constraint trigger that fires only when one of them is set.
ALTER TABLE rooms DROP CONSTRAINT rooms_dm_key_check;
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
