// The statistics functions behind the cache_stats, query_stats and
// table_stats views, and their reset functions.
#include <string>
#include <vector>

#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/generations.h"
#include "pg/query_stats.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/timestamp.h"
}

using namespace cachekit::pg;

CK_SQL_FUNCTION(ck_cache_stats) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.cache_stats");
    constexpr int kCols = 11;
    Datum values[kCols];
    bool nulls[kCols] = {};
    auto v = [](CacheCounter c) { return Int64GetDatum(static_cast<int64>(counter_value(c))); };
    values[0] = v(CacheCounter::kGets);
    values[1] = v(CacheCounter::kHits);
    values[2] = v(CacheCounter::kMisses);
    values[3] = v(CacheCounter::kSets);
    values[4] = v(CacheCounter::kDeletes);
    values[5] = v(CacheCounter::kErrors);
    values[6] = v(CacheCounter::kBytesIn);
    values[7] = v(CacheCounter::kBytesOut);
    values[8] = v(CacheCounter::kOps);
    uint64 ops = counter_value(CacheCounter::kOps);
    if (ops > 0)
      values[9] = Float8GetDatum(static_cast<double>(counter_value(CacheCounter::kOpTimeUs)) /
                                 static_cast<double>(ops) / 1000.0);
    else
      nulls[9] = true;
    values[10] = TimestampTzGetDatum(cache_stats_reset_time());
    return pg_call([&] {
      TupleDesc tupdesc;
      if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
      return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
    });
  });
}

CK_SQL_FUNCTION(ck_cache_stats_reset) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.cache_stats_reset()");
    reset_cache_counters();
    PG_RETURN_VOID();
  });
}

// cachekit.query_stats(): the current database's rows; other roles' query
// text only for pg_read_all_stats and cachekit_admin (pg_stat_statements'
// rule: query text may hold literals such as API keys).
CK_SQL_FUNCTION(ck_query_stats) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.query_stats");
    const Oid viewer = GetUserId();
    const bool all_text = pg_call([&] {
      return has_privs_of_role(viewer, ROLE_PG_READ_ALL_STATS) ||
             has_privs_of_role(viewer, get_role_oid("cachekit_admin", true));
    });
    std::vector<QueryStatsRow> rows = query_stats_snapshot(MyDatabaseId, viewer, all_text);
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (const QueryStatsRow &r : rows) {
      std::string bypasses = "{";
      for (int b = 0; b < static_cast<int>(Bypass::kCount); ++b) {
        if (b > 0) bypasses += ", ";
        bypasses += std::string("\"") + bypass_name(static_cast<Bypass>(b)) +
                    "\": " + std::to_string(r.bypasses[b]);
      }
      bypasses += "}";
      constexpr int kCols = 18;
      Datum v[kCols];
      bool n[kCols] = {};
      v[0] = ObjectIdGetDatum(r.dbid);
      v[1] = text_datum(r.ns);
      v[2] = Int64GetDatum(static_cast<int64>(r.fingerprint));
      n[2] = !r.text_visible;
      v[3] = text_datum(r.text_visible ? r.query : "<insufficient privilege>");
      v[4] = Int64GetDatum(static_cast<int64>(r.calls));
      v[5] = Int64GetDatum(static_cast<int64>(r.hits));
      v[6] = Int64GetDatum(static_cast<int64>(r.misses));
      v[7] = jsonb_datum(bypasses);
      v[8] = Float8GetDatum(r.hits ? r.hit_ms_total / static_cast<double>(r.hits) : 0);
      n[8] = r.hits == 0;
      v[9] = Float8GetDatum(r.hit_ms_max);
      n[9] = r.hits == 0;
      v[10] = Float8GetDatum(r.misses ? r.miss_ms_total / static_cast<double>(r.misses) : 0);
      n[10] = r.misses == 0;
      v[11] = Float8GetDatum(r.miss_ms_max);
      n[11] = r.misses == 0;
      v[12] = Int64GetDatum(static_cast<int64>(r.rows));
      v[13] = Int64GetDatum(static_cast<int64>(r.bytes));
      v[14] = TimestampTzGetDatum(r.last_invalidation);
      n[14] = r.last_invalidation == 0;
      v[15] = ObjectIdGetDatum(r.userid);
      v[16] = Int64GetDatum(static_cast<int64>(r.l1_hits));
      v[17] = text_datum(r.scope == 'v' ? "value" : "table");
      n[17] = r.scope == 0;
      pg_call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n); });
    }
    return static_cast<Datum>(0);
  });
}

CK_SQL_FUNCTION(ck_query_stats_reset) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.query_stats_reset()");
    reset_query_stats();
    PG_RETURN_VOID();
  });
}

CK_SQL_FUNCTION(ck_table_stats) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.table_stats");
    std::vector<TableStats> rows = table_stats_snapshot();
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (const TableStats &r : rows) {
      if (r.dbid != MyDatabaseId) continue;  // other databases' tables are not this one's business
      Datum v[5];
      bool n[5] = {};
      v[0] = ObjectIdGetDatum(r.dbid);
      v[1] = ObjectIdGetDatum(r.relid);
      v[2] = Int64GetDatum(static_cast<int64>(r.generation));
      v[3] = Int64GetDatum(static_cast<int64>(r.invalidations));
      v[4] = TimestampTzGetDatum(r.last_invalidation);
      n[4] = r.last_invalidation == 0;
      pg_call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n); });
    }
    return static_cast<Datum>(0);
  });
}

CK_SQL_FUNCTION(ck_table_stats_reset) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.table_stats_reset()");
    reset_table_stats();
    PG_RETURN_VOID();
  });
}
