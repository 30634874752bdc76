-- CDN purges, as queued (the dispatch is paused: queue cdn): who may
-- purge, what a path may be, transactional queueing (rollback, savepoints,
-- 2PC), purge rules (OLD and NEW, column privileges, replica role, NULL
-- columns), the views, settings that stay secret, and the asset helpers.
-- Sending is tested against real servers in test/fault/cdn_*.sh.
SET client_min_messages = warning;
CREATE ROLE regress_cdn LOGIN IN ROLE cachekit_cdn;
CREATE ROLE regress_cdn_none LOGIN;
CREATE ROLE regress_cdn_app LOGIN IN ROLE cachekit_user;
CREATE ROLE regress_cdn_admin LOGIN IN ROLE cachekit_admin;
RESET client_min_messages;
SELECT cachekit.pause_queue('cdn');

-- Disabled (the default): explicit purges are refused.
SET ROLE regress_cdn;
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['/a'])$$);
RESET ROLE;

ALTER SYSTEM SET cachekit.cdn_enabled = on;
ALTER SYSTEM SET cachekit.cdn_provider = 'http, cloudfront';
ALTER SYSTEM SET cachekit.cdn_base_url = 'https://cdn.example.com/';
\i test/regress/sql/reload_conf.sql
SHOW cachekit.cdn_provider;
-- A setting with an unknown provider is refused.
ALTER SYSTEM SET cachekit.cdn_provider = 'akamai';

-- Who may purge.
SET ROLE regress_cdn_none;
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['/a'])$$);
SELECT regress.error_of($$SELECT count(*) FROM cachekit.cdn_requests$$);
SELECT regress.error_of($$INSERT INTO cachekit._cdn_queue VALUES (1, 'http', 'path', '/x')$$);
SET ROLE regress_cdn;
SELECT regress.error_of($$INSERT INTO cachekit._cdn_requests (kind, source, role) VALUES ('all', 'x', 1)$$);
SELECT regress.error_of($$SELECT cachekit._cdn_request(NULL, 'all', '{}', '{http}', 'x', 1, true)$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('cdn', 'cdn_dispatch')$$);

-- Paths: normalised, deduplicated, checked.
CREATE TEMP TABLE ids (id bigint);
INSERT INTO ids SELECT cachekit.cdn_purge(ARRAY['/a%20b.png', '/img/*', '/a%20b.png', '/x?y=1', '/100%', '/café', '/a"b']);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['/a b.png'])$$);
SELECT provider, kind, source, role, state, paths FROM cachekit.cdn_requests
 WHERE request_id = (SELECT id FROM ids) ORDER BY provider;
SELECT regress.error_of($$SELECT cachekit.cdn_purge(NULL)$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge('{}')$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['/a', NULL])$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['relative.png'])$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['/a*b'])$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY[E'/a\nHost: evil'])$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY['/' || repeat('x', 5000)])$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge(ARRAY[ARRAY['/a'], ARRAY['/b']])$$);
-- Tags go only to providers that take them (http takes them with BAN).
SELECT regress.error_of($$SELECT cachekit.cdn_purge_tags(ARRAY['product-1'])$$);
RESET ROLE;
ALTER SYSTEM SET cachekit.cdn_http_method = 'BAN';
\i test/regress/sql/reload_conf.sql
SET ROLE regress_cdn;
SELECT cachekit.cdn_purge_tags(ARRAY['product-1', 'product-1', 'cat:shoes']) AS tag_request \gset
SELECT provider, kind, source, paths FROM cachekit.cdn_requests WHERE request_id = :tag_request ORDER BY provider;
SELECT regress.error_of($$SELECT cachekit.cdn_purge_tags(ARRAY['two words'])$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge_tags(ARRAY['a,b'])$$);
-- Purge-all: one item per provider.
SELECT cachekit.cdn_purge_all() AS all_request \gset
SELECT provider, kind, paths FROM cachekit.cdn_requests WHERE request_id = :all_request ORDER BY provider;

