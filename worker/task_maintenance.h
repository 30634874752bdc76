// Reclaiming the tasks of executors that are gone, and starting due
// schedules: part of the relay's cycle (see task_maintenance.cpp).
#pragma once

#include "pg/extension_objects.h"

namespace cachekit::pg {

// In the relay's transaction, as the extension owner. Returns how many tasks
// became runnable (the relay wakes executors after its commit).
int task_maintenance(Oid dbid, const ExtensionObjects &objects);

}  // namespace cachekit::pg
