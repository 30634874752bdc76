-- The outbox relay of this database as cachekit.health() reports it: running
-- (or why not), its backlog, owed flush and queue, and the registry of all
-- relays. Read by a role that cannot read the outbox itself.
SHOW cachekit.max_databases;
SELECT regress.error_of('SET cachekit.max_databases = 8');

-- The launcher starts a relay here within a few seconds of CREATE EXTENSION.
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (cachekit.health() -> 'invalidation' -> 'relay' ->> 'running')::boolean;
        PERFORM pg_catalog.pg_sleep(0.1);
    END LOOP;
END $$;

SELECT array_agg(k ORDER BY k) AS relay_fields
  FROM jsonb_object_keys(cachekit.health() -> 'invalidation' -> 'relay') k;
SELECT array_agg(k ORDER BY k) AS registry_fields
  FROM jsonb_object_keys(cachekit.health() -> 'invalidation' -> 'relays') k;
SELECT r ->> 'running' AS running, r ->> 'state' AS state, r ->> 'reason' AS reason,
       (r ->> 'pid')::int = (SELECT pid FROM pg_stat_activity
                              WHERE backend_type = 'pg_cachekit outbox relay'
                                AND datname = current_database()) AS pid_matches
  FROM (SELECT cachekit.health() -> 'invalidation' -> 'relay' AS r) s;
SELECT (d ->> 'state') AS state, (d ->> 'pid') IS NOT NULL AS has_pid
  FROM jsonb_array_elements(cachekit.health() -> 'invalidation' -> 'relays' -> 'databases') d
 WHERE (d ->> 'datid')::oid = (SELECT oid FROM pg_database WHERE datname = current_database());
SELECT (h -> 'relays' ->> 'launcher_pid')::int = (SELECT pid FROM pg_stat_activity
                                                 WHERE backend_type = 'pg_cachekit launcher')
         AS launcher_pid_matches,
       (h -> 'relays' ->> 'max_databases')::int AS max_databases,
       (h ->> 'patterns_rejected') IS NOT NULL AS counts_rejected_patterns
  FROM (SELECT cachekit.health() -> 'invalidation' AS h) s;

-- A cachekit_user sees the outbox depth (read as the extension owner).
CREATE ROLE regress_relay_user;
GRANT cachekit_user TO regress_relay_user;
SET ROLE regress_relay_user;
SELECT regress.error_of('SELECT count(*) FROM cachekit.outbox');
SELECT (cachekit.health() -> 'invalidation' ->> 'outbox_depth')::int >= 0 AS outbox_depth_shown,
       cachekit.health() -> 'invalidation' -> 'relay' ->> 'running' AS running;
RESET ROLE;
DROP ROLE regress_relay_user;
