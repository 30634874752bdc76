-- More keys than cachekit.max_keys_per_xact with several rules on one
-- table: every rule whose keys were dropped or skipped deletes by its
-- pattern, however the rules' triggers interleave.
CREATE OR REPLACE FUNCTION regress.wait_outbox() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..400 LOOP
        IF NOT EXISTS (SELECT 1 FROM cachekit.outbox) THEN RETURN 0; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN (SELECT count(*) FROM cachekit.outbox);
END $$;
-- :keys waits until nothing is left to deliver, then lists the ko:* keys
\set keys 'SELECT regress.wait_outbox() AS undelivered \\gset \\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern "ko:*" | sort | tr "\\n" " "; echo'
\set setkeys '\\! for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -p "$CACHEKIT_REDIS_PORT" mset ko:a:$i x ko:b:$i x ko:c:$i x >/dev/null; done; redis-cli -p "$CACHEKIT_REDIS_PORT" set ko:other x >/dev/null'

CREATE TABLE ko_users (id int PRIMARY KEY, name text);
INSERT INTO ko_users SELECT g, 'n' FROM generate_series(1, 10) g;
SELECT cachekit.invalidate_key_on('ko_users', 'ko:a:{id}', name => 'ko_a');
SELECT cachekit.invalidate_key_on('ko_users', 'ko:b:{id}', name => 'ko_b');

-- ten rows, two rules, room for five keys: both patterns are flushed
:setkeys
SET cachekit.max_keys_per_xact = 5;
UPDATE ko_users SET name = 'x';
RESET cachekit.max_keys_per_xact;
:keys

-- the limit is reached in the second statement, by the rule whose trigger runs second
:setkeys
BEGIN;
SET LOCAL cachekit.max_keys_per_xact = 15;
UPDATE ko_users SET name = 'y' WHERE id <= 4;   -- 8 keys
UPDATE ko_users SET name = 'z' WHERE id > 4;    -- 12 more keys: past the limit
COMMIT;
:keys

-- a third rule created after the table overflowed in this transaction
:setkeys
BEGIN;
SET LOCAL cachekit.max_keys_per_xact = 3;
UPDATE ko_users SET name = 'w' WHERE id <= 2;
SELECT cachekit.invalidate_key_on('ko_users', 'ko:c:{id}', name => 'ko_c') \gset
UPDATE ko_users SET name = 'v' WHERE id = 10;
COMMIT;
:keys

-- below the limit: exact keys only, nothing else touched
:setkeys
UPDATE ko_users SET name = 'u' WHERE id IN (3, 7);
:keys

SELECT cachekit.drop_key_rule(n) FROM unnest(ARRAY['ko_a', 'ko_b', 'ko_c']) n;
DROP TABLE ko_users;
