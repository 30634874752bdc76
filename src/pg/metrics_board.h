// Where each database's relay leaves its metrics and health for the HTTP
// endpoint (worker/metrics_endpoint.cpp), which has no database connection
// and cannot read the databases' tables itself. Present only when
// cachekit.metrics_listen was set at server start: one slot per database
// (cachekit.max_databases), 64 kB each.
//
// The endpoint asks (request_metrics: a sequence number, and the relays'
// latches); a relay that sees a newer request than it last answered
// publishes a snapshot, at most once a second; the endpoint waits a bounded
// time for the snapshots and serves what it has, marking each with its age.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

Size metrics_board_shmem_size();
void metrics_board_shmem_request();
void metrics_board_shmem_startup();
bool metrics_board_enabled();

uint64_t request_metrics();      // the endpoint: a new request's number
uint64_t metrics_request_seq();  // the relays: the newest request

struct MetricsSnapshot {
  Oid dbid = InvalidOid;
  std::string name;          // the database's
  uint64_t seq = 0;          // the request it answered
  int64_t published_at = 0;  // TimestampTz
  std::string samples;       // MetricSamples::serialize()
  std::string health;        // database_health_json()
  int status = 0;            // the database's overall HealthStatus
  bool truncated = false;    // the samples did not fit; the rest is missing
};
void publish_metrics(const MetricsSnapshot &snapshot);
// Which request each database answered last, without copying the data.
struct MetricsSnapshotHead {
  Oid dbid;
  uint64_t seq;
  int64_t published_at;
};
std::vector<MetricsSnapshotHead> metrics_snapshot_heads();
std::vector<MetricsSnapshot> metrics_snapshots();

}  // namespace cachekit::pg
