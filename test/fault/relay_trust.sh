#!/usr/bin/env bash
# The outbox relay trusts nothing it did not create (issue 7, item 1):
#  1. a role with only LOGIN CREATEDB builds, in a database of its own, a
#     fake `cachekit.outbox` — a table with a BEFORE DELETE trigger that
#     makes it superuser, and (second database) a view whose WHERE clause
#     does the same — with a row asking to delete every key (`"*"`). The
#     launcher visits both databases; neither role becomes superuser, and
#     no key in Redis db 0 is deleted.
#  2. with the real extension installed, an outbox row (written by a
#     superuser) and a key rule whose pattern has no literal prefix never
#     delete every key either: the relay warns and counts them as failures.
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
data_dir="$CACHEKIT_SANDBOX_DIR/data"
db_t=cachekit_trust_trigger
db_v=cachekit_trust_view
db_x=cachekit_trust_ext
canary=cachekit:trust:canary
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
r() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() { echo "not ok - $*"; exit 1; }
cleanup() {
	for d in "$db_t" "$db_v" "$db_x"; do dropdb --if-exists "$d" >/dev/null 2>&1 || true; done
	for u in ck_mallory ck_mallory_v; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS $u" >/dev/null 2>&1 || true; done
	r del "$canary" cachekit:trust:k2 >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

is_super() { q postgres "SELECT rolsuper FROM pg_roles WHERE rolname = '$1'"; }
canary_alive() { [ "$(r exists "$canary")" = "1" ]; }
r set "$canary" alive >/dev/null

# 1. Databases built by a role that may only create databases.
q postgres "CREATE ROLE ck_mallory LOGIN CREATEDB; CREATE ROLE ck_mallory_v LOGIN CREATEDB"
as_mallory() { psql -X -q -At -v ON_ERROR_STOP=1 -U "$1" -d "$2" -c "$3"; }
as_mallory ck_mallory postgres "CREATE DATABASE $db_t"
as_mallory ck_mallory "$db_t" "
CREATE SCHEMA cachekit;
CREATE TABLE cachekit.outbox (id bigint, created_at timestamptz, payload jsonb);
CREATE FUNCTION cachekit.escalate() RETURNS trigger LANGUAGE plpgsql AS
  \$\$BEGIN ALTER ROLE ck_mallory SUPERUSER; RETURN OLD; END\$\$;
CREATE TRIGGER escalate BEFORE DELETE ON cachekit.outbox FOR EACH ROW EXECUTE FUNCTION cachekit.escalate();
CREATE TABLE cachekit._key_rules (name text, template text);
INSERT INTO cachekit._key_rules VALUES ('all', '{id}');
INSERT INTO cachekit.outbox VALUES (1, now() - interval '1 hour', '{\"channel\": \"\", \"patterns\": [\"*\"]}');
ALTER DATABASE $db_t SET search_path = cachekit, public;"
as_mallory ck_mallory_v postgres "CREATE DATABASE $db_v"
as_mallory ck_mallory_v "$db_v" "
CREATE SCHEMA cachekit;
CREATE FUNCTION public.escalate() RETURNS boolean LANGUAGE plpgsql AS
  \$\$BEGIN ALTER ROLE ck_mallory_v SUPERUSER; RETURN true; END\$\$;
CREATE VIEW cachekit.outbox AS
  SELECT 1::bigint AS id, now() - interval '1 hour' AS created_at,
         '{\"channel\": \"\", \"patterns\": [\"*\"]}'::jsonb AS payload
  WHERE public.escalate();
CREATE RULE keep AS ON DELETE TO cachekit.outbox DO INSTEAD NOTHING;"

# The launcher starts a relay in every database that allows connections; a
# relay that finds no pg_cachekit extension leaves at once and says so in the
# registry, which health() of any database with the extension shows.
createdb "$db_x"
q "$db_x" "CREATE EXTENSION pg_cachekit"
visited() {  # $1: database name
	local oid
	oid=$(q postgres "SELECT oid FROM pg_database WHERE datname = '$1'")
	[ "$(q "$db_x" "SELECT count(*) FROM jsonb_array_elements(cachekit.health() -> 'invalidation' -> 'relays' -> 'databases') d
	                WHERE (d ->> 'datid')::oid = $oid AND d ->> 'state' = 'no extension'" 2>/dev/null)" = "1" ]
}
seen=0
for _ in $(seq 1 300); do
	[ "$(is_super ck_mallory)" = "f" ] || fail "ck_mallory became superuser through the relay (trigger on a fake outbox)"
	[ "$(is_super ck_mallory_v)" = "f" ] || fail "ck_mallory_v became superuser through the relay (view as a fake outbox)"
	canary_alive || fail "a forged outbox row made the relay delete every key in Redis db 0"
	if visited "$db_t" && visited "$db_v"; then seen=$((seen + 1)); fi
	# Both relays looked and left (twice in a row, so not a stale state);
	# whatever they would have done, they had the time to do it.
	[ "$seen" -ge 2 ] && break
	sleep 0.1
done
[ "$seen" -ge 2 ] || fail "the launcher did not visit the two databases within 30 s"
sleep 1
[ "$(is_super ck_mallory)" = "f" ] && [ "$(is_super ck_mallory_v)" = "f" ] || fail "a role became superuser through the relay"
canary_alive || fail "the canary key was deleted"
[ "$(q "$db_t" "SELECT count(*) FROM cachekit.outbox")" = "1" ] || fail "the relay touched the fake outbox"
[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit outbox relay'
     AND datname IN ('$db_t', '$db_v')")" = "0" ] || fail "a relay stays in a database without the extension"
echo "ok - fake outboxes (trigger, view) in databases without the extension: no superuser, no key deleted, no relay stays"

# 2. The real extension: a forged row and a rule that would match every key.
health() { q "$db_x" "SELECT cachekit.health() -> 'invalidation' $1"; }
failures_before=$(health "->> 'delivery_failures'")
# The key exists before the row is committed: the relay may process the row
# at once.
r set cachekit:trust:k1 v >/dev/null
q "$db_x" "INSERT INTO cachekit.outbox (payload, created_at) VALUES
  ('{\"channel\": \"\", \"patterns\": [\"*\"], \"keys\": [\"cachekit:trust:k1\"]}', now() - interval '1 hour'),
  ('{\"channel\": \"\", \"patterns\": [\"?x*\", \"[a-z]*\", \"\\\\*\", \"\"]}', now() - interval '1 hour')"
for _ in $(seq 1 300); do
	[ "$(q "$db_x" "SELECT count(*) FROM cachekit.outbox")" = "0" ] && break
	sleep 0.1
done
[ "$(q "$db_x" "SELECT count(*) FROM cachekit.outbox")" = "0" ] || fail "the relay did not process the outbox rows"
canary_alive || fail "an outbox row with pattern \"*\" deleted every key"
[ "$(r exists cachekit:trust:k1)" = "0" ] || fail "the exact key of the row was not deleted"
[ "$(health "->> 'patterns_rejected'")" -ge 5 ] || fail "rejected patterns not counted: $(health "")"
[ "$(health "->> 'delivery_failures'")" -gt "$failures_before" ] || fail "rejected patterns not counted as failures"
grep -q 'cachekit relay: outbox row [0-9]*: [0-9]* key pattern(s) without a literal prefix not used' "$CACHEKIT_SANDBOX_DIR/postgres.log" ||
	fail "no WARNING naming the row"
echo "ok - outbox patterns without a literal prefix are refused (warned, counted), the row's keys still deleted"

# A key rule whose template starts with a placeholder (written past
# invalidate_key_on, as the owner could) is skipped by flush-everything,
# which an unclean restart forces.
# The sandbox runs with synchronous_commit = off: these must survive the crash.
export PGOPTIONS="-c synchronous_commit=on"
q "$db_x" "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"
q "$db_x" "SELECT cachekit.invalidate_key_on('t', 'cachekit:trust:t:{id}')" >/dev/null
q "$db_x" "INSERT INTO cachekit._key_rules (name, table_name, template, operations) VALUES ('bad', 't', '{id}', '{UPDATE}')"
unset PGOPTIONS
r set cachekit:trust:t:1 v >/dev/null
as_postgres "$bindir/pg_ctl" -D "$data_dir" -m immediate stop >/dev/null
as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null
for _ in $(seq 1 300); do
	[ "$(health "-> 'relay' ->> 'flush_pending'" 2>/dev/null)" = "false" ] && [ "$(r exists cachekit:trust:t:1)" = "0" ] && break
	sleep 0.1
done
[ "$(r exists cachekit:trust:t:1)" = "0" ] || fail "the flush after the crash did not delete the good rule's keys"
canary_alive || fail "flush-everything used a rule pattern without a literal prefix"
grep -q 'cachekit relay: key rule "bad" of database "'"$db_x"'" has a key pattern without a literal prefix' "$CACHEKIT_SANDBOX_DIR/postgres.log" ||
	fail "no WARNING naming the rule"
echo "ok - flush-everything skips a key rule whose pattern has no literal prefix (warned), deletes the others"

# 3. Only the extension's own tables: a table that merely has the name (here
# a superuser swapped the member out, as only a superuser could) is never
# read or written; the relay treats the database as one without the
# extension and leaves.
r set cachekit:trust:k2 v >/dev/null
q "$db_x" "ALTER EXTENSION pg_cachekit DROP TABLE cachekit.outbox;
ALTER TABLE cachekit.outbox RENAME TO outbox_member;
CREATE TABLE cachekit.outbox (LIKE cachekit.outbox_member INCLUDING DEFAULTS);
INSERT INTO cachekit.outbox (payload, created_at)
  VALUES ('{\"channel\": \"\", \"keys\": [\"cachekit:trust:k2\"]}', now() - interval '1 hour')"
q "$db_x" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE backend_type = 'pg_cachekit outbox relay' AND datname = '$db_x'" >/dev/null
seen=0
for _ in $(seq 1 300); do
	visited "$db_x" && seen=$((seen + 1))
	[ "$seen" -ge 2 ] && break
	sleep 0.1
done
[ "$seen" -ge 2 ] || fail "no relay looked at $db_x again within 30 s"
[ "$(r exists cachekit:trust:k2)" = "1" ] || fail "the relay delivered a row of a table that is not the extension's"
[ "$(q "$db_x" "SELECT count(*) FROM cachekit.outbox")" = "1" ] || fail "the relay deleted from a table that is not the extension's"
echo "ok - a table named cachekit.outbox that is not a member of the extension is left alone"
