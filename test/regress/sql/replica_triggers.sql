-- Every trigger the extension installs fires under session_replication_role
-- = replica too, the way logical replication applies changes (row triggers
-- only): the statement triggers are ENABLE ALWAYS, and each has a row
-- trigger twin that is ENABLE REPLICA (fires only there). Row triggers go on
-- tables holding rows, so a partition's own trigger never clashes with a
-- clone of its parent's. (This checks the catalog; what the row triggers do
-- is tested with a real subscription.)
CREATE VIEW regress.rt_triggers AS
    SELECT g.tgrelid::regclass AS table_name,
           regexp_replace(g.tgname, '^cachekit_keys_[0-9a-f]{16}_', 'cachekit_keys_<rule>_') AS trigger,
           CASE WHEN g.tgtype & 1 = 1 THEN 'row' ELSE 'statement' END AS level,
           g.tgenabled AS enabled
    FROM pg_trigger g
    WHERE g.tgrelid::regclass::text LIKE 'rt\_%' AND g.tgname LIKE 'cachekit%';

CREATE TABLE rt_plain (id int PRIMARY KEY, v int);
SELECT cachekit.watch('rt_plain');
CREATE TABLE rt_parts (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE rt_p1 PARTITION OF rt_parts FOR VALUES FROM (0) TO (10);
SELECT cachekit.watch('rt_parts');
-- partitions created, attached (already watched on its own) and sub-partitioned later
CREATE TABLE rt_p2 PARTITION OF rt_parts FOR VALUES FROM (10) TO (20);
CREATE TABLE rt_p3 (id int, v int);
SELECT cachekit.watch('rt_p3');
ALTER TABLE rt_parts ATTACH PARTITION rt_p3 FOR VALUES FROM (20) TO (30);
CREATE TABLE rt_p4 PARTITION OF rt_parts FOR VALUES FROM (30) TO (40) PARTITION BY RANGE (id);
CREATE TABLE rt_p4a PARTITION OF rt_p4 FOR VALUES FROM (30) TO (35);
SELECT * FROM regress.rt_triggers ORDER BY table_name::text, trigger;
SELECT table_name, parent, partitioned FROM cachekit.watched_tables
 WHERE table_name::text LIKE 'rt\_%' ORDER BY table_name::text;

-- key rules: a statement and a row trigger per operation
SELECT cachekit.invalidate_key_on('rt_parts', 'rt:{id}', name => 'rt_rule', operations => ARRAY['INSERT', 'DELETE']);
CREATE TABLE rt_p5 PARTITION OF rt_parts FOR VALUES FROM (40) TO (50);
SELECT * FROM regress.rt_triggers WHERE trigger LIKE 'cachekit_keys%' ORDER BY table_name::text, trigger;
SELECT name, triggers FROM cachekit.key_rules WHERE name = 'rt_rule';

-- unwatch and drop_key_rule remove both kinds
SELECT cachekit.drop_key_rule('rt_rule');
SELECT cachekit.unwatch('rt_parts');
SELECT cachekit.unwatch('rt_plain');
SELECT count(*) AS triggers_left FROM regress.rt_triggers;
SELECT count(*) AS watched_left FROM cachekit.watched_tables WHERE table_name::text LIKE 'rt\_%';

DROP TABLE rt_plain, rt_parts;
DROP VIEW regress.rt_triggers;
