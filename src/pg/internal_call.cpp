#include "pg/internal_call.h"

#include <string>
#include <unordered_map>
#include <vector>

#include "pg/boundary.h"
#include "pg/datum.h"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/syscache.h"
}

namespace cachekit::pg {

Value text_val(const std::string &s) { return val(text_datum(s)); }

Value call_internal(const char *name, const std::vector<Oid> &types,
                    const std::vector<Value> &args) {
  Value out;
  static std::unordered_map<std::string, Oid> known;
  Oid &cached = known[name];
  pg_call([&] {
    Oid fn = cached;
    if (OidIsValid(fn)) {
      HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
      bool same =
          HeapTupleIsValid(tup) &&
          strcmp(NameStr(reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup))->proname), name) == 0 &&
          reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup))->pronamespace ==
              get_namespace_oid("cachekit", true);
      if (HeapTupleIsValid(tup)) ReleaseSysCache(tup);
      if (!same) fn = InvalidOid;
    }
    if (!OidIsValid(fn)) {
      List *names = list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup(name)));
      fn = LookupFuncName(names, static_cast<int>(types.size()), types.data(), false);
    }
    cached = fn;
    FmgrInfo flinfo;
    fmgr_info(fn, &flinfo);
    int n = static_cast<int>(args.size());
    auto call = static_cast<FunctionCallInfo>(palloc0(SizeForFunctionCallInfo(n)));
    InitFunctionCallInfoData(*call, &flinfo, n, InvalidOid, nullptr, nullptr);
    for (int i = 0; i < n; ++i) {
      call->args[i].value = args[i].d;
      call->args[i].isnull = args[i].null;
    }
    out.d = FunctionCallInvoke(call);
    out.null = call->isnull;
  });
  return out;
}

}  // namespace cachekit::pg
