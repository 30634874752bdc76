-- Per-value invalidation: a table watched by a column (watch(t, by => c)).
-- A write bumps the buckets of the values it changed (OLD and NEW); a cached
-- query whose top-level WHERE fixes the column depends on those buckets
-- only; every other shape depends on the whole table, with its reason.

CREATE TABLE vi_orders (id int PRIMARY KEY, customer_id int NOT NULL, amount int NOT NULL);
INSERT INTO vi_orders SELECT (c - 1) * 3 + k, c, 10 FROM generate_series(1, 6) c, generate_series(1, 3) k;
SELECT cachekit.watch('vi_orders', by => 'customer_id');
SELECT tgname, tgenabled, pg_catalog.encode(tgargs, 'escape') AS args
  FROM pg_trigger WHERE tgrelid = 'vi_orders'::regclass ORDER BY tgname;

-- The sum of one customer's orders, and whether it came from the cache.
CREATE FUNCTION pg_temp.total(c int) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(t::text, 'null') || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders WHERE customer_id = $1',
                                 ARRAY[c::text]) AS r(t bigint) $$;
-- Every customer's total at once (1..6).
CREATE FUNCTION pg_temp.totals() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(c || ':' || pg_temp.total(c), ', ' ORDER BY c) FROM generate_series(1, 6) c $$;
-- A reader of the whole table.
CREATE FUNCTION pg_temp.grand() RETURNS text LANGUAGE sql AS $$
    SELECT t::text || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders') AS r(t bigint) $$;

SELECT pg_temp.totals();
SELECT pg_temp.totals();
SELECT pg_temp.total(1), cachekit.last_dependencies();
SELECT pg_temp.grand(), cachekit.last_dependencies();
SELECT pg_temp.grand();
-- query_stats says how the last call was keyed.
SELECT scope, query FROM cachekit.query_stats
 WHERE query IN ('SELECT sum(amount) FROM vi_orders WHERE customer_id = $1', 'SELECT sum(amount) FROM vi_orders')
 ORDER BY query;

-- A write to customer 1: customer 1 misses, the others hit; the whole-table
-- reader misses.
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 1;
SELECT pg_temp.totals();
SELECT pg_temp.grand();

-- Moving a row from customer 3 to customer 4 invalidates both (OLD and NEW).
UPDATE vi_orders SET customer_id = 4 WHERE id = 7;
SELECT pg_temp.totals();

-- DELETE and INSERT.
DELETE FROM vi_orders WHERE id = 16;
SELECT pg_temp.totals();
INSERT INTO vi_orders VALUES (100, 2, 5);
SELECT pg_temp.totals();

-- Several buckets in one statement, and a row changed to and from NULL
-- cannot happen here (NOT NULL), so: an UPDATE of two customers at once.
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id IN (5, 6);
SELECT pg_temp.totals();

-- IN lists and = ANY: depend on every listed value's bucket.
CREATE FUNCTION pg_temp.some(cs text) RETURNS text LANGUAGE sql AS $$
    SELECT t::text || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders WHERE customer_id = ANY($1::int[])',
                                 ARRAY[cs]) AS r(t bigint) $$;
CREATE FUNCTION pg_temp.listed(a int, b int) RETURNS text LANGUAGE sql AS $$
    SELECT t::text || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders WHERE customer_id IN ($1, $2)',
                                 ARRAY[a::text, b::text]) AS r(t bigint) $$;
SELECT pg_temp.listed(1, 2), pg_temp.listed(3, 4), pg_temp.some('{5,6}');
SELECT pg_temp.listed(1, 2), pg_temp.listed(3, 4), pg_temp.some('{5,6}'), cachekit.last_dependencies();
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 2;
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 6;
SELECT pg_temp.listed(1, 2), pg_temp.listed(3, 4), pg_temp.some('{5,6}');
-- An immutable expression of a parameter is evaluated per call.
SELECT t, cachekit.last_outcome(), cachekit.last_dependencies()
  FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders WHERE customer_id = $1 + 1',
                             ARRAY['2']) AS r(t bigint);
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 3;
SELECT t, cachekit.last_outcome()
  FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders WHERE customer_id = $1 + 1',
                             ARRAY['2']) AS r(t bigint);
