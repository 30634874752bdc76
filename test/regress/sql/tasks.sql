-- The task queue: enqueue() checks, states, retries, unique keys, priorities,
-- run_at, chaining, cancel/retry rights, queues, schedules, and that a task
-- runs as the role that enqueued it and nothing more. Tasks run in the
-- database's executors (background workers); the test waits for them.
SET client_min_messages = warning;
CREATE ROLE regress_task_a LOGIN IN ROLE cachekit_tasks;
CREATE ROLE regress_task_b LOGIN IN ROLE cachekit_tasks;
CREATE ROLE regress_task_none LOGIN;
CREATE ROLE regress_task_admin LOGIN IN ROLE cachekit_admin;
RESET client_min_messages;
CREATE SCHEMA regress_tasks;
GRANT USAGE ON SCHEMA regress_tasks TO PUBLIC;

-- Waits (up to 30 s) until task `id` is in one of `states`; returns its state.
CREATE FUNCTION regress.wait_task(id bigint, states text[] DEFAULT '{succeeded,dead,cancelled}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOR i IN 1..600 LOOP
        SELECT t.state INTO s FROM cachekit._tasks t WHERE t.id = wait_task.id;
        EXIT WHEN s = ANY (states);
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN s;
END $$;

-- The same for a failed task, returned locked (FOR UPDATE; claims skip
-- locked rows): its retry cannot start while the test looks at it.
CREATE FUNCTION regress.lock_failed_task(id bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOR i IN 1..600 LOOP
        SELECT t.state INTO s FROM cachekit._tasks t
         WHERE t.id = lock_failed_task.id AND t.state IN ('failed', 'dead') FOR UPDATE SKIP LOCKED;
        EXIT WHEN s IS NOT NULL;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN s;
END $$;

CREATE TABLE regress_tasks.runs (task text, who text, session_who text, args jsonb,
                                 at timestamptz DEFAULT clock_timestamp());
GRANT INSERT, SELECT ON regress_tasks.runs TO PUBLIC;
CREATE TABLE regress_tasks.b_only (secret text);
INSERT INTO regress_tasks.b_only VALUES ('b''s secret');
GRANT SELECT ON regress_tasks.b_only TO regress_task_b;

CREATE FUNCTION regress_tasks.record(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regress_tasks.runs (task, who, session_who, args)
    VALUES (args ->> 'name', current_user, session_user, args);
    RETURN jsonb_build_object('who', current_user, 'session_user', session_user, 'name', args ->> 'name');
END $$;
CREATE FUNCTION regress_tasks.run_sql(args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    out text;
BEGIN
    IF args ? 'do' THEN
        EXECUTE args ->> 'do';
        RETURN NULL;
    END IF;
    EXECUTE args ->> 'sql' INTO out;
    RETURN to_jsonb(out);
END $$;
CREATE FUNCTION regress_tasks.fail(args jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'task failed on purpose' USING ERRCODE = '22012', DETAIL = 'As asked.';
END $$;
CREATE FUNCTION regress_tasks.wrong_arg(args text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION regress_tasks.wrong_result(args jsonb) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION regress_tasks.set_returning(args jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE PROCEDURE regress_tasks.proc(args jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION regress_tasks.private(args jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA regress_tasks FROM PUBLIC;
GRANT EXECUTE ON FUNCTION regress_tasks.record(jsonb), regress_tasks.run_sql(jsonb),
    regress_tasks.fail(jsonb), regress_tasks.wrong_result(jsonb), regress_tasks.set_returning(jsonb)
    TO regress_task_a, regress_task_b;
GRANT EXECUTE ON PROCEDURE regress_tasks.proc(jsonb) TO regress_task_a;
SELECT cachekit.create_queue('regress_serial', 1);

-- Who may enqueue, and what enqueue() refuses (in the caller's transaction).
SET ROLE regress_task_none;
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.record')$$);
RESET ROLE;
SET ROLE regress_task_a;
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.nope')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.wrong_arg')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.wrong_result')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.set_returning')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.proc')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.private')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('no_such_queue', 'regress_tasks.record')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue(NULL, 'regress_tasks.record')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.record', '[1]')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.record', max_attempts => 0)$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.record', timeout => '-1 s')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'http', '{"url": "http://127.0.0.1:1/"}')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'email', '{"to": "a@example.com"}')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'cdn_purge', '{}')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.record', "then" => '{"queue": "default"}')$$);
SELECT regress.error_of($$SELECT cachekit.enqueue('default', 'regress_tasks.record', "then" => '{"task": "regress_tasks.private"}')$$);
-- The task tables belong to the extension's functions alone.
SELECT regress.error_of($$INSERT INTO cachekit._tasks (queue, kind, task, args, max_attempts, run_at, role) VALUES ('default', 'function', 'x', '{}', 1, now(), 10)$$);
SELECT regress.error_of($$UPDATE cachekit._tasks SET role = 10$$);
SELECT regress.error_of($$DELETE FROM cachekit._schedules$$);
SELECT regress.error_of($$SELECT cachekit.create_queue('mine', 5)$$);
RESET ROLE;

-- A task runs as the role that enqueued it, session_user included, and
-- cannot read what that role cannot read.
SET ROLE regress_task_a;
SELECT cachekit.enqueue('default', 'regress_tasks.record', '{"name": "as_a"}') AS as_a \gset
SELECT cachekit.enqueue('default', 'regress_tasks.run_sql', '{"sql": "SELECT secret FROM regress_tasks.b_only"}') AS read_b \gset
RESET ROLE;
SET ROLE regress_task_b;
SELECT cachekit.enqueue('default', 'regress_tasks.run_sql', '{"sql": "SELECT secret FROM regress_tasks.b_only"}') AS b_reads \gset
RESET ROLE;
SELECT regress.wait_task(:as_a) AS as_a, regress.wait_task(:b_reads) AS b_reads;
BEGIN;
SELECT regress.lock_failed_task(:read_b) AS a_reads_b;
SELECT who, session_who FROM regress_tasks.runs WHERE task = 'as_a';
SELECT cachekit.task_result(:as_a) AS result_a, cachekit.task_result(:b_reads) AS result_b;
SELECT state, attempts, last_error ->> 'sqlstate' AS sqlstate, last_error ->> 'message' AS message,
       run_at > now() AS retry_later
  FROM cachekit.tasks WHERE id = :read_b;
SELECT cachekit.cancel_task(:read_b);
COMMIT;

-- No way out of the role: SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION
-- (also through set_config) fail; a SET does not outlive its task.
SET ROLE regress_task_a;
SELECT array_agg(e) AS escapes FROM (
    SELECT cachekit.enqueue('default', 'regress_tasks.run_sql', jsonb_build_object('do', s), max_attempts => 1) AS e
      FROM unnest(ARRAY['SET ROLE regress_task_b', 'RESET ROLE', 'SET SESSION AUTHORIZATION postgres',
                        'SELECT set_config(''role'', ''regress_task_b'', false)',
                        'SELECT set_config(''session_authorization'', ''regress_task_b'', false)']) s) x \gset
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.run_sql', '{"do": "SET work_mem = ''77MB''"}') AS set_wm \gset
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.run_sql', '{"sql": "SELECT current_setting(''work_mem'')"}') AS show_wm \gset
RESET ROLE;
SELECT regress.wait_task(e) AS state FROM unnest(:'escapes'::bigint[]) e ORDER BY e;
SELECT t.state, t.last_error ->> 'sqlstate' AS sqlstate, t.last_error ->> 'message' AS message
  FROM unnest(:'escapes'::bigint[]) e JOIN cachekit._tasks t ON t.id = e ORDER BY e;
SELECT regress.wait_task(:set_wm) AS set_wm, regress.wait_task(:show_wm) AS show_wm,
       cachekit.task_result(:show_wm) = to_jsonb(current_setting('work_mem')) AS setting_reset;

-- A rolled-back enqueue never runs; a committed one after it does.
BEGIN;
SELECT cachekit.enqueue('default', 'regress_tasks.record', '{"name": "rolled_back"}') IS NOT NULL AS enqueued;
ROLLBACK;
SELECT cachekit.enqueue('default', 'regress_tasks.record', '{"name": "after_rollback"}') AS after_rollback \gset
SELECT regress.wait_task(:after_rollback) AS after_rollback;
SELECT count(*) FILTER (WHERE task = 'rolled_back') AS rolled_back_runs,
       count(*) FILTER (WHERE task = 'after_rollback') AS committed_runs
  FROM regress_tasks.runs;

-- A prepared enqueue runs only once COMMIT PREPARED makes it durable (found
-- by the executors' poll: COMMIT PREPARED wakes no one).
BEGIN;
SELECT cachekit.enqueue('default', 'regress_tasks.record', '{"name": "two_phase"}') AS two_phase \gset
PREPARE TRANSACTION 'regress_task_2pc';
SELECT pg_sleep(0.5);
SELECT count(*) AS runs_before_commit FROM regress_tasks.runs WHERE task = 'two_phase';
COMMIT PREPARED 'regress_task_2pc';
SELECT regress.wait_task(:two_phase) AS two_phase;
SELECT count(*) AS runs_after_commit FROM regress_tasks.runs WHERE task = 'two_phase';

-- Unique keys: one queued task per (role, queue, key).
SELECT cachekit.pause_queue('regress_serial');
SET ROLE regress_task_a;
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "u1"}', unique_key => 'k') AS u1 \gset
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "u2"}', unique_key => 'k') = :u1 AS same_id;
RESET ROLE;
SET ROLE regress_task_b;
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "u3"}', unique_key => 'k') = :u1 AS other_role_same_id;
RESET ROLE;

-- Priorities and run_at, in a queue that runs one task at a time.
SET ROLE regress_task_a;
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "low"}', priority => -5) AS low \gset
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "high"}', priority => 10) AS high \gset
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "later"}', run_at => now() + interval '6 s', priority => 100) AS later \gset
RESET ROLE;
SELECT state, count(*) FROM cachekit.tasks WHERE queue = 'regress_serial' GROUP BY state ORDER BY state;
SELECT cachekit.resume_queue('regress_serial');
SELECT regress.wait_task(:low) AS low, regress.wait_task(:later) AS later;
SELECT array_agg(task ORDER BY at) AS run_order FROM regress_tasks.runs WHERE task IN ('u1', 'u3', 'low', 'high', 'later');
SELECT started_at >= run_at AS not_before_run_at FROM cachekit._tasks WHERE id = :later;

