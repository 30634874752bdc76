-- Stale reads at the edges no other test reaches: each block below fails
-- under one of test/mutation's mutants (named in its comment), which every
-- other test lets through.

-- A partitioned parent read only through depends_on (a function the planner
-- cannot inline hides the parent and its partitions from the plan), written
-- straight into a partition: the write must bump the parent too
-- (mutant partition-ancestors).
CREATE TABLE se_part (region text NOT NULL, v int NOT NULL) PARTITION BY LIST (region);
CREATE TABLE se_part_eu PARTITION OF se_part FOR VALUES IN ('eu');
CREATE TABLE se_part_us PARTITION OF se_part FOR VALUES IN ('us');
INSERT INTO se_part VALUES ('eu', 1), ('us', 2);
SELECT cachekit.watch('se_part');
CREATE FUNCTION se_part_total() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT sum(v) FROM se_part);
END $$;
CREATE FUNCTION pg_temp.se_part_read() RETURNS text LANGUAGE sql AS $$
    SELECT t || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT se_part_total()::text',
                                 depends_on => ARRAY['se_part']::regclass[]) AS r(t text) $$;
SELECT pg_temp.se_part_read();
SELECT pg_temp.se_part_read();
INSERT INTO se_part_eu VALUES ('eu', 100);
SELECT pg_temp.se_part_read();
UPDATE se_part_us SET v = v + 1000;
SELECT pg_temp.se_part_read();

-- A table read through a view, then written directly: the table behind the
-- view is part of the key (mutant view-tables).
CREATE TABLE se_base (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO se_base VALUES (1, 'old');
SELECT cachekit.watch('se_base');
CREATE VIEW se_view AS SELECT id, v FROM se_base;
CREATE FUNCTION pg_temp.se_view_read() RETURNS text LANGUAGE sql AS $$
    SELECT v || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT v FROM se_view WHERE id = 1') AS r(v text) $$;
SELECT pg_temp.se_view_read();
SELECT pg_temp.se_view_read();
UPDATE se_base SET v = 'new' WHERE id = 1;
SELECT pg_temp.se_view_read();
-- a view over a view, and one with security_invoker
CREATE VIEW se_view2 AS SELECT v FROM se_view;
CREATE VIEW se_view_inv WITH (security_invoker) AS SELECT id, v FROM se_base;
CREATE FUNCTION pg_temp.se_views_read() RETURNS text LANGUAGE sql AS $$
    SELECT (SELECT v || ' ' || cachekit.last_outcome()
              FROM cachekit.cached_query('SELECT v FROM se_view2') AS r(v text)) || ', ' ||
           (SELECT v || ' ' || cachekit.last_outcome()
              FROM cachekit.cached_query('SELECT v FROM se_view_inv') AS r(v text)) $$;
SELECT pg_temp.se_views_read();
SELECT pg_temp.se_views_read();
UPDATE se_base SET v = 'newer' WHERE id = 1;
SELECT pg_temp.se_views_read();

-- A write, then a later savepoint rolled back: the earlier write still
-- counts, inside the transaction (reads bypass the cache and see it) and at
-- commit (mutant savepoint-clears-pending).
CREATE TABLE se_sp (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE se_other (id int);
INSERT INTO se_sp VALUES (1, 'v1');
SELECT cachekit.watch('se_sp');
SELECT cachekit.watch('se_other');
CREATE FUNCTION pg_temp.se_sp_read() RETURNS text LANGUAGE sql AS $$
    SELECT v || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT v FROM se_sp WHERE id = 1') AS r(v text) $$;
SELECT pg_temp.se_sp_read();
SELECT pg_temp.se_sp_read();
BEGIN;
UPDATE se_sp SET v = 'v2' WHERE id = 1;
SAVEPOINT s;
INSERT INTO se_other VALUES (1);
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.se_sp_read();
COMMIT;
SELECT pg_temp.se_sp_read();
SELECT pg_temp.se_sp_read();
-- the same with a savepoint that wrote the same table
BEGIN;
UPDATE se_sp SET v = 'v3' WHERE id = 1;
SAVEPOINT s;
UPDATE se_sp SET v = 'never' WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.se_sp_read();
COMMIT;
SELECT pg_temp.se_sp_read();

-- The same through a PL/pgSQL EXCEPTION block, which is a savepoint too.
SELECT pg_temp.se_sp_read();
BEGIN;
UPDATE se_sp SET v = 'v4' WHERE id = 1;
DO $$
BEGIN
    INSERT INTO se_other VALUES (2);
    RAISE EXCEPTION 'undo the insert';
EXCEPTION WHEN raise_exception THEN
    NULL;
END $$;
SELECT pg_temp.se_sp_read();
COMMIT;
SELECT pg_temp.se_sp_read();
-- a function that writes, then catches an error, all in one statement
CREATE FUNCTION pg_temp.se_write_then_fail(val text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE se_sp SET v = val WHERE id = 1;
    BEGIN
        INSERT INTO se_other VALUES (3);
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
END $$;
SELECT pg_temp.se_sp_read();
SELECT pg_temp.se_write_then_fail('v5');
SELECT pg_temp.se_sp_read();
SELECT count(*) AS other_rows FROM se_other;

DROP VIEW se_view2, se_view, se_view_inv;
DROP TABLE se_part, se_base, se_sp, se_other;
DROP FUNCTION se_part_total();