-- Transactional: a rollback, or a rolled-back savepoint, queues nothing; a
-- committed request has its dispatch task.
SELECT count(*) AS requests_before FROM cachekit.cdn_requests \gset
BEGIN;
SELECT cachekit.cdn_purge(ARRAY['/rolled-back']) IS NOT NULL AS queued;
ROLLBACK;
BEGIN;
SELECT cachekit.cdn_purge(ARRAY['/kept']) IS NOT NULL AS queued;
SAVEPOINT s;
SELECT cachekit.cdn_purge(ARRAY['/savepoint']) IS NOT NULL AS queued;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) - :requests_before AS new_requests,
       count(*) FILTER (WHERE paths = '{/kept}') AS kept FROM cachekit.cdn_requests;
RESET ROLE;
SELECT count(*) > 0 AS dispatch_tasks_queued FROM cachekit._tasks
 WHERE kind = 'cdn_dispatch' AND queue = 'cdn' AND state = 'queued'
   AND role = (SELECT extowner FROM pg_extension WHERE extname = 'pg_cachekit');

-- Two-phase commit: nothing until COMMIT PREPARED.
BEGIN;
SET LOCAL ROLE regress_cdn;
SELECT cachekit.cdn_purge(ARRAY['/prepared']) IS NOT NULL AS queued;
PREPARE TRANSACTION 'regress_cdn_2pc';
SELECT count(*) AS before_commit FROM cachekit.cdn_requests WHERE paths = '{/prepared}';
COMMIT PREPARED 'regress_cdn_2pc';
SELECT count(*) AS after_commit FROM cachekit.cdn_requests WHERE paths = '{/prepared}';

-- Purge rules.
CREATE TABLE public.cdn_products (id int PRIMARY KEY, slug text, secret text, category text);
ALTER TABLE public.cdn_products OWNER TO regress_cdn_admin;
GRANT SELECT (id, slug), INSERT, UPDATE, DELETE ON public.cdn_products TO regress_cdn_app;
SET ROLE regress_cdn_none;
SELECT regress.error_of($$SELECT cachekit.cdn_purge_on('public.cdn_products', '/p/{slug}.html')$$);
SET ROLE regress_cdn_admin;
SELECT regress.error_of($$SELECT cachekit.cdn_purge_on('public.cdn_products', 'p/{slug}.html')$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge_on('public.cdn_products', '/p/{nope}.html')$$);
SELECT regress.error_of($$SELECT cachekit.cdn_purge_on('public.cdn_products', '/p/{slug')$$);
SELECT cachekit.cdn_purge_on('public.cdn_products', '/p/{slug}.html', 'product pages');
SELECT regress.error_of($$SELECT cachekit.cdn_purge_on('public.cdn_products', '/p/{slug}.html', 'product pages')$$);
SELECT name, table_name, template, created_by FROM cachekit.cdn_rules;
RESET ROLE;
-- A role that is not the owner needs SELECT on the template's columns.
CREATE TABLE public.cdn_other (id int, secret text);
GRANT SELECT (id) ON public.cdn_other TO regress_cdn_admin;
SET ROLE regress_cdn_admin;
SELECT regress.error_of($$SELECT cachekit.cdn_purge_on('public.cdn_other', '/o/{secret}')$$);
RESET ROLE;
DROP TABLE public.cdn_other;