-- Who sees and changes what: arguments only to the enqueuer and admins.
SET ROLE regress_task_b;
SELECT id = :as_a AS row_visible, args, result FROM cachekit.tasks WHERE id = :as_a;
SELECT regress.error_of(format('SELECT cachekit.cancel_task(%s)', :as_a));
SELECT regress.error_of(format('SELECT cachekit.retry_task(%s)', :as_a));
SELECT regress.error_of(format('SELECT cachekit.task_result(%s)', :as_a));
SELECT cachekit.task_status(:as_a) ->> 'state' AS status_state;
RESET ROLE;
SET ROLE regress_task_admin;
SELECT args ->> 'name' AS admin_sees FROM cachekit.tasks WHERE id = :as_a;
RESET ROLE;

-- Cancel and retry: a queued task is cancelled at once; a dead one retried.
SELECT cachekit.pause_queue('regress_serial');
SET ROLE regress_task_a;
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "cancelled"}') AS to_cancel \gset
SELECT cachekit.cancel_task(:to_cancel);
SELECT cachekit.cancel_task(:to_cancel);
SELECT cachekit.enqueue('default', 'regress_tasks.fail', max_attempts => 2) AS dies \gset
RESET ROLE;
SELECT regress.wait_task(:dies) AS dies;
SELECT attempts, last_error - 'attempt' AS last_error, last_error ->> 'attempt' AS attempt FROM cachekit.tasks WHERE id = :dies;
SET ROLE regress_task_a;
SELECT cachekit.retry_task(:dies);
SELECT regress.error_of(format('SELECT cachekit.retry_task(%s)', :as_a));
RESET ROLE;
SELECT regress.wait_task(:dies) AS retried_dies_again;
SELECT attempts FROM cachekit._tasks WHERE id = :dies;
SELECT cachekit.resume_queue('regress_serial');