-- A NULL value: the whole table, for that call.
SELECT t, cachekit.last_outcome(), cachekit.last_dependencies()
  FROM cachekit.cached_query('SELECT sum(amount) FROM vi_orders WHERE customer_id = $1',
                             ARRAY[NULL]) AS r(t bigint);
-- More values than cachekit.value_max_buckets: the whole table.
SET cachekit.value_max_buckets = 2;
SELECT pg_temp.some('{1,2,3}'), cachekit.last_dependencies();
RESET cachekit.value_max_buckets;

-- Shapes that do not fix the column depend on the whole table, each with
-- its reason.
CREATE TABLE vi_customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO vi_customers SELECT c, 'c' || c FROM generate_series(1, 6) c;
SELECT cachekit.watch('vi_customers');
CREATE VIEW vi_view AS SELECT * FROM vi_orders;
CREATE FUNCTION pg_temp.scope_of(q text, p text[] DEFAULT '{1}') RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM cachekit.cached_query_json(q, p);
    RETURN QUERY SELECT jsonb_array_elements(cachekit.last_dependencies());
END $$;
SELECT pg_temp.scope_of('SELECT sum(amount) FROM vi_orders WHERE customer_id = $1 OR customer_id = 3');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders o JOIN vi_customers c ON c.id = o.customer_id WHERE c.id = $1');
SELECT pg_temp.scope_of('SELECT (SELECT count(*) FROM vi_orders) + count(*) FROM vi_orders WHERE customer_id = $1');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_view', '{}');
-- (A condition outside the view is not pushed into it.)
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_view WHERE customer_id = $1');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_customers c WHERE c.id IN (SELECT customer_id FROM vi_orders WHERE customer_id = $1)');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders WHERE customer_id = $1 + extract(dow FROM now())::int * 0');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders WHERE customer_id = $1::bigint');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders WHERE customer_id > $1');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders WHERE customer_id = amount', '{}');
SELECT pg_temp.scope_of('WITH w AS (SELECT * FROM vi_orders WHERE customer_id = $1) SELECT count(*) FROM w');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders TABLESAMPLE SYSTEM (100) WHERE customer_id = $1');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_orders WHERE customer_id = $1 UNION ALL SELECT 1');
-- A subquery or view in FROM qualifies when its own WHERE fixes the column
-- (the outer query sees only what it returns), as does a join that keeps the
-- condition on the watched table's own column; the other table depends on
-- its whole table. (cached_query_json wraps every query this way.)
SELECT pg_temp.scope_of('SELECT count(*) FROM (SELECT * FROM vi_orders WHERE customer_id = $1) s');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_customers c LEFT JOIN vi_orders o ON o.customer_id = c.id WHERE o.customer_id = $1');
SELECT pg_temp.scope_of('SELECT count(*) FROM vi_customers c, LATERAL (SELECT sum(amount) FROM vi_orders o WHERE o.customer_id = $1 AND o.amount > c.id) s');
SELECT pg_temp.scope_of('SELECT c.name, sum(o.amount) FROM vi_orders o JOIN vi_customers c ON c.id = o.customer_id WHERE o.customer_id = $1 GROUP BY c.name');
-- ... and is invalidated by the other table's writes (its generation).
CREATE FUNCTION pg_temp.named(c int) RETURNS text LANGUAGE sql AS $$
    SELECT n || ' ' || t || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT c.name, sum(o.amount) FROM vi_orders o JOIN vi_customers c ON c.id = o.customer_id WHERE o.customer_id = $1 GROUP BY c.name',
                                 ARRAY[c::text]) AS r(n text, t bigint) $$;
SELECT pg_temp.named(1), pg_temp.named(2);
UPDATE vi_customers SET name = 'renamed' WHERE id = 1;
SELECT pg_temp.named(1), pg_temp.named(2);
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 2;
SELECT pg_temp.named(1), pg_temp.named(2);


