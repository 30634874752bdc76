#include "pg/worker_log.h"

#include <cstring>

#include "pg/boundary.h"

namespace cachekit::pg {

namespace {

LogComponent current = LogComponent::kNone;
emit_log_hook_type prev_emit_log_hook = nullptr;

// Lines a worker did not write itself (Postgres' own: a lock timeout in a
// cycle, "terminating background worker ... due to administrator command", a
// task function's RAISE LOG) get the worker's prefix too, so that every line
// of a worker can be found by its component. Runs while an error is being
// reported: nothing here may raise one (no palloc that can fail).
void prefix_emit_log_hook(ErrorData *edata) {
  const char *prefix = log_component_prefix(current);
  if (edata->message && prefix[0] != '\0' && strncmp(edata->message, "cachekit ", 9) != 0) {
    size_t plen = strlen(prefix), mlen = strlen(edata->message);
    auto *text = static_cast<char *>(
        MemoryContextAllocExtended(ErrorContext, plen + mlen + 1, MCXT_ALLOC_NO_OOM));
    if (text) {
      memcpy(text, prefix, plen);
      memcpy(text + plen, edata->message, mlen + 1);
      edata->message = text;  // the old one is freed with ErrorContext
    }
  }
  if (prev_emit_log_hook) prev_emit_log_hook(edata);
}

}  // namespace

void set_log_component(LogComponent c) {
  if (current == LogComponent::kNone && c != LogComponent::kNone) {
    prev_emit_log_hook = emit_log_hook;
    emit_log_hook = prefix_emit_log_hook;
  }
  current = c;
}
LogComponent log_component() { return current; }

const char *log_component_prefix(LogComponent c) {
  switch (c) {
    case LogComponent::kLauncher:
      return "cachekit launcher: ";
    case LogComponent::kRelay:
      return "cachekit relay: ";
    case LogComponent::kExecutor:
      return "cachekit executor: ";
    case LogComponent::kMaintenance:
      return "cachekit maintenance: ";
    case LogComponent::kCdn:
      return "cachekit cdn: ";
    case LogComponent::kMetrics:
      return "cachekit metrics: ";
    case LogComponent::kNone:
      break;
  }
  return "";
}

std::string log_prefix(LogComponent c, const std::string &subject) {
  std::string p = log_component_prefix(c);
  if (!subject.empty()) p += subject + ": ";
  return p;
}

void worker_log(int elevel, LogComponent c, const std::string &subject, const char *sqlstate,
                const std::string &message, const std::string &detail, const std::string &hint) {
  const std::string text = log_prefix(c, subject) + message;
  pg_call([&] {
    ereport(elevel, (sqlstate && strlen(sqlstate) == 5
                         ? errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3],
                                                 sqlstate[4]))
                         : 0,
                     errmsg_internal("%s", text.c_str()),
                     detail.empty() ? 0 : errdetail_internal("%s", detail.c_str()),
                     hint.empty() ? 0 : errhint("%s", hint.c_str())));
  });
}

}  // namespace cachekit::pg