-- A task that overruns its timeout is cancelled and retried later.
SET ROLE regress_task_a;
SELECT cachekit.enqueue('default', 'regress_tasks.run_sql', '{"sql": "SELECT pg_sleep(10)::text"}', timeout => '200 ms') AS slow \gset
RESET ROLE;
BEGIN;
SELECT regress.lock_failed_task(:slow) AS slow;
SELECT last_error ->> 'sqlstate' AS sqlstate, last_error ->> 'message' AS message FROM cachekit.tasks WHERE id = :slow;
SELECT cachekit.cancel_task(:slow);
COMMIT;

-- Cancelling a running task interrupts it and rolls its effects back.
SET ROLE regress_task_a;
SELECT cachekit.enqueue('default', 'regress_tasks.run_sql',
       '{"sql": "WITH w AS (INSERT INTO regress_tasks.runs (task) VALUES (''interrupted'') RETURNING 1) SELECT pg_sleep(20)::text FROM w"}') AS long_one \gset
RESET ROLE;
SELECT regress.wait_task(:long_one, '{running}') AS long_one;
SELECT pg_sleep(0.3);
SET ROLE regress_task_a;
SELECT cachekit.cancel_task(:long_one);
RESET ROLE;
SELECT regress.wait_task(:long_one) AS long_one;
SELECT count(*) AS interrupted_rows FROM regress_tasks.runs WHERE task = 'interrupted';
SELECT finished_at - started_at < interval '10 s' AS interrupted_early FROM cachekit._tasks WHERE id = :long_one;
-- Retried, a cancelled task runs again as new: the cancel was spent with the
-- run it stopped (it sleeps only until 'again' is recorded).
SET ROLE regress_task_a;
SELECT cachekit.enqueue('default', 'regress_tasks.run_sql',
       '{"sql": "SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM regress_tasks.runs WHERE task = ''again'') THEN 0 ELSE 20 END)::text"}') AS again \gset
