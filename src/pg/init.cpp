// Library entry point: settings always; shared memory only when loaded via
// shared_preload_libraries (the plain cache functions work without it).
#include "pg/app_events.h"
#include "pg/call_plan.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/query_plan.h"
#include "pg/shmem.h"
#include "pg/task_common.h"
#include "pg/transparent_plan.h"
#include "worker/launcher.h"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

extern "C" void _PG_init(void) {
  cachekit::pg::define_settings(process_shared_preload_libraries_in_progress);
  // Xact callbacks run newest first: the generation bump (invalidation)
  // must come before the Redis delivery (app events) at commit.
  cachekit::pg::install_app_event_callbacks();
  cachekit::pg::install_invalidation_callbacks();
  cachekit::pg::install_plan_cache_callbacks();
  cachekit::pg::install_utility_hook();
  cachekit::pg::install_task_callbacks();
  cachekit::pg::install_call_planner();
  // After the call planner: the transparent hook is called first.
  cachekit::pg::install_transparent_planner();
  cachekit::pg::install_transparent_executor();
  if (process_shared_preload_libraries_in_progress) {
    cachekit::pg::install_shmem_hooks();
    cachekit::pg::register_launcher();
    cachekit::pg::register_metrics_endpoint();
  }
}
