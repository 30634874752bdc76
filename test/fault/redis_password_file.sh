#!/usr/bin/env bash
# cachekit.redis_password_file: a Redis started with requirepass is reached
# with the password kept in a file (no password in any setting), a file with
# group or world access is refused (ALTER SYSTEM, and a backend that finds it
# so later connects without it), a rotated password is picked up, and the
# password shows up neither in settings nor in the server log.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "not ok - $*"; exit 1; }
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
db=cachekit_pwfile
secret="Fault-Pw-$RANDOM$RANDOM"
rotated="Rotated-Pw-$RANDOM$RANDOM"
pg_user=$(stat -c %U "$CACHEKIT_SANDBOX_DIR/data")

dir=$(mktemp -d /tmp/pg_cachekit_pwfile.XXXXXX)
chmod 755 "$dir" # the server's user must reach the file; the file itself stays private
pwfile=$dir/redis.pw
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET cachekit.redis_password_file" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	[ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

write_pw() { # content mode
	printf '%s\n' "$1" >"$pwfile"
	chown "$pg_user" "$pwfile"
	chmod "$2" "$pwfile"
}
redis-server --port "$rport" --bind 127.0.0.1 --requirepass "$secret" --save '' --appendonly no \
	--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
for _ in $(seq 1 100); do
	redis-cli -p "$rport" -a "$secret" --no-auth-warning ping 2>/dev/null | grep -q PONG && break
	sleep 0.05
done

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_cachekit" >/dev/null
# One session: the cache on the password-protected Redis, errors instead of misses.
session() {
	psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 2>&1 <<SQL
SET cachekit.redis_url = 'redis://127.0.0.1:$rport/0';
SET cachekit.strict = on;
$1
SQL
}
# Waits until new sessions see the setting at `want`.
wait_setting() {
	for _ in $(seq 1 100); do
		[ "$(psql -X -At -d "$db" -c "SHOW cachekit.redis_password_file")" = "$1" ] && return 0
		sleep 0.05
	done
	fail "cachekit.redis_password_file did not become '$1'"
}

# 1. Without the file Redis refuses us.
out=$(session "SELECT cachekit.cache_set('fault:pw', 'x');" || true)
grep -q "Redis requires authentication" <<<"$out" || fail "requirepass not in force? $out"

# 2. With it, every call authenticates.
write_pw "$secret" 600
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET cachekit.redis_password_file = '$pwfile'" \
	-c "SELECT pg_reload_conf()" >/dev/null
wait_setting "$pwfile"
out=$(session "SELECT cachekit.cache_set('fault:pw', 'stored'); SELECT cachekit.cache_get('fault:pw');")
[ "$out" = $'t\nstored' ] || fail "with the password file: $out"
[ "$(redis-cli -p "$rport" -a "$secret" --no-auth-warning get "ck:kv:$db:fault:pw")" = "stored" ] ||
	fail "value not in the password-protected Redis"
echo "ok - a Redis with requirepass is reached with the password from cachekit.redis_password_file"

# 3. Rotation: the same session picks up the new password (the file is
#    checked at most once a second).
out=$(session "SELECT cachekit.cache_get('fault:pw');
\\! redis-cli -p $rport -a $secret --no-auth-warning config set requirepass $rotated >/dev/null; printf '%s\\n' $rotated > $pwfile
SELECT pg_sleep(1.2);
\\! redis-cli -p $rport -a $rotated --no-auth-warning client kill type normal >/dev/null
SELECT cachekit.cache_get('fault:pw');")
[ "$out" = $'stored\n\nstored' ] || fail "after rotating the password: $out"
secret_now=$rotated
echo "ok - a rotated password file is picked up without a reload"

# 4. Group or world access: ALTER SYSTEM refuses the file, and a backend that
#    finds it so connects without it (and says why).
chmod 644 "$pwfile"
out=$(psql -X -q -d postgres -c "ALTER SYSTEM SET cachekit.redis_password_file = '$pwfile'" 2>&1 || true)
grep -q "has group or world access" <<<"$out" || fail "ALTER SYSTEM accepted a world-readable file: $out"
out=$(session "SELECT cachekit.cache_get('fault:pw');" || true)
grep -q "WARNING:  Redis password file is not used" <<<"$out" || fail "no warning for a world-readable file: $out"
grep -q "has group or world access" <<<"$out" || fail "warning does not say why: $out"
grep -q "Redis requires authentication" <<<"$out" || fail "a world-readable file was used: $out"
chmod 600 "$pwfile"
echo "ok - a password file with group or world access is refused"

# 5. The password is in no setting and not in the server log.
for pw in "$secret" "$secret_now"; do
	grep -q -- "$pw" "$CACHEKIT_SANDBOX_DIR/postgres.log" && fail "password in the server log"
	[ "$(psql -X -At -d "$db" -c "SELECT count(*) FROM pg_settings WHERE setting LIKE '%$pw%'")" = 0 ] ||
		fail "password in pg_settings"
	[ "$(psql -X -At -d "$db" -c "SELECT count(*) FROM pg_db_role_setting WHERE array_to_string(setconfig, ' ') LIKE '%$pw%'")" = 0 ] ||
		fail "password in pg_db_role_setting"
done
echo "ok - the password is in no setting and not in the server log"
