-- cachekit.metrics() and the statuses of cachekit.health(). Counters are
-- cumulative (earlier tests moved them), so the checks compare deltas.
CREATE FUNCTION regress.metric(doc text, series text) RETURNS float8 LANGUAGE sql AS $$
    SELECT (regexp_match(doc, '(?:^|\n)' || regexp_replace(series, '([{}.+*?()\[\]|^$\\])', '\\\1', 'g')
                              || ' ([^\n]+)'))[1]::float8
$$;
GRANT EXECUTE ON FUNCTION regress.metric(text, text) TO PUBLIC;

CREATE ROLE regress_mon_alice IN ROLE cachekit_user;
CREATE ROLE regress_mon_bob IN ROLE cachekit_user;
CREATE ROLE regress_mon_stats IN ROLE cachekit_user, pg_read_all_stats;
CREATE ROLE regress_mon_watcher IN ROLE pg_monitor;
CREATE ROLE regress_mon_nobody;

CREATE TABLE regress_mon_t (id int PRIMARY KEY, v int);
INSERT INTO regress_mon_t SELECT g, g FROM generate_series(1, 10) g;
SELECT cachekit.watch('regress_mon_t');
GRANT SELECT ON regress_mon_t TO regress_mon_alice, regress_mon_bob, regress_mon_stats;

-- The document parses as the text format: HELP and TYPE before each family's samples.
SELECT count(*) FILTER (WHERE l LIKE '# TYPE %') > 30 AS families,
       bool_and(l ~ '^(# (HELP|TYPE) cachekit_[a-z0-9_]+ .*|cachekit_[a-z0-9_]+(\{.*\})? [-+0-9.eInfNa]+)$') AS well_formed
FROM regexp_split_to_table(rtrim(cachekit.metrics(), E'\n'), E'\n') AS l;

CREATE TEMP TABLE before AS SELECT cachekit.metrics() AS doc;
GRANT SELECT ON before TO PUBLIC;

-- Alice: a miss, two hits; Bob: a miss; a bypass for REPEATABLE READ.
SET ROLE regress_mon_alice;
SELECT * FROM cachekit.cached_query('SELECT sum(v) AS alice_sum FROM regress_mon_t') AS r(s bigint);
SELECT * FROM cachekit.cached_query('SELECT sum(v) AS alice_sum FROM regress_mon_t') AS r(s bigint);
SELECT * FROM cachekit.cached_query('SELECT sum(v) AS alice_sum FROM regress_mon_t') AS r(s bigint);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM cachekit.cached_query('SELECT sum(v) AS alice_sum FROM regress_mon_t') AS r(s bigint);
COMMIT;
SET ROLE regress_mon_bob;
SELECT * FROM cachekit.cached_query('SELECT max(v) AS bob_max FROM regress_mon_t') AS r(m int);
RESET ROLE;
UPDATE regress_mon_t SET v = v + 1 WHERE id = 1;

CREATE TEMP TABLE after AS SELECT cachekit.metrics() AS doc;
SELECT m.series, regress.metric(a.doc, m.series) - coalesce(regress.metric(b.doc, m.series), 0) AS delta
FROM before b, after a, (VALUES
    ('cachekit_query_cache_operations_total{database="' || current_database() || '",result="hit"}'),
    ('cachekit_query_cache_operations_total{database="' || current_database() || '",result="miss"}'),
    ('cachekit_query_cache_operations_total{database="' || current_database() || '",result="bypass"}'),
    ('cachekit_query_cache_bypasses_total{database="' || current_database() || '",reason="isolation_level"}'),
    ('cachekit_query_cache_duration_seconds_count{database="' || current_database() || '",result="hit"}'),
    ('cachekit_query_cache_duration_seconds_bucket{database="' || current_database() || '",result="miss",le="+Inf"}'),
    ('cachekit_table_invalidations_total{database="' || current_database() || '",table="public.regress_mon_t"}')
) AS m(series) ORDER BY 1;

-- Per-query series: the caller's own queries, every role's for
-- pg_read_all_stats; never the query text (only the fingerprint).
CREATE FUNCTION regress.query_series() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM regexp_matches(cachekit.metrics(), 'cachekit_query_hits_total\{[^\n]*\n', 'g')
$$;
GRANT EXECUTE ON FUNCTION regress.query_series() TO PUBLIC;
SET ROLE regress_mon_alice;
SELECT regress.query_series() AS alice_sees;
SET ROLE regress_mon_bob;
SELECT regress.query_series() AS bob_sees;
SET ROLE regress_mon_stats;
SELECT regress.query_series() >= 2 AS read_all_stats_sees_both;
RESET ROLE;
SET ROLE regress_mon_alice;
SELECT position('alice_sum' IN cachekit.metrics()) = 0 AS no_query_text,
       cachekit.metrics() ~ 'cachekit_query_hits_total\{database="[^"]+",namespace="",fingerprint="-?[0-9]+"\} 2\n' AS own_hits;
