-- Runs first: the extension and a helper that reports an error's SQLSTATE,
-- message, detail and hint (stable output, unlike VERBOSITY verbose).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_cachekit;
CREATE EXTENSION pg_cachekit;
RESET client_min_messages;

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
