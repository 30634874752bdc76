// cachekit.cached_query() and cachekit.cached_query_json().
//
// The order of a call is what makes it correct (see generations.cpp):
//   1. prepared form of the query (per backend; no parse or plan on a hit)
//   2. bypass checks: hot standby, REPEATABLE READ/SERIALIZABLE, this
//      transaction wrote a dependency, an undecided prepared transaction
//   3. read the generations of the database and of every dependency
//   4. key = SHA-256 over everything that changes the result
//   5. the caller's privileges, as the executor would check them
//   6. L1 (shared memory, l1_cache.h), then GET: a hit is decoded and
//      returned (a Redis hit also fills L1, for its remaining ttl)
//   7. miss: run the query (its snapshot is taken now, after step 3), return
//      the rows, store them under the key from step 4 -- unless the plan
//      changed while it ran (an invalidation processed when the query took
//      its locks): the rows then come from a plan the key was not built from;
//      what goes to Redis goes to L1 too, under the same key
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/key_material.h"
#include "core/keys.h"
#include "core/row_codec.h"
#include "pg/boundary.h"
#include "pg/cache_lookup.h"
#include "pg/datum.h"
#include "pg/generations.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/l1_cache.h"
#include "pg/leases.h"
#include "pg/query_plan.h"
#include "pg/query_stats.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"
#include "pg/value_plan.h"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/varlena.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

struct CallArgs {
  std::string query;
  std::vector<std::optional<std::string>> params;
  std::optional<int> ttl;
  std::string ns;  // empty: default namespace
  std::vector<Oid> depends_on;
};

// Reads the SQL arguments. Every Postgres call that may detoast (and so
// ereport) goes through pg_call: `out` already owns C++ memory.
void read_args(FunctionCallInfo fcinfo, CallArgs &out) {
  Arg query = pg_call([&] { return varlena_arg(fcinfo, 0); });
  out.query = std::string(required(query, "query"));
  if (!PG_ARGISNULL(1)) {
    Datum *elems = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    pg_call([&] {
      ArrayType *arr = PG_GETARG_ARRAYTYPE_P(1);
      if (ARR_NDIM(arr) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("params must be a one-dimensional array")));
      deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    });
    for (int i = 0; i < n; ++i) {
      if (nulls[i]) {
        out.params.emplace_back(std::nullopt);
      } else {
        Arg a = pg_call([&] {
          text *t = DatumGetTextPP(elems[i]);
          return Arg{VARDATA_ANY(t), static_cast<size_t>(VARSIZE_ANY_EXHDR(t)), false};
        });
        out.params.emplace_back(std::string(a.view()));
      }
    }
  }
  if (!PG_ARGISNULL(2)) {
    int ttl = PG_GETARG_INT32(2);
    if (ttl <= 0)
      throw Error(sqlstate::kInvalidParameterValue, "ttl must be a positive number of seconds",
                  "The ttl given was " + std::to_string(ttl) + ".",
                  "Pass NULL to use the namespace's ttl or cachekit.default_ttl.");
    out.ttl = ttl;
  }
  if (!PG_ARGISNULL(3)) {
    Arg ns = pg_call([&] { return varlena_arg(fcinfo, 3); });
    out.ns = std::string(ns.view());
    if (out.ns.size() >= NAMEDATALEN)
      throw Error(sqlstate::kInvalidParameterValue, "namespace is too long",
                  "Namespaces are limited to 63 bytes.");
  }
  if (!PG_ARGISNULL(4)) {
    Datum *elems = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    pg_call([&] {
      deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), REGCLASSOID, 4, true, TYPALIGN_INT, &elems,
                        &nulls, &n);
    });
    for (int i = 0; i < n; ++i) {
      if (nulls[i]) throw Error(sqlstate::kNullValueNotAllowed, "depends_on must not contain NULL");
      out.depends_on.push_back(DatumGetObjectId(elems[i]));
    }
  }
}

struct ParamValues {
  std::vector<Datum> values;
  std::string nulls;  // SPI convention: 'n' null, ' ' not null
};

void check_param_count(const PreparedQuery &q, const CallArgs &args) {
  if (args.params.size() != q.param_types.size())
    throw Error(sqlstate::kInvalidParameterValue, "wrong number of query parameters",
                "The query has " + std::to_string(q.param_types.size()) +
                    " parameter(s); params has " + std::to_string(args.params.size()) + ".");
}

// Only a miss needs the parameters as Datums (the key uses their text).
ParamValues convert_params(const PreparedQuery &q, const CallArgs &args) {
  ParamValues pv;
  for (size_t i = 0; i < args.params.size(); ++i) {
    if (!args.params[i]) {
      pv.values.push_back(0);
      pv.nulls.push_back('n');
      continue;
    }
    Oid type = q.param_types[i];
    const std::string &text = *args.params[i];
    pv.values.push_back(pg_call([&] {
      Oid input, ioparam;
      getTypeInputInfo(type, &input, &ioparam);
      return OidInputFunctionCall(input, const_cast<char *>(text.c_str()), ioparam, -1);
    }));
    pv.nulls.push_back(' ');
  }
  return pv;
}

