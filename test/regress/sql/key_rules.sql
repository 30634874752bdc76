-- Key rules: application keys built from changed rows are deleted at commit;
-- rolled-back work deletes nothing; hostile values cannot escape the
-- template's shape; TRUNCATE and too many keys fall back to patterns.
CREATE FUNCTION regress.wait_outbox() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..400 LOOP
        IF NOT EXISTS (SELECT 1 FROM cachekit.outbox) THEN RETURN 0; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN (SELECT count(*) FROM cachekit.outbox);
END $$;
-- :keys waits until nothing is left to deliver, then lists the kr:* keys
\set keys 'SELECT regress.wait_outbox() AS undelivered \\gset \\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern "kr:*" | sort | tr "\\n" " "; echo'

CREATE TABLE kr_users (id int PRIMARY KEY, team int, name text);
INSERT INTO kr_users VALUES (1, 10, 'ann'), (2, 10, 'bob'), (3, 20, 'cy');
SELECT cachekit.invalidate_key_on('kr_users', 'kr:user:{id}');
SELECT cachekit.invalidate_key_on('kr_users', 'kr:team:{team}', name => 'kr_team',
                                  operations => ARRAY['UPDATE'], columns => ARRAY['team']);
SELECT name, table_name, template, operations, columns, triggers FROM cachekit.key_rules ORDER BY name;

SELECT regress.error_of(q) FROM (VALUES
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:{nope}:{id}')$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:{id')$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:{}')$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', '')$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:{id}', operations => ARRAY['SELECT'])$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:{id}', operations => ARRAY['INSERT'], columns => ARRAY['team'])$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:{id}', columns => ARRAY['nope'])$$),
    ($$SELECT cachekit.invalidate_key_on('kr_users', 'kr:team:{team}', name => 'kr_team')$$),
    ($$SELECT cachekit.drop_key_rule('no_such_rule')$$)
) AS t(q);

\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:user:1 x kr:user:2 x kr:user:3 x kr:team:10 x kr:team:20 x kr:other x >/dev/null
-- a change to name: the user's key goes, the team rule ignores it (columns => team)
UPDATE kr_users SET name = 'ann2' WHERE id = 1;
:keys
-- a team change: OLD and NEW values both name keys
UPDATE kr_users SET team = 20 WHERE id = 2;
:keys

-- rolled back: nothing; a rolled-back savepoint: its part only
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:user:1 x kr:user:2 x kr:team:10 x kr:team:20 x >/dev/null
BEGIN;
UPDATE kr_users SET name = 'zz';
ROLLBACK;
:keys
BEGIN;
UPDATE kr_users SET name = 'c3' WHERE id = 3;
SAVEPOINT s1;
UPDATE kr_users SET name = 'a3' WHERE id = 1;
SAVEPOINT s2;
UPDATE kr_users SET team = 10 WHERE id = 3;
ROLLBACK TO s1;
RELEASE SAVEPOINT s1;
SAVEPOINT s3;
DELETE FROM kr_users WHERE id = 2;
RELEASE SAVEPOINT s3;
COMMIT;
:keys

-- hostile values: percent-encoded, so they stay inside the placeholder
CREATE TABLE kr_docs (slug text PRIMARY KEY, body text);
SELECT cachekit.invalidate_key_on('kr_docs', 'kr:doc:{slug}:v1');
INSERT INTO kr_docs VALUES ('a', 'plain'), (E'a:b {c}*\x01', 'hostile'), ('grüße', 'utf8');
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:doc:a:v1 x kr:doc:a:b:v1 x "kr:doc:a%3Ab%20%7Bc%7D%2A%01:v1" x "kr:doc:gr%C3%BC%C3%9Fe:v1" x >/dev/null
DELETE FROM kr_docs WHERE slug <> 'a';
:keys

-- several tables in one transaction, COPY and MERGE
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:user:7 x kr:user:8 x kr:doc:a:v1 x kr:doc:b:v1 x >/dev/null
BEGIN;
INSERT INTO kr_users VALUES (7, 70, 'g');
UPDATE kr_docs SET body = 'changed' WHERE slug = 'a';
COMMIT;
:keys
COPY kr_users FROM stdin;
8	80	h
\.
:keys
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:doc:a:v1 x kr:doc:b:v1 x >/dev/null
MERGE INTO kr_docs d USING (VALUES ('a', 'merged'), ('b', 'new')) AS s(slug, body) ON d.slug = s.slug
    WHEN MATCHED THEN UPDATE SET body = s.body WHEN NOT MATCHED THEN INSERT VALUES (s.slug, s.body);
:keys

-- partitions: a rule on the parent covers rows written straight into a partition
CREATE TABLE kr_events (region text, id int, v int) PARTITION BY LIST (region);
CREATE TABLE kr_events_eu PARTITION OF kr_events FOR VALUES IN ('eu');
SELECT cachekit.invalidate_key_on('kr_events', 'kr:event:{region}:{id}');
CREATE TABLE kr_events_us PARTITION OF kr_events FOR VALUES IN ('us');   -- after the rule
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:event:eu:1 x kr:event:us:2 x >/dev/null
INSERT INTO kr_events_eu VALUES ('eu', 1, 1);
INSERT INTO kr_events_us VALUES ('us', 2, 2);
:keys

-- the relay removes the outbox rows the committing backends delivered
SELECT regress.wait_outbox();

-- TRUNCATE: no rows to read, so every rule of the table deletes by pattern (worker)
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:user:1 x kr:user:3 x kr:user:99 x kr:team:10 x kr:other x >/dev/null
TRUNCATE kr_users;
SELECT regress.wait_outbox();
:keys

-- more keys than cachekit.max_keys_per_xact: the table falls back to its pattern
INSERT INTO kr_users SELECT g, 1, 'n' FROM generate_series(1, 20) g;
\! redis-cli -p "$CACHEKIT_REDIS_PORT" mset kr:user:1 x kr:user:15 x kr:user:500 x >/dev/null
SET cachekit.max_keys_per_xact = 5;
UPDATE kr_users SET name = 'bulk';
RESET cachekit.max_keys_per_xact;
SELECT regress.wait_outbox();
:keys

SELECT messages_published > 0 AS published, keys_deleted > 0 AS deleted, patterns_flushed >= 2 AS flushed,
       keys_overflowed >= 1 AS overflowed, outbox_depth
  FROM cachekit.invalidation_stats;

SELECT cachekit.drop_key_rule('kr_team');
SELECT name FROM cachekit.key_rules ORDER BY name;
SELECT count(*) AS team_triggers FROM pg_trigger WHERE tgname LIKE 'cachekit_keys_' || substr(md5('kr_team'), 1, 16) || '%';
DROP TABLE kr_users, kr_docs, kr_events;   -- their rules go with them
SELECT name FROM cachekit.key_rules ORDER BY name;
