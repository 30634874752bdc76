// What a client sees of transparent caching, through libpq and the wire
// protocol: a statement served from the cache returns exactly the bytes, in
// text and in binary format, and the same row description (types, typmods,
// source table and column) as the same statement run without the cache.
//
//   cachekit_protocol        (PG* environment variables; a database with
//                             pg_cachekit created and Redis reachable)
//
// Covers the extended protocol with an unnamed statement, a named prepared
// statement past the point where Postgres switches to a generic plan (and
// across an invalidation committed by another connection), pipeline mode and
// single-row mode. Prints one "ok"/"not ok" line per check; exit status 1
// when any failed.
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const std::string &what) {
  printf("%s - %s\n", ok ? "ok" : "not ok", what.c_str());
  if (!ok) ++failures;
}

PGconn *connect_with(const char *options) {
  const char *keys[] = {"options", "application_name", nullptr};
  const char *values[] = {options, "cachekit_protocol", nullptr};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "cachekit_protocol: %s", PQerrorMessage(c));
    exit(1);
  }
  return c;
}

void exec_ok(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "cachekit_protocol: %s: %s", sql, PQerrorMessage(c));
    exit(1);
  }
  PQclear(r);
}

std::string outcome(PGconn *c) {
  PGresult *r = PQexec(c, "SELECT cachekit.last_outcome()");
  std::string s = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "error";
  PQclear(r);
  return s;
}

// Everything a client can observe of a result: the row description and
// every value's bytes.
std::string observe(const PGresult *r) {
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_SINGLE_TUPLE)
    return std::string("error: ") + PQresultErrorMessage(r);
  std::string out;
  int nf = PQnfields(r);
  for (int f = 0; f < nf; ++f)
    out += std::string(PQfname(r, f)) + "/" + std::to_string(PQftype(r, f)) + "/" +
           std::to_string(PQfmod(r, f)) + "/" + std::to_string(PQftable(r, f)) + "/" +
           std::to_string(PQftablecol(r, f)) + "/" + std::to_string(PQfformat(r, f)) + ";";
  out += "\n";
  for (int row = 0; row < PQntuples(r); ++row) {
    for (int f = 0; f < nf; ++f) {
      if (PQgetisnull(r, row, f)) {
        out += "N|";
        continue;
      }
      out += std::to_string(PQgetlength(r, row, f)) + ":" +
             std::string(PQgetvalue(r, row, f), PQgetlength(r, row, f)) + "|";
    }
    out += "\n";
  }
  return out;
}

std::string run_params(PGconn *c, const char *sql, const char *param, int format) {
  const char *values[] = {param};
  PGresult *r = PQexecParams(c, sql, 1, nullptr, values, nullptr, nullptr, format);
  std::string s = observe(r);
  PQclear(r);
  return s;
}

std::string run_prepared(PGconn *c, const char *name, const char *param, int format) {
  const char *values[] = {param};
  PGresult *r = PQexecPrepared(c, name, 1, values, nullptr, nullptr, format);
  std::string s = observe(r);
  PQclear(r);
  return s;
}

}  // namespace

