-- pg_cachekit 0.1.0: key/value cache, session store, cached queries,
-- invalidation for applications, health and statistics.
\echo Use "CREATE EXTENSION pg_cachekit" to load this file. \quit

-- Name resolution for the rest of the script: pg_catalog, then pg_temp (for
-- relations and types only; functions and operators are never looked up
-- there). CREATE EXTENSION puts schema cachekit first in search_path, and an
-- overload or operator someone else put there would capture every
-- unqualified call made with a superuser's privileges. CREATE EXTENSION
-- restores search_path when the script ends. Objects are still qualified
-- below; this catches what a reader misses.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

-- Refuse a schema cachekit that another role controls. The extension's
-- SECURITY DEFINER functions and event triggers run as the installing
-- superuser and call functions in this schema: an object another role
-- placed there beforehand (an overload with a better-matching argument
-- type) would run with those privileges.
DO $schema$
DECLARE
    me pg_catalog.oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER);
    ns record;
    stranger pg_catalog.text;
    fix CONSTANT pg_catalog.text :=
        'Drop the schema (DROP SCHEMA cachekit CASCADE) or rename it (ALTER SCHEMA cachekit RENAME TO '
        'cachekit_old), then run CREATE EXTENSION pg_cachekit again.';
BEGIN
    SELECT n.oid, n.nspowner::pg_catalog.regrole::pg_catalog.text AS owner, n.nspowner, n.nspacl
      INTO STRICT ns FROM pg_catalog.pg_namespace n WHERE n.nspname = 'cachekit';
    IF ns.nspowner <> me THEN
        RAISE EXCEPTION 'schema cachekit already exists and is owned by role %', ns.owner
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'pg_cachekit installs SECURITY DEFINER functions into schema cachekit, '
                           'which must be owned by the role that installs the extension.',
                  HINT = fix;
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT a.grantee::pg_catalog.regrole::pg_catalog.text, ', ')
      INTO stranger FROM pg_catalog.aclexplode(ns.nspacl) a
     WHERE a.privilege_type = 'CREATE' AND a.grantee <> me;
    IF stranger IS NOT NULL THEN
        RAISE EXCEPTION 'schema cachekit lets other roles create objects in it'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('CREATE on schema cachekit is granted to: %s.', stranger),
                  HINT = 'Run REVOKE CREATE ON SCHEMA cachekit FROM those roles, or: ' || fix;
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT o.owner::pg_catalog.regrole::pg_catalog.text, ', ') INTO stranger
      FROM (SELECT proowner AS owner FROM pg_catalog.pg_proc WHERE pronamespace = ns.oid
            UNION ALL SELECT relowner FROM pg_catalog.pg_class WHERE relnamespace = ns.oid
            UNION ALL SELECT typowner FROM pg_catalog.pg_type WHERE typnamespace = ns.oid
            UNION ALL SELECT oprowner FROM pg_catalog.pg_operator WHERE oprnamespace = ns.oid
            UNION ALL SELECT collowner FROM pg_catalog.pg_collation WHERE collnamespace = ns.oid
            UNION ALL SELECT conowner FROM pg_catalog.pg_conversion WHERE connamespace = ns.oid
            UNION ALL SELECT opcowner FROM pg_catalog.pg_opclass WHERE opcnamespace = ns.oid
            UNION ALL SELECT opfowner FROM pg_catalog.pg_opfamily WHERE opfnamespace = ns.oid
            UNION ALL SELECT cfgowner FROM pg_catalog.pg_ts_config WHERE cfgnamespace = ns.oid
            UNION ALL SELECT dictowner FROM pg_catalog.pg_ts_dict WHERE dictnamespace = ns.oid
            UNION ALL SELECT stxowner FROM pg_catalog.pg_statistic_ext WHERE stxnamespace = ns.oid) o
     WHERE o.owner <> me;
    IF stranger IS NOT NULL THEN
        RAISE EXCEPTION 'schema cachekit already contains objects owned by other roles'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('Objects owned by %s are in schema cachekit.', stranger),
                  HINT = fix;
    END IF;
END
$schema$;

-- Group roles. Roles are cluster-wide: another database may have created them
-- already, and DROP EXTENSION leaves them (as it must; they may hold grants
-- elsewhere). What they may do is granted in the Privileges block at the end.
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
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_tasks') THEN
        CREATE ROLE cachekit_tasks NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_http') THEN
        CREATE ROLE cachekit_http NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_email') THEN
        CREATE ROLE cachekit_email NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_cdn') THEN
        CREATE ROLE cachekit_cdn NOLOGIN;
    END IF;
END
$roles$;

-- Key/value cache ----------------------------------------------------------

