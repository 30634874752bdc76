-- Runs first: the extension and a helper that reports an error's SQLSTATE,
-- message, detail and hint (stable output, unlike VERBOSITY verbose).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_cachekit;
CREATE EXTENSION pg_cachekit;
RESET client_min_messages;

-- The hourly maintenance task (minute 7) would take a task id in the middle
-- of a test whose output names task ids: it does not come due here. Once the
-- scheduler has set its first next_run (else it would overwrite this one).
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN (SELECT next_run IS NOT NULL FROM cachekit._schedules WHERE name = 'cachekit.prune_tasks');
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
UPDATE cachekit._schedules SET next_run = 'infinity' WHERE name = 'cachekit.prune_tasks' AND next_run IS NOT NULL;
SELECT next_run AS prune_next_run FROM cachekit._schedules WHERE name = 'cachekit.prune_tasks';

CREATE SCHEMA regress;
CREATE FUNCTION regress.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    RETURN format('%s: %s | %s | %s', st, msg, det, hnt);
END $$;
GRANT USAGE ON SCHEMA regress TO PUBLIC;
GRANT EXECUTE ON FUNCTION regress.error_of(text) TO PUBLIC;

SELECT extname, extversion FROM pg_extension WHERE extname = 'pg_cachekit';
SELECT count(*) AS functions FROM pg_proc WHERE pronamespace = 'cachekit'::regnamespace;
