// Transparent caching, executor side: the Custom Scan (cachekit) node that
// transparent_plan.cpp puts on top of a qualifying statement's plan.
//
// One execution, in the order cached_query keeps (cache_lookup.h):
//   ExecutorStart hook: the bypasses, the generations and the key; then,
//     when the cache is used, the statement's snapshot is replaced by a new
//     one (READ COMMITTED only: other levels bypass). The portal took its
//     snapshot before the generations were read; rows read under it and
//     stored under the new key could miss a commit that the key already
//     counts. The new snapshot, taken after, sees every such commit.
//   BeginCustomScan: the executor has checked the tables' privileges; the
//     functions' EXECUTE is checked, then L1, Redis, coalescing. On a hit
//     the child plan is not even started (unless EXPLAIN ANALYZE shows it).
//   ExecCustomScan: a hit's rows decoded into the scan slot. A miss first
//     reads the child to its end (encoding and keeping the rows), stores the
//     result, then returns the rows: a client that fetches a few rows at a
//     time (a cursor, PL/pgSQL's SELECT INTO, a row limit on Execute) still
//     leaves a stored result. Above cachekit.max_result_bytes it stops
//     keeping, returns what it kept and then the child's rows as they come.
//   EndCustomScan: the call is counted (query_stats, last_outcome).
// The C++ state of an execution lives outside Postgres memory; a reset
// callback of the executor's memory frees it (and the key's lease) when an
// error ends the statement. The frames that call into the child plan hold
// no C++ objects: an error there unwinds them as Postgres code.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/row_codec.h"
#include "pg/boundary.h"
#include "pg/cache_lookup.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/query_stats.h"
#include "pg/transparent_plan.h"

extern "C" {
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "nodes/extensible.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "lib/stringinfo.h"
}

