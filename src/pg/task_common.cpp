#include "pg/task_common.h"

#include "core/error.h"
#include "pg/boundary.h"
#include "pg/guc.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace cachekit::pg {

TaskFunction describe_task_function(Oid fn) {
  TaskFunction f{false, nullptr, nullptr, nullptr, InvalidOid};
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
  if (!HeapTupleIsValid(tup)) {
    f.problem = psprintf("function %u does not exist", fn);
    f.detail = "It was dropped after the task was queued.";
    return f;
  }
  auto *proc = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
  // Every task function takes jsonb: the name qualified, the type plain.
  f.signature = psprintf(
      "%s(jsonb)",
      quote_qualified_identifier(get_namespace_name(proc->pronamespace), NameStr(proc->proname)));
  f.result_type = proc->prorettype;
  if (proc->prokind != PROKIND_FUNCTION || proc->proretset) {
    f.problem = psprintf("%s cannot be a task", f.signature);
    f.detail =
        "A task is a plain function returning one value (not a procedure, an aggregate "
        "or a set-returning function).";
  } else if (proc->prorettype != JSONBOID && proc->prorettype != VOIDOID) {
    f.problem = psprintf("%s cannot be a task", f.signature);
    f.detail = psprintf("A task function returns jsonb or void, not %s.",
                        format_type_be(proc->prorettype));
  } else {
    f.ok = true;
  }
  ReleaseSysCache(tup);
  return f;
}

namespace {

// The jsonb member `key` of an object: its type, or jbvNull when absent.
enum jbvType member_type(Datum args, const char *key) {
  Jsonb *jb = DatumGetJsonbP(args);
  JsonbValue k;
  k.type = jbvString;
  k.val.string.val = const_cast<char *>(key);
  k.val.string.len = static_cast<int>(strlen(key));
  JsonbValue *v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
  return v == nullptr ? jbvNull : v->type;
}

}  // namespace

void validate_builtin_args(const std::string &kind, Datum args) {
  auto type = [&](const char *key) { return pg_call([&] { return member_type(args, key); }); };
  if (kind == "http") {
    if (type("url") != jbvString)
      throw Error(sqlstate::kInvalidParameterValue, "an http task needs a \"url\" string",
                  "Arguments: {\"url\": ..., \"method\": \"GET\", \"headers\": {...}, "
                  "\"body\": \"...\", \"timeout_ms\": 30000}.");
    if (type("method") != jbvNull && type("method") != jbvString)
      throw Error(sqlstate::kInvalidParameterValue, "\"method\" of an http task must be a string");
    // An object or array body is sent as JSON (run_http_task adds the Content-Type).
    if (type("body") != jbvNull && type("body") != jbvString && type("body") != jbvBinary)
      throw Error(sqlstate::kInvalidParameterValue,
                  "\"body\" of an http task must be a string, an object or an array");
  } else if (kind == "email") {
    jbvType to = type("to");
    if (to != jbvString && to != jbvBinary)
      throw Error(sqlstate::kInvalidParameterValue,
                  "an email task needs \"to\" (an address or an array of them)",
                  "Arguments: {\"to\": ..., \"cc\": ..., \"subject\": ..., \"text\": ..., "
                  "\"html\": ..., \"from\": ...}.");
  }
}

std::string task_result_key(Oid dbid, int64_t id) {
  return std::string(settings.key_prefix ? settings.key_prefix : "") +
         "task:" + std::to_string(dbid) + ":" + std::to_string(id);
}

}  // namespace cachekit::pg
