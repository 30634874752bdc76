-- A Redis password is refused where every role could read it: ALTER
-- DATABASE/ROLE ... SET (pg_db_role_setting) and a function's SET clause
-- (pg_proc). The error never repeats the password. It belongs in
-- cachekit.redis_password_file (test/fault/redis_password_file.sh).
CREATE ROLE regress_pw_role;
SELECT e AS error, e LIKE '%Very-Secret-Pw%' AS shows_password
  FROM (VALUES
    (format('ALTER DATABASE %I SET cachekit.redis_url = %L', current_database(), 'redis://:Very-Secret-Pw@127.0.0.1:1/0')),
    (format('ALTER DATABASE %I SET cachekit.session_redis_url = %L', current_database(), 'redis://app:Very-Secret-Pw@127.0.0.1:1/1')),
    ($$ALTER ROLE regress_pw_role SET cachekit.redis_url = 'redis://:Very-Secret-Pw@127.0.0.1:1/0'$$),
    ($$ALTER ROLE ALL SET cachekit.session_redis_url = 'unix:///tmp/redis.sock?password=Very-Secret-Pw'$$),
    (format('ALTER ROLE regress_pw_role IN DATABASE %I SET cachekit.redis_url = %L', current_database(), 'redis://:Very%2DSecret-Pw@h/0')),
    ($$CREATE FUNCTION regress.pw_in_proconfig() RETURNS int LANGUAGE sql
       SET cachekit.redis_url = 'redis://:Very-Secret-Pw@127.0.0.1:1/0' AS 'SELECT 1'$$)
  ) AS t(q), regress.error_of(q) AS e;
SELECT count(*) AS stored_passwords
  FROM pg_db_role_setting WHERE array_to_string(setconfig, ' ') LIKE '%Secret%';
SELECT count(*) AS functions FROM pg_proc WHERE proname = 'pw_in_proconfig';

-- Without a password, per-database and per-role URLs are fine.
ALTER ROLE regress_pw_role SET cachekit.session_redis_url = 'redis://app@127.0.0.1:1/1';
SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'regress_pw_role'::regrole;
-- A malformed URL is still reported redacted.
SELECT regress.error_of($$ALTER ROLE regress_pw_role SET cachekit.redis_url = 'redis://:Very-Secret-Pw@'$$);

-- The password file setting: superuser-only, postgresql.conf / ALTER SYSTEM,
-- and only a file private to the server's user.
SELECT regress.error_of($$SET cachekit.redis_password_file = '/tmp/x'$$);
ALTER SYSTEM SET cachekit.redis_password_file = '/nonexistent/redis.pw';
ALTER SYSTEM SET cachekit.redis_password_file = '/etc/passwd';
SET ROLE regress_pw_role;
SELECT regress.error_of($$SHOW cachekit.redis_password_file$$);
RESET ROLE;
DROP ROLE regress_pw_role;
