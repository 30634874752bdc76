-- A table counts as watched only while its statement trigger
-- cachekit_invalidate is enabled: with it disabled (a bulk load), ordinary
-- writes bump nothing, and the row trigger (ENABLE REPLICA, for logical
-- replication) does not fire for them. Reading the table is then
-- uncacheable, never a stale hit; enabling the trigger again (DDL, which
-- invalidates) brings the cache back with the rows written meanwhile.
CREATE TABLE wd_items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO wd_items VALUES (1, 1);
SELECT cachekit.watch('wd_items');
CREATE FUNCTION pg_temp.wd_read() RETURNS SETOF int LANGUAGE sql AS $$
    SELECT v FROM cachekit.cached_query('SELECT v FROM wd_items ORDER BY id') AS r(v int) $$;
SELECT * FROM pg_temp.wd_read();
SELECT * FROM pg_temp.wd_read();
SELECT cachekit.last_outcome();

ALTER TABLE wd_items DISABLE TRIGGER cachekit_invalidate;
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'wd_items'::regclass ORDER BY tgname;
SELECT regress.error_of($$SELECT * FROM pg_temp.wd_read()$$);
SET cachekit.uncacheable = bypass;
SELECT * FROM pg_temp.wd_read();
SELECT cachekit.last_outcome();
UPDATE wd_items SET v = 2;
SELECT * FROM pg_temp.wd_read();
SELECT cachekit.last_outcome();
RESET cachekit.uncacheable;

ALTER TABLE wd_items ENABLE ALWAYS TRIGGER cachekit_invalidate;
SELECT * FROM pg_temp.wd_read();
SELECT cachekit.last_outcome();
SELECT * FROM pg_temp.wd_read();
SELECT cachekit.last_outcome();

DROP TABLE wd_items;