namespace cachekit::pg {

namespace {

struct TransparentCall {
  const PlannedStmt *stmt = nullptr;      // the statement it was made for
  std::shared_ptr<TransparentPlan> plan;  // null: this backend forgot it
  CacheCall c;
  bool active = false;  // consulted the cache (or bypassed it, counted)
  bool explain_only = false;
  std::chrono::steady_clock::time_point started;
  std::string shown_query;
  // A hit: the stored result, decoded row by row.
  std::string stored;
  std::optional<RowDecoder> decoder;
  std::vector<Oid> input, ioparam;
  std::vector<int32> typmods;
  // A miss: the rows as they pass.
  std::optional<RowEncoder> encoder;
  std::vector<Oid> output;
  bool storing = false;
  bool recorded = false;
  uint64_t rows = 0;
};

struct TransparentState {
  CustomScanState css;
  TransparentCall *call;
  PlanState *child;  // nullptr: not started (a hit)
  MemoryContext row_cxt;
  // A miss: the rows read ahead of the caller, until the child's end.
  Tuplestorestate *kept;
  TupleTableSlot *kept_slot;
  bool read_ahead;  // done: from now on `kept`, then the child
  bool child_done;
  MemoryContextCallback cleanup;
};

// Made by the ExecutorStart hook, taken by the node's BeginCustomScan of
// the same statement (called inside standard_ExecutorStart; a function run
// while the subplans start may start statements of its own meanwhile).
std::vector<std::unique_ptr<TransparentCall>> pending;

std::unique_ptr<TransparentCall> take_pending(const PlannedStmt *stmt) {
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
    if ((*it)->stmt != stmt) continue;
    std::unique_ptr<TransparentCall> call = std::move(*it);
    pending.erase(std::next(it).base());
    return call;
  }
  return nullptr;
}

ExecutorStart_hook_type prev_start = nullptr;
ExecutorRun_hook_type prev_run = nullptr;
ExecutorFinish_hook_type prev_finish = nullptr;

struct Busy {
  Busy() { transparent_busy = true; }
  ~Busy() { transparent_busy = false; }
};

const CustomScan *our_node(const Plan *top) {
  if (top != nullptr && IsA(top, Material)) top = top->lefttree;
  if (top == nullptr || !IsA(top, CustomScan)) return nullptr;
  const auto *cs = reinterpret_cast<const CustomScan *>(top);
  return cs->methods == &transparent_scan_methods ? cs : nullptr;
}

// The parameters' text, as cached_query's params: nullopt when one does not
// have the type the plan was made for.
std::optional<std::vector<std::optional<std::string>>> param_texts(ParamListInfo params,
                                                                   const PreparedQuery &q) {
  std::vector<std::optional<std::string>> out;
  const size_t n = q.param_types.size();
  if (n == 0) return out;
  if (params == nullptr || static_cast<size_t>(params->numParams) < n) return std::nullopt;
  for (size_t i = 0; i < n; ++i) {
    ParamExternData workspace;
    ParamExternData *prm = pg_call([&] {
      return params->paramFetch
                 ? params->paramFetch(params, static_cast<int>(i) + 1, false, &workspace)
                 : &params->params[i];
    });
    // A parameter the statement does not use cannot change its result.
    if (!OidIsValid(q.param_types[i]) || prm->isnull) {
      out.emplace_back(std::nullopt);
      continue;
    }
    if (prm->ptype != q.param_types[i]) return std::nullopt;
    if (prm->isnull) {
      out.emplace_back(std::nullopt);
      continue;
    }
    const Oid type = prm->ptype;
    const Datum value = prm->value;
    char *text = pg_call([&] {
      Oid output;
      bool varlena;
      getTypeOutputInfo(type, &output, &varlena);
      return OidOutputFunctionCall(output, value);
    });
    out.emplace_back(std::string(text));
  }
  return out;
}

std::string statement_text(const QueryDesc *qd) {
  if (qd->sourceText == nullptr) return {};
  std::string text = qd->sourceText;
  const PlannedStmt *stmt = qd->plannedstmt;
  if (stmt->stmt_location >= 0 && static_cast<size_t>(stmt->stmt_location) <= text.size()) {
    text = text.substr(stmt->stmt_location, stmt->stmt_len > 0 ? static_cast<size_t>(stmt->stmt_len)
                                                               : std::string::npos);
  }
  size_t start = text.find_first_not_of(" \t\r\n");
  return start == std::string::npos ? std::string() : text.substr(start);
}

// The cache's shared state (Redis, L1, leases, statistics) is for the roles
// granted it, as cached_query is: cachekit_user or cachekit_admin. Another
// role's statements run as they would without pg_cachekit.
bool may_use_cache() {
  return pg_call([] {
    const Oid me = GetUserId();
    if (superuser_arg(me)) return true;
    for (const char *name : {"cachekit_user", "cachekit_admin"}) {
      const Oid role = get_role_oid(name, true);
      if (OidIsValid(role) && has_privs_of_role(me, role)) return true;
    }
    return false;
  });
}

void prepare_call(QueryDesc *qd, const CustomScan *node, int eflags) {
  cpp_entry([&] {
    // At the top level nothing else can be pending but what an error left.
    if (executor_depth == 0) pending.clear();
    auto call = std::make_unique<TransparentCall>();
    call->stmt = qd->plannedstmt;
    call->c.lenient = true;
    call->started = std::chrono::steady_clock::now();
    call->plan = find_transparent_plan(node);
    if (eflags & EXEC_FLAG_EXPLAIN_ONLY) {
      call->explain_only = true;
    } else if (settings.transparent != kTransparentOff && executor_depth == 0 && may_use_cache()) {
      call->active = true;
      call->shown_query = statement_text(qd);
      CacheCall &c = call->c;
      if (!call->plan) {
        c.bypass(Bypass::kPlanChanged);
      } else {
        Busy busy;
        const PreparedQuery &q = call->plan->q;
        // The application's statement runs whatever the cache thinks of
        // it: never cachekit.uncacheable = error here.
        bool spi = false;
        if (q.uncacheable)
          c.bypass(Bypass::kUncacheable);
        else
          check_bypasses(c, q, [&spi] {
            if (!spi && pg_call([] { return SPI_connect(); }) != SPI_OK_CONNECT)
              throw Error(sqlstate::kInternalError, "SPI_connect failed");
            spi = true;
          });
        if (spi) pg_call([] { SPI_finish(); });
        std::optional<std::vector<std::optional<std::string>>> params;
        if (c.use_cache) {
          params = param_texts(qd->params, q);
          if (!params) c.bypass(Bypass::kPlanChanged);
        }
        if (c.use_cache) build_query_key(c, q, *params, call->plan->ns);
        debug_pause(kPauseAfterGenerations);
        if (c.use_cache)
          pg_call([&] {
            Snapshot old = qd->snapshot;
            qd->snapshot = RegisterSnapshot(GetTransactionSnapshot());
            UnregisterSnapshot(old);
          });
      }
    }
    pending.push_back(std::move(call));
  });
}

void transparent_executor_start(QueryDesc *qd, int eflags) {
  const CustomScan *node = our_node(qd->plannedstmt->planTree);
  if (node != nullptr) prepare_call(qd, node, eflags);
  // Functions evaluated while the plan starts (initial partition pruning)
  // run their statements inside this one.
  ++executor_depth;
  PG_TRY();
  {
    if (prev_start)
      prev_start(qd, eflags);
    else
      standard_ExecutorStart(qd, eflags);
  }
  PG_FINALLY();
  { --executor_depth; }
  PG_END_TRY();
}

// Counted once, at the end of a call that consulted the cache.
void record(TransparentCall &call) {
  if (!call.active || call.recorded) return;
  call.recorded = true;
  call.c.call.rows = call.rows;
  call.c.call.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - call.started)
          .count();
  last_outcome = outcome_text(call.c.call);
  const uint64_t fp = call.plan ? call.plan->fingerprint : 0;
  record_query_call(fp, call.plan ? call.plan->ns : std::string(), call.shown_query, call.c.call);
}