RESET ROLE;
SELECT regress.wait_task(:again, '{running}') AS again;
SET ROLE regress_task_a;
SELECT cachekit.cancel_task(:again);
RESET ROLE;
SELECT regress.wait_task(:again) AS again;
INSERT INTO regress_tasks.runs (task) VALUES ('again');
SET ROLE regress_task_a;
SELECT cachekit.retry_task(:again);
RESET ROLE;
SELECT regress.wait_task(:again) AS again_retried;
SELECT state, attempts, last_error FROM cachekit._tasks WHERE id = :again;

-- Chaining: the next task exists once the first one's success commits.
CREATE FUNCTION regress.wait_named(name text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOR i IN 1..600 LOOP
        SELECT t.state INTO s FROM cachekit._tasks t WHERE t.args ->> 'name' = wait_named.name;
        EXIT WHEN s = ANY ('{succeeded,dead,cancelled}');
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN s;
END $$;
SET ROLE regress_task_a;
SELECT cachekit.enqueue('default', 'regress_tasks.record', '{"name": "first"}',
       "then" => '{"task": "regress_tasks.record", "args": {"name": "second"}, "then": {"task": "regress_tasks.record", "args": {"name": "third"}}}') AS first \gset
SELECT cachekit.enqueue('default', 'regress_tasks.fail', max_attempts => 1,
       "then" => '{"task": "regress_tasks.record", "args": {"name": "never"}}') AS broken_chain \gset
RESET ROLE;
SELECT regress.wait_task(:first) AS first, regress.wait_task(:broken_chain) AS broken_chain;
-- 'third' exists only once 'second' succeeded: wait for each by name (a
-- single scan could run before 'third' was enqueued).
SELECT regress.wait_named(n) AS wait_task FROM (VALUES ('second'), ('third')) v(n) ORDER BY n;
SELECT state, args ->> 'name' AS name, parent_id IS NOT NULL AS has_parent, role
  FROM cachekit.tasks WHERE args ->> 'name' IN ('second', 'third', 'never') ORDER BY id;

-- Losing a privilege between enqueue and run kills the task with the reason.
SELECT cachekit.pause_queue('regress_serial');
SET ROLE regress_task_a;
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "revoked"}') AS revoked \gset
RESET ROLE;
REVOKE EXECUTE ON FUNCTION regress_tasks.record(jsonb) FROM regress_task_a;
SELECT cachekit.resume_queue('regress_serial');
SELECT regress.wait_task(:revoked) AS revoked;
SELECT last_error ->> 'sqlstate' AS sqlstate, last_error ->> 'message' AS message,
       last_error ->> 'detail' AS detail FROM cachekit.tasks WHERE id = :revoked;
