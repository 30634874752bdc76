#include "worker/task_kinds.h"

#include "core/error.h"

namespace cachekit::pg {

TaskKindResult run_http_task(Datum, int64_t) {
  throw Error(sqlstate::kFeatureNotSupported, "http tasks are not available yet");
}
TaskKindResult run_email_task(Datum, int64_t) {
  throw Error(sqlstate::kFeatureNotSupported, "email tasks are not available yet");
}

}  // namespace cachekit::pg
