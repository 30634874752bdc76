-- Every table dropped in the database runs cachekit._on_drop(), which
-- invalidates it as the extension owner. A table with no generation entry
-- gets none then (it no longer exists: nobody can read it again), so a role
-- that may only create temporary tables cannot use up
-- cachekit.max_watched_tables by creating and dropping them. A dropped table
-- that had an entry still has it bumped.
CREATE ROLE regress_gd_plain;
GRANT TEMPORARY ON DATABASE :"DBNAME" TO regress_gd_plain;
SELECT count(*) AS entries_before FROM cachekit.table_stats() \gset
SET ROLE regress_gd_plain;
DO $$
BEGIN
    FOR i IN 1..50 LOOP
        CREATE TEMP TABLE gd_scratch (id int);
        DROP TABLE gd_scratch;
    END LOOP;
END $$;
RESET ROLE;
SELECT count(*) - :entries_before AS new_entries FROM cachekit.table_stats();

-- a watched table read before its drop: its entry is bumped, not left behind
CREATE TABLE gd_watched (id int);
SELECT cachekit.watch('gd_watched');
SELECT 'gd_watched'::regclass::oid AS watched_oid \gset
SELECT count(*) FROM cachekit.cached_query('SELECT id FROM gd_watched') AS r(id int);
SELECT generation AS gen_before FROM cachekit.table_stats() WHERE relid = :watched_oid \gset
DROP TABLE gd_watched;
SELECT generation > :gen_before AS bumped FROM cachekit.table_stats() WHERE relid = :watched_oid;

REVOKE TEMPORARY ON DATABASE :"DBNAME" FROM regress_gd_plain;
DROP ROLE regress_gd_plain;
