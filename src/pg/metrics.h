// The two producers of the metrics (METRICS in README "Monitoring"): the SQL
// function cachekit.metrics() and the HTTP endpoint. Both render through
// core/metrics_text; the families that are not about one database come from
// here.
#pragma once

#include <cstdint>

#include "core/metrics_text.h"
#include "pg/redis_probe.h"

namespace cachekit::pg {

// cachekit_up, key/value and invalidation counters, the launcher.
void add_cluster_samples(MetricSamples &out);
// A Redis endpoint's series and its component status.
void add_redis_status(MetricSamples &out, const RedisProbe &p);

// The relay (outside a transaction): its database's snapshot for the HTTP
// endpoint, answering request `seq`. Never throws: a failure publishes the
// database as down with the reason.
void publish_database_metrics(uint64_t seq);

}  // namespace cachekit::pg
