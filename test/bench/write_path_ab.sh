#!/usr/bin/env bash
# A/B of two builds of pg_cachekit.so on the write path (issue 11 part 4):
# one fsync-on sandbox; per repetition and build, the server restarts with
# that build's library and runs pgbench TPC-B (scale 10, 4 clients) for each
# variant, reporting TPS and the CPU per transaction of the server (the
# postmaster and every process it forks while perf is attached) plus Redis.
# On a shared machine TPS swings with other load; CPU per transaction much
# less. Variants as in invalidation.sh; *_pac ones only for builds that know
# cachekit.publish_at_commit.
#
# usage: A_SO=/path/a.so B_SO=/path/b.so test/bench/write_path_ab.sh
# Environment: SECS (8), REPS (3), PAC_BUILDS (builds with publish_at_commit,
# default "b"), PG_CONFIG and CACHEKIT_PG_BINDIR as for the tests.
# Overwrites the installed pg_cachekit.so; leaves B's installed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${A_SO:?A_SO=path of build a's pg_cachekit.so}" "${B_SO:?B_SO=path of build b's pg_cachekit.so}"
SECS=${SECS:-8}
REPS=${REPS:-3}
PAC_BUILDS=${PAC_BUILDS:-b}
LIB=$("${PG_CONFIG:-pg_config}" --pkglibdir)/pg_cachekit.so
export CACHEKIT_SANDBOX_DIR=${CACHEKIT_SANDBOX_DIR:-/tmp/pg_cachekit_bench_write_path}
export CACHEKIT_SANDBOX_FSYNC=on
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
install_so() { cp "$1" "$LIB.tmp" && mv "$LIB.tmp" "$LIB"; }
trap 'install_so "$B_SO"; test/sandbox stop >/dev/null 2>&1 || true' EXIT
install_so "$B_SO"
eval "$(test/sandbox start 2>/dev/null)"
export PGDATABASE=bench
createdb bench
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION pg_cachekit"
pgbench -q -i -s 10 >/dev/null 2>&1
tables="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history"
has_pac() { [[ " $PAC_BUILDS " == *" $1 "* ]]; }
set_variant() {  # build variant
	if has_pac "$1"; then
		q "ALTER SYSTEM RESET cachekit.publish_at_commit"
		case $2 in *_pac) q "ALTER SYSTEM SET cachekit.publish_at_commit = on" ;; esac
		q "SELECT pg_reload_conf()" >/dev/null
	fi
	q "SELECT cachekit.drop_key_rule(name) FROM cachekit.key_rules" >/dev/null
	for t in $tables; do q "SELECT cachekit.unwatch('$t')" >/dev/null; done
	case $2 in
	plain) ;;
	watched | watched_pac) for t in $tables; do q "SELECT cachekit.watch('$t')" >/dev/null; done ;;
	watched_rule | watched_rule_pac)
		for t in $tables; do q "SELECT cachekit.watch('$t')" >/dev/null; done
		q "SELECT cachekit.invalidate_key_on('pgbench_accounts', 'acct:{aid}')" >/dev/null ;;
	esac
	q "CHECKPOINT"
}
echo "# rep build variant tps cpu_us_per_tx"
for rep in $(seq 1 "$REPS"); do
	for b in a b; do
		so=$A_SO
		[ "$b" = b ] && so=$B_SO
		install_so "$so"
		as_postgres "$CACHEKIT_PG_BINDIR/pg_ctl" -D "$CACHEKIT_SANDBOX_DIR/data" -w restart -m fast >/dev/null
		vs="plain watched watched_rule"
		has_pac "$b" && vs="plain watched watched_pac watched_rule watched_rule_pac"
		for v in $vs; do
			set_variant "$b" "$v"
			# perf first: only processes forked after it attached are counted,
			# and it outlives pgbench so that the backends' counts are in.
			perf stat -x, -e task-clock -p "$(head -1 "$CACHEKIT_SANDBOX_DIR/data/postmaster.pid"),$(cat "$CACHEKIT_SANDBOX_DIR/redis.pid")" \
				-o "$CACHEKIT_SANDBOX_DIR/perf.out" -- sleep $((SECS + 3)) 2>/dev/null &
			pp=$!
			sleep 0.5
			pgbench -n -b tpcb-like -c 4 -j 2 -T "$SECS" >"$CACHEKIT_SANDBOX_DIR/pgbench.out" 2>/dev/null
			wait $pp || true
			n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$CACHEKIT_SANDBOX_DIR/pgbench.out")
			tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$CACHEKIT_SANDBOX_DIR/pgbench.out")
			awk -F, -v r="$rep" -v b="$b" -v v="$v" -v n="$n" -v t="$tps" \
				'/task-clock/ {printf "%s %s %s %.0f %.1f\n", r, b, v, t, $1 * 1000 / n}' "$CACHEKIT_SANDBOX_DIR/perf.out"
		done
	done
done
