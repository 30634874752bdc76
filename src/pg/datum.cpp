#include <string>

#include "core/value_codec.h"
#include "pg/datum.h"

extern "C" {
#include "postgres.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

namespace cachekit::pg {

Arg varlena_arg(FunctionCallInfo fcinfo, int i) {
  Arg a;
  if (PG_ARGISNULL(i)) return a;
  struct varlena *v = PG_GETARG_VARLENA_PP(i);
  a.data = VARDATA_ANY(v);
  a.len = VARSIZE_ANY_EXHDR(v);
  a.null = false;
  return a;
}

Arg jsonb_arg(FunctionCallInfo fcinfo, int i) {
  Arg a;
  if (PG_ARGISNULL(i)) return a;
  Jsonb *jb = PG_GETARG_JSONB_P(i);
  char *s = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
  a.data = s;
  a.len = strlen(s);
  a.null = false;
  return a;
}

std::string_view required(const Arg &a, const char *what) {
  if (a.null) throw Error(sqlstate::kNullValueNotAllowed, std::string(what) + " must not be NULL");
  return a.view();
}

Datum text_datum(std::string_view v) {
  return pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(v.data(), v.size())); });
}

Datum bytea_datum(std::string_view v) {
  return pg_call([&] {
    bytea *b = static_cast<bytea *>(palloc(v.size() + VARHDRSZ));
    SET_VARSIZE(b, v.size() + VARHDRSZ);
    memcpy(VARDATA(b), v.data(), v.size());
    return PointerGetDatum(b);
  });
}

Datum jsonb_datum(std::string_view v) {
  check_text(v);
  return pg_call([&] {
    char *s = pnstrdup(v.data(), v.size());
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
  });
}

void check_text(std::string_view v) {
  check_text_compatible(v);
  if (!pg_verify_mbstr(GetDatabaseEncoding(), v.data(), static_cast<int>(v.size()), true))
    throw Error(
        sqlstate::kCharacterNotInRepertoire, "cached value cannot be read as text",
        std::string("It is not valid in the database encoding ") + GetDatabaseEncodingName() + ".",
        "Use cachekit.cache_get_bytea() for binary values.");
}

int ttl_arg(FunctionCallInfo fcinfo, int i, int fallback) {
  if (PG_ARGISNULL(i)) return fallback;
  int ttl = PG_GETARG_INT32(i);
  if (ttl <= 0)
    throw Error(sqlstate::kInvalidParameterValue, "ttl must be a positive number of seconds",
                "The ttl given was " + std::to_string(ttl) + ".",
                "Pass NULL to use the default (cachekit.default_ttl or cachekit.session_ttl).");
  return ttl;
}

void check_for_interrupts() {
  pg_call([] { CHECK_FOR_INTERRUPTS(); });
}

}  // namespace cachekit::pg
