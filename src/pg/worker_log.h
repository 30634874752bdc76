// Log lines of the background workers. Every line starts with its
// component and, where there is one, the id of what it is about:
//
//   cachekit launcher: ...
//   cachekit relay: outbox row 123: ...
//   cachekit executor: task 42: ...
//   cachekit maintenance: task 42: ...
//   cachekit cdn: cdn batch 7: ...
//   cachekit metrics: ...
//
// so that an operator can filter the server log (or jsonlog's "message") by
// component and find a task or batch by its id in cachekit.tasks or
// cachekit.cdn_requests. What goes into a line is never a secret, a task's
// arguments, a key or a query text: callers pass ids, names of queues and
// providers, and error messages that were already stored for users to see.
//
// A backend (not a worker) gets no prefix: messages shared with backends
// (redis_conn.cpp) keep the form that client sessions see.
#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

enum class LogComponent { kNone, kLauncher, kRelay, kExecutor, kMaintenance, kCdn, kMetrics };

// Set once by each worker's main function; a backend stays kNone.
void set_log_component(LogComponent c);
LogComponent log_component();

// "cachekit relay: " (empty for kNone). Static storage: usable in errmsg().
const char *log_component_prefix(LogComponent c);

// The prefix with the subject: "cachekit executor: task 42: ".
std::string log_prefix(LogComponent c, const std::string &subject = {});

inline std::string task_subject(int64_t id) { return "task " + std::to_string(id); }
inline std::string cdn_batch_subject(int64_t id) { return "cdn batch " + std::to_string(id); }
inline std::string outbox_row_subject(int64_t id) { return "outbox row " + std::to_string(id); }

// ereport(elevel) of prefix + message, with the SQLSTATE (5 characters;
// nullptr: none) and the detail and hint when not empty. For C++ frames: the
// ereport runs through pg_call, so it never longjmps over them.
void worker_log(int elevel, LogComponent c, const std::string &subject, const char *sqlstate,
                const std::string &message, const std::string &detail = {},
                const std::string &hint = {});

}  // namespace cachekit::pg

// For code in the Postgres zone (plain ereport calls): errmsg() with the
// component's prefix in front of the format.
//   ereport(WARNING, (errcode(...), worker_errmsg(LogComponent::kLauncher, "... \"%s\"", name)));
#define worker_errmsg(component, fmt, ...) \
  errmsg("%s" fmt, ::cachekit::pg::log_component_prefix(component), ##__VA_ARGS__)
