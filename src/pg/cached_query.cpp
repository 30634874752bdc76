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

// Settings that change what a query returns or how its values print.
const char *const kOutputSettings[] = {
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "extra_float_digits",
    "bytea_output",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "standard_conforming_strings",
    "row_security",
    "default_text_search_config",
    "xmlbinary",
    "xmloption",
    "transform_null_equals",
    "search_path",
};

std::string last_outcome = "none";

// Releases the key's lease when the call ends, however it ends (the store
// done, an error, a bypass): waiters then look in Redis or run it themselves.
struct LeaseGuard {
  bool held = false;
  ~LeaseGuard() {
    if (held) release_lease();
  }
};

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

// For the tests of the races: wait on an advisory lock at a named point.
void debug_pause(int point) {
  if (settings.debug_pause_lock == 0 || settings.debug_pause_at != point) return;
  int64 key = settings.debug_pause_lock;
  pg_call([&] {
    DirectFunctionCall1(pg_advisory_lock_int8, Int64GetDatum(key));
    DirectFunctionCall1(pg_advisory_unlock_int8, Int64GetDatum(key));
  });
}

// The built-in settings' records, found once: GetConfigOption's search by
// name, fifteen times per call, was a visible part of a hit. Built-in
// records are static and never replaced (custom ones are, when their
// extension defines them: those are looked up by name every time).
struct config_generic *output_records[std::size(kOutputSettings)];
bool output_records_found = false;

// GetConfigOption's formatting, for a record in hand.
const char *setting_text(struct config_generic *record, char *buffer, size_t size) {
  switch (record->vartype) {
    case PGC_BOOL:
      return *reinterpret_cast<struct config_bool *>(record)->variable ? "on" : "off";
    case PGC_INT:
      snprintf(buffer, size, "%d", *reinterpret_cast<struct config_int *>(record)->variable);
      return buffer;
    case PGC_REAL:
      snprintf(buffer, size, "%g", *reinterpret_cast<struct config_real *>(record)->variable);
      return buffer;
    case PGC_STRING:
      return *reinterpret_cast<struct config_string *>(record)->variable;
    case PGC_ENUM: {
      auto *e = reinterpret_cast<struct config_enum *>(record);
      return pg_call([&] { return config_enum_lookup_by_value(e, *e->variable); });
    }
  }
  return nullptr;
}

void find_output_records() {
  if (output_records_found) return;
  struct config_generic **vars = get_guc_variables();
  int n = GetNumConfigOptions();
  for (size_t k = 0; k < std::size(kOutputSettings); ++k) {
    output_records[k] = nullptr;
    for (int i = 0; i < n; ++i)
      if (pg_strcasecmp(vars[i]->name, kOutputSettings[k]) == 0) output_records[k] = vars[i];
    if (!output_records[k])
      throw Error(sqlstate::kInternalError, "setting not found",
                  std::string("The built-in setting ") + kOutputSettings[k] + " does not exist.");
  }
  output_records_found = true;
}

