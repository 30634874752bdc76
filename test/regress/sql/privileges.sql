-- Privileges: nothing is granted to PUBLIC; the group roles carry the grants;
-- the Redis URL (which may hold a password) is invisible to other roles and
-- its password is never shown, not even to a superuser.
CREATE ROLE regress_nobody LOGIN;
CREATE ROLE regress_cacheuser LOGIN IN ROLE cachekit_user;
CREATE ROLE regress_sessionuser LOGIN IN ROLE cachekit_session;

SELECT p.oid::regprocedure AS function, array_agg(r.rolname ORDER BY r.rolname) AS may_execute
  FROM pg_proc p
  CROSS JOIN (SELECT rolname FROM pg_roles
               WHERE rolname IN ('cachekit_user', 'cachekit_session', 'cachekit_admin', 'cachekit_tasks',
                                 'cachekit_http', 'cachekit_email')
              UNION ALL SELECT 'public') r
 WHERE p.pronamespace = 'cachekit'::regnamespace
   AND has_function_privilege(CASE WHEN r.rolname = 'public' THEN 'regress_nobody' ELSE r.rolname END,
                              p.oid, 'EXECUTE')
 GROUP BY p.oid ORDER BY 1::text;

SET ROLE regress_nobody;
SELECT regress.error_of($$SELECT cachekit.cache_get('regress:x')$$);
SELECT regress.error_of($$SHOW cachekit.smtp_password_file$$);
SELECT regress.error_of($$SHOW cachekit.smtp_username$$);
SELECT count(*) AS smtp_secrets_listed FROM pg_settings WHERE name IN ('cachekit.smtp_password_file', 'cachekit.smtp_username');
SELECT regress.error_of($$SELECT cachekit.session_get('x')$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cache_stats$$);
RESET ROLE;

SET ROLE regress_cacheuser;
SELECT cachekit.cache_set('regress:priv', 'ok');
SELECT cachekit.cache_get('regress:priv');
SELECT regress.error_of($$SELECT cachekit.session_get('x')$$);
SELECT regress.error_of($$SELECT cachekit.cache_clear('')$$);
SELECT regress.error_of($$SELECT cachekit.cache_stats_reset()$$);
RESET ROLE;

-- Give Redis a password, connect through it, then check who sees what.
SELECT set_config('regress.redis_url', current_setting('cachekit.redis_url'), false) IS NOT NULL AS saved;
ALTER SYSTEM SET cachekit.redis_url = 'redis://:Very-Secret-Pw@127.0.0.1:1/0';
\i test/regress/sql/reload_conf.sql
SHOW cachekit.redis_url;                               -- superuser: redacted
SELECT current_setting('cachekit.redis_url') LIKE '%Very-Secret-Pw%' AS superuser_sees_password;
SELECT setting FROM pg_settings WHERE name = 'cachekit.redis_url';

SET ROLE regress_cacheuser;
SELECT regress.error_of($$SHOW cachekit.redis_url$$);
SELECT regress.error_of($$SELECT current_setting('cachekit.redis_url')$$);
SELECT count(*) AS visible_url_settings FROM pg_settings WHERE name LIKE 'cachekit.%url';
SELECT regress.error_of($$SET cachekit.redis_url = 'redis://127.0.0.1:1/0'$$);
SELECT regress.error_of($$SET cachekit.key_prefix = 'evil:'$$);
-- an error about the unreachable server names the address, never the password
SET cachekit.strict = on;
SELECT regress.error_of($$SELECT cachekit.cache_get('regress:priv')$$) AS strict_error;
SELECT cachekit.health()::text LIKE '%Very-Secret-Pw%' AS health_shows_password;
RESET cachekit.strict;
RESET ROLE;

ALTER SYSTEM RESET cachekit.redis_url;
\i test/regress/sql/reload_conf.sql
SELECT current_setting('cachekit.redis_url') = current_setting('regress.redis_url') AS restored;

SELECT cachekit.cache_delete('regress:priv');

-- invalidate(table): the table's owner or cachekit_admin, and only a watched
-- table (every OID it accepts takes a generation slot until restart)
CREATE ROLE regress_admin LOGIN IN ROLE cachekit_admin;
CREATE TABLE priv_t (id int);
SELECT cachekit.watch('priv_t');
CREATE TABLE priv_own (id int);
CREATE TABLE priv_own_unwatched (id int);
ALTER TABLE priv_own OWNER TO regress_cacheuser;
ALTER TABLE priv_own_unwatched OWNER TO regress_cacheuser;
SET ROLE regress_cacheuser;
SELECT regress.error_of($$SELECT cachekit.invalidate('priv_t')$$);
SELECT regress.error_of($$SELECT cachekit.invalidate(987654321::oid::regclass)$$);
SELECT regress.error_of($$SELECT cachekit.invalidate('pg_class')$$);
SELECT regress.error_of($$SELECT cachekit.invalidate('priv_own_unwatched')$$);
SELECT cachekit.watch('priv_own');
SELECT cachekit.invalidate('priv_own');
SELECT cachekit.unwatch('priv_own');
SELECT regress.error_of($$SELECT cachekit.invalidate('priv_own')$$);
RESET ROLE;
SET ROLE regress_admin;
SELECT cachekit.invalidate('priv_t');
SELECT regress.error_of($$SELECT cachekit.invalidate(987654321::oid::regclass)$$);
RESET ROLE;

