-- What a query can see of its connection. session_user is part of the key
-- when the query can see it: two logins that both SET ROLE to the same role
-- never share an entry of a query that reads session_user (in the query, a
-- view or a row-level security policy). Functions whose result depends on
-- the connection (client address, backend pid, ...) are not cached at all.
CREATE TABLE cc_docs (id int PRIMARY KEY, owner name NOT NULL, body text);
INSERT INTO cc_docs VALUES (1, 'regress_cc_login1', 'private to login1'),
                           (2, 'regress_cc_login2', 'private to login2');
SELECT cachekit.watch('cc_docs');
CREATE ROLE regress_cc_app IN ROLE cachekit_user;
GRANT SELECT ON cc_docs TO regress_cc_app;
CREATE ROLE regress_cc_login1 LOGIN IN ROLE regress_cc_app;
CREATE ROLE regress_cc_login2 LOGIN IN ROLE regress_cc_app;
CREATE VIEW cc_mine AS SELECT body FROM cc_docs WHERE owner = session_user;
GRANT SELECT ON cc_mine TO regress_cc_app;
CREATE TABLE cc_rls (id int PRIMARY KEY, owner name NOT NULL, body text);
INSERT INTO cc_rls SELECT * FROM cc_docs;
SELECT cachekit.watch('cc_rls');
GRANT SELECT ON cc_rls TO regress_cc_app;
ALTER TABLE cc_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY cc_own ON cc_rls USING (owner = session_user);

-- Each query, as login1 then login2, both SET ROLE regress_cc_app.
CREATE FUNCTION pg_temp.as_login(login text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    body text;
BEGIN
    EXECUTE format('SET SESSION AUTHORIZATION %I', login);
    SET ROLE regress_cc_app;
    EXECUTE format('SELECT string_agg(body, '','') FROM cachekit.cached_query(%L) AS r(body text)', q)
        INTO body;
    RESET ROLE;
    RESET SESSION AUTHORIZATION;
    RETURN body || ' (' || cachekit.last_outcome() || ')';
END $$;
SELECT pg_temp.as_login('regress_cc_login1', 'SELECT body FROM cc_docs WHERE owner = session_user');
SELECT pg_temp.as_login('regress_cc_login1', 'SELECT body FROM cc_docs WHERE owner = session_user');
SELECT pg_temp.as_login('regress_cc_login2', 'SELECT body FROM cc_docs WHERE owner = session_user');
SELECT pg_temp.as_login('regress_cc_login2', 'SELECT body FROM cc_docs WHERE owner = session_user');
-- the function form
SELECT pg_temp.as_login('regress_cc_login1', 'SELECT body FROM cc_docs WHERE owner = pg_catalog."session_user"()');
SELECT pg_temp.as_login('regress_cc_login2', 'SELECT body FROM cc_docs WHERE owner = pg_catalog."session_user"()');
-- in a view
SELECT pg_temp.as_login('regress_cc_login1', 'SELECT body FROM cc_mine');
SELECT pg_temp.as_login('regress_cc_login2', 'SELECT body FROM cc_mine');
-- in a row-level security policy
SELECT pg_temp.as_login('regress_cc_login1', 'SELECT body FROM cc_rls');
SELECT pg_temp.as_login('regress_cc_login2', 'SELECT body FROM cc_rls');
-- a query that does not read session_user is shared by both logins
SELECT pg_temp.as_login('regress_cc_login1', 'SELECT body FROM cc_docs WHERE id = 1');
SELECT pg_temp.as_login('regress_cc_login2', 'SELECT body FROM cc_docs WHERE id = 1');

-- connection-dependent functions are uncacheable, with a hint
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT inet_client_addr()::text FROM cc_docs WHERE id = 1') AS r(v text)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cc_docs WHERE id <> pg_backend_pid()') AS r(v bigint)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT inet_server_port()') AS r(v int)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT pg_my_temp_schema() = 0') AS r(v bool)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT pg_trigger_depth()') AS r(v int)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT pg_conf_load_time()') AS r(v timestamptz)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT pg_client_encoding()::text') AS r(v text)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT pg_current_xact_id()::text') AS r(v text)$$);
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT pg_stat_get_numscans(''cc_docs''::regclass)') AS r(v bigint)$$);
SET cachekit.uncacheable = bypass;
SELECT * FROM cachekit.cached_query('SELECT pg_backend_pid() = pg_backend_pid()') AS r(v bool);
SELECT cachekit.last_outcome();
RESET cachekit.uncacheable;

-- depends_on lets a non-inlined STABLE function through: it may read any
-- custom setting (a tenant), so every custom setting joins the key
CREATE TABLE cc_orders (id int PRIMARY KEY, tenant int NOT NULL, amount int NOT NULL);
INSERT INTO cc_orders VALUES (1, 1, 10), (2, 1, 20), (3, 2, 300);
SELECT cachekit.watch('cc_orders');
CREATE FUNCTION cc_tenant_total() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT sum(amount) FROM cc_orders WHERE tenant = current_setting('app.tenant')::int);
END $$;
SET app.tenant = '1';
SELECT * FROM cachekit.cached_query('SELECT cc_tenant_total()', depends_on => ARRAY['cc_orders']::regclass[]) AS r(total bigint);
SELECT * FROM cachekit.cached_query('SELECT cc_tenant_total()', depends_on => ARRAY['cc_orders']::regclass[]) AS r(total bigint);
SELECT cachekit.last_outcome();
SET app.tenant = '2';
SELECT * FROM cachekit.cached_query('SELECT cc_tenant_total()', depends_on => ARRAY['cc_orders']::regclass[]) AS r(total bigint);
SELECT cachekit.last_outcome();
RESET app.tenant;
-- and so does session_user
CREATE FUNCTION cc_my_bodies() RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT string_agg(body, ',') FROM cc_docs WHERE owner = session_user);
END $$;
GRANT EXECUTE ON FUNCTION cc_my_bodies() TO regress_cc_app;
CREATE FUNCTION pg_temp.as_login_dep(login text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    body text;
BEGIN
    EXECUTE format('SET SESSION AUTHORIZATION %I', login);
    SET ROLE regress_cc_app;
    SELECT r.body INTO body FROM cachekit.cached_query('SELECT cc_my_bodies()',
        depends_on => ARRAY['cc_docs']::regclass[]) AS r(body text);
    RESET ROLE;
    RESET SESSION AUTHORIZATION;
    RETURN body || ' (' || cachekit.last_outcome() || ')';
END $$;
SELECT pg_temp.as_login_dep('regress_cc_login1');
SELECT pg_temp.as_login_dep('regress_cc_login2');

DROP VIEW cc_mine;
DROP TABLE cc_docs, cc_rls, cc_orders;
DROP FUNCTION cc_tenant_total(), cc_my_bodies();
DROP ROLE regress_cc_login1, regress_cc_login2, regress_cc_app;