void check_result_types(const std::vector<Oid> &have, TupleDesc expected) {
  if (static_cast<int>(have.size()) != expected->natts)
    throw Error(sqlstate::kDatatypeMismatch,
                "cached_query's column definition list does not match the query",
                "The query returns " + std::to_string(have.size()) +
                    " column(s); the column definition list has " +
                    std::to_string(expected->natts) + ".");
  for (int i = 0; i < expected->natts; ++i) {
    Oid want = TupleDescAttr(expected, i)->atttypid;
    if (have[i] != want) {
      std::string got_name = pg_call([&] { return format_type_be(have[i]); });
      std::string want_name = pg_call([&] { return format_type_be(want); });
      throw Error(sqlstate::kDatatypeMismatch,
                  "cached_query's column definition list does not match the query",
                  "Column " + std::to_string(i + 1) + " of the query has type " + got_name +
                      " but the column definition list says " + want_name + ".",
                  "Change the column definition list, or cast the column in the query.");
    }
  }
}

// Decodes a stored result into the tuplestore. False: not usable (corrupt,
// older format, other column types), to be treated as a miss.
bool replay(const std::string &stored, const std::vector<Oid> &types, Tuplestorestate *store,
            TupleDesc desc, uint64_t &rows) {
  auto dec = RowDecoder::open(stored);
  if (!dec || dec->column_types().size() != types.size()) return false;
  for (size_t i = 0; i < types.size(); ++i)
    if (dec->column_types()[i] != types[i]) return false;
  int natts = desc->natts;
  std::vector<Oid> input(natts), ioparam(natts);
  std::vector<int32> typmod(natts);
  for (int i = 0; i < natts; ++i) {
    typmod[i] = TupleDescAttr(desc, i)->atttypmod;
    pg_call([&] { getTypeInputInfo(types[i], &input[i], &ioparam[i]); });
  }
  std::vector<Datum> values(natts);
  std::vector<bool> nulls_vec(natts);
  std::unique_ptr<bool[]> nulls(new bool[natts]);
  std::string scratch;
  rows = 0;
  while (dec->next_row()) {
    if ((rows & 1023) == 1023) check_for_interrupts();
    for (int i = 0; i < natts; ++i) {
      auto v = dec->column(i);
      nulls[i] = !v.has_value();
      if (!v) {
        values[i] = 0;
        continue;
      }
      scratch.assign(v->data(), v->size());
      Oid in = input[i], io = ioparam[i];
      int32 tm = typmod[i];
      const char *cstr = scratch.c_str();
      values[i] =
          pg_call([&] { return OidInputFunctionCall(in, const_cast<char *>(cstr), io, tm); });
    }
    pg_call([&] { tuplestore_putvalues(store, desc, values.data(), nulls.get()); });
    ++rows;
  }
  return !dec->corrupt();
}

enum class Mode { kRows, kJson };