-- A BEFORE ROW trigger that changes the column: the value trigger (AFTER
-- ROW) sees the row as stored, whatever the triggers' names, and invalidates
-- the value the row really got (6), not the one the UPDATE asked for.
CREATE FUNCTION vi_redirect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.amount = 999 THEN NEW.customer_id := 6; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER zzz_redirect BEFORE INSERT OR UPDATE ON vi_orders FOR EACH ROW EXECUTE FUNCTION vi_redirect();
SELECT pg_temp.totals();
UPDATE vi_orders SET amount = 999 WHERE id = 1;
SELECT pg_temp.totals();
INSERT INTO vi_orders VALUES (200, 2, 999);
SELECT pg_temp.totals();
DROP TRIGGER zzz_redirect ON vi_orders;
SELECT pg_temp.totals();

-- A rolled-back savepoint may invalidate more, never less.
BEGIN;
SAVEPOINT s;
UPDATE vi_orders SET amount = amount + 1000 WHERE customer_id = 2;
ROLLBACK TO SAVEPOINT s;
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 3;
COMMIT;
SELECT pg_temp.totals();

-- Logical replication's apply worker (session_replication_role = replica)
-- fires the value trigger too.
SET session_replication_role = replica;
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 4;
RESET session_replication_role;
SELECT pg_temp.totals();

-- More distinct buckets in one transaction than the per-table cap: the
-- whole table's values are invalidated (structural generation), those
-- recorded before the cap included.
BEGIN;
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 1;
INSERT INTO vi_orders SELECT 1000 + g, 1000 + g, 1 FROM generate_series(1, 1100) g;
COMMIT;
SELECT pg_temp.totals();
DELETE FROM vi_orders WHERE id > 1000;
SELECT pg_temp.totals();

-- invalidate() and TRUNCATE reach value readers.
SELECT cachekit.invalidate('vi_orders');
SELECT pg_temp.totals();
SELECT pg_temp.totals();

-- Two-phase commit: readers bypass the cache while a prepared transaction
-- that wrote a value is undecided; once it commits, the database generation
-- (in every key, value readers' too) has moved.
BEGIN;
UPDATE vi_orders SET amount = amount + 1 WHERE customer_id = 5;
PREPARE TRANSACTION 'regress_vi_2pc';
SELECT pg_temp.total(5), pg_temp.total(1);
COMMIT PREPARED 'regress_vi_2pc';
SELECT pg_temp.totals();
SELECT pg_temp.totals();

-- Ranges with a bucket width: dates bucketed by week.
CREATE TABLE vi_events (id int PRIMARY KEY, day date NOT NULL, n int NOT NULL);
INSERT INTO vi_events SELECT g, date '2026-01-01' + g, 1 FROM generate_series(0, 99) g;
SELECT cachekit.watch('vi_events', by => 'day', bucket_width => '7 days');
CREATE FUNCTION pg_temp.events(a date, b date) RETURNS text LANGUAGE sql AS $$
    SELECT t::text || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT sum(n) FROM vi_events WHERE day BETWEEN $1 AND $2',
                                 ARRAY[a::text, b::text]) AS r(t bigint) $$;
SELECT pg_temp.events('2026-01-01', '2026-01-10'), pg_temp.events('2026-03-01', '2026-03-05');
SELECT pg_temp.events('2026-01-01', '2026-01-10'), cachekit.last_dependencies();
-- In range: the first range misses; far out of it, the second hits.
UPDATE vi_events SET n = n + 1 WHERE day = '2026-01-05';
SELECT pg_temp.events('2026-01-01', '2026-01-10'), pg_temp.events('2026-03-01', '2026-03-05');
-- Outside both ranges (another week): both hit.
UPDATE vi_events SET n = n + 1 WHERE day = '2026-02-10';
SELECT pg_temp.events('2026-01-01', '2026-01-10'), pg_temp.events('2026-03-01', '2026-03-05');
-- Same week as the second range's start, outside its days: over-invalidation
-- within a bucket (misses), never stale.
UPDATE vi_events SET n = n + 1 WHERE day = '2026-03-06';
SELECT pg_temp.events('2026-01-01', '2026-01-10'), pg_temp.events('2026-03-01', '2026-03-05');
-- >= and < bounds qualify too; a range over too many buckets does not.
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE day >= $1 AND day < $2', '{2026-01-01,2026-01-20}');
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE day BETWEEN $1 AND $2', '{2026-01-01,2027-06-01}');
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE day BETWEEN $1 AND $2', '{2026-02-01,2026-01-01}');
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE day >= $1', '{2026-01-01}');
-- An integer width.
SELECT cachekit.watch('vi_events', by => 'id', bucket_width => '10');
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE id BETWEEN $1 AND $2', '{5,25}');
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE day BETWEEN $1 AND $2', '{2026-01-01,2026-01-10}');