CREATE FUNCTION cachekit.cache_set(key pg_catalog.text, value pg_catalog.text, ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_cache_set_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_set(key pg_catalog.text, value pg_catalog.bytea, ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_cache_set_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_set(key pg_catalog.text, value pg_catalog.jsonb, ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_cache_set_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cachekit.cache_get(key pg_catalog.text)
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_cache_get' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_get_bytea(key pg_catalog.text)
RETURNS pg_catalog.bytea AS 'MODULE_PATHNAME', 'ck_cache_get_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_get_jsonb(key pg_catalog.text)
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_cache_get_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cachekit.cache_delete(VARIADIC keys pg_catalog.text[])
RETURNS pg_catalog.int4 AS 'MODULE_PATHNAME', 'ck_cache_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_exists(key pg_catalog.text)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_cache_exists' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_ttl(key pg_catalog.text)
RETURNS pg_catalog.int4 AS 'MODULE_PATHNAME', 'ck_cache_ttl' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_expire(key pg_catalog.text, ttl pg_catalog.int4)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_cache_expire' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_incr(key pg_catalog.text, by pg_catalog.int8 DEFAULT 1, ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_cache_incr' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_clear(prefix pg_catalog.text)
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_cache_clear' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION cachekit.cache_set(pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
    'Store a value under key for ttl seconds (default cachekit.default_ttl); false if Redis is unavailable';
COMMENT ON FUNCTION cachekit.cache_get(pg_catalog.text) IS
    'The value stored under key, or NULL on a miss or when Redis is unavailable';
COMMENT ON FUNCTION cachekit.cache_delete(pg_catalog.text[]) IS 'Delete keys; returns how many existed';
COMMENT ON FUNCTION cachekit.cache_ttl(pg_catalog.text) IS
    'Remaining seconds to live; -1 for a key without expiry; NULL if the key does not exist';
COMMENT ON FUNCTION cachekit.cache_clear(pg_catalog.text) IS
    'Delete every cache key of this namespace starting with prefix (SCAN + UNLINK in batches); returns how many';

-- Session store -------------------------------------------------------------

CREATE FUNCTION cachekit.session_set(sid pg_catalog.text, data pg_catalog.jsonb, ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_session_set' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_get(sid pg_catalog.text)
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_session_get' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_touch(sid pg_catalog.text, ttl pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_session_touch' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_delete(sid pg_catalog.text)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_session_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Health and statistics -----------------------------------------------------

CREATE FUNCTION cachekit.health()
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_health' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.health() IS
    'Redis reachability, round trip, version, memory, eviction policy and circuit-breaker state';

CREATE FUNCTION cachekit.metrics()
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_metrics' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.metrics() IS
    'Prometheus text exposition: the cluster''s and this database''s metrics (README "Monitoring")';

CREATE FUNCTION cachekit.cache_stats(
    OUT gets pg_catalog.int8, OUT hits pg_catalog.int8, OUT misses pg_catalog.int8,
    OUT sets pg_catalog.int8, OUT deletes pg_catalog.int8, OUT errors pg_catalog.int8,
    OUT bytes_in pg_catalog.int8, OUT bytes_out pg_catalog.int8, OUT redis_ops pg_catalog.int8,
    OUT mean_op_time_ms pg_catalog.float8, OUT stats_reset pg_catalog.timestamptz)
RETURNS record AS 'MODULE_PATHNAME', 'ck_cache_stats' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW cachekit.cache_stats AS
    SELECT s.gets, s.hits, s.misses,
           CASE WHEN s.gets > 0 THEN pg_catalog.round(s.hits::pg_catalog.numeric / s.gets, 4) END AS hit_rate,
           s.sets, s.deletes, s.errors, s.bytes_in, s.bytes_out, s.redis_ops,
           s.mean_op_time_ms, s.stats_reset
    FROM cachekit.cache_stats() AS s;
COMMENT ON VIEW cachekit.cache_stats IS
    'Key/value and session operations of all backends since the last cache_stats_reset()';

CREATE FUNCTION cachekit.cache_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_cache_stats_reset' LANGUAGE C VOLATILE PARALLEL SAFE;

-- Cached queries ------------------------------------------------------------

-- The trigger function of watched tables: records the table (and its
-- ancestors) for a generation bump once the transaction commits. BEFORE, not
-- AFTER: a cached_query running later in the same statement (a writable CTE,
-- a row trigger) must already know the transaction wrote the table, or it
-- would cache rows nobody committed. Its row-level twin, for logical
-- replication's apply worker (which fires row triggers only), is AFTER ROW:
-- Postgres sets a table's BEFORE ROW flags whether or not the trigger is
-- enabled, and those cost every UPDATE/DELETE a tuple lock and turn COPY into
-- single-row inserts even in sessions where the trigger never fires.
CREATE FUNCTION cachekit._invalidate()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_invalidate_trigger' LANGUAGE C;

-- The value trigger of a table watched by a column (watch(t, by => ...)):
-- cachekit_value, AFTER ROW, ENABLE ALWAYS (see src/pg/value_trigger.cpp). Its
-- arguments: the column's name and the bucket width in the column's units
-- (microseconds for dates and timestamps; 0: buckets by hash).
CREATE FUNCTION cachekit._record_values()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_value_trigger' LANGUAGE C;

-- Requires ownership of the table or cachekit_admin, and a watched table.
CREATE FUNCTION cachekit.invalidate(table_name pg_catalog.regclass)
RETURNS void AS 'MODULE_PATHNAME', 'ck_invalidate' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.invalidate(pg_catalog.regclass) IS
    'Invalidate every cached result that read the table, when this transaction commits';
CREATE FUNCTION cachekit.invalidate_all()
RETURNS void AS 'MODULE_PATHNAME', 'ck_invalidate_all' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.invalidate_all() IS
    'Invalidate every cached result of this database, when this transaction commits';

CREATE FUNCTION cachekit._is_watched(table_name pg_catalog.oid)
RETURNS pg_catalog.bool LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                   WHERE g.tgrelid = $1
                     AND g.tgname = 'cachekit_invalidate'
                     AND g.tgfoid = 'cachekit._invalidate()'::pg_catalog.regprocedure);
$$;

-- Application keys deleted when rows of a table change (see invalidate_key_on).
CREATE TABLE cachekit._key_rules (
    name pg_catalog.text PRIMARY KEY,
    table_name pg_catalog.regclass NOT NULL,
    template pg_catalog.text NOT NULL,
    operations pg_catalog.text[] NOT NULL,
    columns pg_catalog.text[],
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE cachekit._key_rules IS 'Application keys deleted when rows of a table change';

-- The trigger-name rules, in one place. Triggers of a key rule are named
-- after an md5 of the rule's name (names are free text, trigger names are
-- limited to 63 bytes): <prefix><i|u|d> for the statement triggers,
-- <prefix>r<i|u|d> for the row triggers.
CREATE FUNCTION cachekit._rule_trigger_prefix(rule_name pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'cachekit_keys_' || pg_catalog.substr(pg_catalog.md5($1), 1, 16)
           || '_';
$$;

-- The one place that creates the extension's triggers, on one table:
--   what = 'invalidate'  a watched table's pair: cachekit_invalidate, the
--                        statement trigger, ENABLE ALWAYS (fires under
--                        session_replication_role = replica too), and
--                        cachekit_invalidate_row, ENABLE REPLICA (fires only
--                        there: logical replication's apply worker fires row
--                        triggers only)
--   what = 'keys'        the same pair for each operation of a key rule;
--                        rule = ARRAY[name, template, columns joined by ',']
--   what = 'values'      cachekit_value, the value trigger of a table
--                        watched by a column, ENABLE ALWAYS; rule =
--                        ARRAY[column, bucket width]
-- Row triggers go on tables holding rows only (relkind r): on a partitioned
-- table they would be cloned onto every partition, and the clone would clash
-- with a partition's own trigger of the same name on ATTACH PARTITION.
-- Existing triggers are left alone. The new ones are enabled by one ALTER
-- TABLE, which runs cachekit._on_ddl() once for the table (it finds them all
-- in place). Returns how many it created.
CREATE FUNCTION cachekit._create_triggers(
    rel pg_catalog.oid, what pg_catalog.text, operations pg_catalog.text[], rule pg_catalog.text[])
RETURNS pg_catalog.int4 LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel_kind pg_catalog."char" := (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = rel);
    wanted record;
    enable pg_catalog.text[] := '{}';
BEGIN
    IF rel_kind IS NULL OR rel_kind NOT IN ('r', 'p') THEN
        RETURN 0;
    END IF;
    IF what NOT IN ('invalidate', 'keys', 'values') THEN
        RAISE EXCEPTION 'unknown trigger kind %', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF what = 'keys' AND (operations IS NULL OR cardinality(operations) = 0
        OR EXISTS (SELECT 1 FROM unnest(operations) o WHERE o IS NULL OR o NOT IN ('INSERT', 'UPDATE', 'DELETE'))) THEN
        RAISE EXCEPTION 'operations must be a non-empty subset of INSERT, UPDATE, DELETE'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR wanted IN
        SELECT 'cachekit_invalidate' AS name, false AS row_level,
               'BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT '
               'EXECUTE FUNCTION cachekit._invalidate()' AS spec
         WHERE what = 'invalidate'
        UNION ALL
        SELECT 'cachekit_invalidate_row', true,
               'AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION cachekit._invalidate()'
         WHERE what = 'invalidate' AND rel_kind = 'r'
        UNION ALL
        SELECT cachekit._rule_trigger_prefix(rule[1]) || lower(left(o, 1)), false,
               'AFTER ' || o || ' ON %s REFERENCING '
               || CASE o WHEN 'INSERT' THEN 'NEW TABLE AS cachekit_new'
                         WHEN 'DELETE' THEN 'OLD TABLE AS cachekit_old'
                         ELSE 'OLD TABLE AS cachekit_old NEW TABLE AS cachekit_new' END
               || format(' FOR EACH STATEMENT EXECUTE FUNCTION cachekit._capture_keys(%L, %L, %L)',
                         rule[1], rule[2], rule[3])
          FROM unnest(operations) o WHERE what = 'keys'
        UNION ALL
        SELECT cachekit._rule_trigger_prefix(rule[1]) || 'r' || lower(left(o, 1)), true,
               'AFTER ' || o || ' ON %s FOR EACH ROW '
               || format('EXECUTE FUNCTION cachekit._capture_keys(%L, %L, %L)', rule[1], rule[2], rule[3])
          FROM unnest(operations) o WHERE what = 'keys' AND rel_kind = 'r'
        UNION ALL
        -- (false: ENABLE ALWAYS; it must fire for the apply worker too)
        SELECT 'cachekit_value', false,
               'AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
               || format('EXECUTE FUNCTION cachekit._record_values(%L, %L)', rule[1], rule[2])
         WHERE what = 'values' AND rel_kind = 'r'
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                              WHERE g.tgrelid = rel AND g.tgname = wanted.name);
        EXECUTE format('CREATE TRIGGER %I ' || wanted.spec, wanted.name, rel::pg_catalog.regclass);
        enable := enable || format('ENABLE %s TRIGGER %I',
                                   CASE WHEN wanted.row_level THEN 'REPLICA' ELSE 'ALWAYS' END, wanted.name);
    END LOOP;
    IF cardinality(enable) > 0 THEN
        EXECUTE format('ALTER TABLE ONLY %s ', rel::pg_catalog.regclass) || array_to_string(enable, ', ');
    END IF;
    RETURN cardinality(enable);
END $$;

-- watch/unwatch run as the caller: creating a trigger needs the TRIGGER
-- privilege and setting when it fires needs ownership of the table.
-- by: watch by that column (per-value invalidation, see README); NULL: the
-- whole table. bucket_width: for integer columns a positive integer, for
-- date and timestamp columns an interval without months; values then fall
-- into buckets floor(value / width), and a range condition covering few
-- buckets depends only on those. Watching again replaces the setting.
CREATE FUNCTION cachekit.watch(table_name pg_catalog.regclass, "by" pg_catalog.text DEFAULT NULL,
                               bucket_width pg_catalog.text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel record;
    col record;
    width pg_catalog.int8 := 0;
    iv pg_catalog.interval;
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
    -- Partitions created or attached later get them from cachekit._on_ddl().
    -- pg_partition_tree() returns nothing for a plain table.
    IF $2 IS NULL AND bucket_width IS NOT NULL THEN
        RAISE EXCEPTION 'bucket_width needs a column to watch by'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass by => ''column'' too.';
    END IF;
    IF $2 IS NOT NULL THEN
        -- The value trigger must see every row of the table, and rows of
        -- inheritance children or partitions fire their own triggers.
        IF rel.relkind <> 'r' OR EXISTS (SELECT 1 FROM pg_inherits i
                                         WHERE i.inhrelid = table_name OR i.inhparent = table_name) THEN
            RAISE EXCEPTION 'cachekit.watch() can watch only plain tables by a column'
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('%s is partitioned, a partition or has inheritance parents or children.', table_name),
                      HINT = format('Run SELECT cachekit.watch(%L) to watch the whole table.', table_name::text);
        END IF;
        SELECT a.attname, a.atttypid INTO col FROM pg_attribute a
         WHERE a.attrelid = table_name AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', $2, table_name
                USING ERRCODE = 'undefined_column';
        END IF;
        IF bucket_width IS NOT NULL THEN
            IF col.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
                width := bucket_width::int8;
            ELSIF col.atttypid IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype) THEN
                iv := bucket_width::interval;
                IF extract(year FROM iv) <> 0 OR extract(month FROM iv) <> 0 THEN
                    RAISE EXCEPTION 'bucket_width must not contain months or years'
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = 'Months differ in length; give the width in days, hours or smaller units.';
                END IF;
                width := (extract(epoch FROM iv) * 1000000)::int8;
                -- (A date's bucket number is its day times the microseconds of
                -- a day over the width: below a day it could overflow.)
                IF col.atttypid = 'date'::regtype AND width % 86400000000 <> 0 THEN
                    RAISE EXCEPTION 'bucket_width of a date column must be a whole number of days'
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = format('%s is not.', bucket_width);
                END IF;
            ELSE
                RAISE EXCEPTION 'bucket_width needs an integer, date or timestamp column'
                    USING ERRCODE = 'datatype_mismatch',
                          DETAIL = format('Column %I has type %s.', $2, col.atttypid::regtype);
            END IF;
            IF width <= 0 THEN
                RAISE EXCEPTION 'bucket_width must be positive'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END IF;
    END IF;
    -- The table and, for a partitioned table, every partition: a statement
    -- on a partition fires the partition's triggers, not its parent's.
    -- Partitions created or attached later get them from cachekit._on_ddl().
    -- pg_partition_tree() returns nothing for a plain table.
    FOR rel IN SELECT t.relid FROM (SELECT table_name AS relid, 0 AS level
                                    UNION SELECT p.relid, p.level FROM pg_partition_tree(table_name) p) t
               ORDER BY t.level, t.relid
    LOOP
        PERFORM cachekit._create_triggers(rel.relid::oid, 'invalidate'::text, NULL::text[], NULL::text[]);
    END LOOP;
    -- A new setting replaces the old one; the invalidation below bumps the
    -- table's structural generation, so readers keyed on the old buckets miss.
    IF EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = table_name AND g.tgname = 'cachekit_value'
                  AND g.tgfoid = 'cachekit._record_values()'::regprocedure) THEN
        EXECUTE format('DROP TRIGGER cachekit_value ON %s', table_name);
    END IF;
    IF $2 IS NOT NULL THEN
        PERFORM cachekit._create_triggers(table_name::oid, 'values'::text, NULL::text[],
                                          ARRAY[$2, width::text]);
    END IF;
    PERFORM cachekit.invalidate(table_name);
END $$;
COMMENT ON FUNCTION cachekit.watch(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) IS
    'Install the invalidation triggers on a table (and its partitions, present and future), optionally by a column';

CREATE FUNCTION cachekit.unwatch(table_name pg_catalog.regclass)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel record;
BEGIN
    -- Before the triggers go: invalidate() accepts watched tables only.
    IF cachekit._is_watched(table_name::oid) THEN
        PERFORM cachekit.invalidate(table_name);
    END IF;
    FOR rel IN
        SELECT g.tgrelid, g.tgname FROM (SELECT table_name AS relid
                                         UNION SELECT p.relid FROM pg_partition_tree(table_name) p) t
        JOIN pg_trigger g ON g.tgrelid = t.relid
         AND ((g.tgfoid = 'cachekit._invalidate()'::regprocedure
               AND g.tgname IN ('cachekit_invalidate', 'cachekit_invalidate_row'))
              OR (g.tgfoid = 'cachekit._record_values()'::regprocedure AND g.tgname = 'cachekit_value'))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', rel.tgname, rel.tgrelid::regclass);
    END LOOP;
END $$;
COMMENT ON FUNCTION cachekit.unwatch(pg_catalog.regclass) IS
    'Remove the invalidation triggers from a table and its partitions';

CREATE TABLE cachekit.namespace_ttls (
    namespace pg_catalog.text PRIMARY KEY,
    ttl pg_catalog.int4 NOT NULL CHECK (ttl > 0)
);
COMMENT ON TABLE cachekit.namespace_ttls IS 'Default ttl of cached_query results per namespace';

CREATE FUNCTION cachekit.set_namespace_ttl(namespace pg_catalog.text, ttl pg_catalog.int4)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF namespace IS NULL OR ttl IS NULL OR ttl <= 0 THEN
        RAISE EXCEPTION 'namespace must not be NULL and ttl must be a positive number of seconds'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO cachekit.namespace_ttls AS n (namespace, ttl) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT namespace_ttls_pkey DO UPDATE SET ttl = excluded.ttl;
END $$;
COMMENT ON FUNCTION cachekit.set_namespace_ttl(pg_catalog.text, pg_catalog.int4) IS
    'Default ttl for cached_query calls of a namespace that pass no ttl';

CREATE FUNCTION cachekit.cached_query(
    query pg_catalog.text, params pg_catalog.text[] DEFAULT '{}', ttl pg_catalog.int4 DEFAULT NULL,
    namespace pg_catalog.text DEFAULT NULL, depends_on pg_catalog.regclass[] DEFAULT NULL)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_cached_query' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cached_query(pg_catalog.text, pg_catalog.text[], pg_catalog.int4, pg_catalog.text, pg_catalog.regclass[]) IS
    'Run a SELECT through the cache; rows are never older than a commit that finished before the call';

CREATE FUNCTION cachekit.cached_query_json(
    query pg_catalog.text, params pg_catalog.text[] DEFAULT '{}', ttl pg_catalog.int4 DEFAULT NULL,
    namespace pg_catalog.text DEFAULT NULL, depends_on pg_catalog.regclass[] DEFAULT NULL)
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_cached_query_json' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cached_query_json(pg_catalog.text, pg_catalog.text[], pg_catalog.int4, pg_catalog.text, pg_catalog.regclass[]) IS
    'cached_query returning the rows as a JSON array of objects';

CREATE FUNCTION cachekit.last_outcome()
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_last_outcome' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION cachekit.last_outcome() IS
    'hit, miss or bypass:<reason> for this session''s last cached_query call';

CREATE FUNCTION cachekit.last_dependencies()
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_last_dependencies' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION cachekit.last_dependencies() IS
    'What this session''s last cached_query call depended on: per table, scope value (buckets of a column) or table, and why';

-- Statistics of cached queries and invalidations -------------------------------

-- Rows of the current database only. Other roles' query text (and
-- fingerprint) only for members of pg_read_all_stats or cachekit_admin, as
-- pg_stat_statements does.
CREATE FUNCTION cachekit.query_stats(
    OUT dbid pg_catalog.oid, OUT namespace pg_catalog.text, OUT fingerprint pg_catalog.int8,
    OUT query pg_catalog.text, OUT calls pg_catalog.int8, OUT hits pg_catalog.int8,
    OUT misses pg_catalog.int8, OUT bypasses pg_catalog.jsonb,
    OUT mean_hit_ms pg_catalog.float8, OUT max_hit_ms pg_catalog.float8,
    OUT mean_miss_ms pg_catalog.float8, OUT max_miss_ms pg_catalog.float8,
    OUT rows pg_catalog.int8, OUT bytes pg_catalog.int8, OUT last_invalidation pg_catalog.timestamptz,
    OUT userid pg_catalog.oid, OUT l1_hits pg_catalog.int8, OUT scope pg_catalog.text)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_query_stats' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.query_stats AS
    SELECT NULLIF(s.namespace, '') AS namespace, s.fingerprint, s.query, s.calls, s.hits, s.misses,
           (SELECT COALESCE(pg_catalog.sum(v::pg_catalog.int8), 0)
              FROM pg_catalog.jsonb_each_text(s.bypasses) AS b(k, v))::pg_catalog.int8 AS bypassed,
           s.bypasses,
           CASE WHEN s.hits + s.misses > 0
                THEN pg_catalog.round(s.hits::pg_catalog.numeric / (s.hits + s.misses), 4) END AS hit_rate,
           s.mean_hit_ms, s.max_hit_ms, s.mean_miss_ms, s.max_miss_ms, s.rows, s.bytes,
           s.last_invalidation,
           COALESCE(s.mean_miss_ms > (SELECT setting::pg_catalog.float8 FROM pg_catalog.pg_settings
                                        WHERE name = 'cachekit.slow_query_ms'), false) AS slow,
           s.userid, s.l1_hits, s.scope
    FROM cachekit.query_stats() AS s
    WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database());