void add_settings(KeyMaterial &km, bool row_security) {
  find_output_records();
  char buffer[64];
  for (size_t k = 0; k < std::size(kOutputSettings); ++k) {
    const char *name = kOutputSettings[k];
    const char *v = setting_text(output_records[k], buffer, sizeof(buffer));
    km.add('o', name);
    if (v)
      km.add('v', v);
    else
      km.add_null('v');
  }
  // Row-level security policies often read custom settings
  // (current_setting('app.tenant_id')), and so may the query itself: then
  // every custom setting counts.
  if (row_security) {
    struct config_generic **vars = get_guc_variables();
    int n = GetNumConfigOptions();
    for (int i = 0; i < n; ++i) {
      const char *name = vars[i]->name;
      if (strchr(name, '.') == nullptr || strncmp(name, "cachekit.", 9) == 0) continue;
      const char *v = pg_call([&] { return GetConfigOption(name, true, false); });
      km.add('c', name);
      if (v)
        km.add('v', v);
      else
        km.add_null('v');
    }
  }
  if (settings.key_settings && settings.key_settings[0] != '\0') {
    std::string list = settings.key_settings;
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      std::string name =
          list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      if (!name.empty()) {
        const char *v = pg_call([&] { return GetConfigOption(name.c_str(), true, false); });
        km.add('k', name);
        if (v)
          km.add('v', v);
        else
          km.add_null('v');
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
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

int requested_ttl(const CallArgs &args) {
  if (args.ttl) return *args.ttl;
  if (!args.ns.empty()) {
    int ttl = pg_call([&] {
      Datum arg = CStringGetTextDatum(args.ns.c_str());
      Oid argtype = TEXTOID;
      int ret =
          SPI_execute_with_args("SELECT ttl FROM cachekit.namespace_ttls WHERE namespace = $1", 1,
                                &argtype, &arg, nullptr, true, 1);
      if (ret != SPI_OK_SELECT || SPI_processed == 0) return 0;
      bool isnull = false;
      Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
      return isnull ? 0 : DatumGetInt32(d);
    });
    if (ttl > 0) return ttl;
  }
  return settings.default_ttl;
}

// Capped by cachekit.max_ttl: any caller chooses the ttl, and how long an
// entry may live (in Redis memory, and past whatever Redis did not hear of)
// is the DBA's to bound.
int ttl_for(const CallArgs &args) { return std::min(requested_ttl(args), settings.max_ttl); }

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

// Prepared transactions left from before a restart were never seen by this
// server's PREPARE callback: register them all as in doubt (coarse: the whole
// database, never late).
// False when they do not all fit (they always should, see generations.h):
// the caller then bypasses the cache and the next call scans again.
bool register_prepared_after_restart() {
  std::vector<TransactionId> xids;
  pg_call([&] {
    int ret = SPI_execute(
        "SELECT transaction FROM pg_catalog.pg_prepared_xacts "
        "WHERE database = pg_catalog.current_database()",
        true, 0);
    if (ret != SPI_OK_SELECT)
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not read pg_prepared_xacts")));
  });
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) xids.push_back(DatumGetTransactionId(d));
  }
  for (TransactionId xid : xids)
    if (!pg_call([&] { return register_in_doubt(MyDatabaseId, xid); })) return false;
  prepared_scan_done(MyDatabaseId);
  return true;
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

    // Should this call use the cache at all?
    QueryCall call{Outcome::kMiss, Bypass::kCount, 0, 0, 0, 0};
    bool use_cache = true;
    auto bypass = [&](Bypass why) {
      use_cache = false;
      call.outcome = Outcome::kBypass;
      call.bypass = why;
    };
    if (q.uncacheable) {
      if (settings.uncacheable == kUncacheableError)
        throw Error(sqlstate::kFeatureNotSupported, q.reason, q.detail, q.hint);
      bypass(Bypass::kUncacheable);
    } else if (RecoveryInProgress()) {
      bypass(Bypass::kHotStandby);
    } else if (IsolationUsesXactSnapshot()) {
      bypass(Bypass::kIsolationLevel);
    } else {
      // (changed_in_transaction also answers true after invalidate_all().)
      bool wrote = changed_in_transaction(InvalidOid);
      for (Oid d : q.deps) wrote = wrote || changed_in_transaction(d);
      if (wrote) bypass(Bypass::kWriteInTransaction);
      if (use_cache && prepared_scan_needed(MyDatabaseId)) {
        need_spi();
        if (!register_prepared_after_restart()) bypass(Bypass::kPreparedTransaction);
      }
      if (use_cache && pg_call([] { return database_in_doubt(MyDatabaseId); }))
        bypass(Bypass::kPreparedTransaction);
    }

    // The generations, read before the query's snapshot exists.
    std::string key;
    KeyMaterial gens;
    clear_last_dependencies();
    if (use_cache) {
      KeyMaterial km;
      km.add_u64('S', GetSystemIdentifier());
      km.add_u64('D', MyDatabaseId);
      km.add_u64('E', server_epoch());
      km.add('A', q.analysed_digest);
      km.add_u64('U', GetUserId());
      if (q.reads_session_user) km.add_u64('L', GetSessionUserId());
      km.add('N', args.ns);
      for (size_t i = 0; i < args.params.size(); ++i) {
        km.add_u64('T', q.param_types[i]);
        if (args.params[i])
          km.add('P', *args.params[i]);
        else
          km.add_null('P');
      }
      Generation db = read_generation(MyDatabaseId, InvalidOid);
      gens.add_u64('d', db.value);
      gens.add_u64('o', db.overflow ? 1 : 0);
      // Per dependency the table generation, or for a table watched by a
      // column whose values the query fixes, its structural generation and
      // the counters of those values' buckets (value_plan.h).
      call.scope = add_dependency_generations(q, args.params, gens) ? 'v' : 't';
      km.add('G', gens.bytes());
      add_settings(km, q.row_security || q.reads_settings);
      key = build_key(settings.key_prefix, keyspace::kQuery, sha256_hex(km.bytes()));
      call.generations_digest = std::hash<std::string>{}(gens.bytes());
    }
    debug_pause(kPauseAfterGenerations);

    // A hit serves rows the executor would only give a caller who may read
    // them: check now what it would check (a miss runs the executor).
    if (use_cache) check_privileges(q);

    // Hit?
    Datum json_result = 0;
    bool json_null = true;
    std::string json_hit;  // built into a Datum after SPI_finish (SPI memory goes away)
    // A stored result, served as a hit; false when it does not decode.
    auto serve = [&](const std::string &stored) {
      bool ok = false;
      if (mode == Mode::kRows) {
        uint64_t rows = 0;
        // A partly replayed result must not be mixed with a fresh one.
        ok = replay(stored, q.result_types, store, out_desc, rows);
        if (!ok) pg_call([&] { tuplestore_clear(store); });
        call.rows = rows;
      } else {
        auto dec = RowDecoder::open(stored);
        if (dec && dec->column_types().size() == 1 && dec->column_types()[0] == JSONBOID &&
            dec->next_row() && dec->column(0)) {
          json_hit.assign(dec->column(0)->data(), dec->column(0)->size());
          ok = true;
          call.rows = 1;
        }
      }
      if (ok) {
        call.outcome = Outcome::kHit;
        call.bytes = stored.size();
      }
      return ok;
    };
    // L1 first: its entry under this key is as fresh as Redis' (l1_cache.h),
    // also while Redis is down.
    const bool l1_on = use_cache && l1_active();
    auto serve_l1 = [&] {
      std::string value;
      if (!l1_lookup(key, value) || !serve(value)) return false;
      call.l1_hit = true;
      return true;
    };
    // Redis: false when it is unavailable. A hit fills L1 for the time the
    // Redis entry has left, so that L1 never keeps it longer.
    auto serve_redis = [&] {
      if (!l1_on) {
        auto reply = run(RedisTarget::kCache, {"GET", key});
        if (!reply) return false;
        check_reply(*reply);
        if (!reply->is_nil()) serve(reply->str);
        return true;
      }
      const int64_t sent = l1_clock_ms();
      auto replies = run_pipeline(RedisTarget::kCache, {{"GET", key}, {"PTTL", key}});
      if (!replies) return false;
      const RedisReply &value = (*replies)[0];
      check_reply(value);
      // PTTL: -2 gone since the GET, -1 no expiry (not set by cached_query).
      // An error (a Redis ACL allowing GET and SET only) leaves L1 unfilled:
      // it must not fail a call that Redis answered.
      const RedisReply &remaining = (*replies)[1];
      const long long pttl = remaining.is_error() ? -2 : remaining.integer;
      const int64_t ttl_ms = pttl == -1 ? int64_t{settings.max_ttl} * 1000 : pttl;
      if (!value.is_nil() && serve(value.str) && ttl_ms > 0)
        l1_store(key, value.str, sent + ttl_ms);
      return true;
    };
    if (l1_on) serve_l1();
    if (use_cache && call.outcome != Outcome::kHit && !serve_redis())
      bypass(Bypass::kRedisUnavailable);

    // A miss while another session runs the same key: wait for its result
    // (bounded), then look again; otherwise this call runs the query and
    // holds the key's lease until it has stored the result (leases.h).
    LeaseGuard lease;
    if (use_cache && call.outcome == Outcome::kMiss && settings.coalesce_wait_ms > 0) {
      LeaseOutcome lo = take_lease(key);
      if (lo == LeaseOutcome::kOwner) {
        lease.held = true;
      } else if (lo == LeaseOutcome::kWait) {
        const int wait_ms = settings.coalesce_wait_ms;
        const char *k = key.c_str();
        // No C++ objects in the frame a query cancel would longjmp over.
        bool released = pg_call([&] { return wait_for_lease(k, wait_ms); });
        if (released) {
          if ((l1_on && serve_l1()) || (serve_redis() && call.outcome == Outcome::kHit))
            count_coalesced();
        }
      }
    }

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
      std::vector<Oid> output(desc->natts);
      for (int i = 0; i < desc->natts; ++i) {
        bool varlena;
        pg_call([&] { getTypeOutputInfo(types[i], &output[i], &varlena); });
      }
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
        bypass(Bypass::kTooLarge);
      } else if (use_cache && plan_invalidations() != invalidations_before) {
        // The key (analysed query, dependencies) came from the plan prepared
        // before; the rows maybe from a new one (a view now reading another
        // table). Stored, they could be hit by a key that misses the new
        // table's generation.
        bypass(Bypass::kPlanChanged);
      } else if (use_cache) {
        std::string value = enc.finish();
        call.bytes = value.size();
        debug_pause(kPauseBeforeStore);
        const int ttl = ttl_for(args);
        const int64_t sent = l1_clock_ms();
        auto reply = run(RedisTarget::kCache, {"SET", key, value, "EX", std::to_string(ttl)});
        if (reply) check_reply(*reply);
        if (l1_on) l1_store(key, value, sent + int64_t{ttl} * 1000);
      }
    }

    if (spi_connected) pg_call([] { SPI_finish(); });
    call.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                  .count();
    record_query_call(q.fingerprint, args.ns, shown_query, call);
    last_outcome = call.outcome == Outcome::kHit ? "hit"
                   : call.outcome == Outcome::kMiss
                       ? "miss"
                       : std::string("bypass:") + bypass_name(call.bypass);
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
