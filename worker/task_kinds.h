// The built-in task kinds that leave the database: http (libcurl, behind
// cachekit.http_allowed_hosts) and email (SMTP through libcurl). Arguments
// are the task's jsonb; what comes back is recorded by the executor.
#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

struct TaskKindResult {
  bool ok = false;
  bool retryable = true;    // a failed attempt that another may fix (5xx, 429, network)
  std::string result_json;  // stored as the task's result (also on failure: the response)
  std::string sqlstate = "58000";
  std::string message, detail;
  double retry_after_s = -1;       // the server's Retry-After
  bool wake_after_commit = false;  // it queued a task that is due now
};

// Throw cachekit::Error for bad arguments or a refused host (the task is
// then retried like any failure, or dead after max_attempts).
TaskKindResult run_http_task(Datum args, int64_t timeout_ms);
TaskKindResult run_email_task(Datum args, int64_t timeout_ms);

}  // namespace cachekit::pg
