// The value buckets of a table watched by a column: how a value maps to a
// bucket, the same way for the writer (value_trigger.cpp, from OLD and NEW)
// and for the reader (query_plan.cpp, from the query's parameters).
#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/relcache.h"
}

namespace cachekit::pg {

struct ValueColumn {
  std::string name;
  AttrNumber attnum = 0;
  Oid type = InvalidOid;
  Oid collation = InvalidOid;
  // 'h': the type's hash of the value; with a bucket width: 'i' integers,
  // 'd' dates and 't' timestamps (with or without time zone), bucket =
  // floor(value / width), the value in its integer units or microseconds.
  char kind = 'h';
  int64_t width = 0;
  FmgrInfo *hash =
      nullptr;  // kind 'h': the type cache's extended hash (lives as long as the backend)
  // Reader side: the type's default btree operators (range only with a width).
  Oid eq_opr = InvalidOid, lt_opr = InvalidOid, le_opr = InvalidOid, gt_opr = InvalidOid,
      ge_opr = InvalidOid;
};

// The by-column setting of rel from trigger `trigger` (its arguments: column
// name, width). False, with the reason, when it cannot be used (column
// dropped or renamed, type without a hash function).
bool value_column_from_trigger(Relation rel, const char *const *args, int nargs, ValueColumn *out,
                               std::string *why);

// The value trigger of rel, if one exists and fires in every session
// (ENABLE ALWAYS): a reader may key on values only then. False with the
// reason otherwise.
bool value_column_of(Oid relid, ValueColumn *out, std::string *why);

// The bucket of a non-NULL value of the column's type (or of the type its
// equality operator takes, e.g. text for varchar). May ereport: call it
// inside pg_call.
uint64_t value_bucket(const ValueColumn &col, Datum value);

// The bucket number of a value (kinds i, d, t), for ranges: buckets are
// consecutive integers there.
int64_t value_bucket_number(const ValueColumn &col, Datum value);

}  // namespace cachekit::pg
