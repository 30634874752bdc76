-- The C++/Postgres error boundary: a C++ exception becomes an ERROR with the
-- intended SQLSTATE, and a Postgres ERROR raised under C++ code unwinds the
-- C++ frames (no leaked objects) so the next call works.
CREATE FUNCTION pg_temp.raise(kind text, state text DEFAULT NULL) RETURNS integer
    AS 'pg_cachekit', 'ck_selftest_raise' LANGUAGE C;
CREATE FUNCTION pg_temp.live_objects() RETURNS integer
    AS 'pg_cachekit', 'ck_selftest_live_objects' LANGUAGE C;

SELECT pg_temp.raise('none');           -- the guard object is alive inside: 1
SELECT pg_temp.live_objects();          -- and gone after: 0

SELECT regress.error_of($$SELECT pg_temp.raise('cpp', '22023')$$);
SELECT regress.error_of($$SELECT pg_temp.raise('cpp', '42P01')$$);
SELECT regress.error_of($$SELECT pg_temp.raise('bad_alloc')$$);
SELECT regress.error_of($$SELECT pg_temp.raise('std')$$);
SELECT pg_temp.live_objects();          -- every C++ frame unwound: 0

-- A Postgres ERROR under C++ code keeps its own SQLSTATE and message.
SELECT regress.error_of($$SELECT pg_temp.raise('pg')$$);
SELECT pg_temp.live_objects();          -- destructors ran before the longjmp: 0

-- The same outside a PL/pgSQL handler: a top-level error, then the next call works.
SELECT pg_temp.raise('pg');
SELECT pg_temp.raise('cpp', '54000');
SELECT pg_temp.raise('none');
SELECT pg_temp.live_objects();

-- Many errors in a row leave nothing behind.
SELECT count(*) FROM generate_series(1, 200) g
 WHERE regress.error_of($$SELECT pg_temp.raise('pg')$$) LIKE '22012%';
SELECT pg_temp.live_objects();
