-- pg_cachekit 0.1.0: key/value cache, session store, health and statistics.
\echo Use "CREATE EXTENSION pg_cachekit" to load this file. \quit

-- Group roles. Roles are cluster-wide: another database may have created them
-- already, and DROP EXTENSION leaves them (as it must; they may hold grants
-- elsewhere). Nothing here is granted to PUBLIC.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_user') THEN
        CREATE ROLE cachekit_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_session') THEN
        CREATE ROLE cachekit_session NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_admin') THEN
        CREATE ROLE cachekit_admin NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA cachekit TO cachekit_user, cachekit_session, cachekit_admin;

-- Key/value cache ----------------------------------------------------------

CREATE FUNCTION cachekit.cache_set(key text, value text, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_set_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_set(key text, value bytea, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_set_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_set(key text, value jsonb, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_set_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cachekit.cache_get(key text)
RETURNS text AS 'MODULE_PATHNAME', 'ck_cache_get' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_get_bytea(key text)
RETURNS bytea AS 'MODULE_PATHNAME', 'ck_cache_get_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_get_jsonb(key text)
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_cache_get_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cachekit.cache_delete(VARIADIC keys text[])
RETURNS integer AS 'MODULE_PATHNAME', 'ck_cache_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_exists(key text)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_exists' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_ttl(key text)
RETURNS integer AS 'MODULE_PATHNAME', 'ck_cache_ttl' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_expire(key text, ttl integer)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_expire' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_incr(key text, by bigint DEFAULT 1, ttl integer DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'ck_cache_incr' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_clear(prefix text)
RETURNS bigint AS 'MODULE_PATHNAME', 'ck_cache_clear' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION cachekit.cache_set(text, text, integer) IS
    'Store a value under key for ttl seconds (default cachekit.default_ttl); false if Redis is unavailable';
COMMENT ON FUNCTION cachekit.cache_get(text) IS
    'The value stored under key, or NULL on a miss or when Redis is unavailable';
COMMENT ON FUNCTION cachekit.cache_delete(text[]) IS 'Delete keys; returns how many existed';
COMMENT ON FUNCTION cachekit.cache_ttl(text) IS
    'Remaining seconds to live; -1 for a key without expiry; NULL if the key does not exist';
COMMENT ON FUNCTION cachekit.cache_clear(text) IS
    'Delete every cache key starting with prefix (SCAN + UNLINK in batches); returns how many';

-- Session store -------------------------------------------------------------

CREATE FUNCTION cachekit.session_set(sid text, data jsonb, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_session_set' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_get(sid text)
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_session_get' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_touch(sid text, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_session_touch' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_delete(sid text)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_session_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Health and statistics -----------------------------------------------------

CREATE FUNCTION cachekit.health()
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_health' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.health() IS
    'Redis reachability, round trip, version, memory, eviction policy and circuit-breaker state';

CREATE FUNCTION cachekit.cache_stats(
    OUT gets bigint, OUT hits bigint, OUT misses bigint, OUT sets bigint, OUT deletes bigint,
    OUT errors bigint, OUT bytes_in bigint, OUT bytes_out bigint, OUT redis_ops bigint,
    OUT mean_op_time_ms double precision, OUT stats_reset timestamptz)
RETURNS record AS 'MODULE_PATHNAME', 'ck_cache_stats' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW cachekit.cache_stats AS
    SELECT s.gets, s.hits, s.misses,
           CASE WHEN s.gets > 0 THEN pg_catalog.round(s.hits::numeric / s.gets, 4) END AS hit_rate,
           s.sets, s.deletes, s.errors, s.bytes_in, s.bytes_out, s.redis_ops,
           s.mean_op_time_ms, s.stats_reset
    FROM cachekit.cache_stats() AS s;
COMMENT ON VIEW cachekit.cache_stats IS
    'Key/value and session operations of all backends since the last cache_stats_reset()';

CREATE FUNCTION cachekit.cache_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_cache_stats_reset' LANGUAGE C VOLATILE PARALLEL SAFE;

-- Privileges ----------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cachekit FROM PUBLIC;
REVOKE ALL ON cachekit.cache_stats FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    cachekit.cache_set(text, text, integer), cachekit.cache_set(text, bytea, integer),
    cachekit.cache_set(text, jsonb, integer), cachekit.cache_get(text),
    cachekit.cache_get_bytea(text), cachekit.cache_get_jsonb(text),
    cachekit.cache_delete(text[]), cachekit.cache_exists(text), cachekit.cache_ttl(text),
    cachekit.cache_expire(text, integer), cachekit.cache_incr(text, bigint, integer),
    cachekit.health(), cachekit.cache_stats()
TO cachekit_user;
GRANT SELECT ON cachekit.cache_stats TO cachekit_user;

GRANT EXECUTE ON FUNCTION
    cachekit.session_set(text, jsonb, integer), cachekit.session_get(text),
    cachekit.session_touch(text, integer), cachekit.session_delete(text)
TO cachekit_session;

GRANT EXECUTE ON FUNCTION cachekit.cache_clear(text), cachekit.cache_stats_reset()
TO cachekit_admin;

-- Cached queries ------------------------------------------------------------

-- The statement trigger that cachekit.watch() installs: records the table
-- (and its ancestors) for a generation bump once the transaction commits.
-- BEFORE, not AFTER: a cached_query running later in the same statement (a
-- writable CTE, a row trigger) must already know the transaction wrote the
-- table, or it would cache rows nobody committed.
CREATE FUNCTION cachekit._invalidate()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_invalidate_trigger' LANGUAGE C;

CREATE FUNCTION cachekit.invalidate(table_name regclass)
RETURNS void AS 'MODULE_PATHNAME', 'ck_invalidate' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.invalidate(regclass) IS
    'Invalidate every cached result that read the table, when this transaction commits';
CREATE FUNCTION cachekit.invalidate_all()
RETURNS void AS 'MODULE_PATHNAME', 'ck_invalidate_all' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.invalidate_all() IS
    'Invalidate every cached result of this database, when this transaction commits';

-- watch/unwatch run as the caller: installing a trigger needs the TRIGGER
-- privilege on the table, which its owner has.
CREATE FUNCTION cachekit.watch(table_name regclass)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel record;
BEGIN
    IF table_name IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, c.relpersistence INTO rel FROM pg_class c WHERE c.oid = table_name;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'cachekit.watch() can only watch tables and partitioned tables'
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('%s is not a table.', table_name);
    END IF;
    IF rel.relpersistence = 't' THEN
        RAISE EXCEPTION 'cachekit.watch() cannot watch a temporary table'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('%s is visible to this session only.', table_name);
    END IF;
    -- The table and, for a partitioned table, every partition: a statement
    -- on a partition fires the partition's triggers, not its parent's.
    -- Partitions created or attached later get the trigger from
    -- cachekit._on_ddl().
    FOR rel IN
        -- pg_partition_tree() returns nothing for a plain table.
        SELECT t.relid FROM (SELECT table_name AS relid
                             UNION SELECT p.relid FROM pg_partition_tree(table_name) p) t
        WHERE NOT cachekit._is_watched(t.relid)
          AND (SELECT relkind FROM pg_class WHERE oid = t.relid) IN ('r', 'p')
    LOOP
        -- ALTER TABLE below runs cachekit._on_ddl(), which may have watched it.
        CONTINUE WHEN cachekit._is_watched(rel.relid);
        -- ENABLE ALWAYS: session_replication_role = replica too. Logical
        -- replication's apply worker fires row triggers only: the row
        -- trigger, ENABLE REPLICA, fires there (and nowhere else).
        EXECUTE format('CREATE TRIGGER cachekit_invalidate BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE '
                       'ON %s FOR EACH STATEMENT EXECUTE FUNCTION cachekit._invalidate()', rel.relid::regclass);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER cachekit_invalidate', rel.relid::regclass);
        IF (SELECT relkind FROM pg_class WHERE oid = rel.relid) = 'r' THEN
            EXECUTE format('CREATE TRIGGER cachekit_invalidate_row BEFORE INSERT OR UPDATE OR DELETE '
                           'ON %s FOR EACH ROW EXECUTE FUNCTION cachekit._invalidate()', rel.relid::regclass);
            EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER cachekit_invalidate_row', rel.relid::regclass);
        END IF;
    END LOOP;
    PERFORM cachekit.invalidate(table_name);
END $$;
COMMENT ON FUNCTION cachekit.watch(regclass) IS
    'Install the invalidation trigger on a table (and its partitions, present and future)';

CREATE FUNCTION cachekit.unwatch(table_name regclass)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel record;
BEGIN
    FOR rel IN
        SELECT g.tgrelid, g.tgname FROM (SELECT table_name AS relid
                               UNION SELECT p.relid FROM pg_partition_tree(table_name) p) t
        JOIN pg_trigger g ON g.tgrelid = t.relid AND g.tgfoid = 'cachekit._invalidate'::regproc
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', rel.tgname, rel.tgrelid::regclass);
    END LOOP;
    PERFORM cachekit.invalidate(table_name);
END $$;
COMMENT ON FUNCTION cachekit.unwatch(regclass) IS 'Remove the invalidation trigger from a table';

CREATE FUNCTION cachekit._is_watched(table_name oid)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                   WHERE g.tgrelid = $1 AND g.tgfoid = 'cachekit._invalidate'::pg_catalog.regproc);
$$;

-- DDL on watched tables invalidates them; new partitions of a watched table
-- are watched. SECURITY DEFINER: a user creating a partition of a watched
-- table need not be allowed to use cachekit._invalidate() themselves.
CREATE FUNCTION cachekit._on_ddl()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd record;
    part record;
BEGIN
    FOR cmd IN SELECT DISTINCT d.objid FROM pg_event_trigger_ddl_commands() d
               JOIN pg_class c ON c.oid = d.objid AND c.relkind IN ('r', 'p')
               WHERE d.classid = 'pg_class'::regclass
    LOOP
        -- CREATE TABLE ... PARTITION OF, ATTACH PARTITION: every table of the
        -- tree below a watched table gets the trigger.
        FOR part IN
            SELECT t.relid FROM pg_partition_tree(COALESCE(pg_partition_root(cmd.objid), cmd.objid)) t
            JOIN pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p')
            WHERE NOT cachekit._is_watched(t.relid)
              AND EXISTS (SELECT 1 FROM pg_partition_ancestors(t.relid) a
                          WHERE a.relid <> t.relid AND cachekit._is_watched(a.relid))
        LOOP
            CONTINUE WHEN cachekit._is_watched(part.relid);
            EXECUTE format('CREATE TRIGGER cachekit_invalidate BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE '
                           'ON %s FOR EACH STATEMENT EXECUTE FUNCTION cachekit._invalidate()', part.relid::regclass);
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER cachekit_invalidate', part.relid::regclass);
            IF (SELECT relkind FROM pg_class WHERE oid = part.relid) = 'r' THEN
                EXECUTE format('CREATE TRIGGER cachekit_invalidate_row BEFORE INSERT OR UPDATE OR DELETE '
                               'ON %s FOR EACH ROW EXECUTE FUNCTION cachekit._invalidate()', part.relid::regclass);
                EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER cachekit_invalidate_row', part.relid::regclass);
            END IF;
        END LOOP;
        IF cachekit._is_watched(cmd.objid) THEN
            PERFORM cachekit.invalidate(cmd.objid::regclass);
        END IF;
        -- Key rules of an ancestor cover new partitions too.
        FOR part IN SELECT k.name FROM cachekit._key_rules k
                    WHERE k.table_name IN (SELECT a.relid FROM pg_partition_ancestors(cmd.objid) a)
                       OR k.table_name IN (SELECT t.relid FROM pg_partition_tree(cmd.objid) t)
        LOOP
            PERFORM cachekit._install_rule_triggers(part.name);
        END LOOP;
    END LOOP;
END $$;

CREATE FUNCTION cachekit._on_drop()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    obj record;
BEGIN
    FOR obj IN SELECT objid FROM pg_event_trigger_dropped_objects()
               WHERE classid = 'pg_class'::regclass AND objsubid = 0
                 AND object_type IN ('table', 'partitioned table')
    LOOP
        PERFORM cachekit.invalidate(obj.objid::regclass);
        DELETE FROM cachekit._key_rules WHERE table_name = obj.objid;
    END LOOP;
END $$;


CREATE TABLE cachekit.namespace_ttls (
    namespace text PRIMARY KEY,
    ttl integer NOT NULL CHECK (ttl > 0)
);
COMMENT ON TABLE cachekit.namespace_ttls IS 'Default ttl of cached_query results per namespace';

CREATE FUNCTION cachekit.set_namespace_ttl(namespace text, ttl integer)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF namespace IS NULL OR ttl IS NULL OR ttl <= 0 THEN
        RAISE EXCEPTION 'namespace must not be NULL and ttl must be a positive number of seconds'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO cachekit.namespace_ttls AS n (namespace, ttl) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT namespace_ttls_pkey DO UPDATE SET ttl = excluded.ttl;
END $$;
COMMENT ON FUNCTION cachekit.set_namespace_ttl(text, integer) IS
    'Default ttl for cached_query calls of a namespace that pass no ttl';

CREATE FUNCTION cachekit.cached_query(
    query text, params text[] DEFAULT '{}', ttl integer DEFAULT NULL,
    namespace text DEFAULT NULL, depends_on regclass[] DEFAULT NULL)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_cached_query' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cached_query(text, text[], integer, text, regclass[]) IS
    'Run a SELECT through the cache; rows are never older than a commit that finished before the call';

CREATE FUNCTION cachekit.cached_query_json(
    query text, params text[] DEFAULT '{}', ttl integer DEFAULT NULL,
    namespace text DEFAULT NULL, depends_on regclass[] DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_cached_query_json' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cached_query_json(text, text[], integer, text, regclass[]) IS
    'cached_query returning the rows as a JSON array of objects';

CREATE FUNCTION cachekit.last_outcome()
RETURNS text AS 'MODULE_PATHNAME', 'ck_last_outcome' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION cachekit.last_outcome() IS
    'hit, miss or bypass:<reason> for this session''s last cached_query call';

-- Statistics of cached queries and invalidations -------------------------------

CREATE FUNCTION cachekit.query_stats(
    OUT dbid oid, OUT namespace text, OUT fingerprint bigint, OUT query text,
    OUT calls bigint, OUT hits bigint, OUT misses bigint, OUT bypasses jsonb,
    OUT mean_hit_ms double precision, OUT max_hit_ms double precision,
    OUT mean_miss_ms double precision, OUT max_miss_ms double precision,
    OUT rows bigint, OUT bytes bigint, OUT last_invalidation timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_query_stats' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.query_stats AS
    SELECT NULLIF(s.namespace, '') AS namespace, s.fingerprint, s.query, s.calls, s.hits, s.misses,
           (SELECT COALESCE(sum(v::bigint), 0) FROM jsonb_each_text(s.bypasses) AS b(k, v))::bigint AS bypassed,
           s.bypasses,
           CASE WHEN s.hits + s.misses > 0 THEN round(s.hits::numeric / (s.hits + s.misses), 4) END AS hit_rate,
           s.mean_hit_ms, s.max_hit_ms, s.mean_miss_ms, s.max_miss_ms, s.rows, s.bytes,
           s.last_invalidation,
           COALESCE(s.mean_miss_ms > (SELECT setting::double precision FROM pg_catalog.pg_settings
                                        WHERE name = 'cachekit.slow_query_ms'), false) AS slow
    FROM cachekit.query_stats() AS s
    WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database());
COMMENT ON VIEW cachekit.query_stats IS
    'cached_query calls per namespace and query: hits, misses, bypasses by reason, timings';

CREATE FUNCTION cachekit.query_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_query_stats_reset' LANGUAGE C VOLATILE;

CREATE FUNCTION cachekit.table_stats(
    OUT dbid oid, OUT relid oid, OUT generation bigint, OUT invalidations bigint,
    OUT last_invalidation timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_table_stats' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.table_stats AS
    SELECT CASE WHEN s.relid = 0 THEN NULL ELSE s.relid::regclass END AS table_name,
           s.generation, s.invalidations, s.last_invalidation
    FROM cachekit.table_stats() AS s
    WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
      AND (s.relid = 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = s.relid));
COMMENT ON VIEW cachekit.table_stats IS
    'Invalidations per table (table_name NULL: the database-wide generation)';

CREATE FUNCTION cachekit.table_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_table_stats_reset' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.watched_tables AS
    SELECT c.oid::regclass AS table_name,
           (SELECT i.inhparent::regclass FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid LIMIT 1) AS parent,
           c.relkind = 'p' AS partitioned,
           s.generation, s.invalidations, s.last_invalidation
    FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    LEFT JOIN cachekit.table_stats s ON s.table_name = c.oid::regclass
    WHERE t.tgfoid = 'cachekit._invalidate'::regproc AND t.tgname = 'cachekit_invalidate';
COMMENT ON VIEW cachekit.watched_tables IS 'Tables whose changes invalidate cached_query results';

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cachekit FROM PUBLIC;
REVOKE ALL ON cachekit.namespace_ttls, cachekit.query_stats, cachekit.table_stats,
              cachekit.watched_tables FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    cachekit.cached_query(text, text[], integer, text, regclass[]),
    cachekit.cached_query_json(text, text[], integer, text, regclass[]),
    cachekit.last_outcome(), cachekit.invalidate(regclass),
    cachekit.watch(regclass), cachekit.unwatch(regclass), cachekit._invalidate(),
    cachekit.query_stats(), cachekit.table_stats(), cachekit._is_watched(oid)
TO cachekit_user, cachekit_admin;
GRANT SELECT ON cachekit.namespace_ttls, cachekit.query_stats, cachekit.table_stats,
                cachekit.watched_tables
TO cachekit_user, cachekit_admin;
GRANT EXECUTE ON FUNCTION
    cachekit.invalidate_all(), cachekit.set_namespace_ttl(text, integer),
    cachekit.query_stats_reset(), cachekit.table_stats_reset()
TO cachekit_admin;

-- Invalidation for applications ---------------------------------------------

-- Durable outbox: written in the committing transaction (so it is durable
-- exactly when the change is), delivered right after commit by the backend
-- when Redis answers, otherwise by the background worker, in id order.
CREATE TABLE cachekit.outbox (
    id bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    payload jsonb NOT NULL
);
COMMENT ON TABLE cachekit.outbox IS
    'Invalidations (pub/sub messages, keys, key patterns) committed but not yet delivered to Redis';

CREATE TABLE cachekit._key_rules (
    name text PRIMARY KEY,
    table_name regclass NOT NULL,
    template text NOT NULL,
    operations text[] NOT NULL,
    columns text[],
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE cachekit._key_rules IS 'Application keys deleted when rows of a table change';

CREATE VIEW cachekit.key_rules AS
    SELECT r.name, r.table_name, r.template, r.operations, r.columns, r.created_at,
           (SELECT count(*) FROM pg_catalog.pg_trigger g
             WHERE g.tgname LIKE 'cachekit_keys_' || substr(md5(r.name), 1, 16) || '_%') AS triggers
    FROM cachekit._key_rules r;
COMMENT ON VIEW cachekit.key_rules IS 'Key rules and how many capture triggers implement them';

CREATE FUNCTION cachekit._template_columns(template text)
RETURNS text[] AS 'MODULE_PATHNAME', 'ck_template_columns' LANGUAGE C IMMUTABLE STRICT;

CREATE FUNCTION cachekit._capture_keys()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_capture_keys' LANGUAGE C;

-- (Re)creates the capture triggers of one rule on a table and its partitions.
-- One trigger per event: transition tables allow only one event per trigger.
CREATE FUNCTION cachekit._install_rule_triggers(rule_name text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r cachekit._key_rules;
    rel record;
    op text;
    trig text;
BEGIN
    SELECT * INTO STRICT r FROM cachekit._key_rules WHERE name = rule_name;
    trig := 'cachekit_keys_' || substr(md5(rule_name), 1, 16);
    FOR rel IN SELECT t.relid FROM (SELECT r.table_name::oid AS relid
                                     UNION SELECT p.relid FROM pg_partition_tree(r.table_name) p) t
               JOIN pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p')
    LOOP
        FOREACH op IN ARRAY r.operations LOOP
            IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel.relid
                       AND tgname = trig || '_' || lower(left(op, 1))) THEN
                CONTINUE;
            END IF;
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION cachekit._capture_keys(%L, %L, %L)',
                           trig || '_' || lower(left(op, 1)), op, rel.relid::regclass,
                           CASE op WHEN 'INSERT' THEN 'NEW TABLE AS cachekit_new'
                                   WHEN 'DELETE' THEN 'OLD TABLE AS cachekit_old'
                                   ELSE 'OLD TABLE AS cachekit_old NEW TABLE AS cachekit_new' END,
                           r.name, r.template, array_to_string(coalesce(r.columns, '{}'), ','));
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', rel.relid::regclass,
                           trig || '_' || lower(left(op, 1)));
            -- Logical replication's apply worker fires row triggers only.
            IF (SELECT relkind FROM pg_class WHERE oid = rel.relid) = 'r'
               AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel.relid
                               AND tgname = trig || '_r' || lower(left(op, 1))) THEN
                EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH ROW '
                               'EXECUTE FUNCTION cachekit._capture_keys(%L, %L, %L)',
                               trig || '_r' || lower(left(op, 1)), op, rel.relid::regclass,
                               r.name, r.template, array_to_string(coalesce(r.columns, '{}'), ','));
                EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER %I', rel.relid::regclass,
                               trig || '_r' || lower(left(op, 1)));
            END IF;
        END LOOP;
    END LOOP;
