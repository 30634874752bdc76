#!/usr/bin/env bash
# Randomized consistency check of cachekit.cached_query: writer threads commit
# increments to a watched table while reader threads read it through the cache;
# no read may be older than a commit that finished before it started, nor show
# data that was never committed. See test/consistency/consistency.cpp.
# Runs in a database of its own, created here and dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=build/cmake/cachekit_consistency
db=cachekit_consistency

if [[ ! -x $bin ]]; then
	echo "# $bin is missing; building it" >&2
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
	cmake --build build/cmake -j2 --target cachekit_consistency >&2
fi

trap 'dropdb --if-exists --force "$db" >/dev/null 2>&1 || true' EXIT

dropdb --if-exists --force "$db"
createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c 'CREATE EXTENSION pg_cachekit'

rc=0
PGDATABASE=$db "$bin" --writers 3 --readers 3 --ops 3000 --seed 42 || rc=$?
if ((rc == 0)); then
	echo "ok - cached_query: no stale or phantom reads (seed 42)"
else
	echo "not ok - cached_query consistency check failed (exit $rc)"
fi
# The same workload on a table watched by its id (per-value invalidation:
# single-id reads key on their id's bucket, sums on the whole table), then
# by ranges of 4 ids.
for by in "--watch-by id" "--watch-by id --bucket-width 4"; do
	run_rc=0
	# shellcheck disable=SC2086
	PGDATABASE=$db "$bin" --writers 3 --readers 3 --ops 3000 --seed 43 $by || run_rc=$?
	if ((run_rc == 0)); then
		echo "ok - cached_query $by: no stale or phantom reads (seed 43)"
	else
		echo "not ok - cached_query $by: consistency check failed (exit $run_rc)"
		rc=$run_rc
	fi
done
# The same workloads through transparent caching: the readers send the
# plain statements, served by the cache node (cachekit.transparent = all).
for by in "" "--watch-by id"; do
	run_rc=0
	# shellcheck disable=SC2086
	PGDATABASE=$db PGOPTIONS='-c cachekit.transparent=all' "$bin" --writers 3 --readers 3 \
		--ops 3000 --seed 44 --transparent $by || run_rc=$?
	if ((run_rc == 0)); then
		echo "ok - transparent $by: no stale or phantom reads (seed 44)"
	else
		echo "not ok - transparent $by: consistency check failed (exit $run_rc)"
		rc=$run_rc
	fi
done
exit "$rc"
