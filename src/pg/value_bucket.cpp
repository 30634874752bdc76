// Value buckets of tables watched by a column.
//
// Without a width a bucket is the value's 64-bit extended hash (seed 0) from
// the type's default hash opclass, which the type cache only accepts when its
// equality operator is the default btree one: values equal by the operator a
// reader's `col = $1` uses hash alike, whatever their representation (1.0
// and 1.00 as numeric). Hashing uses the column's collation; a reader whose
// comparison uses another collation depends on the whole table.
//
// With a width (integers, dates, timestamps) a bucket is floor(value /
// width), so that consecutive buckets cover a range: floor is monotonic,
// every value between A and B lies in the buckets floor(A/w)..floor(B/w).
// Dates count in microseconds (days * USECS_PER_DAY, in 128 bits: infinite
// dates are INT32_MIN/MAX days) so that a width is one interval for all three.
#include "pg/value_bucket.h"

#include <cstdlib>
#include <cstring>

#include "pg/boundary.h"

extern "C" {
#include "catalog/pg_trigger.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "datatype/timestamp.h"
#include "parser/parse_func.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/typcache.h"
}

namespace cachekit::pg {

namespace {

int64_t floor_div(__int128 v, int64_t w) {
  __int128 q = v / w;
  if (v % w != 0 && v < 0) --q;  // w > 0
  return static_cast<int64_t>(q);
}

char kind_of(Oid type) {
  switch (type) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
      return 'i';
    case DATEOID:
      return 'd';
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return 't';
    default:
      return 0;
  }
}

Oid value_trigger_function() {
  return pg_call([] {
    List *name = list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup("_record_values")));
    return LookupFuncName(name, 0, nullptr, true);
  });
}

}  // namespace

bool value_column_from_trigger(Relation rel, const char *const *args, int nargs, ValueColumn *out,
                               std::string *why) {
  if (nargs != 2) {
    *why = "the value trigger has the wrong arguments";
    return false;
  }
  out->name = args[0];
  out->width = std::strtoll(args[1], nullptr, 10);
  const char *colname = args[0];
  AttrNumber attnum = InvalidAttrNumber;
  for (int i = 0; i < RelationGetDescr(rel)->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), i);
    if (att->attisdropped || strcmp(NameStr(att->attname), colname) != 0) continue;
    attnum = att->attnum;
    out->type = att->atttypid;
    out->collation = att->attcollation;
  }
  if (attnum == InvalidAttrNumber) {
    *why = "column " + out->name + " of the watch no longer exists";
    return false;
  }
  out->attnum = attnum;
  const Oid type = out->type;
  TypeCacheEntry *tc = pg_call([&] {
    return lookup_type_cache(type, TYPECACHE_EQ_OPR | TYPECACHE_LT_OPR | TYPECACHE_GT_OPR |
                                       TYPECACHE_BTREE_OPFAMILY |
                                       TYPECACHE_HASH_EXTENDED_PROC_FINFO);
  });
  out->eq_opr = tc->eq_opr;
  if (out->width > 0) {
    out->kind = kind_of(type);
    if (out->kind == 0) {
      *why = "column " + out->name + " has a bucket width but is not an integer, date or timestamp";
      return false;
    }
    const Oid opf = tc->btree_opf;
    out->lt_opr = tc->lt_opr;
    out->gt_opr = tc->gt_opr;
    out->le_opr =
        pg_call([&] { return get_opfamily_member(opf, type, type, BTLessEqualStrategyNumber); });
    out->ge_opr =
        pg_call([&] { return get_opfamily_member(opf, type, type, BTGreaterEqualStrategyNumber); });
  } else {
    out->kind = 'h';
    if (!OidIsValid(tc->eq_opr) || !OidIsValid(tc->hash_extended_proc_finfo.fn_oid)) {
      *why = "the type of column " + out->name + " has no default hash function";
      return false;
    }
    out->hash = &tc->hash_extended_proc_finfo;
  }
  return true;
}

bool value_column_of(Oid relid, ValueColumn *out, std::string *why) {
  const Oid fn = value_trigger_function();
  if (!OidIsValid(fn)) {
    *why = "the table is not watched by a column";
    return false;
  }
  Relation rel = pg_call([&] { return relation_open(relid, AccessShareLock); });
  bool ok = false;
  bool found = false;
  try {
    TriggerDesc *td = rel->trigdesc;
    for (int i = 0; td != nullptr && i < td->numtriggers; ++i) {
      const Trigger &t = td->triggers[i];
      if (t.tgfoid != fn) continue;
      found = true;
      if (t.tgenabled != TRIGGER_FIRES_ALWAYS) {
        *why = "the value trigger " + std::string(t.tgname) + " is not enabled always";
        break;
      }
      // Only the trigger watch() creates records every changed row: one
      // redefined by hand (AFTER UPDATE OF c, a WHEN clause, fewer events)
      // would leave changed rows unrecorded while readers key on values.
      const int16 type = t.tgtype;
      if (strcmp(t.tgname, "cachekit_value") != 0 || !TRIGGER_FOR_ROW(type) ||
          !TRIGGER_FOR_AFTER(type) || !TRIGGER_FOR_INSERT(type) || !TRIGGER_FOR_UPDATE(type) ||
          !TRIGGER_FOR_DELETE(type) || t.tgqual != nullptr || t.tgnattr != 0) {
        *why = "the value trigger " + std::string(t.tgname) +
               " is not the one cachekit.watch() creates (AFTER INSERT OR UPDATE OR DELETE FOR "
               "EACH ROW, no WHEN, no column list)";
        break;
      }
      ok = value_column_from_trigger(rel, t.tgargs, t.tgnargs, out, why);
      break;
    }
  } catch (...) {
    pg_call([&] { relation_close(rel, AccessShareLock); });
    throw;
  }
  pg_call([&] { relation_close(rel, AccessShareLock); });
  if (!found) *why = "the table is not watched by a column";
  return ok;
}

int64_t value_bucket_number(const ValueColumn &col, Datum value) {
  switch (col.kind) {
    case 'i':
      switch (col.type) {
        case INT2OID:
          return floor_div(DatumGetInt16(value), col.width);
        case INT4OID:
          return floor_div(DatumGetInt32(value), col.width);
        default:
          return floor_div(DatumGetInt64(value), col.width);
      }
    case 'd':
      return floor_div(static_cast<__int128>(DatumGetDateADT(value)) * USECS_PER_DAY, col.width);
    case 't':
      return floor_div(DatumGetInt64(value), col.width);
    default:
      return 0;
  }
}

uint64_t value_bucket(const ValueColumn &col, Datum value) {
  if (col.kind != 'h') return static_cast<uint64_t>(value_bucket_number(col, value));
  return DatumGetUInt64(FunctionCall2Coll(col.hash, col.collation, value, Int64GetDatum(0)));
}

}  // namespace cachekit::pg
