#!/usr/bin/env bash
# A running task cannot become more than the role that enqueued it, nor run
# forever by killing its executor (issue 8, security and fault tests):
#  1. tasks enqueued by a plain role that try SET ROLE, RESET ROLE, SET
#     SESSION AUTHORIZATION (to another role, and to the bootstrap
#     superuser, which is what the executor authenticated as) and
#     set_config('role', ...) to get at a table only another role may write:
#     each is dead with 42501 and wrote nothing; a task that writes the
#     table directly fails likewise; a task reporting its users shows the
#     enqueuer as both session and current user;
#  2. a task that terminates its own executor (pg_terminate_backend on
#     pg_backend_pid(), then sleeping or returning at once) is retried at once
#     each time and dead after max_attempts, instead of looping; the launcher
#     replaces the executors it took down.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_fault_task_escape
role_a=ck_fault_escape_a
role_b=ck_fault_escape_b
source test/fault/lib_tasks.bash
cleanup() {
	tasks_cleanup
	for r in "$role_a" "$role_b"; do qdb postgres "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
cleanup

start=$(now_ms)
setup_task_db
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
CREATE ROLE $role_a LOGIN;
CREATE ROLE $role_b;
GRANT cachekit_tasks TO $role_a;
GRANT USAGE ON SCHEMA fault TO $role_a, $role_b;
CREATE TABLE fault.b_only (how text);
GRANT INSERT ON fault.b_only TO $role_b;
CREATE FUNCTION fault.set_role(a jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN SET ROLE $role_b; INSERT INTO fault.b_only VALUES ('set role'); END \$\$;
CREATE FUNCTION fault.reset_role(a jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN RESET ROLE; INSERT INTO fault.b_only VALUES ('reset role'); END \$\$;
CREATE FUNCTION fault.session_authorization(a jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN SET SESSION AUTHORIZATION $role_b; INSERT INTO fault.b_only VALUES ('set session authorization'); END \$\$;
CREATE FUNCTION fault.superuser(a jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    EXECUTE format('SET SESSION AUTHORIZATION %I', (SELECT rolname FROM pg_roles WHERE oid = 10));
    INSERT INTO fault.b_only VALUES ('superuser');
END \$\$;
CREATE FUNCTION fault.set_config_role(a jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN PERFORM set_config('role', '$role_b', false); INSERT INTO fault.b_only VALUES ('set_config'); END \$\$;
CREATE FUNCTION fault.write_directly(a jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN INSERT INTO fault.b_only VALUES ('directly'); END \$\$;
CREATE FUNCTION fault.whoami(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$
SELECT jsonb_build_object('session_user', session_user, 'current_user', current_user) \$\$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA fault TO $role_a;
-- Returns at once, or sleeps (cancelled by the SIGTERM it sent itself).
CREATE FUNCTION fault.terminate_self(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
    PERFORM pg_sleep((a->>'sleep')::float8);
    RETURN a;
END \$\$;
SQL
wait_executors "$(task_workers)" 30

# 1. Escapes, as role a.
escapes=(set_role reset_role session_authorization superuser set_config_role write_directly)
ids=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE $role_a" \
	-c "SELECT string_agg(cachekit.enqueue('default', 'fault.' || t, max_attempts => 1)::text, ' ' ORDER BY o)
	    FROM unnest(string_to_array('${escapes[*]}', ' ')) WITH ORDINALITY AS u(t, o)")
who=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "SET ROLE $role_a" -c "SELECT cachekit.enqueue('default', 'fault.whoami')")
finished() { [[ "$(state_of "$1")" =~ ^(succeeded|dead)$ ]]; }
for id in $ids $who; do wait_for 15 "task $id to finish" finished "$id"; done
# What matters most first: nothing got written as role b (or a superuser).
got=$(q "SELECT coalesce(string_agg(how, ', '), 'none') FROM fault.b_only")
[ "$got" = "none" ] || fail "tasks of $role_a wrote into $role_b's table: $got"
i=0 bad=
for id in $ids; do
	got=$(q "SELECT state || ' ' || attempts || ' ' || (last_error->>'sqlstate') || ' ' || (last_error->>'message') FROM cachekit.tasks WHERE id = $id")
	case "${escapes[$i]}" in
	write_directly) want="dead 1 42501 permission denied for table b_only" ;;
	session_authorization | superuser) want="dead 1 42501 cannot set parameter \"session_authorization\" within security-definer function" ;;
	*) want="dead 1 42501 cannot set parameter \"role\" within security-definer function" ;;
	esac
	[ "$got" = "$want" ] || bad+="; task $id (${escapes[$i]}): $got, expected $want"
	i=$((i + 1))
done
[ -z "$bad" ] || fail "tasks enqueued by $role_a${bad}"
got=$(q "SELECT state || ' ' || result::text FROM cachekit.tasks WHERE id = $who")
want="succeeded {\"current_user\": \"$role_a\", \"session_user\": \"$role_a\"}"
[ "$got" = "$want" ] || fail "task $who (whoami) enqueued by $role_a: $got, expected $want"
echo "ok - tasks enqueued by a plain role cannot SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION or set_config('role') out of it (42501) and run as it"

# 2. Tasks that terminate their own executor. Only a superuser may signal
# an executor (it runs as the bootstrap superuser), so these are enqueued
# by one.
wait_executors "$(task_workers)" 30
t_sleep=$(q "SELECT cachekit.enqueue('default', 'fault.terminate_self', '{\"sleep\": 5}', max_attempts => 3)")
t_return=$(q "SELECT cachekit.enqueue('default', 'fault.terminate_self', '{\"sleep\": 0}', max_attempts => 3)")
for id in $t_sleep $t_return; do
	wait_for 30 "task $id, which terminates its own executor, to go dead" in_state "$id" dead
	# Each attempt is retried at once (not after 1 s, then 16 s: 15.3 s at
	# least with the jitter): only the launcher's restart of the executors (a
	# scan every 2 s) may delay it, for both tasks.
	got=$(q "SELECT attempts || ' ' || (last_error->>'sqlstate') || ' ' || (last_error->>'attempt') || ' ' || (finished_at - created_at < interval '14 s') FROM cachekit.tasks WHERE id = $id")
	[ "$got" = "3 57P01 3 true" ] || fail "task $id terminating its executor: attempts, last SQLSTATE, attempt, done within 14 s: $got, expected 3 57P01 3 true"
done
wait_executors "$(task_workers)" 15
echo "ok - a task that terminates its own executor is dead after max_attempts (3), the executors are replaced"
echo "# $(($(now_ms) - start)) ms"