-- TRUNCATE.
SELECT pg_temp.totals();
TRUNCATE vi_orders;
SELECT pg_temp.totals();

-- Settings that cannot work are refused.
CREATE TABLE vi_parted (k int NOT NULL) PARTITION BY RANGE (k);
CREATE TABLE vi_gen (a int NOT NULL, b int GENERATED ALWAYS AS (a * 2) STORED);
SELECT regress.error_of($$SELECT cachekit.watch('vi_parted', by => 'k')$$);
SELECT regress.error_of($$SELECT cachekit.watch('vi_orders', by => 'nope')$$);
SELECT regress.error_of($$SELECT cachekit.watch('vi_customers', by => 'name', bucket_width => '5')$$);
SELECT regress.error_of($$SELECT cachekit.watch('vi_events', by => 'day', bucket_width => '1 month')$$);
SELECT regress.error_of($$SELECT cachekit.watch('vi_events', by => 'id', bucket_width => '0')$$);
SELECT regress.error_of($$SELECT cachekit.watch('vi_orders', bucket_width => '5')$$);
SELECT regress.error_of($$SELECT cachekit.watch('vi_events', by => 'day', bucket_width => '12 hours')$$);

-- The value trigger redefined by hand (AFTER UPDATE OF c, or with a WHEN
-- clause) would leave changed rows unrecorded: readers of such a table key
-- on the whole table.
CREATE TABLE vi_redef (id int PRIMARY KEY, c int NOT NULL, v int NOT NULL);
SELECT cachekit.watch('vi_redef', by => 'c');
SELECT pg_temp.scope_of('SELECT sum(v) FROM vi_redef WHERE c = $1');
DROP TRIGGER cachekit_value ON vi_redef;
CREATE TRIGGER cachekit_value AFTER UPDATE OF c ON vi_redef
    FOR EACH ROW EXECUTE FUNCTION cachekit._record_values('c', '0');
ALTER TABLE vi_redef ENABLE ALWAYS TRIGGER cachekit_value;
SELECT pg_temp.scope_of('SELECT sum(v) FROM vi_redef WHERE c = $1');
DROP TRIGGER cachekit_value ON vi_redef;
CREATE TRIGGER cachekit_value AFTER INSERT OR UPDATE OR DELETE ON vi_redef
    FOR EACH ROW WHEN (pg_trigger_depth() >= 0) EXECUTE FUNCTION cachekit._record_values('c', '0');
ALTER TABLE vi_redef ENABLE ALWAYS TRIGGER cachekit_value;
SELECT pg_temp.scope_of('SELECT sum(v) FROM vi_redef WHERE c = $1');
SELECT cachekit.unwatch('vi_redef');
DROP TABLE vi_redef;

-- A stored generated column has its value when the AFTER ROW trigger runs.
SELECT cachekit.watch('vi_gen', by => 'b');
CREATE FUNCTION pg_temp.gen(b int) RETURNS text LANGUAGE sql AS $$
    SELECT n::text || ' ' || cachekit.last_outcome()
      FROM cachekit.cached_query('SELECT count(*) FROM vi_gen WHERE b = $1', ARRAY[b::text]) AS r(n bigint) $$;
SELECT pg_temp.gen(10), pg_temp.gen(12), cachekit.last_dependencies()->0->>'scope';
INSERT INTO vi_gen (a) VALUES (5);
SELECT pg_temp.gen(10), pg_temp.gen(12);
UPDATE vi_gen SET a = 6;
SELECT pg_temp.gen(10), pg_temp.gen(12);

-- Watching again without a column drops the value trigger; unwatch drops all.
SELECT cachekit.watch('vi_events');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'vi_events'::regclass ORDER BY tgname;
SELECT pg_temp.scope_of('SELECT sum(n) FROM vi_events WHERE id = $1');
SELECT cachekit.unwatch('vi_orders');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'vi_orders'::regclass ORDER BY tgname;

DROP VIEW vi_view;
DROP TABLE vi_orders, vi_customers, vi_events, vi_parted, vi_gen;
DROP FUNCTION vi_redirect();
