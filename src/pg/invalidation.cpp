// The invalidation trigger, manual invalidation and the commit callback.
//
// The pending set is a plain vector of relation OIDs for the current
// top-level transaction (InvalidOid stands for "the whole database").
// XACT_EVENT_COMMIT runs after the commit is visible to other backends
// (ProcArrayEndTransaction comes first in CommitTransaction), which is the
// order generations.cpp relies on. Aborts drop the set. Subtransactions are
// not tracked: a table written in a rolled-back savepoint is still bumped at
// commit, invalidating more than needed, never less. The same holds for the
// value-bucket slots and structural generations of tables watched by a
// column (value_pending), bumped at the same point.
//
// Nothing here may throw or ereport once the transaction has committed: the
// commit callback only reads the vector and touches shared memory.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pg/access_checks.h"
#include "pg/app_events.h"
#include "pg/boundary.h"
#include "pg/generations.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/sql_function.h"
#include "pg/value_generations.h"

extern "C" {
#include "access/xact.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_inherits.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

std::vector<Oid> pending;
// Dropped tables, bumped at commit without taking a generation slot.
std::vector<Oid> pending_dropped;

// Tables watched by a column that this transaction changed.
struct ValuePending {
  Oid relid;
  bool structural;
  std::unordered_set<uint32_t> slots;  // empty once structural
};
std::vector<ValuePending> value_pending;

ValuePending &value_entry(Oid relid) {
  // A statement writes one table: the last one is nearly always the one.
  if (!value_pending.empty() && value_pending.back().relid == relid) return value_pending.back();
  for (auto it = value_pending.begin(); it != value_pending.end(); ++it)
    if (it->relid == relid) {
      std::iter_swap(it, value_pending.end() - 1);
      return value_pending.back();
    }
  value_pending.push_back(ValuePending{relid, false, {}});
  return value_pending.back();
}

void clear_pending() {
  pending.clear();
  pending_dropped.clear();
  value_pending.clear();
}

void add_pending(Oid relid) {
  if (std::find(pending.begin(), pending.end(), relid) == pending.end()) pending.push_back(relid);
}

void on_xact(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_COMMIT:
      if (generations_available()) {
        for (Oid relid : pending) bump_generation(MyDatabaseId, relid);
        for (Oid relid : pending_dropped) bump_existing_generation(MyDatabaseId, relid);
        for (const ValuePending &v : value_pending) {
          if (v.structural) {
            bump_structural_generation(MyDatabaseId, v.relid);
            continue;
          }
          for (uint32_t slot : v.slots) bump_value_slot(slot);
        }
      }
      clear_pending();
      break;
    case XACT_EVENT_PRE_PREPARE:
      // Decided later, maybe by another backend, without any callback here:
      // readers of this database bypass the cache until it is decided.
      if ((!pending.empty() || !pending_dropped.empty() || !value_pending.empty()) &&
          generations_available()) {
        TransactionId xid = GetTopTransactionIdIfAny();
        if (TransactionIdIsValid(xid) && !register_in_doubt(MyDatabaseId, xid))
          ereport(ERROR,
                  (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                   errmsg("too many prepared transactions changed tables watched by pg_cachekit"),
                   errhint("Commit or roll back some prepared transactions first.")));
      }
      break;
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      clear_pending();
      break;
    default:
      break;
  }
}

}  // namespace

namespace cachekit::pg {

void forget_ancestors(Datum, Oid);
void install_value_trigger_callbacks();

void install_invalidation_callbacks() {
  RegisterXactCallback(on_xact, nullptr);
  CacheRegisterRelcacheCallback(forget_ancestors, 0);
  install_value_trigger_callbacks();
}

// Ancestors change only with DDL, which sends a relcache invalidation: the
// statement trigger (every write statement) must not scan pg_inherits.
std::unordered_map<Oid, std::vector<Oid>> ancestors_cache;

void forget_ancestors(Datum, Oid) { ancestors_cache.clear(); }

std::vector<Oid> compute_ancestors(Oid relid) {
  std::vector<Oid> out{relid};
  // Breadth-first over pg_inherits: partitions and classic inheritance alike.
  for (size_t i = 0; i < out.size(); ++i) {
    Oid child = out[i];
    List *parents = pg_call([&] {
      List *result = NIL;
      Relation inh = table_open(InheritsRelationId, AccessShareLock);
      ScanKeyData key;
      ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
                  ObjectIdGetDatum(child));
      SysScanDesc scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, nullptr, 1, &key);
      HeapTuple tup;
      while (HeapTupleIsValid(tup = systable_getnext(scan)))
        result = lappend_oid(result, ((Form_pg_inherits)GETSTRUCT(tup))->inhparent);
      systable_endscan(scan);
      table_close(inh, AccessShareLock);
      return result;
    });
    ListCell *lc;
    foreach (lc, parents) {
      Oid parent = lfirst_oid(lc);
      if (std::find(out.begin(), out.end(), parent) == out.end()) out.push_back(parent);
    }
  }
  return out;
}

