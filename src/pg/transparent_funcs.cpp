// SQL functions of transparent caching: the registry of statement shapes
// (create_cache, drop_cache, the caches view's statistics).
#include <map>
#include <string>

#include "core/error.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/query_stats.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"
#include "pg/transparent_plan.h"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/rel.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

std::string text_arg(FunctionCallInfo fcinfo, int i, const char *name) {
  if (PG_ARGISNULL(i))
    throw Error(sqlstate::kNullValueNotAllowed, std::string(name) + " must not be NULL");
  return pg_call([&] { return std::string(TextDatumGetCString(PG_GETARG_DATUM(i))); });
}

void spi_connect() {
  if (pg_call([] { return SPI_connect(); }) != SPI_OK_CONNECT)
    throw Error(sqlstate::kInternalError, "SPI_connect failed");
}

}  // namespace

// create_cache(query, ttl, namespace) -> fingerprint. Refuses a statement
// that could not be served (with the reason), so that a registration is
// never silently useless; the shape may still become unservable later (a
// table unwatched): then the cache node bypasses, with the reason.
CK_SQL_FUNCTION(ck_create_cache) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.create_cache");
    const std::string query = text_arg(fcinfo, 0, "query");
    std::optional<int> ttl;
    if (!PG_ARGISNULL(1)) {
      ttl = PG_GETARG_INT32(1);
      if (*ttl <= 0)
        throw Error(sqlstate::kInvalidParameterValue, "ttl must be a positive number of seconds",
                    "The ttl given was " + std::to_string(*ttl) + ".",
                    "Pass NULL to use the namespace's ttl or cachekit.default_ttl.");
    }
    std::string ns;
    if (!PG_ARGISNULL(2)) {
      ns = text_arg(fcinfo, 2, "namespace");
      if (ns.size() >= NAMEDATALEN)
        throw Error(sqlstate::kInvalidParameterValue, "namespace is too long",
                    "Namespaces are limited to 63 bytes.");
    }
    auto shape = analyse_shape(query, "create_cache");
    if (shape->q.uncacheable)
      throw Error(sqlstate::kFeatureNotSupported, shape->q.reason, shape->q.detail, shape->q.hint);
    if (shape->q.deps.empty())
      throw Error(sqlstate::kFeatureNotSupported,
                  "create_cache needs a statement that reads a table",
                  "Nothing would ever invalidate it: the statement reads no table.");
    const int64 fp = static_cast<int64>(shape->fingerprint);
    spi_connect();
    pg_call([&] {
      Oid types[4] = {INT8OID, TEXTOID, INT4OID, TEXTOID};
      Datum values[4] = {Int64GetDatum(fp), CStringGetTextDatum(query.c_str()),
                         Int32GetDatum(ttl.value_or(0)), CStringGetTextDatum(ns.c_str())};
      char nulls[5] = {' ', ' ', ttl ? ' ' : 'n', ns.empty() ? 'n' : ' ', '\0'};
      int ret = SPI_execute_with_args(
          "INSERT INTO cachekit._caches AS c (fingerprint, query, ttl, namespace) "
          "VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO UPDATE SET "
          "query = excluded.query, ttl = excluded.ttl, namespace = excluded.namespace, "
          "created_by = excluded.created_by, created_at = excluded.created_at",
          4, types, values, nulls, false, 0);
      if (ret != SPI_OK_INSERT)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not register the shape")));
      SPI_finish();
    });
    return Int64GetDatum(fp);
  });
}

// drop_cache(query): true when the shape was registered.
CK_SQL_FUNCTION(ck_drop_cache) {
  return cpp_entry([&]() -> Datum {
    const std::string query = text_arg(fcinfo, 0, "query");
    const int64 fp = static_cast<int64>(analyse_shape(query, "drop_cache")->fingerprint);
    spi_connect();
    uint64 deleted = pg_call([&] {
      Oid type = INT8OID;
      Datum value = Int64GetDatum(fp);
      int ret = SPI_execute_with_args("DELETE FROM cachekit._caches WHERE fingerprint = $1", 1,
                                      &type, &value, nullptr, false, 0);
      if (ret != SPI_OK_DELETE)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not drop the shape")));
      uint64 n = SPI_processed;
      SPI_finish();
      return n;
    });
    return BoolGetDatum(deleted > 0);
  });
}

// Statement trigger of cachekit._caches: every backend reads the registry
// again and re-plans its cached plans (transparent_plan.cpp).
CK_SQL_FUNCTION(ck_caches_changed) {
  return cpp_entry([&]() -> Datum {
    if (!CALLED_AS_TRIGGER(fcinfo))
      throw Error(sqlstate::kFeatureNotSupported, "_caches_changed must be called as a trigger");
    auto *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
    Oid relid = RelationGetRelid(trigdata->tg_relation);
    pg_call([&] { CacheInvalidateRelcacheByRelid(relid); });
    return PointerGetDatum(nullptr);
  });
}

// The statistics of the registered shapes of this database, summed over
// roles and namespaces: counts only (the caches view shows the registered
// text); other fingerprints are not shown (query_stats' rules apply there).
CK_SQL_FUNCTION(ck_shape_stats) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.caches");
    std::vector<QueryStatsRow> rows = query_stats_snapshot(MyDatabaseId, GetUserId(), true);
    struct Sum {
      uint64_t calls = 0, hits = 0, misses = 0, bypassed = 0, l1_hits = 0;
      double hit_ms = 0, miss_ms = 0;
    };
    std::map<uint64_t, Sum> sums;
    for (const QueryStatsRow &r : rows) {
      if (!find_registration(r.fingerprint)) continue;
      Sum &s = sums[r.fingerprint];
      s.calls += r.calls;
      s.hits += r.hits;
      s.misses += r.misses;
      s.l1_hits += r.l1_hits;
      for (uint64_t b : r.bypasses) s.bypassed += b;
      s.hit_ms += r.hit_ms_total;
      s.miss_ms += r.miss_ms_total;
    }
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (const auto &[fp, s] : sums) {
      constexpr int kCols = 8;
      Datum v[kCols];
      bool n[kCols] = {};
      v[0] = Int64GetDatum(static_cast<int64>(fp));
      v[1] = Int64GetDatum(static_cast<int64>(s.calls));
      v[2] = Int64GetDatum(static_cast<int64>(s.hits));
      v[3] = Int64GetDatum(static_cast<int64>(s.misses));
      v[4] = Int64GetDatum(static_cast<int64>(s.bypassed));
      v[5] = Int64GetDatum(static_cast<int64>(s.l1_hits));
      v[6] = Float8GetDatum(s.hit_ms);
      v[7] = Float8GetDatum(s.miss_ms);
      pg_call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n); });
    }
    return static_cast<Datum>(0);
  });
}