SET ROLE regress_mon_bob;
SELECT cachekit.metrics() ~ 'cachekit_query_hits_total\{[^}]*\} 2\n' AS sees_alices_query;
SET ROLE regress_mon_watcher;
SELECT cachekit.metrics() LIKE '%cachekit_up 1%' AS pg_monitor_may;
SET ROLE regress_mon_nobody;
SELECT regress.error_of('SELECT cachekit.metrics()');
SELECT regress.error_of('SELECT cachekit.health()');
RESET ROLE;

-- Tasks: enqueued counts at commit only, per queue; a rolled-back
-- savepoint's enqueue is not counted.
CREATE FUNCTION regress_mon_task(args jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT args';
SELECT cachekit.pause_queue('reports');
CREATE TEMP TABLE t_before AS SELECT cachekit.metrics() AS doc;
BEGIN;
SELECT cachekit.enqueue('reports', 'regress_mon_task', '{}') > 0 AS queued;
SAVEPOINT s;
SELECT cachekit.enqueue('reports', 'regress_mon_task', '{}') > 0 AS queued;
ROLLBACK TO s;
COMMIT;
BEGIN;
SELECT cachekit.enqueue('reports', 'regress_mon_task', '{}') > 0 AS queued;
ROLLBACK;
CREATE TEMP TABLE t_after AS SELECT cachekit.metrics() AS doc;
SELECT regress.metric(a.doc, s) - coalesce(regress.metric(b.doc, s), 0) AS enqueued_delta,
       regress.metric(a.doc, 'cachekit_queue_paused{database="' || current_database() || '",queue="reports"}') AS paused,
       regress.metric(a.doc, 'cachekit_queue_depth{database="' || current_database() || '",queue="reports"}') >= 1 AS depth
FROM t_before b, t_after a,
     (SELECT 'cachekit_tasks_enqueued_total{database="' || current_database() || '",queue="reports"}' AS s) x;

-- health(): a status per component and overall; the paused queue is degraded.
SELECT cachekit.health()->>'status' IN ('ok', 'degraded') AS overall_known,
       cachekit.health()->'redis'->>'status' AS redis,
       cachekit.health()->'session_redis'->>'status' AS session_redis,
       cachekit.health()->'database'->'queues'->'reports'->>'status' AS reports_queue,
       cachekit.health()->'database'->'queues'->'default'->>'status' AS default_queue,
       cachekit.health()->'database'->'outbox'->>'status' AS outbox,
       cachekit.health()->'database'->>'status' AS database;
SELECT regress.metric(cachekit.metrics(), 'cachekit_component_status{database="' || current_database() || '",component="queue",queue="reports"}') AS reports_status;
SELECT cachekit.resume_queue('reports');
DELETE FROM cachekit.tasks WHERE queue = 'reports';

-- The endpoint's settings: the address is fixed at server start.
SELECT regress.error_of($$SET cachekit.metrics_listen = '127.0.0.1:1'$$);
SELECT regress.error_of($$SET cachekit.metrics_top_queries = 5$$);

-- Names are data: a table named with a quote, a newline and a backslash (as
-- a database owner could name a table or a CREATEDB role a database) is an
-- escaped label value, not a line of its own.
CREATE TABLE "regress""mon
tab\le" (id int PRIMARY KEY);
SELECT cachekit.watch('"regress""mon
tab\le"');
INSERT INTO "regress""mon
tab\le" VALUES (1);
SELECT bool_and(l ~ '^(# (HELP|TYPE) cachekit_[a-z0-9_]+ .*|cachekit_[a-z0-9_]+(\{.*\})? [-+0-9.eInfNa]+)$') AS well_formed,
       count(*) FILTER (WHERE l LIKE 'cachekit_table_invalidations_total{%'
                          AND position('table="public.\"regress\"\"mon\ntab\\le\""} ' IN l) > 0) AS escaped
FROM regexp_split_to_table(rtrim(cachekit.metrics(), E'\n'), E'\n') AS l;
DROP TABLE "regress""mon
tab\le";

-- pg_monitor: CDN counters, not the providers' last errors (they can name
-- purged paths, i.e. values of tables it cannot read).
SET ROLE regress_mon_watcher;
SELECT regress.error_of('SELECT cachekit.cdn_status()') LIKE '42501%' AS cdn_status_denied,
       cachekit.cdn_counters() ? 'providers' AS counters,
       position('last_error' IN cachekit.cdn_counters()::text) = 0 AS without_errors;
RESET ROLE;

DROP TABLE regress_mon_t;
DROP FUNCTION regress_mon_task(jsonb);
DROP FUNCTION regress.query_series();
DROP ROLE regress_mon_alice, regress_mon_bob, regress_mon_stats, regress_mon_watcher, regress_mon_nobody;