COMMENT ON VIEW cachekit.query_stats IS
    'cached_query calls per role, namespace and query: hits (l1_hits of them from shared memory), misses, bypasses by reason, timings';

CREATE FUNCTION cachekit.query_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_query_stats_reset' LANGUAGE C VOLATILE;

-- Rows of the current database only.
CREATE FUNCTION cachekit.table_stats(
    OUT dbid pg_catalog.oid, OUT relid pg_catalog.oid, OUT generation pg_catalog.int8,
    OUT invalidations pg_catalog.int8, OUT last_invalidation pg_catalog.timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_table_stats' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.table_stats AS
    SELECT CASE WHEN s.relid = 0 THEN NULL ELSE s.relid::pg_catalog.regclass END AS table_name,
           s.generation, s.invalidations, s.last_invalidation
    FROM cachekit.table_stats() AS s
    WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
      AND (s.relid = 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = s.relid));
COMMENT ON VIEW cachekit.table_stats IS
    'Invalidations per table (table_name NULL: the database-wide generation)';

CREATE FUNCTION cachekit.table_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_table_stats_reset' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.watched_tables AS
    SELECT c.oid::pg_catalog.regclass AS table_name,
           (SELECT i.inhparent::pg_catalog.regclass FROM pg_catalog.pg_inherits i
             WHERE i.inhrelid = c.oid LIMIT 1) AS parent,
           c.relkind = 'p' AS partitioned,
           s.generation, s.invalidations, s.last_invalidation
    FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    LEFT JOIN cachekit.table_stats s ON s.table_name = c.oid::pg_catalog.regclass
    WHERE t.tgfoid = 'cachekit._invalidate()'::pg_catalog.regprocedure AND t.tgname = 'cachekit_invalidate';
COMMENT ON VIEW cachekit.watched_tables IS 'Tables whose changes invalidate cached_query results';

-- Invalidation for applications ---------------------------------------------

-- Durable outbox: written in the committing transaction when delivery right
-- after commit cannot be counted on (see README), delivered by the relay
-- worker in id order.
CREATE TABLE cachekit.outbox (
    id bigserial PRIMARY KEY,
    xid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    payload pg_catalog.jsonb NOT NULL
);
COMMENT ON TABLE cachekit.outbox IS
    'Invalidations (pub/sub messages, keys, key patterns) committed but not yet delivered to Redis';

CREATE VIEW cachekit.key_rules AS
    SELECT r.name, r.table_name, r.template, r.operations, r.columns, r.created_at,
           (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger g
             WHERE pg_catalog.starts_with(g.tgname, cachekit._rule_trigger_prefix(r.name))) AS triggers
    FROM cachekit._key_rules r;
COMMENT ON VIEW cachekit.key_rules IS
    'Key rules and how many capture triggers (statement and row) implement them';

CREATE FUNCTION cachekit._template_columns(template pg_catalog.text)
RETURNS pg_catalog.text[] AS 'MODULE_PATHNAME', 'ck_template_columns' LANGUAGE C IMMUTABLE STRICT;

CREATE FUNCTION cachekit._capture_keys()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_capture_keys' LANGUAGE C;

-- (Re)creates the missing capture triggers of one rule on `below` (its table
-- or one of the table's partitions) and below's partitions: one statement
-- trigger per operation (transition tables allow only one event per trigger)
-- and one row trigger per operation.
CREATE FUNCTION cachekit._install_rule_triggers(rule_name pg_catalog.text, below pg_catalog.oid)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r cachekit._key_rules;
    args pg_catalog.text[];
    rel record;
BEGIN
    SELECT * INTO STRICT r FROM cachekit._key_rules k WHERE k.name = rule_name;
    args := ARRAY[r.name, r.template, array_to_string(coalesce(r.columns, '{}'), ',')];
    FOR rel IN SELECT t.relid FROM (SELECT below::regclass AS relid, 0 AS level
                                     UNION SELECT p.relid, p.level FROM pg_partition_tree(below) p) t
               ORDER BY t.level, t.relid
    LOOP
        PERFORM cachekit._create_triggers(rel.relid::oid, 'keys'::text, r.operations, args);
    END LOOP;
END $$;

-- The body of cachekit.invalidate_key_on(), which checks first that the
-- calling role may read the columns the rule turns into key names (or owns
-- the table) and that the template starts with a literal prefix. SECURITY
-- DEFINER (it creates triggers that call cachekit._capture_keys()) and granted
-- to nobody: ck_invalidate_key_on calls it directly, after its checks.
CREATE FUNCTION cachekit._add_key_rule(
    table_name pg_catalog.regclass, template pg_catalog.text, name pg_catalog.text,
    operations pg_catalog.text[], columns pg_catalog.text[])
RETURNS pg_catalog.text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wanted text[];
    missing text[];
    have text;
    rule_name text := coalesce(name, table_name::text || ':' || template);
BEGIN
    IF table_name IS NULL OR template IS NULL THEN
        RAISE EXCEPTION 'table and template must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT cachekit._is_watched(table_name::oid) THEN
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
    PERFORM cachekit._install_rule_triggers(rule_name, table_name::oid);
    RETURN rule_name;
END $$;

-- Runs as the caller (C, not SECURITY DEFINER): the privilege checks see the
-- calling role, whatever chain of functions called it.
CREATE FUNCTION cachekit.invalidate_key_on(
    table_name pg_catalog.regclass, template pg_catalog.text, name pg_catalog.text DEFAULT NULL,
    operations pg_catalog.text[] DEFAULT ARRAY['INSERT', 'UPDATE', 'DELETE'],
    columns pg_catalog.text[] DEFAULT NULL)
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_invalidate_key_on' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.invalidate_key_on(pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.text[], pg_catalog.text[]) IS
    'Delete the application key built from each changed row (OLD and NEW) when the change commits';

CREATE FUNCTION cachekit.drop_key_rule(name pg_catalog.text)
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
             WHERE starts_with(g.tgname, cachekit._rule_trigger_prefix(r.name))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass);
    END LOOP;
    DELETE FROM cachekit._key_rules k WHERE k.name = r.name;
END $$;

CREATE FUNCTION cachekit.app_invalidation_stats(
    OUT messages_published pg_catalog.int8, OUT keys_deleted pg_catalog.int8,
    OUT patterns_flushed pg_catalog.int8, OUT outbox_written pg_catalog.int8,
    OUT delivered_at_commit pg_catalog.int8, OUT delivered_by_worker pg_catalog.int8,
    OUT delivery_failures pg_catalog.int8, OUT keys_overflowed pg_catalog.int8)
RETURNS record AS 'MODULE_PATHNAME', 'ck_app_invalidation_stats' LANGUAGE C VOLATILE;

CREATE VIEW cachekit.invalidation_stats AS
    SELECT s.*,
           (SELECT pg_catalog.count(*) FROM cachekit.outbox) AS outbox_depth,
           (SELECT pg_catalog.clock_timestamp() - pg_catalog.min(created_at) FROM cachekit.outbox)
               AS oldest_undelivered_age
    FROM cachekit.app_invalidation_stats() AS s;
COMMENT ON VIEW cachekit.invalidation_stats IS
    'Pub/sub messages, deleted keys and the outbox of trigger-driven invalidation (cluster-wide counters)';

-- Tasks ------------------------------------------------------------------------
--
-- A durable queue in tables that only the extension's functions change
-- (nothing here is granted to anyone: DML on pg_cron's job table was code
-- execution as other roles). Executors (worker/task_executor.cpp) claim rows
-- as the extension owner and run each task as the role that enqueued it.

CREATE TABLE cachekit._queues (
    name pg_catalog.text PRIMARY KEY,
    concurrency pg_catalog.int4 NOT NULL,
    rate_limit_per_s pg_catalog.numeric,
    paused pg_catalog.bool NOT NULL DEFAULT false,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT queue_name CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,63}$'),
    CONSTRAINT queue_concurrency CHECK (concurrency BETWEEN 1 AND 100000),
    CONSTRAINT queue_rate_limit CHECK (rate_limit_per_s > 0 AND rate_limit_per_s <= 1000000)
);
INSERT INTO cachekit._queues (name, concurrency) VALUES
    ('default', 100000), ('email', 4), ('reports', 2), ('maintenance', 1), ('monitoring', 1);

-- state: queued (waiting for run_at), running (claimed by an executor),
-- failed (an attempt failed; waiting for its retry at run_at), succeeded,
-- dead (failed max_attempts times, or can never run), cancelled.
CREATE TABLE cachekit._tasks (
    id bigserial PRIMARY KEY,
    queue pg_catalog.text NOT NULL,
    kind pg_catalog.text NOT NULL,       -- function | http | email | cdn_purge
    task pg_catalog.text NOT NULL,       -- the function as resolved at enqueue, or the kind
    func pg_catalog.oid,                 -- kind function: resolved at enqueue, as the enqueuer
    args pg_catalog.jsonb NOT NULL,
    state pg_catalog.text NOT NULL DEFAULT 'queued',
    priority pg_catalog.int4 NOT NULL DEFAULT 0,
    attempts pg_catalog.int4 NOT NULL DEFAULT 0,
    max_attempts pg_catalog.int4 NOT NULL,
    run_at pg_catalog.timestamptz NOT NULL,
    timeout pg_catalog.interval,
    unique_key pg_catalog.text,
    next pg_catalog.jsonb,               -- the chained task, enqueued when this one succeeds
    role pg_catalog.oid NOT NULL,        -- the enqueuer (current_user at enqueue)
    role_could_login pg_catalog.bool NOT NULL DEFAULT false,  -- then: losing LOGIN stops its tasks
    parent_id pg_catalog.int8,
    schedule pg_catalog.text,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    started_at pg_catalog.timestamptz,
    finished_at pg_catalog.timestamptz,
    claim pg_catalog.int8,               -- the executor run that holds it (see task_executor.cpp)
    cancel_requested pg_catalog.bool NOT NULL DEFAULT false,
    result pg_catalog.jsonb,
    last_error pg_catalog.jsonb
    -- No CHECK constraints: only the extension's functions write this table,
    -- and checking them would cost every enqueue a parse of their text (a
    -- quarter of its time, measured with perf).
);
-- The claim: highest priority, then oldest run_at, among runnable rows.
CREATE INDEX _tasks_runnable ON cachekit._tasks (priority DESC, run_at, id) WHERE state IN ('queued', 'failed');
CREATE INDEX _tasks_due ON cachekit._tasks (run_at) WHERE state IN ('queued', 'failed');
CREATE INDEX _tasks_running ON cachekit._tasks (claim) WHERE state = 'running';
CREATE INDEX _tasks_finished ON cachekit._tasks (finished_at) WHERE state IN ('succeeded', 'dead', 'cancelled');
-- A unique key is the enqueuing role's own: another role cannot learn of or
-- suppress its tasks by guessing a key.
CREATE UNIQUE INDEX _tasks_unique_key ON cachekit._tasks (role, queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'running', 'failed');

CREATE TABLE cachekit._schedules (
    name pg_catalog.text PRIMARY KEY,
    cron pg_catalog.text NOT NULL,
    time_zone pg_catalog.text NOT NULL,
    queue pg_catalog.text NOT NULL,
    kind pg_catalog.text NOT NULL,
    task pg_catalog.text NOT NULL,
    func pg_catalog.oid,
    args pg_catalog.jsonb NOT NULL,
    overlap pg_catalog.text NOT NULL,
    role pg_catalog.oid NOT NULL,
    anchor pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    next_run pg_catalog.timestamptz,
    last_run pg_catalog.timestamptz,
    last_task pg_catalog.int8,
    pending pg_catalog.bool NOT NULL DEFAULT false,
    runs pg_catalog.int8 NOT NULL DEFAULT 0,
    skipped pg_catalog.int8 NOT NULL DEFAULT 0,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT schedule_overlap CHECK (overlap IN ('skip', 'queue'))
);

