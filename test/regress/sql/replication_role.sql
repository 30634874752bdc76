-- Writes under session_replication_role = replica (how logical replication
-- applies changes, and how some restore and sync tools write) invalidate:
-- cached_query sees them at once and key rules delete their keys. In such a
-- session both the statement triggers (ENABLE ALWAYS) and the row triggers
-- (ENABLE REPLICA) fire; nothing may break or be recorded twice.
CREATE OR REPLACE FUNCTION regress.wait_outbox() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..400 LOOP
        IF NOT EXISTS (SELECT 1 FROM cachekit.outbox) THEN RETURN 0; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN (SELECT count(*) FROM cachekit.outbox);
END $$;
\set keys 'SELECT regress.wait_outbox() AS undelivered \\gset \\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern "rr:*" | sort | tr "\\n" " "; echo'
\set setkeys '\\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset rr:1 x rr:2 x rr:3 x rr:v:10 x rr:v:20 x rr:v:30 x rr:v:99 x >/dev/null'

CREATE TABLE rr (id int PRIMARY KEY, v int, note text);
INSERT INTO rr VALUES (1, 10, 'a'), (2, 20, 'b');
SELECT cachekit.invalidate_key_on('rr', 'rr:{id}', name => 'rr_id');
SELECT cachekit.invalidate_key_on('rr', 'rr:v:{v}', name => 'rr_v',
                                  operations => ARRAY['UPDATE'], columns => ARRAY['v']);
SELECT tgname ~ '_r[iud]$' AS row_level, tgenabled, count(*)
  FROM pg_trigger WHERE tgrelid = 'rr'::regclass AND NOT tgisinternal
 GROUP BY 1, 2 ORDER BY 1, 2;
CREATE FUNCTION pg_temp.rr_read() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(id || '=' || v, ',' ORDER BY id) || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT id, v FROM rr') AS r(id int, v int) $$;
SELECT pg_temp.rr_read();
SELECT pg_temp.rr_read();

SET session_replication_role = replica;
:setkeys
UPDATE rr SET v = 11 WHERE id = 1;
SELECT pg_temp.rr_read();
SELECT pg_temp.rr_read();
:keys
-- a change to another column: the rr_v rule (columns => v) ignores it
:setkeys
UPDATE rr SET note = 'c' WHERE id = 2;
:keys
:setkeys
INSERT INTO rr VALUES (3, 30, 'c');
SELECT pg_temp.rr_read();
DELETE FROM rr WHERE id = 2;
SELECT pg_temp.rr_read();
:keys
:setkeys
TRUNCATE rr;
SELECT pg_temp.rr_read();
:keys

-- the row triggers alone do the job (logical replication's apply worker
-- fires no statement trigger for INSERT, UPDATE and DELETE); ENABLE (ORIGIN)
-- keeps the table watched for ordinary sessions but silent in this one
RESET session_replication_role;
INSERT INTO rr VALUES (1, 10, 'a'), (2, 20, 'b');
SET session_replication_role = replica;
ALTER TABLE rr ENABLE TRIGGER cachekit_invalidate;
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'rr'::regclass AND tgname ~ '^cachekit_keys_.*_[iud]$' LOOP
        EXECUTE format('ALTER TABLE rr DISABLE TRIGGER %I', t);
    END LOOP;
END $$;
SELECT pg_temp.rr_read();
SELECT pg_temp.rr_read();
:setkeys
UPDATE rr SET v = 99 WHERE id = 2;
SELECT pg_temp.rr_read();
:keys
:setkeys
BEGIN;
INSERT INTO rr VALUES (3, 30, 'c');
UPDATE rr SET note = 'd' WHERE id = 1;   -- rr:1, not rr:v:10 (columns => v)
SAVEPOINT s;
DELETE FROM rr WHERE id = 1;
ROLLBACK TO s;
COMMIT;
SELECT pg_temp.rr_read();
:keys

-- the row triggers must leave every write in place
SELECT id, v, note FROM rr ORDER BY id;
RESET session_replication_role;
SELECT cachekit.drop_key_rule(n) FROM unnest(ARRAY['rr_id', 'rr_v']) n;
DROP TABLE rr;