Datum cached_query(FunctionCallInfo fcinfo, Mode mode) {
  return cpp_entry([&]() -> Datum {
    auto started = std::chrono::steady_clock::now();
    // A hit takes no lock, so nothing else would process the catalog changes
    // (REVOKE, CREATE OR REPLACE VIEW) committed since this transaction's
    // last lock: check_privileges and the prepared entry would use stale ones.
    pg_call([] { AcceptInvalidationMessages(); });
    // Before anything else can process invalidations (preparing takes locks).
    const uint64_t invalidations_before = plan_invalidations();
    last_outcome = "error";  // until this call finishes
    require_shmem("cached_query");
    CallArgs args;
    read_args(fcinfo, args);
    const std::string shown_query = args.query;  // for query_stats, without the JSON wrapper
    if (mode == Mode::kJson)
      args.query =
          "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(cachekit_q)), '[]') "
          "FROM (" +
          args.query + "\n) AS cachekit_q";

    // Where the rows go.
    ReturnSetInfo *rsinfo = nullptr;
    TupleDesc out_desc = nullptr;
    Tuplestorestate *store = nullptr;
    if (mode == Mode::kRows) {
      pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
      rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
      out_desc = rsinfo->setDesc;
      store = rsinfo->setResult;
    }

    // SPI only when needed: the hit path of a prepared query never uses it.
    bool spi_connected = false;
    auto need_spi = [&spi_connected] {
      if (spi_connected) return;
      pg_call([] {
        if (SPI_connect() != SPI_OK_CONNECT)
          ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("SPI_connect failed")));
      });
      spi_connected = true;
    };
    // Every error inside cpp_entry is a C++ exception: the pin's destructor
    // runs, and the entry can be freed once no call uses it.
    QueryPin pin = prepare_query(args.query, args.depends_on, need_spi);
    PreparedQuery &q = *pin;
    if (mode == Mode::kRows) check_result_types(q.result_types, out_desc);
    check_param_count(q, args);

    // Should this call use the cache at all? Then the generations, read
    // before the query's snapshot exists, and the key.
    CacheCall c;
    check_bypasses(c, q, need_spi);
    build_query_key(c, q, args.params, args.ns);
    debug_pause(kPauseAfterGenerations);

    // A hit serves rows the executor would only give a caller who may read
    // them: check now what it would check (a miss runs the executor).
    if (c.use_cache) check_privileges(q);

    Datum json_result = 0;
    bool json_null = true;
    std::string json_hit;  // built into a Datum after SPI_finish (SPI memory goes away)
    // A stored result, served as a hit; false when it does not decode.
    look_up(c, [&](const std::string &stored) {
      if (mode == Mode::kRows) {
        uint64_t rows = 0;
        // A partly replayed result must not be mixed with a fresh one.
        bool ok = replay(stored, q.result_types, store, out_desc, rows);
        if (!ok) pg_call([&] { tuplestore_clear(store); });
        c.call.rows = rows;
        return ok;
      }
      auto dec = RowDecoder::open(stored);
      if (dec && dec->column_types().size() == 1 && dec->column_types()[0] == JSONBOID &&
          dec->next_row() && dec->column(0)) {
        json_hit.assign(dec->column(0)->data(), dec->column(0)->size());
        c.call.rows = 1;
        return true;
      }
      return false;
    });
    QueryCall &call = c.call;
    const bool use_cache = c.use_cache;

    // Miss or bypass: run it.
    if (call.outcome != Outcome::kHit) {
      need_spi();
      ParamValues pv = convert_params(q, args);
      SPIPlanPtr plan = q.plan;
      int ret = pg_call(
          [&] { return SPI_execute_plan(plan, pv.values.data(), pv.nulls.c_str(), false, 0); });
      if (ret != SPI_OK_SELECT)
        throw Error(sqlstate::kInternalError, "cached_query: query did not return rows");
      SPITupleTable *tuptable = SPI_tuptable;
      uint64 nrows = SPI_processed;
      TupleDesc desc = tuptable->tupdesc;
      std::vector<Oid> types;
      for (int i = 0; i < desc->natts; ++i) types.push_back(TupleDescAttr(desc, i)->atttypid);
      if (mode == Mode::kRows) check_result_types(types, out_desc);
      RowEncoder enc(types);
      bool too_large = false;
      const std::vector<Oid> output = output_functions(types);
      for (uint64 r = 0; r < nrows; ++r) {
        HeapTuple tup = tuptable->vals[r];
        if (mode == Mode::kRows) pg_call([&] { tuplestore_puttuple(store, tup); });
        if (!use_cache || too_large) continue;
        for (int i = 0; i < desc->natts; ++i) {
          bool isnull = false;
          Datum d = heap_getattr(tup, i + 1, desc, &isnull);
          if (isnull) {
            enc.add_null();
            continue;
          }
          Oid out = output[i];
          char *s = pg_call([&] { return OidOutputFunctionCall(out, d); });
          enc.add_value(s);
        }
        enc.end_row();
        if (enc.size() > static_cast<size_t>(settings.max_result_bytes)) too_large = true;
      }
      call.rows = nrows;
      if (mode == Mode::kJson && nrows == 1) {
        bool isnull = false;
        Datum d = heap_getattr(tuptable->vals[0], 1, desc, &isnull);
        if (!isnull) {
          json_result = pg_call([&] { return SPI_datumTransfer(d, false, -1); });
          json_null = false;
        }
      }
      if (use_cache && too_large) {
        c.bypass(Bypass::kTooLarge);
      } else if (use_cache && plan_changed_since(invalidations_before, q)) {
        // The key (analysed query, dependencies) came from the plan prepared
        // before; the rows maybe from a new one (a view now reading another
        // table). Stored, they could be hit by a key that misses the new
        // table's generation.
        c.bypass(Bypass::kPlanChanged);
      } else if (use_cache) {
        store_result(c, enc.finish(), result_ttl(args.ttl, args.ns));
      }
    }

    if (spi_connected) pg_call([] { SPI_finish(); });
    call.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                  .count();
    record_query_call(q.fingerprint, args.ns, shown_query, call);
    last_outcome = outcome_text(call);
    if (mode == Mode::kJson) {
      if (call.outcome == Outcome::kHit) return jsonb_datum(json_hit);
      if (json_null) PG_RETURN_NULL();
      return json_result;
    }
    return static_cast<Datum>(0);
  });
}

}  // namespace

CK_SQL_FUNCTION(ck_cached_query) { return cached_query(fcinfo, Mode::kRows); }
CK_SQL_FUNCTION(ck_cached_query_json) { return cached_query(fcinfo, Mode::kJson); }

CK_SQL_FUNCTION(ck_last_outcome) {
  return cpp_entry([&]() -> Datum { return text_datum(last_outcome); });
}