-- The inserts behind enqueue() and the scheduler. Granted to nobody:
-- ck_enqueue calls it through fmgr after resolving the task and checking the
-- caller's privileges as the caller, and passes the caller's role.
CREATE FUNCTION cachekit._enqueue(
    queue pg_catalog.text, kind pg_catalog.text, task pg_catalog.text, func pg_catalog.oid,
    args pg_catalog.jsonb, run_at pg_catalog.timestamptz, priority pg_catalog.int4,
    max_attempts pg_catalog.int4, unique_key pg_catalog.text, timeout pg_catalog.interval,
    next pg_catalog.jsonb, role pg_catalog.oid, parent_id pg_catalog.int8, schedule pg_catalog.text,
    role_could_login pg_catalog.bool)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    new_id int8;
BEGIN
    -- One statement in the common case (an enqueue is on the caller's hot
    -- path): the queue's existence is checked by the INSERT itself.
    INSERT INTO cachekit._tasks AS t (queue, kind, task, func, args, run_at, priority, max_attempts,
                                      unique_key, timeout, next, role, parent_id, schedule, role_could_login)
    SELECT queue, kind, task, func, args, coalesce(run_at, now()), priority, max_attempts,
           unique_key, timeout, next, role, parent_id, schedule, coalesce(role_could_login, false)
     WHERE EXISTS (SELECT 1 FROM cachekit._queues q WHERE q.name = _enqueue.queue)
    ON CONFLICT (role, queue, unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', 'running', 'failed')
    DO NOTHING
    RETURNING t.id INTO new_id;
    IF new_id IS NULL AND NOT EXISTS (SELECT 1 FROM cachekit._queues q WHERE q.name = _enqueue.queue) THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue USING ERRCODE = 'undefined_object',
              HINT = 'See cachekit.queue_stats for the queues, or ask an admin to run cachekit.create_queue().';
    END IF;
    IF new_id IS NULL THEN
        SELECT t.id INTO new_id FROM cachekit._tasks t
         WHERE t.role = _enqueue.role AND t.queue = _enqueue.queue AND t.unique_key = _enqueue.unique_key
           AND t.state IN ('queued', 'running', 'failed');
    END IF;
    RETURN new_id;
END $$;

-- Runs as the caller (C): the task is resolved with the caller's search_path
-- and privileges, once; the task row keeps the function's OID.
CREATE FUNCTION cachekit.enqueue(
    queue pg_catalog.text, task pg_catalog.text, args pg_catalog.jsonb DEFAULT '{}',
    run_at pg_catalog.timestamptz DEFAULT NULL, priority pg_catalog.int4 DEFAULT 0,
    max_attempts pg_catalog.int4 DEFAULT 25, unique_key pg_catalog.text DEFAULT NULL,
    timeout pg_catalog.interval DEFAULT NULL, "then" pg_catalog.jsonb DEFAULT NULL)
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_enqueue' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.enqueue(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.interval, pg_catalog.jsonb) IS
    'Queue a task (an SQL function taking jsonb, or http/email) to run as the calling role once this transaction commits';

-- Whether the calling role may see and act on a task of `role`.
CREATE FUNCTION cachekit._may_manage(role pg_catalog.oid)
RETURNS pg_catalog.bool LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_has_role(current_user, 'cachekit_admin', 'MEMBER')
        OR CASE WHEN EXISTS (SELECT 1 FROM pg_roles a WHERE a.oid = role)
                THEN pg_has_role(current_user, role, 'MEMBER') ELSE false END
$$;

-- Other roles' arguments, results and errors only for admins.
CREATE VIEW cachekit.tasks AS
    SELECT t.id, t.queue, t.kind, t.task,
           CASE WHEN cachekit._may_manage(t.role) THEN t.args END AS args,
           t.state, t.priority, t.attempts, t.max_attempts, t.run_at, t.timeout, t.unique_key,
           coalesce((SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = t.role), t.role::pg_catalog.text) AS role,
           t.parent_id, t.schedule, t.created_at, t.started_at, t.finished_at,
           CASE WHEN cachekit._may_manage(t.role) THEN t.result END AS result,
           CASE WHEN cachekit._may_manage(t.role) THEN t.last_error END AS last_error
    FROM cachekit._tasks t;
COMMENT ON VIEW cachekit.tasks IS 'Tasks of this database (arguments, results and errors of other roles'' tasks only for cachekit_admin)';

CREATE FUNCTION cachekit.task_status(id pg_catalog.int8)
RETURNS pg_catalog.jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'id', t.id, 'queue', t.queue, 'task', t.task, 'state', t.state, 'attempts', t.attempts,
               'max_attempts', t.max_attempts, 'run_at', t.run_at, 'created_at', t.created_at,
               'started_at', t.started_at, 'finished_at', t.finished_at, 'last_error', t.last_error,
               'role', t.role))
    FROM cachekit.tasks t WHERE t.id = task_status.id
$$;

-- Redis first (cachekit.result_ttl), then the table.
CREATE FUNCTION cachekit.task_result(id pg_catalog.int8)
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_task_result' LANGUAGE C STABLE PARALLEL UNSAFE;