void forget_call(void *arg) {
  auto *st = static_cast<TransparentState *>(arg);
  delete st->call;  // releases the lease (never raises)
  st->call = nullptr;
}

Node *create_state(CustomScan *cscan);

void begin_scan(CustomScanState *node, EState *estate, int eflags) {
  auto *st = reinterpret_cast<TransparentState *>(node);
  auto *cs = reinterpret_cast<CustomScan *>(node->ss.ps.plan);
  bool start_child = true;
  cpp_entry([&] {
    TransparentCall *call = take_pending(estate->es_plannedstmt).release();
    if (call == nullptr) {  // not through our ExecutorStart hook: run it as is
      call = new TransparentCall();
      call->plan = find_transparent_plan(cs);
    }
    st->call = call;
    pg_call([&] {
      st->cleanup.func = forget_call;
      st->cleanup.arg = st;
      MemoryContextRegisterResetCallback(estate->es_query_cxt, &st->cleanup);
      st->row_cxt = AllocSetContextCreate(estate->es_query_cxt, "cachekit transparent rows",
                                          ALLOCSET_SMALL_SIZES);
    });
    TupleDesc desc = node->ss.ss_ScanTupleSlot->tts_tupleDescriptor;
    std::vector<Oid> types;
    for (int i = 0; i < desc->natts; ++i) types.push_back(TupleDescAttr(desc, i)->atttypid);
    CacheCall &c = call->c;
    if (call->active && c.use_cache) {
      check_execute_privileges(call->plan->q);
      // A stored result is served only whole: checked to the last row now
      // (rows sent to the client cannot be taken back).
      look_up(c, [&](const std::string &stored) {
        auto dec = RowDecoder::open(stored);
        if (!dec || dec->column_types().size() != types.size()) return false;
        for (size_t i = 0; i < types.size(); ++i)
          if (dec->column_types()[i] != types[i]) return false;
        while (dec->next_row()) {
        }
        if (dec->corrupt()) return false;
        call->stored = stored;
        return true;
      });
      if (c.call.outcome == Outcome::kHit) {
        call->decoder = RowDecoder::open(call->stored);
        call->input.resize(types.size());
        call->ioparam.resize(types.size());
        for (size_t i = 0; i < types.size(); ++i) {
          call->typmods.push_back(TupleDescAttr(desc, static_cast<int>(i))->atttypmod);
          pg_call([&] { getTypeBinaryInputInfo(types[i], &call->input[i], &call->ioparam[i]); });
        }
        start_child = estate->es_instrument != 0;
      } else if (c.use_cache) {
        call->encoder.emplace(std::vector<uint32_t>(types.begin(), types.end()));
        call->output.resize(types.size());
        for (size_t i = 0; i < types.size(); ++i) {
          bool varlena;
          pg_call([&] { getTypeBinaryOutputInfo(types[i], &call->output[i], &varlena); });
        }
        call->storing = true;
      }
    }
  });
  if (start_child) {
    st->child = ExecInitNode(static_cast<Plan *>(linitial(cs->custom_plans)), estate, eflags);
    node->custom_ps = list_make1(st->child);
    st->kept_slot = ExecInitExtraTupleSlot(estate, node->ss.ss_ScanTupleSlot->tts_tupleDescriptor,
                                           &TTSOpsMinimalTuple);
  }
}

