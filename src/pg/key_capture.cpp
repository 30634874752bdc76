// Key capture: cachekit._capture_keys(rule name, template, comma-separated
// UPDATE columns), the trigger function of key rules.
//
// Two kinds of trigger call it, one per operation of the rule:
//  - AFTER ... FOR EACH STATEMENT with transition tables (ENABLE ALWAYS): one
//    call per statement however many rows, for ordinary sessions;
//  - AFTER ... FOR EACH ROW (ENABLE REPLICA): logical replication's apply
//    worker fires row triggers only, never statement triggers.
// A session with session_replication_role = replica fires both kinds for
// the same rows: keys are a set and rows are counted once per statement
// (ChangeSet::count_rows), so nothing is recorded twice.
//
// With UPDATE columns given, an UPDATE row produces keys only when one of
// those columns changed (OLD and NEW compared by their text output).
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/change_set.h"
#include "core/key_template.h"
#include "pg/app_events.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/key_capture.h"
#include "pg/relay_state.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

struct Rule {
  std::string name;
  KeyTemplate tmpl;
  std::string pattern;
  std::vector<int> attnums;                 // per template column
  std::vector<int> changed_attnums;         // UPDATE filter; empty: any change
  std::unordered_map<int, Oid> output_fns;  // per attnum of either list
};

// Parsed rules per trigger: a row trigger runs once per row. Trigger
// arguments and column numbers change only with DDL, which sends a relcache
// invalidation. shared_ptr: a call keeps its rule even if an invalidation
// arrives while it runs (output functions may read the catalogs).
std::unordered_map<Oid, std::shared_ptr<const Rule>> rules;
void forget_rules(Datum, Oid) { rules.clear(); }

Oid capture_fn_oid() {
  return pg_call([] {
    List *name = list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup("_capture_keys")));
    return LookupFuncName(name, 0, nullptr, true);
  });
}

std::vector<int> attnums_for(Relation rel, const std::vector<std::string> &names) {
  std::vector<int> out;
  TupleDesc desc = RelationGetDescr(rel);
  for (const auto &n : names) {
    int found = 0;
    for (int i = 0; i < desc->natts; ++i) {
      Form_pg_attribute a = TupleDescAttr(desc, i);
      if (!a->attisdropped && n == NameStr(a->attname)) found = i + 1;
    }
    if (found == 0)
      throw Error("42703",
                  "key rule names column \"" + n + "\" which " +
                      std::string(RelationGetRelationName(rel)) + " does not have",
                  {}, "Drop and re-create the key rule.");
    out.push_back(found);
  }
  return out;
}

