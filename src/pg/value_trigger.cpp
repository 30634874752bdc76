// The value trigger of a table watched by a column:
//   cachekit_value AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW,
//   ENABLE ALWAYS (logical replication's apply worker fires it too),
// recording the buckets of the column's value in OLD and NEW for a bump at
// commit (invalidation.cpp, value_generations.cpp).
//
// AFTER ROW, not BEFORE ROW, although each row queues a trigger event until
// the end of its statement (about 16 bytes a row, as foreign keys do):
//   - it sees the row as stored: no later BEFORE ROW trigger can still change
//     NEW, and stored generated columns have their values;
//   - a BEFORE ROW UPDATE or DELETE trigger makes Postgres lock every row
//     before the trigger runs (GetTupleForTrigger): a WAL record per row. A
//     1M-row UPDATE measured here wrote 30 % more WAL and took about 1.5x
//     the backend CPU time of an unwatched one with a BEFORE ROW trigger,
//     1.33x with this one (a whole-table watch: 1.11x) and no extra WAL;
//   - COPY keeps inserting in batches (a BEFORE ROW INSERT trigger turns it
//     into single-row inserts).
// A row changed by a rolled-back subtransaction fires nothing; one it
// recorded before the rollback stays recorded (more invalidation, never less).
//
// NULL values are not recorded: no reader's `col = X`, IN or range condition
// matches NULL, and a change from or to NULL records the other side's value.
#include <unordered_map>

#include "pg/boundary.h"
#include "pg/invalidation.h"
#include "pg/sql_function.h"
#include "pg/value_bucket.h"
#include "pg/value_generations.h"

extern "C" {
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/rel.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

// The column of each value trigger (by trigger OID), parsed once. Trigger
// arguments and column types change only with DDL, which sends a relcache
// invalidation; `usable` false: record the table as structural.
struct WriterColumn {
  bool usable;
  ValueColumn col;
};
std::unordered_map<Oid, WriterColumn> writer_columns;
// Cleared at the next trigger call, not in the callback: detoasting a value
// opens the toast table, which may process invalidations while a call
// holds an entry.
bool writer_columns_stale = false;

void forget_writer_columns(Datum, Oid) { writer_columns_stale = true; }

const WriterColumn &writer_column(Relation rel, const Trigger *trigger) {
  if (writer_columns_stale) {
    writer_columns.clear();
    writer_columns_stale = false;
  }
  auto it = writer_columns.find(trigger->tgoid);
  if (it != writer_columns.end()) return it->second;
  WriterColumn wc{false, {}};
  std::string why;
  wc.usable = value_column_from_trigger(rel, trigger->tgargs, trigger->tgnargs, &wc.col, &why);
  return writer_columns.emplace(trigger->tgoid, std::move(wc)).first->second;
}

// The bucket of the column in `tuple`; false for NULL.
bool tuple_bucket(const ValueColumn &col, Relation rel, HeapTuple tuple, uint64_t *bucket) {
  return pg_call([&] {
    bool isnull = false;
    Datum d = heap_getattr(tuple, col.attnum, RelationGetDescr(rel), &isnull);
    if (isnull) return false;
    *bucket = value_bucket(col, d);
    return true;
  });
}

}  // namespace

namespace cachekit::pg {

void install_value_trigger_callbacks() { CacheRegisterRelcacheCallback(forget_writer_columns, 0); }

}  // namespace cachekit::pg

CK_SQL_FUNCTION(ck_value_trigger) {
  return cpp_entry([&]() -> Datum {
    if (!CALLED_AS_TRIGGER(fcinfo))
      throw Error(sqlstate::kObjectNotInPrerequisiteState,
                  "cachekit._record_values() must be called as a trigger");
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    const TriggerEvent ev = td->tg_event;
    if (!TRIGGER_FIRED_FOR_ROW(ev) || !TRIGGER_FIRED_AFTER(ev) || TRIGGER_FIRED_BY_TRUNCATE(ev))
      throw Error(sqlstate::kObjectNotInPrerequisiteState,
                  "cachekit._record_values() must be an AFTER ROW trigger");
    // (Ignored for AFTER triggers.)
    HeapTuple result = TRIGGER_FIRED_BY_UPDATE(ev) ? td->tg_newtuple : td->tg_trigtuple;
    Relation rel = td->tg_relation;
    const Oid relid = RelationGetRelid(rel);
    if (!value_generations_available() || structural_in_transaction(relid))
      return PointerGetDatum(result);
    const WriterColumn &wc = writer_column(rel, td->tg_trigger);
    if (!wc.usable) {
      note_structural(relid);
      return PointerGetDatum(result);
    }
    uint64_t bucket = 0;
    // OLD of UPDATE and DELETE (tg_trigtuple), NEW of INSERT (tg_trigtuple)
    // and UPDATE (tg_newtuple).
    if (tuple_bucket(wc.col, rel, td->tg_trigtuple, &bucket) &&
        !note_value_slot(relid, value_slot(MyDatabaseId, relid, bucket)))
      return PointerGetDatum(result);
    if (TRIGGER_FIRED_BY_UPDATE(ev) && tuple_bucket(wc.col, rel, td->tg_newtuple, &bucket))
      note_value_slot(relid, value_slot(MyDatabaseId, relid, bucket));
    return PointerGetDatum(result);
  });
}
