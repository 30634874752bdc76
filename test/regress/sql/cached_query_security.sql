-- Roles, row-level security, tenants and settings: what one caller caches is
-- never served to a caller who would have seen something else.
CREATE TABLE cs_docs (id int PRIMARY KEY, tenant int NOT NULL, owner name NOT NULL, body text);
INSERT INTO cs_docs VALUES (1, 1, 'regress_alice', 'alice t1'), (2, 1, 'regress_bob', 'bob t1'),
                           (3, 2, 'regress_alice', 'alice t2'), (4, 2, 'regress_bob', 'bob t2');
SELECT cachekit.watch('cs_docs');
CREATE ROLE regress_alice IN ROLE cachekit_user;
CREATE ROLE regress_bob IN ROLE cachekit_user;
CREATE ROLE regress_nocache;
GRANT SELECT ON cs_docs TO regress_alice, regress_bob, regress_nocache;
ALTER TABLE cs_docs ENABLE ROW LEVEL SECURITY;
-- each role sees its own rows, of the tenant named by app.tenant_id
CREATE POLICY cs_owner ON cs_docs USING (owner = current_user
    AND tenant = nullif(current_setting('app.tenant_id', true), '')::int);

CREATE FUNCTION pg_temp.bodies() RETURNS SETOF text LANGUAGE sql AS $$
    SELECT body FROM cachekit.cached_query('SELECT body FROM cs_docs ORDER BY id') AS r(body text) $$;

-- role A caches; role B (SET ROLE in the same session) must not get A's rows
SET app.tenant_id = '1';
SET ROLE regress_alice;
SELECT * FROM pg_temp.bodies();
SELECT cachekit.last_outcome();
SELECT * FROM pg_temp.bodies();
SELECT cachekit.last_outcome();
SET ROLE regress_bob;
SELECT * FROM pg_temp.bodies();
SELECT cachekit.last_outcome();
-- tenants: same role, another app.tenant_id: other rows, other entry
SET app.tenant_id = '2';
SELECT * FROM pg_temp.bodies();
SELECT cachekit.last_outcome();
SET app.tenant_id = '1';
SELECT * FROM pg_temp.bodies();
SELECT cachekit.last_outcome();
RESET ROLE;

-- a role without cachekit_user cannot call it at all
SET ROLE regress_nocache;
SELECT regress.error_of($$SELECT * FROM pg_temp.bodies()$$);
RESET ROLE;
-- queries run as the caller: no privilege on the table, no rows, cached or not
CREATE TABLE cs_secret (id int PRIMARY KEY, s text);
INSERT INTO cs_secret VALUES (1, 'top secret');
SELECT cachekit.watch('cs_secret');
SELECT * FROM cachekit.cached_query('SELECT s FROM cs_secret') AS r(s text);
SET ROLE regress_alice;
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT s FROM cs_secret') AS r(s text)$$);
RESET ROLE;

-- output settings are part of the key: a TimeZone change is a different entry
CREATE TABLE cs_events (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO cs_events VALUES (1, '2026-06-01 12:00:00+00');
SELECT cachekit.watch('cs_events');
SET TimeZone = 'UTC';
SELECT * FROM cachekit.cached_query('SELECT at FROM cs_events') AS r(at timestamptz);
SELECT cachekit.last_outcome();
SET TimeZone = 'Asia/Tokyo';
SELECT * FROM cachekit.cached_query('SELECT at FROM cs_events') AS r(at timestamptz);
SELECT cachekit.last_outcome();
SET DateStyle = 'SQL, DMY';
SELECT * FROM cachekit.cached_query('SELECT at FROM cs_events') AS r(at timestamptz);
SELECT cachekit.last_outcome();
RESET DateStyle;
SET TimeZone = 'UTC';
SELECT * FROM cachekit.cached_query('SELECT at FROM cs_events') AS r(at timestamptz);
SELECT cachekit.last_outcome();

-- a query that calls current_setting() keys on every custom setting
SET app.locale = 'en';
SELECT * FROM cachekit.cached_query('SELECT current_setting(''app.locale'') || '':'' || count(*) FROM cs_events') AS r(v text);
SET app.locale = 'fr';
SELECT * FROM cachekit.cached_query('SELECT current_setting(''app.locale'') || '':'' || count(*) FROM cs_events') AS r(v text);
SELECT cachekit.last_outcome();
-- a setting read where the plan cannot show it (inside a PL/pgSQL function
-- declared IMMUTABLE) must be named in cachekit.key_settings
CREATE FUNCTION cs_greeting(n bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
    $$ BEGIN RETURN 'hello ' || current_setting('app.locale') || n; END $$;
SELECT * FROM cachekit.cached_query('SELECT cs_greeting(count(*)) FROM cs_events') AS r(v text);
SET app.locale = 'de';
SELECT * FROM cachekit.cached_query('SELECT cs_greeting(count(*)) FROM cs_events') AS r(v text);
SELECT cachekit.last_outcome();   -- a hit: the function hid the setting
SET cachekit.key_settings = 'app.locale';
SELECT * FROM cachekit.cached_query('SELECT cs_greeting(count(*)) FROM cs_events') AS r(v text);
SELECT cachekit.last_outcome();
RESET cachekit.key_settings;

-- search_path is resolved: the same text over another schema is another query
CREATE SCHEMA cs_other;
CREATE TABLE cs_other.cs_events (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO cs_other.cs_events VALUES (1, '1999-01-01 00:00:00+00'), (2, '1999-01-02 00:00:00+00');
SELECT cachekit.watch('cs_other.cs_events');
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cs_events') AS r(n bigint);
SET search_path = cs_other, public;
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cs_events') AS r(n bigint);
SELECT cachekit.last_outcome();
RESET search_path;

DROP TABLE cs_docs, cs_secret, cs_events;
DROP FUNCTION cs_greeting(bigint);
DROP SCHEMA cs_other CASCADE;
DROP ROLE regress_alice, regress_bob, regress_nocache;