-- Key rules publish column values in key names: creating one needs SELECT
-- on the columns it uses (or ownership), checked against the calling role
-- even through another role's SECURITY DEFINER function; and a template must
-- start with literal text (its TRUNCATE pattern would match every key).
CREATE TABLE priv_payroll (emp text, salary int, dept text);
GRANT SELECT (emp, dept) ON priv_payroll TO regress_admin;
SET ROLE regress_admin;
SELECT regress.error_of(q) FROM (VALUES
    ($$SELECT cachekit.invalidate_key_on('priv_payroll', 'leak:{emp}:{salary}')$$),
    ($$SELECT cachekit.invalidate_key_on('priv_payroll', 'leak:{emp}', operations => ARRAY['UPDATE'], columns => ARRAY['salary'])$$),
    ($$SELECT cachekit.invalidate_key_on('priv_payroll', 'payroll-changed')$$),
    ($$SELECT cachekit.invalidate_key_on('priv_payroll', '{emp}')$$),
    ($$SELECT cachekit.invalidate_key_on('priv_payroll', '{{*}}:{emp}')$$),
    ($$SELECT cachekit._add_key_rule('priv_payroll', 'leak:{salary}', NULL, ARRAY['UPDATE'], NULL)$$),
    ($$SELECT cachekit._install_rule_triggers('priv_payroll:emp:{emp}', 'priv_payroll'::regclass::oid)$$),
    ($$SELECT cachekit._create_triggers('priv_payroll'::regclass::oid, 'keys', ARRAY['UPDATE'], ARRAY['x', 'leak:{salary}', ''])$$)
) AS t(q);
SELECT cachekit.invalidate_key_on('priv_payroll', 'emp:{emp}:{dept}', name => 'priv_emp');
RESET ROLE;
CREATE SCHEMA priv_admin AUTHORIZATION regress_admin;
SET ROLE regress_admin;
CREATE FUNCTION priv_admin.make_rule() RETURNS text LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT cachekit.invalidate_key_on('priv_payroll', 'leak2:{salary}') $$;
RESET ROLE;
-- a superuser calling regress_admin's function: checked as regress_admin
SELECT regress.error_of($$SELECT priv_admin.make_rule()$$);
SELECT name, template, triggers > 0 AS has_triggers FROM cachekit.key_rules WHERE table_name = 'priv_payroll'::regclass;
-- the owner needs no column grants; a superuser is still held to the prefix rule
CREATE TABLE priv_owned (k text, v text);
ALTER TABLE priv_owned OWNER TO regress_admin;
SET ROLE regress_admin;
SELECT cachekit.invalidate_key_on('priv_owned', 'owned:{k}:{v}', name => 'priv_owned_rule');
RESET ROLE;
SELECT regress.error_of($$SELECT cachekit.invalidate_key_on('priv_owned', '{k}')$$);
-- nor may a template reach the cache's own key space (other databases' keys)
SELECT regress.error_of($$SELECT cachekit.invalidate_key_on('priv_owned', 'ck:kv:otherdb:{k}')$$);
-- row-level security: a role that may read only some rows may not publish
-- every changed row's values in key names (only the owner may)
CREATE TABLE priv_rls (emp text, salary int);
GRANT SELECT ON priv_rls TO regress_admin;
ALTER TABLE priv_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY priv_rls_own ON priv_rls FOR SELECT USING (emp = current_user);
SET ROLE regress_admin;
SELECT regress.error_of($$SELECT cachekit.invalidate_key_on('priv_rls', 'rls:{emp}:{salary}')$$);
RESET ROLE;
SELECT cachekit.invalidate_key_on('priv_rls', 'rls:{emp}', name => 'priv_rls_rule');
SELECT cachekit.drop_key_rule('priv_rls_rule');
DROP TABLE priv_rls;
SELECT cachekit.drop_key_rule('priv_emp');
SELECT cachekit.drop_key_rule('priv_owned_rule');
DROP SCHEMA priv_admin CASCADE;

-- query_stats: other roles' query text only for pg_read_all_stats and
-- cachekit_admin (a literal in a query can be a secret)
CREATE ROLE regress_cacheuser2 LOGIN IN ROLE cachekit_user;
CREATE ROLE regress_statsreader LOGIN IN ROLE cachekit_user, pg_read_all_stats;
CREATE TABLE priv_stats (id int, token text);
SELECT cachekit.watch('priv_stats');
GRANT SELECT ON priv_stats TO cachekit_user, cachekit_admin;
SET ROLE regress_cacheuser;
SELECT * FROM cachekit.cached_query($$SELECT id FROM priv_stats WHERE token = 'api_key=sk_live_123'$$) AS r(id int);
RESET ROLE;
SET ROLE regress_cacheuser2;
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM priv_stats') AS r(n bigint);
SELECT userid::regrole AS role, query, fingerprint IS NULL AS fingerprint_hidden, calls
  FROM cachekit.query_stats WHERE userid IN ('regress_cacheuser'::regrole, 'regress_cacheuser2'::regrole)
 ORDER BY userid::regrole::text;
SELECT count(*) AS secret_rows FROM cachekit.query_stats() WHERE query LIKE '%sk_live%';
RESET ROLE;
SET ROLE regress_statsreader;
SELECT userid::regrole AS role, query FROM cachekit.query_stats
 WHERE userid IN ('regress_cacheuser'::regrole, 'regress_cacheuser2'::regrole) ORDER BY userid::regrole::text;
RESET ROLE;
SET ROLE regress_admin;
SELECT count(*) AS admin_sees_secret FROM cachekit.query_stats WHERE query LIKE '%sk_live%';
RESET ROLE;

DROP TABLE priv_t, priv_own, priv_own_unwatched, priv_payroll, priv_owned, priv_stats;
DROP ROLE regress_nobody, regress_cacheuser, regress_sessionuser, regress_admin, regress_cacheuser2,
          regress_statsreader;