int main() {
  PGconn *cached = connect_with("-c cachekit.transparent=all");
  PGconn *direct = connect_with("-c cachekit.transparent=off");
  exec_ok(direct,
          "DROP SCHEMA IF EXISTS cachekit_protocol CASCADE; CREATE SCHEMA cachekit_protocol; "
          "CREATE TABLE cachekit_protocol.items (id int PRIMARY KEY, n numeric(12,3), t text, "
          "ts timestamptz, b bytea, arr int[], j jsonb, f float8); "
          "INSERT INTO cachekit_protocol.items SELECT g, g * 1.125, 'row ' || g || E'\\t\"q\"', "
          "timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour', "
          "decode(md5(g::text), 'hex'), ARRAY[g, NULL, -g], jsonb_build_object('g', g, 'h', "
          "ARRAY[g]), g / 3.0 FROM generate_series(1, 50) g; "
          "INSERT INTO cachekit_protocol.items VALUES (51, NULL, NULL, NULL, NULL, NULL, NULL, "
          "'NaN'); SELECT cachekit.watch('cachekit_protocol.items')");

  const char *sql =
      "SELECT id, n, t, ts, b, arr, j, f, n * 2 AS twice FROM cachekit_protocol.items "
      "WHERE id <= $1 ORDER BY id DESC";
  // 1. Unnamed statements, text and binary.
  for (int format : {0, 1}) {
    const std::string fmt = format ? "binary" : "text";
    std::string want = run_params(direct, sql, "51", format);
    std::string first = run_params(cached, sql, "51", format);
    std::string o1 = outcome(cached);
    std::string second = run_params(cached, sql, "51", format);
    std::string o2 = outcome(cached);
    // Results are kept as text: the entry the text-format run stored serves
    // the binary-format one.
    const std::string want_first = format ? "hit" : "miss";
    check(o1 == want_first && o2 == "hit",
          "unnamed " + fmt + ": " + want_first + " then hit (" + o1 + ", " + o2 + ")");
    check(first == want, "unnamed " + fmt + ": a miss returns what the direct statement returns");
    check(second == want, "unnamed " + fmt + ": a hit returns the same bytes and row description");
  }

  // 2. A named prepared statement past the switch to a generic plan, across
  //    a write committed by another connection.
  const char *one = "SELECT n, j FROM cachekit_protocol.items WHERE id = $1";
  PGresult *p = PQprepare(cached, "p_one", one, 1, nullptr);
  check(PQresultStatus(p) == PGRES_COMMAND_OK, "PQprepare");
  PQclear(p);
  p = PQprepare(direct, "p_one", one, 1, nullptr);
  PQclear(p);
  bool same = true;
  std::string outcomes;
  for (int i = 0; i < 8; ++i) {
    same = same && run_prepared(cached, "p_one", "7", 1) == run_prepared(direct, "p_one", "7", 1);
    outcomes += outcome(cached) + " ";
  }
  check(same, "named prepared, binary: 8 executions return the direct bytes");
  check(outcomes == "miss hit hit hit hit hit hit hit ",
        "named prepared: miss then hits, custom and generic plans (" + outcomes + ")");
  exec_ok(direct,
          "UPDATE cachekit_protocol.items SET n = 777.5, j = '{\"new\": true}' WHERE id = 7");
  std::string after = run_prepared(cached, "p_one", "7", 1);
  std::string o_after = outcome(cached);
  check(after == run_prepared(direct, "p_one", "7", 1) && after.find("new") != std::string::npos,
        "named prepared: the committed write is seen (" + o_after + ")");
  run_prepared(cached, "p_one", "7", 1);
  check(outcome(cached) == "hit", "named prepared: hit again after the miss");

  // 3. Pipeline mode: five executions and a Sync.
  std::string want = run_params(direct, sql, "20", 1);
  bool pipeline_ok = PQenterPipelineMode(cached) == 1;
  for (int i = 0; i < 5 && pipeline_ok; ++i) {
    const char *values[] = {"20"};
    pipeline_ok = PQsendQueryParams(cached, sql, 1, nullptr, values, nullptr, nullptr, 1) == 1;
  }
  pipeline_ok = pipeline_ok && PQpipelineSync(cached) == 1;
  int results = 0;
  while (pipeline_ok) {
    PGresult *r = PQgetResult(cached);
    if (r == nullptr) continue;  // end of one query's results
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    pipeline_ok = observe(r) == want;
    ++results;
    PQclear(r);
  }
  check(pipeline_ok && results == 5, "pipeline mode: 5 results, each the direct bytes");
  PQexitPipelineMode(cached);

  // 4. Single-row mode.
  const char *values[] = {"51"};
  bool single_ok = PQsendQueryParams(cached, sql, 1, nullptr, values, nullptr, nullptr, 0) == 1 &&
                   PQsetSingleRowMode(cached) == 1;
  std::string rows;
  int nrows = 0;
  while (single_ok) {
    PGresult *r = PQgetResult(cached);
    if (r == nullptr) break;
    if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
      ++nrows;
      std::string o = observe(r);
      rows += o.substr(o.find('\n') + 1);
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      single_ok = false;
    }
    PQclear(r);
  }
  std::string direct_rows = run_params(direct, sql, "51", 0);
  direct_rows = direct_rows.substr(direct_rows.find('\n') + 1);
  check(single_ok && nrows == 51 && rows == direct_rows,
        "single-row mode: 51 rows, one by one, the direct values (" + outcome(cached) + ")");

  exec_ok(direct, "DROP SCHEMA cachekit_protocol CASCADE");
  PQfinish(cached);
  PQfinish(direct);
  return failures == 0 ? 0 : 1;
}