std::vector<std::string> split_commas(const char *s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char *p = s; *p; ++p) {
    if (*p == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(*p);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::shared_ptr<const Rule> rule_for(TriggerData *td) {
  Trigger *tg = td->tg_trigger;
  auto it = rules.find(tg->tgoid);
  if (it != rules.end()) return it->second;
  if (tg->tgnargs < 3) throw Error(sqlstate::kInternalError, "key rule trigger lacks arguments");
  auto rule =
      std::make_shared<Rule>(Rule{tg->tgargs[0], KeyTemplate::parse(tg->tgargs[1]), {}, {}, {}});
  rule->pattern = rule->tmpl.pattern();
  rule->attnums = attnums_for(td->tg_relation, rule->tmpl.columns());
  rule->changed_attnums = attnums_for(td->tg_relation, split_commas(tg->tgargs[2]));
  // Types change only with DDL too: no catalog lookup per row.
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  for (const std::vector<int> *list : {&rule->attnums, &rule->changed_attnums})
    for (int a : *list)
      rule->output_fns[a] = pg_call([&] {
        Oid out;
        bool varlena;
        getTypeOutputInfo(TupleDescAttr(desc, a - 1)->atttypid, &out, &varlena);
        return out;
      });
  rules[tg->tgoid] = rule;
  return rule;
}

// Text of one attribute of the slot's tuple (nullopt for NULL).
std::optional<std::string> attr_text(const Rule &rule, TupleTableSlot *slot, int attnum) {
  bool isnull = false;
  Datum d = pg_call([&] { return slot_getattr(slot, attnum, &isnull); });
  if (isnull) return std::nullopt;
  Oid out = rule.output_fns.at(attnum);
  char *s = pg_call([&] { return OidOutputFunctionCall(out, d); });
  return std::string(s);
}

bool changed(const Rule &rule, TupleTableSlot *old_slot, TupleTableSlot *new_slot) {
  if (rule.changed_attnums.empty() || old_slot == nullptr || new_slot == nullptr) return true;
  for (int a : rule.changed_attnums)
    if (attr_text(rule, old_slot, a) != attr_text(rule, new_slot, a)) return true;
  return false;
}

void keys_from(TableChange &t, const Rule &rule, TupleTableSlot *slot) {
  std::vector<std::optional<std::string>> values;
  values.reserve(rule.attnums.size());
  for (int a : rule.attnums) values.push_back(attr_text(rule, slot, a));
  auto key = rule.tmpl.expand(values);
  if (!key) return;
  auto outcome = transaction_changes().add_key(t, rule.pattern, std::move(*key),
                                               static_cast<size_t>(settings.max_keys_per_xact));
  if (outcome == ChangeSet::KeyOutcome::kOverflowed) count_app(AppCounter::kKeysOverflowed);
}

// Keys of one row: OLD and NEW of an UPDATE, the row of INSERT or DELETE.
void keys_of_row(TableChange &t, const Rule &rule, TupleTableSlot *old_slot,
                 TupleTableSlot *new_slot) {
  if (t.overflow) {
    // Past the key limit: the rule's pattern covers whatever it would add.
    t.add_pattern(rule.pattern);
    return;
  }
  if (!changed(rule, old_slot, new_slot)) return;
  if (old_slot) keys_from(t, rule, old_slot);
  if (new_slot) keys_from(t, rule, new_slot);
}

// AFTER ... FOR EACH ROW: the trigger manager hands the row(s) in slots and
// runs each call in a per-row memory context.
uint64 capture_row(TriggerData *td, TableChange &t, const Rule &rule) {
  TupleTableSlot *old_slot = nullptr, *new_slot = nullptr;
  if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
    new_slot = td->tg_trigslot;
  } else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
    old_slot = td->tg_trigslot;
    new_slot = td->tg_newslot;
  } else {
    old_slot = td->tg_trigslot;
  }
  keys_of_row(t, rule, old_slot, new_slot);
  return 1;
}

// AFTER ... FOR EACH STATEMENT with transition tables.
uint64 capture_statement(TriggerData *td, TableChange &t, const Rule &rule) {
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  TupleTableSlot *old_slot = nullptr, *new_slot = nullptr;
  pg_call([&] {
    if (td->tg_oldtable) {
      old_slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
      tuplestore_rescan(td->tg_oldtable);
    }
    if (td->tg_newtable) {
      new_slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
      tuplestore_rescan(td->tg_newtable);
    }
  });
  // Output strings of each row are freed with the row: a 1M-row statement
  // must not keep 1M allocations alive.
  MemoryContext row_cxt = pg_call([] {
    return AllocSetContextCreate(CurrentMemoryContext, "pg_cachekit key capture",
                                 ALLOCSET_SMALL_SIZES);
  });
  MemoryContext outer_cxt = CurrentMemoryContext;
  // The statement's rows, known without reading them: past the key limit
  // only they are needed (the rule's pattern covers the keys), and a large
  // statement must not read its transition tables back for nothing.
  const uint64 total = pg_call([&] {
    int64 n_old = td->tg_oldtable ? tuplestore_tuple_count(td->tg_oldtable) : 0;
    int64 n_new = td->tg_newtable ? tuplestore_tuple_count(td->tg_newtable) : 0;
    return static_cast<uint64>(std::max(n_old, n_new));
  });
  if (t.overflow) t.add_pattern(rule.pattern);
  uint64 rows = 0;
  while (!t.overflow) {
    bool have_old = old_slot && pg_call([&] {
                      return tuplestore_gettupleslot(td->tg_oldtable, true, false, old_slot);
                    });
    bool have_new = new_slot && pg_call([&] {
                      return tuplestore_gettupleslot(td->tg_newtable, true, false, new_slot);
                    });
    if (!have_old && !have_new) break;
    ++rows;
    if ((rows & 4095) == 0) check_for_interrupts();
    MemoryContextReset(row_cxt);
    MemoryContextSwitchTo(row_cxt);
    // OLD and NEW transition rows of an UPDATE come in pairs.
    keys_of_row(t, rule, have_old ? old_slot : nullptr, have_new ? new_slot : nullptr);
    MemoryContextSwitchTo(outer_cxt);
  }
  MemoryContextSwitchTo(outer_cxt);
  MemoryContextDelete(row_cxt);
  pg_call([&] {
    if (old_slot) ExecDropSingleTupleTableSlot(old_slot);
    if (new_slot) ExecDropSingleTupleTableSlot(new_slot);
  });
  return std::max(rows, total);
}

}  // namespace

