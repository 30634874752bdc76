#include "pg/boundary.h"

#include <cstring>

namespace cachekit::pg {

namespace {
// Static, fixed-size: filling them cannot allocate, so it cannot fail inside
// a catch block. Long texts are truncated rather than lost.
char saved_sqlstate[6];
char saved_message[1024];
char saved_detail[1024];
char saved_hint[512];

void copy_text(char *dst, size_t size, const char *src) {
  if (src == nullptr) src = "";
  strncpy(dst, src, size - 1);
  dst[size - 1] = '\0';
}
}  // namespace

void save_cpp_error(const char *sqlstate, const char *message, const char *detail,
                    const char *hint) noexcept {
  copy_text(saved_sqlstate, sizeof saved_sqlstate, sqlstate);
  copy_text(saved_message, sizeof saved_message, message);
  copy_text(saved_detail, sizeof saved_detail, detail);
  copy_text(saved_hint, sizeof saved_hint, hint);
}

void raise_saved_error(ErrorData *pg_error) {
  if (pg_error != nullptr) ReThrowError(pg_error);
  const char *s = saved_sqlstate;
  ereport(ERROR, (errcode(MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4])), errmsg("%s", saved_message),
                  saved_detail[0] ? errdetail("%s", saved_detail) : 0,
                  saved_hint[0] ? errhint("%s", saved_hint) : 0));
  pg_unreachable();
}

}  // namespace cachekit::pg