CREATE FUNCTION cachekit._task_result_row(id pg_catalog.int8, OUT role pg_catalog.oid, OUT state pg_catalog.text, OUT result pg_catalog.jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.role, t.state, t.result FROM cachekit._tasks t WHERE t.id = _task_result_row.id
$$;

-- Granted to nobody; ck_cancel_task and ck_retry_task check the caller first.
CREATE FUNCTION cachekit._change_task(id pg_catalog.int8, action pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t cachekit._tasks;
BEGIN
    SELECT * INTO t FROM cachekit._tasks k WHERE k.id = _change_task.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    IF action = 'cancel' THEN
        IF t.state IN ('queued', 'failed') THEN
            UPDATE cachekit._tasks k SET state = 'cancelled', finished_at = clock_timestamp() WHERE k.id = t.id;
            RETURN 'cancelled';
        ELSIF t.state = 'running' THEN
            UPDATE cachekit._tasks k SET cancel_requested = true WHERE k.id = t.id;
            RETURN 'cancelling';
        END IF;
        RETURN t.state;
    ELSIF action = 'retry' THEN
        IF t.state NOT IN ('dead', 'cancelled', 'failed') THEN
            RAISE EXCEPTION 'task % is %, not dead, failed or cancelled', id, t.state
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        BEGIN
            UPDATE cachekit._tasks k SET state = 'queued', attempts = 0, run_at = now(), finished_at = NULL,
                   cancel_requested = false, claim = NULL WHERE k.id = t.id;
        EXCEPTION WHEN unique_violation THEN
            RAISE EXCEPTION 'another task with unique key "%" is queued', t.unique_key
                USING ERRCODE = 'unique_violation';
        END;
        RETURN 'queued';
    END IF;
    RAISE EXCEPTION 'unknown action %', action;
END $$;

CREATE FUNCTION cachekit.cancel_task(id pg_catalog.int8)
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_cancel_task' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION cachekit.retry_task(id pg_catalog.int8)
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_retry_task' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- Queues (cachekit_admin). Changes reach the executors at commit.
CREATE FUNCTION cachekit._queues_changed()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_queues_changed' LANGUAGE C;
CREATE TRIGGER queues_changed AFTER INSERT OR UPDATE OR DELETE ON cachekit._queues
    FOR EACH STATEMENT EXECUTE FUNCTION cachekit._queues_changed();

CREATE FUNCTION cachekit.create_queue(name pg_catalog.text, concurrency pg_catalog.int4,
    rate_limit_per_s pg_catalog.numeric DEFAULT NULL, paused pg_catalog.bool DEFAULT false)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.:-]{1,63}$' THEN
        RAISE EXCEPTION 'invalid queue name "%"', name USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'A queue name is 1 to 63 letters, digits, or _ . : -';
    END IF;
    IF concurrency IS NULL OR concurrency NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'concurrency must be between 1 and 100000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rate_limit_per_s IS NOT NULL AND (rate_limit_per_s <= 0 OR rate_limit_per_s > 1000000) THEN
        RAISE EXCEPTION 'rate_limit_per_s must be positive (at most 1000000), or NULL for none'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO cachekit._queues AS q (name, concurrency, rate_limit_per_s, paused)
    VALUES (name, concurrency, rate_limit_per_s, coalesce(paused, false))
    ON CONFLICT ON CONSTRAINT _queues_pkey DO UPDATE
        SET concurrency = excluded.concurrency, rate_limit_per_s = excluded.rate_limit_per_s,
            paused = excluded.paused;
END $$;

CREATE FUNCTION cachekit.pause_queue(name pg_catalog.text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE cachekit._queues q SET paused = true WHERE q.name = pause_queue.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
END $$;

CREATE FUNCTION cachekit.resume_queue(name pg_catalog.text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE cachekit._queues q SET paused = false WHERE q.name = resume_queue.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
END $$;

-- Refuses a queue that still has work unless `cancel` says to cancel it.
CREATE FUNCTION cachekit.drop_queue(name pg_catalog.text, cancel pg_catalog.bool DEFAULT false)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    waiting int8;
BEGIN
    PERFORM 1 FROM cachekit._queues q WHERE q.name = drop_queue.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    SELECT count(*) INTO waiting FROM cachekit._tasks t
     WHERE t.queue = drop_queue.name AND t.state IN ('queued', 'running', 'failed');
    IF waiting > 0 AND NOT cancel THEN
        RAISE EXCEPTION 'queue "%" has % unfinished tasks', name, waiting
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Wait for them, or run cachekit.drop_queue(name, cancel => true).';
    END IF;
    IF EXISTS (SELECT 1 FROM cachekit._schedules s WHERE s.queue = drop_queue.name) THEN
        RAISE EXCEPTION 'queue "%" is used by schedules', name USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'Unschedule them first (see cachekit.schedules).';
    END IF;
    UPDATE cachekit._tasks t SET state = 'cancelled', finished_at = clock_timestamp()
     WHERE t.queue = drop_queue.name AND t.state IN ('queued', 'failed');
    UPDATE cachekit._tasks t SET cancel_requested = true WHERE t.queue = drop_queue.name AND t.state = 'running';
    DELETE FROM cachekit._queues q WHERE q.name = drop_queue.name;
END $$;

CREATE VIEW cachekit.queue_stats AS
    SELECT q.name AS queue, q.concurrency, q.rate_limit_per_s, q.paused,
           coalesce(s.depth, 0) AS depth, coalesce(s.running, 0) AS running,
           coalesce(s.succeeded, 0) AS succeeded, coalesce(s.failed, 0) AS failed,
           coalesce(s.retried, 0) AS retried, coalesce(s.waiting_retry, 0) AS waiting_retry,
           coalesce(s.cancelled, 0) AS cancelled,
           s.mean_run_time, s.p95_run_time, s.mean_wait_time,
           pg_catalog.clock_timestamp() - s.oldest_queued AS oldest_queued_age
    FROM cachekit._queues q
    LEFT JOIN (
        SELECT t.queue,
               count(*) FILTER (WHERE t.state IN ('queued', 'failed') AND t.run_at <= now()) AS depth,
               count(*) FILTER (WHERE t.state = 'running') AS running,
               count(*) FILTER (WHERE t.state = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE t.state = 'dead') AS failed,
               coalesce(sum(t.attempts - 1) FILTER (WHERE t.attempts > 1), 0) AS retried,
               count(*) FILTER (WHERE t.state = 'failed') AS waiting_retry,
               count(*) FILTER (WHERE t.state = 'cancelled') AS cancelled,
               avg(t.finished_at - t.started_at) FILTER (WHERE t.state = 'succeeded') AS mean_run_time,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY t.finished_at - t.started_at)
                   FILTER (WHERE t.state = 'succeeded') AS p95_run_time,
               avg(t.started_at - greatest(t.created_at, t.run_at)) FILTER (WHERE t.started_at IS NOT NULL AND t.attempts = 1) AS mean_wait_time,
               min(t.created_at) FILTER (WHERE t.state IN ('queued', 'failed') AND t.run_at <= now()) AS oldest_queued
        FROM cachekit._tasks t GROUP BY t.queue) s ON s.queue = q.name;
COMMENT ON VIEW cachekit.queue_stats IS
    'Per queue: runnable depth, running, outcomes of the tasks kept (cachekit.task_retention), run and wait times';

-- Schedules -----------------------------------------------------------------------

-- Runs as the caller (C): parses the cron text and time zone, resolves the
-- task like enqueue(). A schedule's tasks run as the role that created it.
CREATE FUNCTION cachekit.schedule(name pg_catalog.text, cron pg_catalog.text, queue pg_catalog.text,
    task pg_catalog.text, args pg_catalog.jsonb DEFAULT '{}', time_zone pg_catalog.text DEFAULT 'UTC',
    overlap pg_catalog.text DEFAULT 'skip')
RETURNS pg_catalog.timestamptz AS 'MODULE_PATHNAME', 'ck_schedule' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Granted to nobody (ck_schedule checks first).
CREATE FUNCTION cachekit._put_schedule(name pg_catalog.text, cron pg_catalog.text, time_zone pg_catalog.text,
    queue pg_catalog.text, kind pg_catalog.text, task pg_catalog.text, func pg_catalog.oid,
    args pg_catalog.jsonb, overlap pg_catalog.text, role pg_catalog.oid, next_run pg_catalog.timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_role oid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM cachekit._queues q WHERE q.name = _put_schedule.queue) THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue USING ERRCODE = 'undefined_object';
    END IF;
    SELECT s.role INTO old_role FROM cachekit._schedules s WHERE s.name = _put_schedule.name FOR UPDATE;
    IF FOUND AND old_role <> role AND NOT pg_has_role(role, 'cachekit_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'schedule "%" belongs to another role', name USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO cachekit._schedules AS s (name, cron, time_zone, queue, kind, task, func, args, overlap, role, next_run)
    VALUES (name, cron, time_zone, queue, kind, task, func, args, overlap, role, next_run)
    ON CONFLICT ON CONSTRAINT _schedules_pkey DO UPDATE
        SET cron = excluded.cron, time_zone = excluded.time_zone, queue = excluded.queue, kind = excluded.kind,
            task = excluded.task, func = excluded.func, args = excluded.args, overlap = excluded.overlap,
            role = excluded.role, next_run = excluded.next_run, anchor = now(), pending = false;
END $$;

CREATE FUNCTION cachekit._drop_schedule(name pg_catalog.text, role pg_catalog.oid)
RETURNS pg_catalog.bool LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner oid;
BEGIN
    SELECT s.role INTO owner FROM cachekit._schedules s WHERE s.name = _drop_schedule.name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF owner <> role AND NOT pg_has_role(role, 'cachekit_admin', 'MEMBER')
       AND NOT (EXISTS (SELECT 1 FROM pg_roles a WHERE a.oid = owner) AND pg_has_role(role, owner, 'MEMBER')) THEN
        RAISE EXCEPTION 'schedule "%" belongs to another role', name USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM cachekit._schedules s WHERE s.name = _drop_schedule.name;
    RETURN true;
END $$;

CREATE FUNCTION cachekit.unschedule(name pg_catalog.text)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_unschedule' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

CREATE VIEW cachekit.schedules AS
    SELECT s.name, s.cron, s.time_zone, s.queue, s.task,
           CASE WHEN cachekit._may_manage(s.role) THEN s.args END AS args, s.overlap,
           coalesce((SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = s.role), s.role::pg_catalog.text) AS role,
           s.last_run, s.next_run, s.last_task,
           (SELECT t.state FROM cachekit._tasks t WHERE t.id = s.last_task) AS last_state,
           s.runs, s.skipped, s.pending, s.created_at
    FROM cachekit._schedules s;
COMMENT ON VIEW cachekit.schedules IS 'Periodic tasks: cron text, time zone, last and next run';

-- Maintenance: finished tasks older than cachekit.task_retention.
CREATE FUNCTION cachekit.prune_tasks(args pg_catalog.jsonb DEFAULT '{}')
RETURNS pg_catalog.jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keep interval := current_setting('cachekit.task_retention')::interval;
    batch int := coalesce((args->>'batch')::int, 10000);
    n int8;
    total int8 := 0;
BEGIN
    LOOP
        DELETE FROM cachekit._tasks t WHERE t.id IN (
            SELECT k.id FROM cachekit._tasks k
             WHERE k.state IN ('succeeded', 'dead', 'cancelled') AND k.finished_at < now() - keep
               AND NOT EXISTS (SELECT 1 FROM cachekit._schedules s WHERE s.last_task = k.id)
             LIMIT batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXIT WHEN n < batch;
    END LOOP;
    -- Finished CDN requests (every item's batch completed or failed), then
    -- the finished batches no request names any more.
    DELETE FROM cachekit._cdn_requests r
     WHERE r.created_at < now() - keep
       AND NOT EXISTS (SELECT 1 FROM cachekit._cdn_queue q
                        LEFT JOIN cachekit._cdn_batches b ON b.id = q.batch_id
                       WHERE q.request_id = r.id AND (b.id IS NULL OR b.state NOT IN ('completed', 'failed')));
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM cachekit._cdn_batches b
     WHERE b.state IN ('completed', 'failed') AND b.created_at < now() - keep
       AND NOT EXISTS (SELECT 1 FROM cachekit._cdn_queue q WHERE q.batch_id = b.id);
    RETURN jsonb_build_object('tasks_deleted', total, 'cdn_requests_deleted', n,
                              'outbox_rows', (SELECT count(*) FROM cachekit.outbox));
END $$;

-- The maintenance schedule: hourly, as the role that installed the extension.
INSERT INTO cachekit._schedules (name, cron, time_zone, queue, kind, task, func, args, overlap, role)
VALUES ('cachekit.prune_tasks', '7 * * * *', 'UTC', 'maintenance', 'function',
        'cachekit.prune_tasks(jsonb)', 'cachekit.prune_tasks(pg_catalog.jsonb)'::pg_catalog.regprocedure,
        '{}', 'skip', (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user));

-- Event triggers --------------------------------------------------------------

-- DDL on watched tables invalidates them; new partitions of a watched table
-- are watched, and get the capture triggers of their ancestors' key rules.
-- SECURITY DEFINER: a user creating a partition of a watched table need not
-- be allowed to use cachekit._invalidate() or cachekit._capture_keys().
-- Nothing here runs code of the user whose DDL fired it: it creates triggers
-- that call the extension's own functions.
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
        -- CREATE TABLE ... PARTITION OF (the new table), ATTACH PARTITION (its
        -- new parent): every table from there down that has a watched
        -- ancestor gets the triggers. Only that subtree: the ALTER TABLE in
        -- _create_triggers() runs this function again for each table it
        -- touches, which must stay cheap on a tree of many partitions.
        FOR part IN
            SELECT t.relid FROM pg_partition_tree(cmd.objid) t
            WHERE EXISTS (SELECT 1 FROM pg_partition_ancestors(t.relid) a
                          WHERE a.relid <> t.relid AND cachekit._is_watched(a.relid::oid))
            ORDER BY t.level, t.relid
        LOOP
            PERFORM cachekit._create_triggers(part.relid::oid, 'invalidate'::text, NULL::text[], NULL::text[]);
        END LOOP;
        IF cachekit._is_watched(cmd.objid) THEN
            PERFORM cachekit.invalidate(cmd.objid::regclass);
        END IF;
        -- Key rules of the table or an ancestor cover the subtree too.
        FOR part IN SELECT k.name FROM cachekit._key_rules k
                    WHERE k.table_name::oid IN (SELECT a.relid::oid FROM pg_partition_ancestors(cmd.objid) a)
        LOOP
            PERFORM cachekit._install_rule_triggers(part.name, cmd.objid);
        END LOOP;
    END LOOP;
END $$;

-- Runs as the extension owner, for whom cachekit.invalidate() accepts a table
-- that no longer exists.
CREATE FUNCTION cachekit._on_drop()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    obj record;
BEGIN
    FOR obj IN SELECT d.objid FROM pg_event_trigger_dropped_objects() d
               WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
                 AND d.object_type IN ('table', 'partitioned table')
    LOOP
        PERFORM cachekit.invalidate(obj.objid::regclass);
        DELETE FROM cachekit._key_rules k WHERE k.table_name::oid = obj.objid;
        -- Its purge rules went with its triggers; _cdn_rules is plpgsql-time
        -- (created below), so the name is resolved when this runs.
        DELETE FROM cachekit._cdn_rules c WHERE c.table_name::oid = obj.objid;
    END LOOP;
END $$;

-- CDN --------------------------------------------------------------------------
--
-- A purge request is a row of _cdn_requests with one _cdn_queue row per
-- (provider, item), written in the caller's transaction together with a
-- cdn_dispatch task (queue cdn): nothing is sent if the caller rolls back,
-- and every committed request has a task that will see it. The task
-- (worker/cdn_dispatch.cpp, run by the task executors as the extension
-- owner) dedups the queued items of all requests, groups them into batches
-- within the provider's limits, commits each batch before sending it (its id
-- is CloudFront's CallerReference, so a retry never creates a second
-- invalidation), then sends, retries and polls. A request's state per
-- provider is derived from its items' batches (view cdn_requests).

CREATE TABLE cachekit._cdn_requests (
    id bigserial PRIMARY KEY,
    kind pg_catalog.text NOT NULL,       -- paths | tags | all
    source pg_catalog.text NOT NULL,     -- cdn_purge, cdn_purge_tags, cdn_purge_all, or a rule's name
    role pg_catalog.oid NOT NULL,        -- current_user of the caller (or the writer, for rules)
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);

-- kind: path | tag | all. batch_id: NULL while queued.
CREATE TABLE cachekit._cdn_queue (
    request_id pg_catalog.int8 NOT NULL REFERENCES cachekit._cdn_requests ON DELETE CASCADE,
    provider pg_catalog.text NOT NULL,
    kind pg_catalog.text NOT NULL,
    item pg_catalog.text NOT NULL,
    batch_id pg_catalog.int8,
    PRIMARY KEY (request_id, provider, kind, item)
);
CREATE INDEX _cdn_queue_unplanned ON cachekit._cdn_queue (provider, kind, item) WHERE batch_id IS NULL;
CREATE INDEX _cdn_queue_batch ON cachekit._cdn_queue (batch_id);

-- state: queued (waiting for next_attempt_at), in_progress (accepted,
-- polled until done: CloudFront), completed, failed (the provider refused it
-- for good; last_error has its message).
CREATE TABLE cachekit._cdn_batches (
    id bigserial PRIMARY KEY,
    provider pg_catalog.text NOT NULL,
    kind pg_catalog.text NOT NULL,
    items pg_catalog.text[] NOT NULL,
    wildcards pg_catalog.int4 NOT NULL DEFAULT 0,
    state pg_catalog.text NOT NULL DEFAULT 'queued',
    provider_id pg_catalog.text,
    attempts pg_catalog.int4 NOT NULL DEFAULT 0,
    api_calls pg_catalog.int4 NOT NULL DEFAULT 0,
    next_attempt_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    last_error pg_catalog.text,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    sent_at pg_catalog.timestamptz,
    completed_at pg_catalog.timestamptz
);
CREATE INDEX _cdn_batches_open ON cachekit._cdn_batches (provider, next_attempt_at) WHERE state IN ('queued', 'in_progress');

-- What the dispatcher last heard from each provider (cdn_status()).
CREATE TABLE cachekit._cdn_providers (
    provider pg_catalog.text PRIMARY KEY,
    reachable pg_catalog.bool,
    last_attempt_at pg_catalog.timestamptz,
    last_success_at pg_catalog.timestamptz,
    last_error pg_catalog.text,
    api_calls pg_catalog.int8 NOT NULL DEFAULT 0,
    throttled pg_catalog.int8 NOT NULL DEFAULT 0,
    retries pg_catalog.int8 NOT NULL DEFAULT 0,
    failed_batches pg_catalog.int8 NOT NULL DEFAULT 0,
    completed_batches pg_catalog.int8 NOT NULL DEFAULT 0,
    purged_items pg_catalog.int8 NOT NULL DEFAULT 0
);

INSERT INTO cachekit._queues (name, concurrency) VALUES ('cdn', 1);

-- The inserts behind cdn_purge(), cdn_purge_tags(), cdn_purge_all() and purge
-- rules. Granted to nobody: the C functions call it through fmgr after their
-- checks, passing the caller's role and the configured providers. With
-- request_id NULL a new request is made (and, with enqueue, its dispatch
-- task); otherwise items are added to that request (a rule's request of the
-- current transaction).
CREATE FUNCTION cachekit._cdn_request(
    request_id pg_catalog.int8, kind pg_catalog.text, items pg_catalog.text[],
    providers pg_catalog.text[], source pg_catalog.text, role pg_catalog.oid, enqueue pg_catalog.bool)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int8 := request_id;
    item_kind text := CASE kind WHEN 'paths' THEN 'path' WHEN 'tags' THEN 'tag' ELSE 'all' END;
BEGIN
    IF rid IS NULL THEN
        INSERT INTO cachekit._cdn_requests (kind, source, role) VALUES (kind, source, role)
        RETURNING id INTO rid;
    END IF;
    INSERT INTO cachekit._cdn_queue (request_id, provider, kind, item)
    SELECT rid, p, item_kind, i
      FROM unnest(providers) p, unnest(CASE WHEN item_kind = 'all' THEN ARRAY['*'] ELSE items END) i
    ON CONFLICT DO NOTHING;
    IF enqueue THEN
        PERFORM cachekit._enqueue('cdn'::text, 'cdn_dispatch'::text, 'cdn_dispatch'::text, NULL::oid,
                                  '{}'::jsonb, NULL::timestamptz, 0, 25, NULL::text, NULL::interval,
                                  NULL::jsonb, (SELECT a.oid FROM pg_roles a WHERE a.rolname = current_user),
                                  NULL::int8, NULL::text, false);
    END IF;
    RETURN rid;
END $$;

CREATE FUNCTION cachekit.cdn_purge(paths pg_catalog.text[])
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_cdn_purge' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cdn_purge(pg_catalog.text[]) IS
    'Purge these paths (a trailing * purges a prefix where the provider can) from every configured CDN once this transaction commits; returns the request id';
CREATE FUNCTION cachekit.cdn_purge_tags(tags pg_catalog.text[])
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_cdn_purge_tags' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cdn_purge_tags(pg_catalog.text[]) IS
    'Purge by tag (Fastly surrogate keys, Cloudflare cache tags, Varnish BAN) once this transaction commits';
CREATE FUNCTION cachekit.cdn_purge_all()
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_cdn_purge_all' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cdn_purge_all() IS
    'Purge everything from every configured CDN once this transaction commits';

-- Purge rules: a changed row's OLD and NEW values, through a path template,
-- become paths purged at commit.
CREATE TABLE cachekit._cdn_rules (
    name pg_catalog.text PRIMARY KEY,
    table_name pg_catalog.regclass NOT NULL,
    template pg_catalog.text NOT NULL,
    created_by pg_catalog.oid NOT NULL,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- The row trigger of purge rules (C). AFTER ROW and ENABLE ALWAYS: it fires
-- for logical replication's apply worker and under session_replication_role
-- = replica as well.
CREATE FUNCTION cachekit._cdn_capture()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_cdn_capture' LANGUAGE C;

-- The body of cdn_purge_on(), after its checks as the caller (C). Granted to
-- nobody. The trigger's name is derived from an md5 of the rule's name.
CREATE FUNCTION cachekit._add_cdn_rule(table_name pg_catalog.regclass, template pg_catalog.text, name pg_catalog.text, creator pg_catalog.oid)
RETURNS pg_catalog.text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text[];
    trigger_name text := 'cachekit_cdn_' || left(md5(name), 16);
BEGIN
    SELECT array_agg(c ORDER BY c) INTO missing FROM unnest(cachekit._template_columns(template)) c
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = table_name AND a.attname = c
                       AND a.attnum > 0 AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'path template names columns that % does not have', table_name
            USING ERRCODE = 'undefined_column', DETAIL = format('Unknown: %s.', array_to_string(missing, ', '));
    END IF;
    IF EXISTS (SELECT 1 FROM cachekit._cdn_rules r WHERE r.name = _add_cdn_rule.name) THEN
        RAISE EXCEPTION 'CDN purge rule "%" already exists', name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO cachekit._cdn_rules (name, table_name, template, created_by) VALUES (name, table_name, template, creator);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION cachekit._cdn_capture(%L, %L)',
                   trigger_name, table_name, name, template);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', table_name, trigger_name);
    RETURN name;
END $$;

-- Runs as the caller (C): the caller must own the table (or be in
-- cachekit_admin) and may SELECT every column the template reads.
CREATE FUNCTION cachekit.cdn_purge_on(table_name pg_catalog.regclass, path_template pg_catalog.text, name pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.text AS 'MODULE_PATHNAME', 'ck_cdn_purge_on' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.cdn_purge_on(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) IS
    'Purge the path built from each changed row (OLD and NEW) from the CDN when the change commits';

CREATE FUNCTION cachekit.drop_cdn_rule(name pg_catalog.text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r cachekit._cdn_rules;
BEGIN
    SELECT * INTO r FROM cachekit._cdn_rules c WHERE c.name = drop_cdn_rule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'CDN purge rule "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    -- A table dropped meanwhile took its trigger with it.
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.table_name::oid) THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'cachekit_cdn_' || left(md5(r.name), 16), r.table_name);
    END IF;
    DELETE FROM cachekit._cdn_rules c WHERE c.name = r.name;
END $$;

CREATE VIEW cachekit.cdn_rules AS
    SELECT r.name, r.table_name, r.template,
           coalesce((SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = r.created_by), r.created_by::pg_catalog.text) AS created_by,
           r.created_at
    FROM cachekit._cdn_rules r;

-- One row per request and provider. paths (the tags of a tag purge, {*}
-- for a purge-all) only of one's own requests, or for cachekit_admin: a
-- purge rule writes column values into paths, and its creator's SELECT on
-- them is no one else's (rule-made requests are the writer's). provider_id:
-- the provider's ids of its batches (CloudFront invalidation ids),
-- space-separated. state: queued (not all items batched
-- yet), sent (batched, waiting to be sent or retried), in_progress,
-- completed, failed (any batch failed for good).
CREATE VIEW cachekit.cdn_requests AS
    SELECT r.id AS request_id, q.provider, r.kind, r.source,
           coalesce((SELECT a.rolname FROM pg_catalog.pg_roles a WHERE a.oid = r.role), r.role::pg_catalog.text) AS role,
           CASE WHEN bool_or(b.state = 'failed') THEN 'failed'
                WHEN bool_or(q.batch_id IS NULL) THEN 'queued'
                WHEN bool_or(b.state = 'queued') THEN 'sent'
                WHEN bool_or(b.state = 'in_progress') THEN 'in_progress'
                ELSE 'completed' END AS state,
           CASE WHEN cachekit._may_manage(r.role) THEN array_agg(q.item ORDER BY q.item) END AS paths,
           string_agg(DISTINCT b.provider_id, ' ') AS provider_id,
           coalesce(max(b.attempts), 0) AS attempts,
           (array_agg(b.last_error ORDER BY b.id DESC) FILTER (WHERE b.last_error IS NOT NULL))[1] AS last_error,
           r.created_at, min(b.sent_at) AS sent_at,
           CASE WHEN bool_and(b.state = 'completed') THEN max(b.completed_at) END AS completed_at
    FROM cachekit._cdn_requests r
    JOIN cachekit._cdn_queue q ON q.request_id = r.id
    LEFT JOIN cachekit._cdn_batches b ON b.id = q.batch_id
    GROUP BY r.id, q.provider;
COMMENT ON VIEW cachekit.cdn_requests IS 'CDN purge requests per provider, with their state';

CREATE FUNCTION cachekit._cdn_provider_list()
RETURNS pg_catalog.text[] LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT btrim(p)) FILTER (WHERE btrim(p) <> ''), '{}')
      FROM unnest(string_to_array(current_setting('cachekit.cdn_provider'), ',')) p
$$;

-- Per provider: configured (listed, with its ids set), what the dispatcher
-- last heard (reachable, last success, last error), open work and counters.
CREATE FUNCTION cachekit.cdn_status()
RETURNS pg_catalog.jsonb LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'enabled', current_setting('cachekit.cdn_enabled')::bool,
        'base_url', nullif(current_setting('cachekit.cdn_base_url'), ''),
        'providers', coalesce(jsonb_object_agg(p.name, jsonb_build_object(
            'configured', p.name = ANY (cachekit._cdn_provider_list()) AND CASE p.name
                WHEN 'cloudfront' THEN current_setting('cachekit.cdn_cloudfront_distribution_id') <> ''
                WHEN 'fastly' THEN current_setting('cachekit.cdn_fastly_service_id') <> ''
                WHEN 'cloudflare' THEN current_setting('cachekit.cdn_cloudflare_zone_id') <> ''
                ELSE current_setting('cachekit.cdn_http_purge_url') <> '' END,
            'reachable', s.reachable,
            'last_attempt', s.last_attempt_at,
            'last_success', s.last_success_at,
            'last_error', s.last_error,
            'queued_items', (SELECT count(*) FROM cachekit._cdn_queue q WHERE q.provider = p.name AND q.batch_id IS NULL),
            'waiting_batches', (SELECT count(*) FROM cachekit._cdn_batches b WHERE b.provider = p.name AND b.state = 'queued'),
            'in_flight', (SELECT count(*) FROM cachekit._cdn_batches b WHERE b.provider = p.name AND b.state = 'in_progress'),
            'failures', coalesce(s.failed_batches, 0),
            'completed', coalesce(s.completed_batches, 0),
            'api_calls', coalesce(s.api_calls, 0),
            'throttled', coalesce(s.throttled, 0),
            'retries', coalesce(s.retries, 0))), '{}'))
    FROM (SELECT unnest(ARRAY['cloudfront', 'fastly', 'cloudflare', 'http']) AS name) p
    LEFT JOIN cachekit._cdn_providers s ON s.provider = p.name
    WHERE p.name = ANY (cachekit._cdn_provider_list()) OR s.provider IS NOT NULL