END $$;

CREATE FUNCTION cachekit.invalidate_key_on(
    table_name regclass, template text, name text DEFAULT NULL,
    operations text[] DEFAULT ARRAY['INSERT', 'UPDATE', 'DELETE'], columns text[] DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wanted text[];
    missing text[];
    have text;
    rule_name text := coalesce(name, table_name::text || ':' || template);
BEGIN
    IF table_name IS NULL OR template IS NULL THEN
        RAISE EXCEPTION 'table and template must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT cachekit._is_watched(table_name) THEN
        PERFORM cachekit.watch(table_name);
    END IF;
    wanted := cachekit._template_columns(template);
    SELECT array_agg(c ORDER BY c) INTO missing FROM unnest(wanted || coalesce(columns, '{}')) c
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = table_name AND a.attname = c
                       AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO have
          FROM pg_attribute a WHERE a.attrelid = table_name AND a.attnum > 0 AND NOT a.attisdropped;
        RAISE EXCEPTION 'key template names columns that % does not have', table_name
            USING ERRCODE = 'undefined_column',
                  DETAIL = format('Unknown: %s. The table has: %s.', array_to_string(missing, ', '), have),
                  HINT = 'Use {column} with one of the table''s columns.';
    END IF;
    IF operations IS NULL OR cardinality(operations) = 0
       OR EXISTS (SELECT 1 FROM unnest(operations) o WHERE o NOT IN ('INSERT', 'UPDATE', 'DELETE')) THEN
        RAISE EXCEPTION 'operations must be a non-empty subset of INSERT, UPDATE, DELETE'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF columns IS NOT NULL AND NOT 'UPDATE' = ANY (operations) THEN
        RAISE EXCEPTION 'columns restricts UPDATE rules only' USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Include UPDATE in operations, or leave columns NULL.';
    END IF;
    IF EXISTS (SELECT 1 FROM cachekit._key_rules k WHERE k.name = rule_name) THEN
        RAISE EXCEPTION 'key rule "%" already exists', rule_name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO cachekit._key_rules (name, table_name, template, operations, columns)
    VALUES (rule_name, table_name, template,
            ARRAY(SELECT DISTINCT o FROM unnest(operations) o ORDER BY 1), columns);
    PERFORM cachekit._install_rule_triggers(rule_name);
    RETURN rule_name;
END $$;
COMMENT ON FUNCTION cachekit.invalidate_key_on(regclass, text, text, text[], text[]) IS
    'Delete the application key built from each changed row (OLD and NEW) when the change commits';

CREATE FUNCTION cachekit.drop_key_rule(name text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r cachekit._key_rules;
    t record;
BEGIN
    SELECT * INTO r FROM cachekit._key_rules k WHERE k.name = drop_key_rule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'key rule "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    FOR t IN SELECT g.tgname, g.tgrelid FROM pg_trigger g
             WHERE g.tgname LIKE 'cachekit_keys_' || substr(md5(r.name), 1, 16) || '_%'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass);
    END LOOP;
    DELETE FROM cachekit._key_rules k WHERE k.name = r.name;
END $$;

CREATE FUNCTION cachekit.app_invalidation_stats(
    OUT messages_published bigint, OUT keys_deleted bigint, OUT patterns_flushed bigint,
    OUT outbox_written bigint, OUT delivered_at_commit bigint, OUT delivered_by_worker bigint,
    OUT delivery_failures bigint, OUT keys_overflowed bigint)
RETURNS record AS 'MODULE_PATHNAME', 'ck_app_invalidation_stats' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.invalidation_stats AS
    SELECT s.*,
           (SELECT count(*) FROM cachekit.outbox) AS outbox_depth,
           (SELECT pg_catalog.clock_timestamp() - min(created_at) FROM cachekit.outbox) AS oldest_undelivered_age
    FROM cachekit.app_invalidation_stats() AS s;
COMMENT ON VIEW cachekit.invalidation_stats IS
    'Pub/sub messages, deleted keys and the outbox of trigger-driven invalidation (cluster-wide counters)';

REVOKE ALL ON cachekit.outbox, cachekit._key_rules, cachekit.key_rules, cachekit.invalidation_stats FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cachekit FROM PUBLIC;
GRANT SELECT ON cachekit.key_rules, cachekit.invalidation_stats TO cachekit_user, cachekit_admin;
GRANT EXECUTE ON FUNCTION cachekit.app_invalidation_stats() TO cachekit_user, cachekit_admin;
-- SECURITY DEFINER: they create the capture triggers as the extension owner.
GRANT EXECUTE ON FUNCTION cachekit.invalidate_key_on(regclass, text, text, text[], text[]),
    cachekit.drop_key_rule(text)
TO cachekit_admin;

-- Last, so that the script's own DDL above does not fire them.
CREATE EVENT TRIGGER cachekit_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER INDEX',
                 'CREATE INDEX', 'CREATE RULE', 'DROP RULE', 'CREATE POLICY', 'ALTER POLICY', 'DROP POLICY',
                 'GRANT', 'REVOKE', 'COMMENT')
    EXECUTE FUNCTION cachekit._on_ddl();
CREATE EVENT TRIGGER cachekit_drop ON sql_drop
    EXECUTE FUNCTION cachekit._on_drop();
