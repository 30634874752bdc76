\set ECHO none
-- Included (\i) where a test changed postgresql.auto.conf: reloads the
-- configuration and waits (up to 10 s) until this backend has read it, as
-- a fixed pg_sleep cannot promise on a loaded machine. A backend rereads the
-- files between top-level statements, hence one statement per poll. (Not a
-- test of its own: not in REGRESS.)
\o /dev/null
SELECT pg_conf_load_time() AS conf_loaded_before, pg_reload_conf() AS conf_reloaded \gset
SELECT format('SELECT pg_sleep(0.05) WHERE pg_conf_load_time() <= %L', :'conf_loaded_before') FROM generate_series(1, 200) \gexec
\o
\set ECHO all