$$;

-- cdn_status() without the providers' last errors, which can name purged
-- paths (values of the tables behind purge rules): for pg_monitor.
CREATE FUNCTION cachekit.cdn_counters()
RETURNS pg_catalog.jsonb LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s || jsonb_build_object('providers', coalesce(
               (SELECT jsonb_object_agg(p.key, p.value - 'last_error') FROM jsonb_each(s -> 'providers') p),
               '{}'::jsonb))
      FROM cachekit.cdn_status() AS s
$$;

-- Asset manifest: what pg_cachekit-cdn sync uploaded.
CREATE TABLE cachekit._assets (
    path pg_catalog.text PRIMARY KEY,
    content_hash pg_catalog.text NOT NULL,
    size pg_catalog.int8 NOT NULL,
    uploaded_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT asset_path CHECK (path OPERATOR(pg_catalog.~) '^/[^[:cntrl:] ]*$' AND pg_catalog.length(path) <= 4096),
    CONSTRAINT asset_hash CHECK (content_hash OPERATOR(pg_catalog.~) '^[0-9a-f]{8,128}$'),
    CONSTRAINT asset_size CHECK (size >= 0)
);
CREATE VIEW cachekit.assets AS SELECT a.path, a.content_hash, a.size, a.uploaded_at FROM cachekit._assets a;

-- Records an uploaded asset; true when it is new or its content changed.
CREATE FUNCTION cachekit.cdn_put_asset(path pg_catalog.text, content_hash pg_catalog.text, size pg_catalog.int8)
RETURNS pg_catalog.bool LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old text;
BEGIN
    IF path IS NULL OR content_hash IS NULL OR size IS NULL THEN
        RAISE EXCEPTION 'path, content_hash and size must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM cachekit._check_asset_path(path);
    IF length(path) > 4096 THEN
        RAISE EXCEPTION 'asset path is longer than 4096 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF content_hash !~ '^[0-9A-Fa-f]{8,128}$' THEN
        RAISE EXCEPTION 'content_hash must be 8 to 128 hexadecimal digits' USING ERRCODE = 'invalid_parameter_value',
              HINT = 'pg_cachekit-cdn sync records SHA-256 in hex.';
    END IF;
    IF size < 0 THEN
        RAISE EXCEPTION 'size must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.content_hash INTO old FROM cachekit._assets a WHERE a.path = cdn_put_asset.path FOR UPDATE;
    INSERT INTO cachekit._assets AS a (path, content_hash, size) VALUES (path, lower(content_hash), size)
    ON CONFLICT ON CONSTRAINT _assets_pkey DO UPDATE SET content_hash = excluded.content_hash, size = excluded.size,
        uploaded_at = CASE WHEN a.content_hash = excluded.content_hash THEN a.uploaded_at ELSE now() END;
    RETURN old IS DISTINCT FROM lower(content_hash);
END $$;