namespace cachekit::pg {

void install_key_capture_callbacks() { CacheRegisterRelcacheCallback(forget_rules, 0); }

std::vector<std::string> rule_patterns(Oid relid) {
  Oid fn = capture_fn_oid();
  std::vector<std::string> out;
  // The statement holds a lock on the table, so its relcache entry (and the
  // trigger arguments in it) stays valid while we read them.
  TriggerDesc *trigdesc = pg_call([&] {
    Relation rel = relation_open(relid, NoLock);
    TriggerDesc *desc = rel->trigdesc;
    relation_close(rel, NoLock);
    return desc;
  });
  if (trigdesc == nullptr) return out;
  for (int i = 0; i < trigdesc->numtriggers; ++i) {
    Trigger *tg = &trigdesc->triggers[i];
    if (tg->tgfoid == fn && tg->tgnargs >= 2) {
      std::string p = KeyTemplate::parse(tg->tgargs[1]).pattern();
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace cachekit::pg

CK_SQL_FUNCTION(ck_capture_keys) {
  return cpp_entry([&]() -> Datum {
    if (!CALLED_AS_TRIGGER(fcinfo))
      throw Error(sqlstate::kObjectNotInPrerequisiteState,
                  "cachekit._capture_keys() must be called as a trigger");
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    std::shared_ptr<const Rule> rule = rule_for(td);
    TableChange &t = changed_table(RelationGetRelid(td->tg_relation));
    TriggerEvent ev = td->tg_event;
    t.ops |= TRIGGER_FIRED_BY_INSERT(ev)   ? kOpInsert
             : TRIGGER_FIRED_BY_UPDATE(ev) ? kOpUpdate
                                           : kOpDelete;
    const bool per_row = TRIGGER_FIRED_FOR_ROW(ev);
    uint64 rows = per_row ? capture_row(td, t, *rule) : capture_statement(td, t, *rule);
    // Several rules, and both kinds of trigger, see the rows of one
    // statement: count them once per (command, event).
    uint64_t statement =
        (static_cast<uint64_t>(GetCurrentCommandId(false)) << 4) | (ev & TRIGGER_EVENT_OPMASK);
    ChangeSet::count_rows(t, statement, rule->name, rows, per_row);
    // Ignored for AFTER triggers; were one created BEFORE, NULL would skip the row.
    if (per_row)
      return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(ev) ? td->tg_newtuple : td->tg_trigtuple);
    return PointerGetDatum(nullptr);
  });
}

CK_SQL_FUNCTION(ck_template_columns) {
  Arg tmpl = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    KeyTemplate t = KeyTemplate::parse(required(tmpl, "template"));
    std::vector<Datum> items;
    for (const auto &c : t.columns()) items.push_back(text_datum(c));
    return pg_call([&] {
      return PointerGetDatum(construct_array(items.data(), static_cast<int>(items.size()), TEXTOID,
                                             -1, false, TYPALIGN_INT));
    });
  });
}
