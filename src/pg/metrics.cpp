// cachekit.metrics(), the relay's snapshot for the HTTP endpoint, and the
// cluster-wide families both producers share (metrics.h).
#include "pg/metrics.h"

#include "core/json.h"
#include "pg/boundary.h"
#include "pg/db_metrics.h"
#include "pg/guc.h"
#include "pg/l1_cache.h"
#include "pg/leases.h"
#include "pg/metrics_board.h"
#include "pg/relay_state.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"
#include "pg/subtransaction.h"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "commands/dbcommands.h"
}

namespace cachekit::pg {

namespace {
constexpr int kSnapshotTimeoutMs = 2000;
}  // namespace

void add_cluster_samples(MetricSamples &out) {
  out.add("cachekit_up", {}, 1);
  auto v = [](CacheCounter c) { return static_cast<double>(counter_value(c)); };
  out.add("cachekit_kv_operations_total", {{"operation", "get"}, {"result", "hit"}},
          v(CacheCounter::kHits));
  out.add("cachekit_kv_operations_total", {{"operation", "get"}, {"result", "miss"}},
          v(CacheCounter::kMisses));
  out.add("cachekit_kv_operations_total", {{"operation", "set"}, {"result", "ok"}},
          v(CacheCounter::kSets));
  out.add("cachekit_kv_operations_total", {{"operation", "delete"}, {"result", "ok"}},
          v(CacheCounter::kDeletes));
  out.add("cachekit_kv_errors_total", {}, v(CacheCounter::kErrors));
  out.add("cachekit_query_cache_coalesced_total", {}, static_cast<double>(coalesced_calls()));
  L1Status l1 = l1_status();
  auto d = [](uint64_t n) { return static_cast<double>(n); };
  out.add("cachekit_l1_lookups_total", {{"result", "hit"}}, d(l1.stats.hits));
  out.add("cachekit_l1_lookups_total", {{"result", "miss"}}, d(l1.stats.misses));
  out.add("cachekit_l1_inserts_total", {}, d(l1.stats.inserts));
  out.add("cachekit_l1_evictions_total", {}, d(l1.stats.evictions));
  out.add("cachekit_l1_too_large_total", {}, d(l1.stats.too_large));
  out.add("cachekit_l1_entries", {}, d(l1.stats.entries));
  out.add("cachekit_l1_used_bytes", {}, d(l1.stats.used_bytes));
  out.add("cachekit_l1_size_bytes", {}, d(l1.size_bytes));
  out.add("cachekit_kv_bytes_total", {{"direction", "read"}}, v(CacheCounter::kBytesIn));
  out.add("cachekit_kv_bytes_total", {{"direction", "written"}}, v(CacheCounter::kBytesOut));
  auto app = [](AppCounter c) { return static_cast<double>(app_counter(c)); };
  out.add("cachekit_pubsub_messages_total", {}, app(AppCounter::kMessagesPublished));
  out.add("cachekit_keys_deleted_total", {}, app(AppCounter::kKeysDeleted));
  out.add("cachekit_key_patterns_flushed_total", {}, app(AppCounter::kPatternsFlushed));
  out.add("cachekit_invalidations_delivered_total", {{"by", "commit"}},
          app(AppCounter::kDeliveredAtCommit));
  out.add("cachekit_invalidations_delivered_total", {{"by", "relay"}},
          app(AppCounter::kDeliveredByWorker));
  out.add("cachekit_invalidation_delivery_failures_total", {}, app(AppCounter::kDeliveryFailures));
  out.add("cachekit_outbox_written_total", {}, app(AppCounter::kOutboxWritten));
  RegistryStatus reg = registry_status();
  if (reg.shared_memory) {
    out.add("cachekit_launcher_up", {}, reg.launcher_pid != 0 ? 1 : 0);
    out.add("cachekit_component_status", {{"component", "launcher"}},
            health_status_value(cachekit::relay_status(reg.launcher_pid != 0)));
  }
}

void add_redis_status(MetricSamples &out, const RedisProbe &p) {
  add_redis_samples(out, p);
  out.add("cachekit_component_status", {{"component", p.name}}, health_status_value(p.status));
}

void publish_database_metrics(uint64_t seq) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  cpp_entry([&] {
    MetricsSnapshot snap;
    snap.dbid = MyDatabaseId;
    snap.seq = seq;
    // Before anything can fail: a database reported down must be named.
    snap.name = pg_call([] {
      char *n = get_database_name(MyDatabaseId);
      return std::string(n ? n : "");
    });
    std::string failure;
    // The relay must not wait long on the tables for a scrape: the reads are
    // cancelled after kSnapshotTimeoutMs (statement_timeout is not armed for
    // a background worker's SPI), and the database shows as down with that.
    pg_call([] { enable_timeout_after(STATEMENT_TIMEOUT, kSnapshotTimeoutMs); });
    in_subtransaction(
        [&] {
          DatabaseState s = collect_database_state();
          MetricSamples m;
          QuerySeries qs;
          qs.all_roles = true;  // fingerprints only, no text, on the endpoint
          qs.top = settings.metrics_top_queries;
          add_database_samples(m, s, qs);
          snap.samples = m.serialize();
          snap.health = database_health_json(s);
          snap.status = static_cast<int>(s.overall);
        },
        &failure);
    pg_call([] { disable_timeout(STATEMENT_TIMEOUT, false); });
    if (!failure.empty()) {
      // The endpoint shows the database as down, with why; the relay goes on.
      snap.samples.clear();
      snap.health = "{\"database\": " + json_quote(snap.name) +
                    ", \"status\": \"down\", \"error\": " + json_quote(failure) + "}";
      snap.status = static_cast<int>(HealthStatus::kDown);
    }
    snap.published_at = GetCurrentTimestamp();
    publish_metrics(snap);
  });
  PopActiveSnapshot();
  CommitTransactionCommand();
}

}  // namespace cachekit::pg

using namespace cachekit;
using namespace cachekit::pg;

// The current database's families and the cluster's; per-query series only
// of the queries cachekit.query_stats shows the caller with their text.
CK_SQL_FUNCTION(ck_metrics) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.metrics()");
    MetricSamples m;
    add_cluster_samples(m);
    add_redis_status(m, probe_redis(RedisTarget::kCache));
    add_redis_status(m, probe_redis(RedisTarget::kSession));
    DatabaseState s = collect_database_state();
    QuerySeries qs;
    qs.viewer = GetUserId();
    qs.all_roles = pg_call([&] {
      return has_privs_of_role(qs.viewer, ROLE_PG_READ_ALL_STATS) ||
             has_privs_of_role(qs.viewer, get_role_oid("cachekit_admin", true));
    });
    add_database_samples(m, s, qs);
    std::string text = render_exposition(m);
    return pg_call(
        [&] { return PointerGetDatum(cstring_to_text_with_len(text.data(), text.size())); });
  });
}
