-- Privileges: nothing is granted to PUBLIC; the group roles carry the grants;
-- the Redis URL (which may hold a password) is invisible to other roles and
-- its password is never shown, not even to a superuser.
CREATE ROLE regress_nobody LOGIN;
CREATE ROLE regress_cacheuser LOGIN IN ROLE cachekit_user;
CREATE ROLE regress_sessionuser LOGIN IN ROLE cachekit_session;

SELECT p.oid::regprocedure AS function, array_agg(r.rolname ORDER BY r.rolname) AS may_execute
  FROM pg_proc p
  CROSS JOIN (SELECT rolname FROM pg_roles
               WHERE rolname IN ('cachekit_user', 'cachekit_session', 'cachekit_admin')
              UNION ALL SELECT 'public') r
 WHERE p.pronamespace = 'cachekit'::regnamespace
   AND has_function_privilege(CASE WHEN r.rolname = 'public' THEN 'regress_nobody' ELSE r.rolname END,
                              p.oid, 'EXECUTE')
 GROUP BY p.oid ORDER BY 1::text;

SET ROLE regress_nobody;
SELECT regress.error_of($$SELECT cachekit.cache_get('regress:x')$$);
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
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
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
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SELECT current_setting('cachekit.redis_url') = current_setting('regress.redis_url') AS restored;

SELECT cachekit.cache_delete('regress:priv');
DROP ROLE regress_nobody, regress_cacheuser, regress_sessionuser;
