-- More prepared transactions than pg_cachekit ever had room for (its table of
-- in-doubt transactions used to hold 64): every PREPARE succeeds, readers
-- bypass while any is undecided, and after COMMIT PREPARED reads are fresh.
-- (The sandbox runs with max_prepared_transactions = 100.)
SELECT current_setting('max_prepared_transactions')::int > 70 AS enough_prepared_transactions;
CREATE TABLE tp_t (id int PRIMARY KEY, v text);
INSERT INTO tp_t VALUES (0, 'zero');
SELECT cachekit.watch('tp_t');
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM tp_t') AS r(n bigint);
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM tp_t') AS r(n bigint);
SELECT cachekit.last_outcome();
\set ECHO none
SELECT format('BEGIN; INSERT INTO tp_t VALUES (%s, ''x''); PREPARE TRANSACTION ''regress_tp_%s''', g, g)
    FROM generate_series(1, 70) g \gexec
\set ECHO all
SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'regress_tp_%';
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM tp_t') AS r(n bigint);
SELECT cachekit.last_outcome();
-- half of them decided: still in doubt
\set ECHO none
SELECT format('COMMIT PREPARED ''regress_tp_%s''', g) FROM generate_series(1, 35) g \gexec
\set ECHO all
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM tp_t') AS r(n bigint);
SELECT cachekit.last_outcome();
-- more of them after some were decided, then all decided
\set ECHO none
SELECT format('BEGIN; INSERT INTO tp_t VALUES (%s, ''y''); PREPARE TRANSACTION ''regress_tp_%s''', g, g)
    FROM generate_series(71, 90) g \gexec
SELECT format('COMMIT PREPARED ''regress_tp_%s''', g) FROM generate_series(36, 90) g \gexec
\set ECHO all
SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'regress_tp_%';
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM tp_t') AS r(n bigint);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM tp_t') AS r(n bigint);
SELECT cachekit.last_outcome();
DROP TABLE tp_t;