-- A writer with no CDN role: the rule (its owner's decision) queues the
-- purge of OLD and NEW at commit.
SET ROLE regress_cdn_app;
INSERT INTO public.cdn_products VALUES (1, 'red shoe', 's1', 'c'), (2, NULL, 's2', 'c');
UPDATE public.cdn_products SET slug = 'blue-shoe' WHERE id = 1;
BEGIN;
UPDATE public.cdn_products SET slug = 'never' WHERE id = 1;
ROLLBACK;
BEGIN;
DELETE FROM public.cdn_products WHERE id = 2;
SAVEPOINT s;
UPDATE public.cdn_products SET slug = 'savepoint' WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
UPDATE public.cdn_products SET slug = 'green' WHERE id = 1;
COMMIT;
RESET ROLE;
SELECT r.source, r.role::regrole AS role, array_agg(q.item ORDER BY q.item) AS items
  FROM cachekit._cdn_requests r JOIN cachekit._cdn_queue q ON q.request_id = r.id AND q.provider = 'http'
 WHERE r.source = 'product pages' GROUP BY r.id, r.source, r.role ORDER BY r.id;
-- Logical replication applies changes with session_replication_role =
-- replica: the rule fires there too.
SET session_replication_role = replica;
UPDATE public.cdn_products SET slug = 'replica' WHERE id = 1;
RESET session_replication_role;
SELECT count(*) AS replica_request FROM cachekit.cdn_requests
 WHERE source = 'product pages' AND paths @> '{/p/replica.html}';
-- Disabled: writes go on and queue nothing.
ALTER SYSTEM SET cachekit.cdn_enabled = off;
\i test/regress/sql/reload_conf.sql
UPDATE public.cdn_products SET slug = 'while-disabled' WHERE id = 1;
SELECT count(*) AS disabled_requests FROM cachekit.cdn_requests WHERE paths @> '{/p/while-disabled.html}';
ALTER SYSTEM SET cachekit.cdn_enabled = on;
\i test/regress/sql/reload_conf.sql
-- A row whose path cannot be built (too long once percent-encoded) does not
-- fail the write: the rule purges the template's literal prefix, with a
-- WARNING.
SET ROLE regress_cdn_app;
UPDATE public.cdn_products SET slug = repeat('é', 1500) WHERE id = 1;
RESET ROLE;
SELECT paths FROM cachekit.cdn_requests WHERE source = 'product pages' AND provider = 'http'
 ORDER BY request_id DESC LIMIT 1;
-- Paths are column values: only the requesting role (here the writer) and
-- admins see them; another cachekit_cdn member sees the rows without them.
GRANT cachekit_cdn TO regress_cdn_app;
SET ROLE regress_cdn_app;
SELECT count(*) > 0 AS own_rows_with_paths FROM cachekit.cdn_requests WHERE paths IS NOT NULL;
RESET ROLE;
REVOKE cachekit_cdn FROM regress_cdn_app;
GRANT cachekit_cdn TO regress_cdn_none;
SET ROLE regress_cdn_none;
SELECT count(*) > 0 AS rows_seen, count(paths) AS paths_seen FROM cachekit.cdn_requests;
RESET ROLE;
REVOKE cachekit_cdn FROM regress_cdn_none;
SET ROLE regress_cdn_none;
SELECT regress.error_of($$SELECT cachekit.drop_cdn_rule('product pages')$$);
SET ROLE regress_cdn_admin;
SELECT cachekit.drop_cdn_rule('product pages');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'public.cdn_products'::regclass;
RESET ROLE;
DROP TABLE public.cdn_products;
-- Dropping a table drops its purge rules.
CREATE TABLE public.cdn_gone (id int);
SELECT cachekit.cdn_purge_on('public.cdn_gone', '/g/{id}', 'gone rule');
DROP TABLE public.cdn_gone;
SELECT count(*) AS rules_left FROM cachekit.cdn_rules WHERE name = 'gone rule';

-- cdn_status(): providers listed, nothing sent yet; configured once their
-- ids are set.
ALTER SYSTEM SET cachekit.cdn_cloudfront_distribution_id = 'E2EXAMPLE';
\i test/regress/sql/reload_conf.sql
SET ROLE regress_cdn;
SELECT key AS provider, value -> 'configured' AS configured, value -> 'reachable' AS reachable,
       (value ->> 'queued_items')::int > 0 AS has_queued
  FROM jsonb_each(cachekit.cdn_status() -> 'providers') ORDER BY 1;
SELECT cachekit.cdn_status() -> 'enabled' AS enabled;
RESET ROLE;

-- Secrets stay with superusers.
SET ROLE regress_cdn;
SELECT regress.error_of($$SHOW cachekit.cdn_aws_credentials_file$$);
SELECT regress.error_of($$SHOW cachekit.cdn_fastly_api_token_file$$);
SELECT count(*) AS visible_secret_settings FROM pg_settings
 WHERE name IN ('cachekit.cdn_aws_credentials_file', 'cachekit.cdn_fastly_api_token_file',
                'cachekit.cdn_cloudflare_api_token_file', 'cachekit.cdn_aws_access_key_id',
                'cachekit.cdn_http_headers');
SELECT regress.error_of($$SET cachekit.cdn_provider = 'http'$$);
RESET ROLE;

-- Asset manifest and URL helpers.
SET ROLE regress_cdn;
SELECT cachekit.cdn_put_asset('/static/app.js', '0123456789abcdef0123456789abcdef', 1234) AS new_asset;
SELECT cachekit.cdn_put_asset('/static/app.js', '0123456789abcdef0123456789abcdef', 1234) AS changed_same;
SELECT cachekit.cdn_put_asset('/static/app.js', 'ffffffffffff0000', 99) AS changed_new;
SELECT regress.error_of($$SELECT cachekit.cdn_put_asset('static/x.js', 'abcdef0123', 1)$$);
SELECT regress.error_of($$SELECT cachekit.cdn_put_asset('/x.js', 'not-hex', 1)$$);
SELECT path, content_hash, size FROM cachekit.assets;
SET ROLE regress_cdn_app;
SELECT regress.error_of($$SELECT cachekit.cdn_put_asset('/y.js', 'abcdef0123', 1)$$);
SELECT cachekit.cdn_url('/static/app.js'), cachekit.cdn_url('/static/unknown.css');
SELECT cachekit.asset_url('/static/app.js');
SELECT cachekit.preload_asset('/static/app.js', 'script');
SELECT cachekit.preload_asset('/fonts/a"b<c>.woff2', 'font');
SELECT regress.error_of($$SELECT cachekit.preload_asset('/x.js', 'script" onload="alert(1)')$$);
SELECT regress.error_of($$SELECT cachekit.cdn_url('javascript:alert(1)')$$);
SELECT regress.error_of($$SELECT cachekit.cdn_url('//evil.example/x.js')$$);
SELECT cachekit.dns_prefetch('cdn.example.com'), cachekit.dns_prefetch('https://Fonts.Example.com:8443/x?y');
SELECT regress.error_of($$SELECT cachekit.dns_prefetch('a"><script>')$$);
RESET ROLE;
ALTER SYSTEM SET cachekit.cdn_auto_version = off;
\i test/regress/sql/reload_conf.sql
SELECT cachekit.cdn_url('/static/app.js') AS unversioned;
ALTER SYSTEM SET cachekit.cdn_enabled = off;
\i test/regress/sql/reload_conf.sql
SELECT cachekit.cdn_url('/static/app.js') AS local, cachekit.asset_url('/static/app.js') AS local_asset;
ALTER SYSTEM RESET cachekit.cdn_auto_version;
\i test/regress/sql/reload_conf.sql
SELECT cachekit.asset_url('/static/app.js') AS local_versioned;

-- prune_tasks() also deletes finished CDN requests older than
-- cachekit.task_retention, and their batches; unfinished ones stay.
INSERT INTO cachekit._cdn_requests (id, kind, source, role, created_at) VALUES
    (-1, 'paths', 'old', 10, now() - interval '30 days'), (-2, 'paths', 'old', 10, now() - interval '30 days');
INSERT INTO cachekit._cdn_batches (id, provider, kind, items, state, created_at)
    VALUES (-1, 'http', 'path', '{/old}', 'completed', now() - interval '30 days');
INSERT INTO cachekit._cdn_queue VALUES (-1, 'http', 'path', '/old', -1), (-2, 'http', 'path', '/waiting', NULL);
SELECT cachekit.prune_tasks('{}') ->> 'cdn_requests_deleted' AS cdn_requests_deleted;
SELECT id FROM cachekit._cdn_requests WHERE id < 0;
SELECT count(*) AS old_batches FROM cachekit._cdn_batches WHERE id < 0;

-- Clean up: nothing of this test reaches the dispatcher.
DELETE FROM cachekit._tasks WHERE kind = 'cdn_dispatch';
DELETE FROM cachekit._cdn_requests;
DELETE FROM cachekit._assets;
DROP TABLE ids;
SELECT cachekit.resume_queue('cdn');
ALTER SYSTEM RESET cachekit.cdn_http_method;
ALTER SYSTEM RESET cachekit.cdn_cloudfront_distribution_id;
ALTER SYSTEM RESET cachekit.cdn_enabled;
ALTER SYSTEM RESET cachekit.cdn_provider;
ALTER SYSTEM RESET cachekit.cdn_base_url;
SELECT pg_reload_conf();
DROP ROLE regress_cdn, regress_cdn_none, regress_cdn_app, regress_cdn_admin;