GRANT EXECUTE ON FUNCTION regress_tasks.record(jsonb) TO regress_task_a;

-- Queues.
SELECT regress.error_of($$SELECT cachekit.drop_queue('no_such_queue')$$);
SELECT regress.error_of($$SELECT cachekit.create_queue('bad name!', 1)$$);
SELECT regress.error_of($$SELECT cachekit.create_queue('q', 0)$$);
SELECT cachekit.pause_queue('regress_serial');
SELECT cachekit.enqueue('regress_serial', 'regress_tasks.record', '{"name": "stuck"}') IS NOT NULL AS queued;
SELECT regress.error_of($$SELECT cachekit.drop_queue('regress_serial')$$);
SELECT cachekit.drop_queue('regress_serial', cancel => true);
SELECT queue, concurrency, paused FROM cachekit.queue_stats ORDER BY queue;
SELECT depth >= 0 AS has_depth, succeeded > 0 AS has_succeeded, failed > 0 AS has_dead, retried > 0 AS has_retried,
       mean_run_time IS NOT NULL AS has_run_time
  FROM cachekit.queue_stats WHERE queue = 'default';

-- Schedules.
SET ROLE regress_task_a;
SELECT regress.error_of($$SELECT cachekit.schedule('s', '61 * * * *', 'default', 'regress_tasks.record')$$);
SELECT regress.error_of($$SELECT cachekit.schedule('s', '@hourly', 'default', 'regress_tasks.record', time_zone => 'Mars/Olympus')$$);
SELECT regress.error_of($$SELECT cachekit.schedule('s', '@hourly', 'default', 'regress_tasks.record', overlap => 'sometimes')$$);
SELECT regress.error_of($$SELECT cachekit.schedule('s', '@hourly', 'nope', 'regress_tasks.record')$$);
SELECT cachekit.schedule('regress_tick', '1 second', 'default', 'regress_tasks.record', '{"name": "tick"}') > now() AS next_run_later;
SELECT cachekit.schedule('regress_daily', '30 2 * * *', 'default', 'regress_tasks.record', '{}', 'America/New_York') AS next_daily \gset
RESET ROLE;
SELECT extract(hour FROM :'next_daily'::timestamptz AT TIME ZONE 'America/New_York') AS local_hour;
SET ROLE regress_task_b;
SELECT regress.error_of($$SELECT cachekit.unschedule('regress_tick')$$);
RESET ROLE;
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN (SELECT count(*) FROM regress_tasks.runs WHERE task = 'tick') >= 2;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT (SELECT count(*) FROM regress_tasks.runs WHERE task = 'tick') >= 2 AS ticked,
       (SELECT count(DISTINCT who) FROM regress_tasks.runs WHERE task = 'tick') AS tick_roles;
SELECT name, cron, time_zone, queue, task, overlap, role, next_run IS NOT NULL AS has_next
  FROM cachekit.schedules ORDER BY name;
SET ROLE regress_task_a;
SELECT cachekit.unschedule('regress_tick'), cachekit.unschedule('regress_daily'), cachekit.unschedule('regress_tick');
RESET ROLE;

-- Pruning: finished tasks older than cachekit.task_retention go, nothing
-- unfinished does (whatever its age).
UPDATE cachekit._tasks SET finished_at = now() - interval '8 days' WHERE id IN (:as_a, :dies);
UPDATE cachekit._tasks SET created_at = now() - interval '30 days', run_at = now() + interval '1 day'
 WHERE id = :read_b;
UPDATE cachekit._tasks SET state = 'queued', finished_at = NULL WHERE id = :read_b;
SELECT (cachekit.prune_tasks('{}') ->> 'tasks_deleted')::int >= 2 AS pruned;
SELECT id = :read_b AS kept_queued FROM cachekit._tasks WHERE id IN (:as_a, :dies, :read_b);
SELECT cachekit.cancel_task(:read_b);

-- Clean up (every task of these roles first).
DELETE FROM cachekit._tasks WHERE role IN ('regress_task_a'::regrole, 'regress_task_b'::regrole);
DROP SCHEMA regress_tasks CASCADE;
DROP ROLE regress_task_a, regress_task_b, regress_task_none, regress_task_admin;
