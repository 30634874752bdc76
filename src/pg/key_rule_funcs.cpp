// cachekit.invalidate_key_on(): the checks that must see the calling role,
// in front of cachekit._add_key_rule(), which creates the rule and its
// triggers as the extension owner (SECURITY DEFINER).
//
// A key rule turns column values into key names that are deleted and
// published in Redis, so creating one needs what reading those values needs:
// SELECT on every column the template and the UPDATE column filter use, or
// ownership of the table. This function is not SECURITY DEFINER, so
// GetUserId() is the role that called it, through whatever chain of
// functions. _add_key_rule is granted to nobody; it is called here through
// fmgr, which checks no EXECUTE privilege, so no granted function reaches it
// without these checks.
//
// The template must also start with literal text: its key pattern (TRUNCATE,
// too many keys) would otherwise match every key in the Redis database.
#include <string>
#include <vector>

#include "core/key_template.h"
#include "core/keys.h"
#include "pg/access_checks.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/sql_function.h"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr int kArgs = 5;  // table, template, name, operations, columns

// Elements of a text[] argument (NULL elements skipped; the rule function
// rejects what it must).
std::vector<std::string> text_array(FunctionCallInfo fcinfo, int i) {
  std::vector<std::string> out;
  if (PG_ARGISNULL(i)) return out;
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  pg_call([&] {
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(i), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls,
                      &n);
  });
  for (int k = 0; k < n; ++k)
    if (!nulls[k]) out.push_back(pg_call([&] { return TextDatumGetCString(elems[k]); }));
  return out;
}

Oid add_key_rule_function() {
  return pg_call([] {
    Oid types[kArgs] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
    return LookupFuncName(
        list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup("_add_key_rule"))), kArgs,
        types, false);
  });
}

}  // namespace

CK_SQL_FUNCTION(ck_invalidate_key_on) {
  Arg tmpl = varlena_arg(fcinfo, 1);
  return cpp_entry([&]() -> Datum {
    if (PG_ARGISNULL(0) || tmpl.null)
      throw Error(sqlstate::kNullValueNotAllowed, "table and template must not be NULL");
    const Oid relid = PG_GETARG_OID(0);
    // Malformed templates get the parser's own message first.
    KeyTemplate parsed = KeyTemplate::parse(tmpl.view());
    validate_template_prefix(tmpl.view(), settings.key_prefix ? settings.key_prefix : "");
    std::vector<std::string> columns = parsed.columns();
    for (std::string &c : text_array(fcinfo, 4)) columns.push_back(std::move(c));
    check_may_read_columns(relid, columns);

    const Oid fn = add_key_rule_function();
    Datum result = 0;
    bool isnull = false;
    pg_call([&] {
      FmgrInfo flinfo;
      fmgr_info(fn, &flinfo);
      auto call = static_cast<FunctionCallInfo>(palloc0(SizeForFunctionCallInfo(kArgs)));
      InitFunctionCallInfoData(*call, &flinfo, kArgs, fcinfo->fncollation, nullptr, nullptr);
      for (int i = 0; i < kArgs; ++i) {
        call->args[i].isnull = PG_ARGISNULL(i);
        call->args[i].value = PG_ARGISNULL(i) ? static_cast<Datum>(0) : PG_GETARG_DATUM(i);
      }
      result = FunctionCallInvoke(call);
      isnull = call->isnull;
    });
    if (isnull) PG_RETURN_NULL();
    return result;
  });
}