std::vector<Oid> table_and_ancestors(Oid relid) {
  auto it = ancestors_cache.find(relid);
  if (it != ancestors_cache.end()) return it->second;
  std::vector<Oid> out = compute_ancestors(relid);
  ancestors_cache.emplace(relid, out);
  return out;
}

void note_table_changed(Oid relid) {
  // A child's rows are also its ancestors' rows: readers of the parent must
  // see writes that went straight to a partition, and readers of a partition
  // writes that went through the parent (the reader side depends on
  // ancestors too, see cached_query.cpp).
  for (Oid r : table_and_ancestors(relid)) add_pending(r);
}

void note_table_invalidated(Oid relid) {
  for (Oid r : table_and_ancestors(relid)) {
    if (pg_call([&] { return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(r)); })) {
      add_pending(r);
      // DDL, watch and unwatch come here: readers keyed on values too.
      note_structural(r);
    } else if (std::find(pending_dropped.begin(), pending_dropped.end(), r) ==
               pending_dropped.end()) {
      pending_dropped.push_back(r);
    }
  }
}

void note_database_changed() { add_pending(InvalidOid); }

bool note_value_slot(Oid relid, uint32_t slot) {
  ValuePending &v = value_entry(relid);
  if (v.structural) return false;
  v.slots.insert(slot);
  if (v.slots.size() > kMaxValueSlots) {
    v.structural = true;
    std::unordered_set<uint32_t>().swap(v.slots);
    return false;
  }
  return true;
}

void note_structural(Oid relid) {
  ValuePending &v = value_entry(relid);
  v.structural = true;
  std::unordered_set<uint32_t>().swap(v.slots);
}

bool structural_in_transaction(Oid relid) {
  for (const ValuePending &v : value_pending)
    if (v.relid == relid) return v.structural;
  return false;
}

bool changed_in_transaction(Oid relid) {
  return std::find(pending.begin(), pending.end(), relid) != pending.end() ||
         std::find(pending.begin(), pending.end(), InvalidOid) != pending.end();
}

bool any_change_in_transaction() { return !pending.empty(); }

}  // namespace cachekit::pg

// The invalidation trigger installed by cachekit.watch(): BEFORE ... FOR EACH
// STATEMENT (ENABLE ALWAYS) for ordinary sessions, and BEFORE ... FOR EACH
// ROW (ENABLE REPLICA) because logical replication's apply worker fires row
// triggers only (TRUNCATE fires the statement trigger there too). Under
// session_replication_role = replica both fire; recording a table twice
// changes nothing.
CK_SQL_FUNCTION(ck_invalidate_trigger) {
  return cpp_entry([&]() -> Datum {
    if (!CALLED_AS_TRIGGER(fcinfo))
      throw Error(sqlstate::kObjectNotInPrerequisiteState,
                  "cachekit._invalidate() must be called as a trigger");
    auto *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
    Oid relid = RelationGetRelid(trigdata->tg_relation);
    note_table_changed(relid);
    TriggerEvent ev = trigdata->tg_event;
    // No row trigger fires for TRUNCATE: readers keyed on values too.
    if (TRIGGER_FIRED_BY_TRUNCATE(ev))
      for (Oid r : table_and_ancestors(relid)) note_structural(r);
    // For pub/sub messages, and for TRUNCATE's key patterns; a cached_query-
    // only setup (no channel) needs just the generation bump above.
    const bool publish = settings.invalidation_channel && settings.invalidation_channel[0] != '\0';
    if (publish || TRIGGER_FIRED_BY_TRUNCATE(ev))
      note_statement(relid, TRIGGER_FIRED_BY_INSERT(ev)   ? kOpInsert
                            : TRIGGER_FIRED_BY_UPDATE(ev) ? kOpUpdate
                            : TRIGGER_FIRED_BY_DELETE(ev) ? kOpDelete
                                                          : kOpTruncate);
    // The row-level twin is installed AFTER ROW, where the result is ignored;
    // as a BEFORE ROW trigger, NULL would skip the row.
    if (TRIGGER_FIRED_FOR_ROW(ev))
      return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(ev) ? trigdata->tg_newtuple
                                                         : trigdata->tg_trigtuple);
    return PointerGetDatum(nullptr);
  });
}

// cachekit.invalidate(regclass): bump at commit, as a write would. Only for
// a watched table its caller owns (or cachekit_admin): every existing relid
// noted takes a generation slot in shared memory until restart. The event
// triggers call it for any role's dropped tables, which take none.
CK_SQL_FUNCTION(ck_invalidate) {
  Oid relid = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
  return cpp_entry([&]() -> Datum {
    if (relid == InvalidOid) throw Error(sqlstate::kNullValueNotAllowed, "table must not be NULL");
    check_may_invalidate(relid, fcinfo->flinfo->fn_oid);
    note_table_invalidated(relid);
    PG_RETURN_VOID();
  });
}

// cachekit.invalidate_all(): every cached result of this database.
CK_SQL_FUNCTION(ck_invalidate_all) {
  return cpp_entry([&]() -> Datum {
    note_database_changed();
    PG_RETURN_VOID();
  });
}
