// cachekit.cache_stats (view over ck_cache_stats) and cachekit.cache_stats_reset().
#include "pg/boundary.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "funcapi.h"
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
