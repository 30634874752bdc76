-- CREATE EXTENSION refuses a schema cachekit that another role controls
-- (issue 7, item 2): eve owns a database, creates schema cachekit and an
-- overload cachekit._is_watched(regclass) that makes her superuser when the
-- extension's SECURITY DEFINER event trigger calls it. A superuser installing
-- the extension there must get an error, not a working install.
SELECT current_user AS regress_superuser, current_database() AS regress_db \gset
CREATE ROLE regress_eve LOGIN;
CREATE DATABASE regress_eve_db OWNER regress_eve;

\c regress_eve_db regress_eve
CREATE SCHEMA cachekit;
CREATE FUNCTION cachekit._is_watched(regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_eve SUPERUSER';
    END IF;
    RETURN false;
END $$;

\c regress_eve_db :regress_superuser
CREATE EXTENSION pg_cachekit;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'pg_cachekit';

-- Had it installed, this would have run eve's function as a superuser.
\c regress_eve_db regress_eve
CREATE TABLE eve_parts (id int) PARTITION BY RANGE (id);
SELECT rolsuper AS eve_is_superuser FROM pg_roles WHERE rolname = 'regress_eve';

-- The schema handed to the superuser, but eve's function still inside.
\c regress_eve_db :regress_superuser
ALTER SCHEMA cachekit OWNER TO :regress_superuser;
CREATE EXTENSION pg_cachekit;

-- Owned by the superuser and empty, but eve may create objects in it.
DROP FUNCTION cachekit._is_watched(regclass);
GRANT CREATE ON SCHEMA cachekit TO regress_eve;
CREATE EXTENSION pg_cachekit;

-- Owned by the installing role, nobody else may create: installs.
REVOKE CREATE ON SCHEMA cachekit FROM regress_eve;
SET client_min_messages = warning;
CREATE EXTENSION pg_cachekit;
RESET client_min_messages;
SELECT n.nspowner::regrole = current_user::regrole AS owned_by_installer
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_cachekit';
-- and eve's partitioned table goes through the real event trigger
\c regress_eve_db regress_eve
CREATE TABLE eve_parts2 (id int) PARTITION BY RANGE (id);
SELECT rolsuper AS eve_is_superuser FROM pg_roles WHERE rolname = 'regress_eve';

-- The extension calls its own functions with their exact argument types:
-- should a role later be given CREATE on the schema (a mistake), an overload
-- it adds is still not what the event trigger (running as the installing
-- superuser) calls for the ancestors of a new partition.
\c regress_eve_db :regress_superuser
GRANT CREATE ON SCHEMA cachekit TO regress_eve;
\c regress_eve_db regress_eve
CREATE FUNCTION cachekit._is_watched(regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_eve SUPERUSER';
    END IF;
    RETURN false;
END $$;
CREATE TABLE eve_parts2_a PARTITION OF eve_parts2 FOR VALUES FROM (0) TO (10);
SELECT rolsuper AS eve_is_superuser FROM pg_roles WHERE rolname = 'regress_eve';

\c :regress_db :regress_superuser
DROP DATABASE regress_eve_db WITH (FORCE);
DROP ROLE regress_eve;