// The next row of a hit, or nullptr at the end.
TupleTableSlot *next_hit_row(TransparentState *st) {
  return cpp_entry([&]() -> TupleTableSlot * {
    TransparentCall &call = *st->call;
    TupleTableSlot *slot = st->css.ss.ss_ScanTupleSlot;
    pg_call([&] {
      ExecClearTuple(slot);
      MemoryContextReset(st->row_cxt);
    });
    if (!call.decoder->next_row()) return nullptr;
    if ((++call.rows & 1023) == 0) check_for_interrupts();
    const int natts = slot->tts_tupleDescriptor->natts;
    for (int i = 0; i < natts; ++i) {
      auto v = call.decoder->column(static_cast<size_t>(i));
      slot->tts_isnull[i] = !v.has_value();
      if (!v) {
        slot->tts_values[i] = 0;
        continue;
      }
      const Oid in = call.input[i], io = call.ioparam[i];
      const int32 typmod = call.typmods[i];
      const std::string_view text = *v;
      slot->tts_values[i] = pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(st->row_cxt);
        StringInfoData buf;
        initStringInfo(&buf);
        appendBinaryStringInfo(&buf, text.data(), static_cast<int>(text.size()));
        Datum d = OidReceiveFunctionCall(in, &buf, io, typmod);
        MemoryContextSwitchTo(old);
        return d;
      });
    }
    pg_call([&] { ExecStoreVirtualTuple(slot); });
    return slot;
  });
}

void encode_row(TransparentState *st, TupleTableSlot *slot) {
  cpp_entry([&] {
    TransparentCall &call = *st->call;
    RowEncoder &enc = *call.encoder;
    const int natts = slot->tts_tupleDescriptor->natts;
    pg_call([&] {
      slot_getallattrs(slot);
      MemoryContextReset(st->row_cxt);
    });
    for (int i = 0; i < natts; ++i) {
      if (slot->tts_isnull[i]) {
        enc.add_null();
        continue;
      }
      const Oid out = call.output[i];
      const Datum d = slot->tts_values[i];
      bytea *bytes = pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(st->row_cxt);
        bytea *b = OidSendFunctionCall(out, d);
        MemoryContextSwitchTo(old);
        return b;
      });
      enc.add_value(std::string_view(VARDATA(bytes), VARSIZE(bytes) - VARHDRSZ));
    }
    enc.end_row();
    if (enc.size() > static_cast<size_t>(settings.max_result_bytes)) {
      call.storing = false;
      call.encoder.reset();
      call.c.bypass(Bypass::kTooLarge);
      call.c.release();  // nothing will be stored: waiters run it themselves
    }
  });
}

void finish_store(TransparentState *st) {
  cpp_entry([&] {
    TransparentCall &call = *st->call;
    call.storing = false;
    // The rows were read under the role and settings of now, the key built
    // under those of the statement's start: a cursor may have been fetched
    // after a SET or SET ROLE. Not stored then.
    if (key_context(call.plan->q) != call.c.context) {
      call.c.bypass(Bypass::kPlanChanged);
    } else {
      store_result(call.c, call.encoder->finish(), registered_ttl(*call.plan));
    }
    call.encoder.reset();
    call.c.release();  // stored: waiters find it
  });
}

// A miss: the child's rows up to its end (or the size limit) into `kept`,
// encoded as they pass; stored when the end was reached. Postgres frame: no
// C++ object lives here (the child may raise an error).
void read_ahead(TransparentState *st) {
  TransparentCall *call = st->call;
  st->read_ahead = true;
  st->kept = tuplestore_begin_heap(false, false, work_mem);
  for (;;) {
    TupleTableSlot *slot = ExecProcNode(st->child);
    if (TupIsNull(slot)) {
      st->child_done = true;
      if (call->storing) finish_store(st);
      return;
    }
    ++call->rows;
    tuplestore_puttupleslot(st->kept, slot);
    encode_row(st, slot);
    if (!call->storing) return;  // too large: the rest as it comes
  }
}

TupleTableSlot *exec_scan(CustomScanState *node) {
  auto *st = reinterpret_cast<TransparentState *>(node);
  TransparentCall *call = st->call;
  if (call->decoder) return next_hit_row(st);
  if (call->storing && !st->read_ahead) read_ahead(st);
  if (st->kept != nullptr) {
    if (tuplestore_gettupleslot(st->kept, true, false, st->kept_slot)) return st->kept_slot;
    tuplestore_end(st->kept);
    st->kept = nullptr;
  }
  if (st->child_done) return nullptr;
  TupleTableSlot *slot = ExecProcNode(st->child);
  if (TupIsNull(slot)) {
    st->child_done = true;
    return nullptr;
  }
  ++call->rows;
  return slot;
}

