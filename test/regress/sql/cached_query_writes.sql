-- Every way of changing a watched table invalidates at commit: INSERT,
-- UPDATE, DELETE, COPY, TRUNCATE, MERGE, INSERT ... ON CONFLICT, row moves
-- between partitions, partitions attached later, inheritance, DDL.
CREATE TABLE cw (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO cw SELECT g, g FROM generate_series(1, 5) g;
SELECT cachekit.watch('cw');
CREATE FUNCTION pg_temp.cw_sum() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(s, 'null') || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT sum(v)::text FROM cw') AS r(s text) $$;
SELECT pg_temp.cw_sum();
SELECT pg_temp.cw_sum();
COPY cw FROM stdin;
6	100
\.
SELECT pg_temp.cw_sum();
INSERT INTO cw VALUES (6, 1000) ON CONFLICT (id) DO UPDATE SET v = excluded.v;
SELECT pg_temp.cw_sum();
MERGE INTO cw USING (VALUES (1, 50), (7, 7)) AS s(id, v) ON cw.id = s.id
    WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v);
SELECT pg_temp.cw_sum();
DELETE FROM cw WHERE id = 7;
SELECT pg_temp.cw_sum();
SELECT pg_temp.cw_sum();
TRUNCATE cw;
SELECT pg_temp.cw_sum();
INSERT INTO cw VALUES (1, 1);
ALTER TABLE cw ADD COLUMN w int DEFAULT 0;   -- DDL invalidates (event trigger)
SELECT pg_temp.cw_sum();
SELECT pg_temp.cw_sum();
ALTER TABLE cw RENAME TO cw_renamed;
SELECT regress.error_of($$SELECT pg_temp.cw_sum()$$);
ALTER TABLE cw_renamed RENAME TO cw;
SELECT pg_temp.cw_sum();

-- partitions: watching the parent covers present and future partitions
CREATE TABLE cp (region text NOT NULL, id int NOT NULL, v int NOT NULL) PARTITION BY LIST (region);
CREATE TABLE cp_eu PARTITION OF cp FOR VALUES IN ('eu');
CREATE TABLE cp_us PARTITION OF cp FOR VALUES IN ('us');
INSERT INTO cp VALUES ('eu', 1, 10), ('us', 2, 20);
SELECT cachekit.watch('cp');
CREATE TABLE cp_asia PARTITION OF cp FOR VALUES IN ('asia');      -- created after watch
CREATE TABLE cp_af (LIKE cp);
ALTER TABLE cp ATTACH PARTITION cp_af FOR VALUES IN ('af');        -- attached after watch
SELECT table_name, parent, partitioned FROM cachekit.watched_tables
 WHERE table_name::text LIKE 'cp%' ORDER BY table_name::text;
CREATE FUNCTION pg_temp.cp_total() RETURNS text LANGUAGE sql AS $$
    SELECT s || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT sum(v)::text FROM cp') AS r(s text) $$;
CREATE FUNCTION pg_temp.cp_eu_only() RETURNS text LANGUAGE sql AS $$
    SELECT s || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT sum(v)::text FROM cp_eu') AS r(s text) $$;
SELECT pg_temp.cp_total(), pg_temp.cp_eu_only();
SELECT pg_temp.cp_total(), pg_temp.cp_eu_only();
INSERT INTO cp_asia VALUES ('asia', 3, 300);           -- straight into a new partition
SELECT pg_temp.cp_total();
INSERT INTO cp_af VALUES ('af', 4, 4000);              -- straight into an attached one
SELECT pg_temp.cp_total();
UPDATE cp SET v = v + 1 WHERE region = 'eu';           -- through the parent: the partition's readers see it
SELECT pg_temp.cp_eu_only();
UPDATE cp SET region = 'eu' WHERE id = 2;              -- row moves us -> eu
SELECT pg_temp.cp_total(), pg_temp.cp_eu_only();
TRUNCATE cp_us;
SELECT pg_temp.cp_total();
ALTER TABLE cp DETACH PARTITION cp_af;
SELECT pg_temp.cp_total();

-- classic inheritance: a write through the parent reaches a reader of the child
CREATE TABLE ci_parent (id int, v int);
CREATE TABLE ci_child () INHERITS (ci_parent);
INSERT INTO ci_child VALUES (1, 1);
SELECT cachekit.watch('ci_parent');
SELECT cachekit.watch('ci_child');
SELECT * FROM cachekit.cached_query('SELECT sum(v) FROM ci_child') AS r(s bigint);
UPDATE ci_parent SET v = 5;
SELECT * FROM cachekit.cached_query('SELECT sum(v) FROM ci_child') AS r(s bigint);
SELECT cachekit.last_outcome();
-- a partition watched without its parent cannot be cached: writes through the
-- parent would fire only the parent's trigger
CREATE TABLE cq_root (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE cq_leaf PARTITION OF cq_root FOR VALUES FROM (0) TO (10);
SELECT cachekit.watch('cq_leaf');
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cq_leaf') AS r(n bigint)$$);

-- unwatch: back to uncacheable
SELECT cachekit.unwatch('cp');
SELECT table_name AS still_watched FROM cachekit.watched_tables WHERE table_name::text LIKE 'cp%';  -- detached: its own table now
DROP TABLE cw, cp, cp_af, ci_parent, ci_child, cq_root;
