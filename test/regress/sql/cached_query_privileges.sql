-- A hit checks the privileges the executor would check: SELECT on the tables
-- and columns the query reads (as the view owner behind a view), EXECUTE on
-- the functions it calls. A REVOKE takes effect at the next call, cached or
-- not. And the ttl a caller asks for is capped by cachekit.max_ttl.
CREATE TABLE cp_docs (id int PRIMARY KEY, title text, secret text);
INSERT INTO cp_docs VALUES (1, 'one', 's1'), (2, 'two', 's2');
SELECT cachekit.watch('cp_docs');
CREATE ROLE regress_cp_alice IN ROLE cachekit_user;
CREATE ROLE regress_cp_reader;
CREATE FUNCTION pg_temp.titles() RETURNS SETOF text LANGUAGE sql AS $$
    SELECT title FROM cachekit.cached_query('SELECT title FROM cp_docs ORDER BY id') AS r(title text) $$;

-- table privilege
GRANT SELECT ON cp_docs TO regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT * FROM pg_temp.titles();
SELECT * FROM pg_temp.titles();
SELECT cachekit.last_outcome();
RESET ROLE;
REVOKE SELECT ON cp_docs FROM regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT regress.error_of($$SELECT title FROM cp_docs$$) AS direct;
SELECT regress.error_of($$SELECT * FROM pg_temp.titles()$$) AS cached;
RESET ROLE;
-- granted again: the entry is still there (nothing wrote the table)
GRANT SELECT ON cp_docs TO regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT * FROM pg_temp.titles();
SELECT cachekit.last_outcome();
RESET ROLE;
REVOKE SELECT ON cp_docs FROM regress_cp_alice;

-- column privileges
GRANT SELECT (id, title) ON cp_docs TO regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT * FROM pg_temp.titles();
SELECT * FROM pg_temp.titles();
SELECT cachekit.last_outcome();
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT secret FROM cp_docs') AS r(s text)$$);
RESET ROLE;
REVOKE SELECT (title) ON cp_docs FROM regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT regress.error_of($$SELECT * FROM pg_temp.titles()$$) AS cached;
SELECT * FROM cachekit.cached_query('SELECT count(id) FROM cp_docs') AS r(n bigint);
RESET ROLE;
REVOKE SELECT (id) ON cp_docs FROM regress_cp_alice;

-- through a revoked role membership
GRANT SELECT ON cp_docs TO regress_cp_reader;
GRANT regress_cp_reader TO regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT * FROM pg_temp.titles();
SELECT * FROM pg_temp.titles();
SELECT cachekit.last_outcome();
RESET ROLE;
REVOKE regress_cp_reader FROM regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT regress.error_of($$SELECT * FROM pg_temp.titles()$$) AS cached;
RESET ROLE;

-- behind a view: the caller needs SELECT on the view, the view's owner on the table
CREATE VIEW cp_titles AS SELECT id, title FROM cp_docs;
GRANT SELECT ON cp_titles TO regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT * FROM cachekit.cached_query('SELECT title FROM cp_titles ORDER BY id') AS r(title text);
SELECT * FROM cachekit.cached_query('SELECT title FROM cp_titles ORDER BY id') AS r(title text);
SELECT cachekit.last_outcome();
RESET ROLE;
REVOKE SELECT ON cp_titles FROM regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT title FROM cp_titles ORDER BY id') AS r(title text)$$) AS cached;
RESET ROLE;

-- EXECUTE on a function the query calls
GRANT SELECT ON cp_docs TO regress_cp_alice;
CREATE FUNCTION cp_mask(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
    $$ BEGIN RETURN left(t, 1) || '***'; END $$;
REVOKE EXECUTE ON FUNCTION cp_mask(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_mask(text) TO regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT * FROM cachekit.cached_query('SELECT cp_mask(secret) FROM cp_docs ORDER BY id') AS r(m text);
SELECT * FROM cachekit.cached_query('SELECT cp_mask(secret) FROM cp_docs ORDER BY id') AS r(m text);
SELECT cachekit.last_outcome();
RESET ROLE;
REVOKE EXECUTE ON FUNCTION cp_mask(text) FROM regress_cp_alice;
SET ROLE regress_cp_alice;
SELECT regress.error_of($$SELECT cp_mask('x')$$) AS direct;
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT cp_mask(secret) FROM cp_docs ORDER BY id') AS r(m text)$$) AS cached;
RESET ROLE;

-- the ttl is capped by cachekit.max_ttl (superuser only), whoever asks
SHOW cachekit.max_ttl;
SET ROLE regress_cp_alice;
SELECT regress.error_of($$SET cachekit.max_ttl = 2000000000$$);
RESET ROLE;
SET cachekit.key_prefix = 'cpttl:';
SET cachekit.max_ttl = 100;
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:*' | xargs -r redis-cli -p "$CACHEKIT_REDIS_PORT" del >/dev/null
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cp_docs', ttl => 2000000000) AS r(n bigint);
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:q:*' | xargs -r -n1 redis-cli -p "$CACHEKIT_REDIS_PORT" ttl | awk '{ print ($1 > 0 && $1 <= 100) ? "ttl at most 100" : "ttl " $1 }'
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:*' | xargs -r redis-cli -p "$CACHEKIT_REDIS_PORT" del >/dev/null
-- the default ttl (cachekit.default_ttl, 300 s) is capped too
SELECT * FROM cachekit.cached_query('SELECT count(*) + 1 FROM cp_docs') AS r(n bigint);
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:q:*' | xargs -r -n1 redis-cli -p "$CACHEKIT_REDIS_PORT" ttl | awk '{ print ($1 > 0 && $1 <= 100) ? "ttl at most 100" : "ttl " $1 }'
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:*' | xargs -r redis-cli -p "$CACHEKIT_REDIS_PORT" del >/dev/null
-- a smaller ttl is kept
SELECT * FROM cachekit.cached_query('SELECT count(*) + 2 FROM cp_docs', ttl => 30) AS r(n bigint);
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:q:*' | xargs -r -n1 redis-cli -p "$CACHEKIT_REDIS_PORT" ttl | awk '{ print ($1 > 0 && $1 <= 30) ? "ttl at most 30" : "ttl " $1 }'
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'cpttl:*' | xargs -r redis-cli -p "$CACHEKIT_REDIS_PORT" del >/dev/null
RESET cachekit.max_ttl;
RESET cachekit.key_prefix;

DROP VIEW cp_titles;
DROP TABLE cp_docs;
DROP FUNCTION cp_mask(text);
DROP ROLE regress_cp_alice, regress_cp_reader;