CREATE FUNCTION cachekit.cdn_drop_asset(path pg_catalog.text)
RETURNS pg_catalog.bool LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH d AS (DELETE FROM cachekit._assets a WHERE a.path = cdn_drop_asset.path RETURNING 1)
    SELECT count(*) > 0 FROM d
$$;

-- The path with ?v=<first 12 hex digits of its content hash> when
-- cachekit.cdn_auto_version is on and the manifest knows it.
CREATE FUNCTION cachekit._versioned_path(path pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT path || coalesce(
        CASE WHEN current_setting('cachekit.cdn_auto_version')::bool THEN
            (SELECT CASE WHEN strpos(path, '?') > 0 THEN '&' ELSE '?' END || 'v=' || left(a.content_hash, 12)
               FROM cachekit.assets a WHERE a.path = split_part(_versioned_path.path, '?', 1))
        END, '')
$$;

CREATE FUNCTION cachekit._check_asset_path(path pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF path IS NULL THEN
        RETURN NULL;
    END IF;
    IF left(path, 1) <> '/' OR path ~ '[[:cntrl:][:space:]]' OR left(path, 2) = '//' THEN
        RAISE EXCEPTION 'invalid asset path "%"', left(path, 200) USING ERRCODE = 'invalid_parameter_value',
              HINT = 'An asset path starts with one "/" and has no white space or control characters.';
    END IF;
    RETURN path;
END $$;

-- The CDN URL of a path (cachekit.cdn_base_url + versioned path), or the
-- path unchanged when the CDN is disabled.
CREATE FUNCTION cachekit.cdn_url(path pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN current_setting('cachekit.cdn_enabled')::bool AND current_setting('cachekit.cdn_base_url') <> ''
                THEN rtrim(current_setting('cachekit.cdn_base_url'), '/') || cachekit._versioned_path(cachekit._check_asset_path(path))
                ELSE cachekit._check_asset_path(path) END
$$;

-- Like cdn_url(), but versioned also when the CDN is disabled (cache busting
-- for the local server).
CREATE FUNCTION cachekit.asset_url(path pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN current_setting('cachekit.cdn_enabled')::bool AND current_setting('cachekit.cdn_base_url') <> ''
                THEN cachekit.cdn_url(path)
                ELSE cachekit._versioned_path(cachekit._check_asset_path(path)) END
$$;

CREATE FUNCTION cachekit._html_escape(s pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT replace(replace(replace(replace(replace(s, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
$$;

-- <link rel="preload"> for an asset; `as` is one of the destinations the
-- HTML standard allows for preload. Fonts get crossorigin (browsers fetch
-- them in CORS mode and would otherwise not use the preloaded copy).
CREATE FUNCTION cachekit.preload_asset(path pg_catalog.text, "as" pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF path IS NULL OR "as" IS NULL THEN
        RETURN NULL;
    END IF;
    IF "as" NOT IN ('audio', 'document', 'embed', 'fetch', 'font', 'image', 'object', 'script',
                    'style', 'track', 'video', 'worker') THEN
        RAISE EXCEPTION 'invalid preload destination "%"', left("as", 100) USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Use one of audio, document, embed, fetch, font, image, object, script, style, track, video, worker.';
    END IF;
    RETURN format('<link rel="preload" href="%s" as="%s"%s>', cachekit._html_escape(cachekit.asset_url(path)), "as",
                  CASE WHEN "as" IN ('font', 'fetch') THEN ' crossorigin' ELSE '' END);
END $$;

-- <link rel="dns-prefetch"> for a host name (or the host of a URL).
CREATE FUNCTION cachekit.dns_prefetch(host pg_catalog.text)
RETURNS pg_catalog.text LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h text := host;
BEGIN
    IF h IS NULL THEN
        RETURN NULL;
    END IF;
    h := regexp_replace(h, '^[A-Za-z][A-Za-z0-9+.-]*:', '');
    h := regexp_replace(h, '^//', '');
    h := split_part(split_part(split_part(h, '/', 1), '?', 1), '#', 1);
    IF h !~ '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[0-9]{1,5})?$'
       AND h !~ '^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$' THEN
        RAISE EXCEPTION 'invalid host name "%"', left(host, 200) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN format('<link rel="dns-prefetch" href="//%s">', cachekit._html_escape(lower(h)));
END $$;

-- Privileges ------------------------------------------------------------------
--
-- Nothing for PUBLIC. Functions and views whose name starts with an
-- underscore are internal; the few granted below are needed by the public
-- functions that run as the caller (watch creates triggers calling
-- _invalidate() through _create_triggers()).

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cachekit FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA cachekit FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cachekit FROM PUBLIC;

GRANT USAGE ON SCHEMA cachekit TO cachekit_user, cachekit_session, cachekit_admin, cachekit_tasks, cachekit_cdn, pg_monitor;

-- cachekit_user: the key/value cache, cached queries, watching own tables, stats.
GRANT EXECUTE ON FUNCTION
    cachekit.cache_set(pg_catalog.text, pg_catalog.text, pg_catalog.int4),
    cachekit.cache_set(pg_catalog.text, pg_catalog.bytea, pg_catalog.int4),
    cachekit.cache_set(pg_catalog.text, pg_catalog.jsonb, pg_catalog.int4),
    cachekit.cache_get(pg_catalog.text), cachekit.cache_get_bytea(pg_catalog.text),
    cachekit.cache_get_jsonb(pg_catalog.text), cachekit.cache_delete(pg_catalog.text[]),
    cachekit.cache_exists(pg_catalog.text), cachekit.cache_ttl(pg_catalog.text),
    cachekit.cache_expire(pg_catalog.text, pg_catalog.int4),
    cachekit.cache_incr(pg_catalog.text, pg_catalog.int8, pg_catalog.int4),
    cachekit.health(), cachekit.cache_stats()
TO cachekit_user;
-- Monitoring: per-query series follow query_stats' rule (the caller's own
-- queries; all of them for pg_read_all_stats and cachekit_admin).
GRANT EXECUTE ON FUNCTION cachekit.metrics(), cachekit.health()
TO cachekit_user, cachekit_admin, pg_monitor;
GRANT SELECT ON cachekit.cache_stats TO cachekit_user;

-- cachekit_user and cachekit_admin
GRANT EXECUTE ON FUNCTION
    cachekit.cached_query(pg_catalog.text, pg_catalog.text[], pg_catalog.int4, pg_catalog.text, pg_catalog.regclass[]),
    cachekit.cached_query_json(pg_catalog.text, pg_catalog.text[], pg_catalog.int4, pg_catalog.text, pg_catalog.regclass[]),
    cachekit.last_outcome(), cachekit.invalidate(pg_catalog.regclass),
    cachekit.watch(pg_catalog.regclass, pg_catalog.text, pg_catalog.text),
    cachekit.unwatch(pg_catalog.regclass),
    cachekit._invalidate(), cachekit._record_values(), cachekit._is_watched(pg_catalog.oid),
    cachekit.last_dependencies(),
    cachekit._create_triggers(pg_catalog.oid, pg_catalog.text, pg_catalog.text[], pg_catalog.text[]),
    cachekit._rule_trigger_prefix(pg_catalog.text),
    cachekit.query_stats(), cachekit.table_stats(), cachekit.app_invalidation_stats()
TO cachekit_user, cachekit_admin;
GRANT SELECT ON cachekit.namespace_ttls, cachekit.query_stats, cachekit.table_stats,
                cachekit.watched_tables, cachekit.key_rules, cachekit.invalidation_stats
TO cachekit_user, cachekit_admin;

-- cachekit_session: the session store.
GRANT EXECUTE ON FUNCTION
    cachekit.session_set(pg_catalog.text, pg_catalog.jsonb, pg_catalog.int4),
    cachekit.session_get(pg_catalog.text), cachekit.session_touch(pg_catalog.text, pg_catalog.int4),
    cachekit.session_delete(pg_catalog.text)
TO cachekit_session;

-- cachekit_admin: what affects everyone. The key rule functions check the
-- caller's privileges on the table themselves (see invalidate_key_on).
GRANT EXECUTE ON FUNCTION
    cachekit.cache_clear(pg_catalog.text), cachekit.cache_stats_reset(),
    cachekit.invalidate_all(), cachekit.set_namespace_ttl(pg_catalog.text, pg_catalog.int4),
    cachekit.query_stats_reset(), cachekit.table_stats_reset(),
    cachekit.invalidate_key_on(pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.text[], pg_catalog.text[]),
    cachekit.drop_key_rule(pg_catalog.text)
TO cachekit_admin;

-- cachekit_tasks: enqueue tasks (run as the enqueuing role), see and act on
-- one's own. cachekit_http and cachekit_email add those task kinds (checked
-- by enqueue() and again when the task runs). cachekit_admin sees every
-- task's arguments and results and may cancel or retry any.
GRANT EXECUTE ON FUNCTION
    cachekit.enqueue(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.interval, pg_catalog.jsonb),
    cachekit.task_status(pg_catalog.int8), cachekit.task_result(pg_catalog.int8),
    cachekit.cancel_task(pg_catalog.int8), cachekit.retry_task(pg_catalog.int8),
    cachekit.schedule(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.text),
    cachekit.unschedule(pg_catalog.text), cachekit._may_manage(pg_catalog.oid)
TO cachekit_tasks, cachekit_admin;
GRANT SELECT ON cachekit.tasks, cachekit.queue_stats, cachekit.schedules TO cachekit_tasks, cachekit_admin;
GRANT EXECUTE ON FUNCTION
    cachekit.create_queue(pg_catalog.text, pg_catalog.int4, pg_catalog.numeric, pg_catalog.bool),
    cachekit.pause_queue(pg_catalog.text), cachekit.resume_queue(pg_catalog.text),
    cachekit.drop_queue(pg_catalog.text, pg_catalog.bool), cachekit.prune_tasks(pg_catalog.jsonb)
TO cachekit_admin;

-- cachekit_cdn: queue purges, record uploaded assets, see the CDN's state.
-- Asset URLs are for every application role (cachekit_user) too. Purge
-- rules (they create triggers) are for cachekit_admin, like key rules.
GRANT EXECUTE ON FUNCTION
    cachekit.cdn_purge(pg_catalog.text[]), cachekit.cdn_purge_tags(pg_catalog.text[]),
    cachekit.cdn_purge_all(), cachekit.cdn_status(),
    cachekit.cdn_put_asset(pg_catalog.text, pg_catalog.text, pg_catalog.int8),
    cachekit.cdn_drop_asset(pg_catalog.text)
TO cachekit_cdn, cachekit_admin;
GRANT SELECT ON cachekit.cdn_requests, cachekit.cdn_rules TO cachekit_cdn, cachekit_admin;
GRANT EXECUTE ON FUNCTION cachekit._may_manage(pg_catalog.oid) TO cachekit_cdn;
GRANT EXECUTE ON FUNCTION
    cachekit.cdn_url(pg_catalog.text), cachekit.asset_url(pg_catalog.text),
    cachekit.preload_asset(pg_catalog.text, pg_catalog.text), cachekit.dns_prefetch(pg_catalog.text),
    cachekit._versioned_path(pg_catalog.text), cachekit._check_asset_path(pg_catalog.text),
    cachekit._html_escape(pg_catalog.text)
TO cachekit_user, cachekit_cdn, cachekit_admin;
GRANT SELECT ON cachekit.assets TO cachekit_user, cachekit_cdn, cachekit_admin;
GRANT EXECUTE ON FUNCTION
    cachekit.cdn_purge_on(pg_catalog.regclass, pg_catalog.text, pg_catalog.text),
    cachekit.drop_cdn_rule(pg_catalog.text)
TO cachekit_admin;

-- Transparent caching (transparent_plan.cpp): the statement shapes served
-- from the cache when cachekit.transparent = registered. Read by every
-- backend's planner directly (not through these privileges); written by
-- create_cache and drop_cache (cachekit_admin). Its statement trigger makes
-- every backend read it again and re-plan.
CREATE TABLE cachekit._caches (
    fingerprint pg_catalog.int8 PRIMARY KEY,
    query pg_catalog.text NOT NULL,
    ttl pg_catalog.int4 CHECK (ttl > 0),
    namespace pg_catalog.text CHECK (pg_catalog.octet_length(namespace) < 64),
    created_by pg_catalog.name NOT NULL DEFAULT current_user,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
REVOKE ALL ON cachekit._caches FROM PUBLIC;

CREATE FUNCTION cachekit._caches_changed()
RETURNS trigger AS 'MODULE_PATHNAME', 'ck_caches_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION cachekit._caches_changed() FROM PUBLIC;
CREATE TRIGGER caches_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cachekit._caches
    FOR EACH STATEMENT EXECUTE FUNCTION cachekit._caches_changed();

-- Registers the shape of `query` (constants and $n parameters ignored);
-- returns its fingerprint. Refused, with the reason, for a statement that
-- could not be served.
CREATE FUNCTION cachekit.create_cache(query pg_catalog.text, ttl pg_catalog.int4 DEFAULT NULL,
                                      namespace pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.int8 AS 'MODULE_PATHNAME', 'ck_create_cache' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.drop_cache(query pg_catalog.text)
RETURNS pg_catalog.bool AS 'MODULE_PATHNAME', 'ck_drop_cache' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION cachekit.create_cache(pg_catalog.text, pg_catalog.int4, pg_catalog.text),
                       cachekit.drop_cache(pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachekit.create_cache(pg_catalog.text, pg_catalog.int4, pg_catalog.text),
                          cachekit.drop_cache(pg_catalog.text) TO cachekit_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON cachekit._caches TO cachekit_admin;

-- Counts of the registered shapes, over all roles (no query text).
CREATE FUNCTION cachekit._shape_stats(
    OUT fingerprint pg_catalog.int8, OUT calls pg_catalog.int8, OUT hits pg_catalog.int8,
    OUT misses pg_catalog.int8, OUT bypassed pg_catalog.int8, OUT l1_hits pg_catalog.int8,
    OUT hit_ms pg_catalog.float8, OUT miss_ms pg_catalog.float8)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'ck_shape_stats' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION cachekit._shape_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachekit._shape_stats() TO cachekit_user, cachekit_admin, pg_monitor;

CREATE VIEW cachekit.caches AS
    SELECT c.fingerprint, c.query, c.ttl, c.namespace, c.created_by, c.created_at,
           COALESCE(s.calls, 0) AS calls, COALESCE(s.hits, 0) AS hits,
           COALESCE(s.misses, 0) AS misses, COALESCE(s.bypassed, 0) AS bypasses,
           COALESCE(s.l1_hits, 0) AS l1_hits,
           CASE WHEN s.hits > 0 THEN s.hit_ms / s.hits END AS mean_hit_ms,
           CASE WHEN s.misses > 0 THEN s.miss_ms / s.misses END AS mean_miss_ms,
           -- what the hits would have cost as misses, less what they cost
           CASE WHEN s.hits > 0 AND s.misses > 0
                THEN pg_catalog.round((s.hits * (s.miss_ms / s.misses - s.hit_ms / s.hits))::pg_catalog.numeric, 3)
           END AS time_saved_ms
    FROM cachekit._caches c
    LEFT JOIN cachekit._shape_stats() s ON s.fingerprint = c.fingerprint;
COMMENT ON VIEW cachekit.caches IS
    'Statement shapes registered for transparent caching, with their hits, misses, bypasses and time saved (all roles)';
GRANT SELECT ON cachekit.caches TO cachekit_user, cachekit_admin, pg_monitor;

-- BEGIN explain
-- What the cache would do with a statement, and which statements are worth
-- caching. Both run as the caller: explain() plans the statement as the
-- caller (and, like EXPLAIN, needs the privileges running it would need);
-- candidates() sees pg_stat_statements' and query_stats' texts as the
-- caller may see them, and analyses them with the caller's search_path
-- (neither sets one).
CREATE FUNCTION cachekit.explain(query pg_catalog.text)
RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'ck_explain' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION cachekit.explain(pg_catalog.text) IS
    'Whether a SELECT can be cached (transparently and by cached_query) and why not, its shape''s fingerprint and registration, its dependencies and what its key holds';

-- The most expensive statements by total time, from pg_stat_statements
-- (when installed in this database: looked up at run time, so that this
-- works without it) and from query_stats (when the library is preloaded),
-- each analysed by explain(). A text that does not analyse (pg_stat_statements
-- replaces constants by $n, which some syntax does not accept back; a table
-- dropped since; no privilege) does not qualify, with the error as reason.
-- Statements that call the extension (cached_query among them) are left out.
CREATE FUNCTION cachekit.candidates(top pg_catalog.int4 DEFAULT 50,
    OUT source pg_catalog.text, OUT queryid pg_catalog.int8, OUT query pg_catalog.text,
    OUT calls pg_catalog.int8, OUT total_ms pg_catalog.float8, OUT mean_ms pg_catalog.float8,
    OUT rows pg_catalog.int8, OUT fingerprint pg_catalog.int8, OUT registered pg_catalog.bool,
    OUT qualifies pg_catalog.bool, OUT reason pg_catalog.text, OUT detail pg_catalog.text,
    OUT hint pg_catalog.text, OUT dependencies pg_catalog.text[])
RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    parts text[] := '{}';
    pgss_schema name;
    s record;
    e jsonb;
    run_as name;
    saved_role text := pg_catalog.current_setting('role');
    -- SELECT-like texts, after any leading comments and parentheses.
    selects constant text := '^(\s|\(|/\*.*?\*/|--[^\n]*\n)*(select|with|table|values)\M';
BEGIN
    SELECT n.nspname INTO pgss_schema
    FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
    WHERE x.extname = 'pg_stat_statements';
    IF pgss_schema IS NOT NULL THEN
        -- Created but not preloaded, pg_stat_statements' view raises 55000.
        BEGIN
            EXECUTE pg_catalog.format('SELECT 1 FROM %I.pg_stat_statements LIMIT 1', pgss_schema);
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            pgss_schema := NULL;
        END;
    END IF;
    IF pgss_schema IS NOT NULL THEN
        -- One row per statement of this database (pg_stat_statements keeps
        -- one per role and nesting level); other roles' texts are hidden
        -- by pg_stat_statements itself.
        parts := parts || pg_catalog.format(
            $q$SELECT 'pg_stat_statements'::text AS source, p.queryid, pg_catalog.min(p.query) AS query,
                      pg_catalog.sum(p.calls)::int8 AS calls, pg_catalog.sum(p.total_exec_time) AS total_ms,
                      pg_catalog.sum(p.total_exec_time) / nullif(pg_catalog.sum(p.calls), 0) AS mean_ms,
                      pg_catalog.sum(p.rows)::int8 AS rows,
                      pg_catalog.array_agg(DISTINCT p.userid) AS userids
               FROM %I.pg_stat_statements p
               WHERE p.dbid = (SELECT oid FROM pg_catalog.pg_database
                               WHERE datname = pg_catalog.current_database())
                 AND p.query IS NOT NULL AND p.query <> '<insufficient privilege>'
                 AND p.query ~* %L AND p.query !~* '\mcachekit\s*\.'
               GROUP BY p.queryid$q$, pgss_schema, selects);
    END IF;
    -- query_stats needs the shared memory of a preloaded library.
    BEGIN
        PERFORM 1 FROM cachekit.query_stats() LIMIT 1;
        parts := parts || pg_catalog.format(
            $q$SELECT 'cachekit'::text AS source, NULL::int8 AS queryid, q.query,
                      pg_catalog.sum(q.calls)::int8 AS calls,
                      pg_catalog.sum(coalesce(q.hits * q.mean_hit_ms, 0) + coalesce(q.misses * q.mean_miss_ms, 0)) AS total_ms,
                      pg_catalog.sum(coalesce(q.hits * q.mean_hit_ms, 0) + coalesce(q.misses * q.mean_miss_ms, 0))
                          / nullif(pg_catalog.sum(q.hits + q.misses), 0) AS mean_ms,
                      pg_catalog.sum(q.rows)::int8 AS rows,
                      pg_catalog.array_agg(DISTINCT q.userid) AS userids
               FROM cachekit.query_stats q
               WHERE q.query IS NOT NULL AND q.query <> '<insufficient privilege>'
                 AND q.query ~* %L AND q.query !~* '\mcachekit\s*\.'
               GROUP BY q.query$q$, selects);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        NULL;
    END;
    IF pg_catalog.cardinality(parts) = 0 THEN
        RETURN;
    END IF;
    FOR s IN EXECUTE 'SELECT * FROM (' || pg_catalog.array_to_string(parts, ' UNION ALL ') || ') c '
                     'ORDER BY c.total_ms DESC NULLS LAST, c.calls DESC, c.query LIMIT $1'
             USING top
    LOOP
        source := s.source; queryid := s.queryid; query := s.query; calls := s.calls;
        total_ms := s.total_ms; mean_ms := s.mean_ms; rows := s.rows;
        -- Planning a text runs the IMMUTABLE functions it calls with
        -- constant arguments. Another role's statement is analysed as that
        -- role (as pg_cron runs a job as its owner), when the session may
        -- SET ROLE to it; else not at all: planned with the caller's rights,
        -- its functions would run with them.
        run_as := NULL;
        IF (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) = ANY (s.userids) THEN
            run_as := current_user;
        ELSE
            SELECT r.rolname INTO run_as FROM pg_catalog.pg_roles r
            WHERE r.oid = ANY (s.userids) AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
            ORDER BY r.rolname LIMIT 1;
        END IF;
        IF run_as IS NULL THEN
            fingerprint := NULL; registered := NULL; qualifies := NULL; dependencies := NULL;
            reason := 'a statement of another role, not analysed';
            detail := 'Planning it with your rights could run that role''s functions with them.';
            hint := 'Run cachekit.candidates as a role that may SET ROLE to the statement''s role.';
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            IF run_as <> current_user THEN
                PERFORM pg_catalog.set_config('role', run_as, true);
            END IF;
            e := cachekit.explain(s.query);
            IF pg_catalog.current_setting('role') <> saved_role THEN
                PERFORM pg_catalog.set_config('role', saved_role, true);
            END IF;
            fingerprint := (e ->> 'fingerprint')::int8;
            registered := (e ->> 'registered')::bool;
            -- What create_cache accepts: cacheable, and reading a table
            -- (a write to it is what invalidates).
            qualifies := (e -> 'transparent' ->> 'registrable')::bool;
            reason := e ->> 'reason'; detail := e ->> 'detail'; hint := e ->> 'hint';
            IF NOT qualifies AND reason IS NULL THEN
                reason := 'the statement reads no table';
            END IF;
            dependencies := ARRAY(SELECT d ->> 'table'
                                  FROM pg_catalog.jsonb_array_elements(e -> 'dependencies') d);
        EXCEPTION WHEN OTHERS THEN
            fingerprint := NULL; registered := NULL; qualifies := false;
            GET STACKED DIAGNOSTICS reason = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                                    hint = PG_EXCEPTION_HINT;
            detail := NULLIF(detail, ''); hint := NULLIF(hint, '');
            dependencies := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE VIEW cachekit.candidates AS
    SELECT * FROM cachekit.candidates();
COMMENT ON VIEW cachekit.candidates IS
    'The 50 most expensive SELECTs by total time (pg_stat_statements when installed, and query_stats), whether each can be cached and why not';

REVOKE ALL ON FUNCTION cachekit.explain(pg_catalog.text), cachekit.candidates(pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON cachekit.candidates FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cachekit.explain(pg_catalog.text), cachekit.candidates(pg_catalog.int4)
TO cachekit_user, cachekit_admin, pg_monitor;
GRANT SELECT ON cachekit.candidates TO cachekit_user, cachekit_admin, pg_monitor;
-- END explain

-- pg_monitor, Postgres' read-only monitoring role (what postgres_exporter
-- connects as): the statistics and status, nothing that changes state or
-- shows task arguments, results or purge paths (hence cdn_counters(), not
-- cdn_status()). Query text as query_stats shows it to pg_read_all_stats,
-- which pg_monitor includes.
GRANT EXECUTE ON FUNCTION
    cachekit.cache_stats(), cachekit.query_stats(), cachekit.table_stats(),
    cachekit.app_invalidation_stats()
TO pg_monitor;
GRANT EXECUTE ON FUNCTION cachekit.cdn_counters() TO pg_monitor, cachekit_cdn, cachekit_admin;
GRANT SELECT ON cachekit.cache_stats, cachekit.query_stats, cachekit.table_stats,
                cachekit.invalidation_stats, cachekit.queue_stats
TO pg_monitor;

-- Last, so that the script's own DDL above does not fire them.
CREATE EVENT TRIGGER cachekit_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER INDEX',
                 'CREATE INDEX', 'CREATE RULE', 'DROP RULE', 'CREATE POLICY', 'ALTER POLICY', 'DROP POLICY',
                 'GRANT', 'REVOKE', 'COMMENT')
    EXECUTE FUNCTION cachekit._on_ddl();
CREATE EVENT TRIGGER cachekit_drop ON sql_drop
    EXECUTE FUNCTION cachekit._on_drop();

