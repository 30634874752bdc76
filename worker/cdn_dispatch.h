// The cdn_dispatch task kind (see cdn_dispatch.cpp).
#pragma once

#include "worker/task_kinds.h"

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// Inside the executor's transaction, with SPI connected, as the extension
// owner (task_executor.cpp's as_owner). `role` is the task's role.
TaskKindResult run_cdn_dispatch(Oid role);

}  // namespace cachekit::pg