void end_scan(CustomScanState *node) {
  auto *st = reinterpret_cast<TransparentState *>(node);
  if (st->kept != nullptr) tuplestore_end(st->kept);
  st->kept = nullptr;
  if (st->child != nullptr) ExecEndNode(st->child);
  if (st->call != nullptr) {
    cpp_entry([&] { record(*st->call); });
    forget_call(st);
  }
}

void rescan(CustomScanState *node) {
  auto *st = reinterpret_cast<TransparentState *>(node);
  TransparentCall *call = st->call;
  if (call->decoder) {
    cpp_entry([&] { call->decoder = RowDecoder::open(call->stored); });
    return;
  }
  // Rows may now come twice: not a result to store.
  call->storing = false;
  cpp_entry([&] { call->c.release(); });
  if (st->kept != nullptr) tuplestore_end(st->kept);
  st->kept = nullptr;
  st->child_done = false;
  ExecReScan(st->child);
}

void explain_scan(CustomScanState *node, List *, ExplainState *es) {
  auto *st = reinterpret_cast<TransparentState *>(node);
  cpp_entry([&] {
    const TransparentCall *call = st->call;
    const TransparentPlan *plan = call ? call->plan.get() : nullptr;
    std::string mode = plan == nullptr    ? "plan no longer kept by this backend"
                       : plan->registered ? "registered shape"
                                          : "transparent = all";
    std::string decision;
    if (plan != nullptr)
      decision = plan->q.uncacheable   ? "not cacheable: " + plan->q.reason
                 : plan->q.reads_clock ? "cacheable (reads the clock: a hit keeps the miss's time)"
                                       : "cacheable";
    std::string outcome;
    if (call != nullptr && es->analyze && call->active) {
      outcome = outcome_text(call->c.call);
      if (call->c.call.l1_hit) outcome += " (L1)";
    } else if (call != nullptr && es->analyze) {
      outcome =
          "not consulted (cachekit.transparent is off, a nested statement, or a role without "
          "cachekit_user)";
    }
    pg_call([&] {
      ExplainPropertyText("Cache", mode.c_str(), es);
      if (!decision.empty()) ExplainPropertyText("Cache Decision", decision.c_str(), es);
      if (!outcome.empty()) ExplainPropertyText("Cache Outcome", outcome.c_str(), es);
    });
  });
}

// Forward only, no mark/restore, never inside a parallel plan.
const CustomExecMethods exec_methods = {
    "cachekit", begin_scan, exec_scan, end_scan, rescan,  nullptr,      nullptr,
    nullptr,    nullptr,    nullptr,   nullptr,  nullptr, explain_scan,
};

Node *create_state(CustomScan *) {
  auto *st = static_cast<TransparentState *>(palloc0(sizeof(TransparentState)));
  NodeSetTag(st, T_CustomScanState);
  st->css.methods = &exec_methods;
  return reinterpret_cast<Node *>(st);
}

// Depth of executor runs: statements planned or started inside one belong
// to a function called by a query, and are not served.
void transparent_executor_run(QueryDesc *qd, ScanDirection direction, uint64 count,
                              bool execute_once) {
  ++executor_depth;
  PG_TRY();
  {
    if (prev_run)
      prev_run(qd, direction, count, execute_once);
    else
      standard_ExecutorRun(qd, direction, count, execute_once);
  }
  PG_FINALLY();
  { --executor_depth; }
  PG_END_TRY();
}

void transparent_executor_finish(QueryDesc *qd) {
  ++executor_depth;
  PG_TRY();
  {
    if (prev_finish)
      prev_finish(qd);
    else
      standard_ExecutorFinish(qd);
  }
  PG_FINALLY();
  { --executor_depth; }
  PG_END_TRY();
}

}  // namespace

const CustomScanMethods transparent_scan_methods = {"cachekit", create_state};

void install_transparent_executor() {
  RegisterCustomScanMethods(&transparent_scan_methods);
  prev_start = ExecutorStart_hook;
  ExecutorStart_hook = transparent_executor_start;
  prev_run = ExecutorRun_hook;
  ExecutorRun_hook = transparent_executor_run;
  prev_finish = ExecutorFinish_hook;
  ExecutorFinish_hook = transparent_executor_finish;
}

}  // namespace cachekit::pg
