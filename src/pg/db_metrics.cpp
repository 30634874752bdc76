#include "pg/db_metrics.h"

#include <algorithm>
#include <map>

#include "core/cdn_settings.h"
#include "core/json.h"
#include "pg/boundary.h"
#include "pg/generations.h"
#include "pg/guc.h"
#include "pg/metric_counters.h"
#include "pg/owner_query.h"
#include "pg/query_stats.h"
#include "pg/relay_state.h"
#include "pg/shmem.h"

extern "C" {
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

namespace cachekit::pg {

namespace {

int64_t to_i64(const std::optional<std::string> &v) { return v ? std::stoll(*v) : 0; }
double to_f(const std::optional<std::string> &v) { return v ? strtod(v->c_str(), nullptr) : 0; }

bool provider_configured(const std::string &name) {
  auto set = [](const char *s) { return s != nullptr && *s != '\0'; };
  if (name == "cloudfront") return set(settings.cdn_cloudfront_distribution_id);
  if (name == "fastly") return set(settings.cdn_fastly_service_id);
  if (name == "cloudflare") return set(settings.cdn_cloudflare_zone_id);
  if (name == "http") return set(settings.cdn_http_purge_url);
  return false;
}

std::string fmt(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

void read_tables(DatabaseState &s) {
  // The search_path is pinned by owner_rows; table names are the
  // extension's members, quoted.
  auto outbox = owner_rows([](const ExtensionObjects &ext) -> std::string {
    if (!OidIsValid(ext.outbox)) return "";
    return std::string(
               "SELECT count(*), extract(epoch FROM clock_timestamp() - min(created_at))"
               "::float8 FROM ") +
           qualified_name(ext.outbox);
  });
  if (!outbox.empty()) {
    s.extension = true;
    s.outbox_depth = to_i64(outbox[0][0]);
    s.outbox_oldest_s = std::max(0.0, to_f(outbox[0][1]));
  }
  auto queues = owner_rows([](const ExtensionObjects &ext) -> std::string {
    if (!OidIsValid(ext.queues) || !OidIsValid(ext.tasks)) return "";
    return std::string(
               "SELECT q.name, q.paused, coalesce(t.depth, 0), coalesce(t.running, 0), "
               "coalesce(t.waiting, 0), coalesce(t.dead, 0), "
               "coalesce(extract(epoch FROM clock_timestamp() - t.oldest)::float8, 0) FROM ") +
           qualified_name(ext.queues) +
           " q LEFT JOIN (SELECT queue, "
           "count(*) FILTER (WHERE state IN ('queued', 'failed') AND run_at <= now()) AS depth, "
           "count(*) FILTER (WHERE state = 'running') AS running, "
           "count(*) FILTER (WHERE state = 'failed') AS waiting, "
           "count(*) FILTER (WHERE state = 'dead') AS dead, "
           "min(run_at) FILTER (WHERE state IN ('queued', 'failed') AND run_at <= now()) AS oldest "
           "FROM " +
           qualified_name(ext.tasks) +
           " WHERE state IN ('queued', 'failed', 'running', 'dead') GROUP BY queue) t "
           "ON t.queue = q.name ORDER BY q.name";
  });
  for (const OwnerRow &r : queues) {
    QueueGauges q;
    q.name = r[0].value_or("");
    q.paused = r[1] && *r[1] == "t";
    q.depth = to_i64(r[2]);
    q.running = to_i64(r[3]);
    q.waiting_retry = to_i64(r[4]);
    q.dead = to_i64(r[5]);
    q.oldest_s = std::max(0.0, to_f(r[6]));
    s.queues.push_back(std::move(q));
  }
  auto cdn = owner_rows([](const ExtensionObjects &ext) -> std::string {
    if (!OidIsValid(ext.cdn_providers) || !OidIsValid(ext.cdn_batches) ||
        !OidIsValid(ext.cdn_queue))
      return "";
    std::string providers = qualified_name(ext.cdn_providers);
    std::string batches = qualified_name(ext.cdn_batches);
    std::string queue = qualified_name(ext.cdn_queue);
    return "SELECT n.provider, p.reachable, coalesce(p.api_calls, 0), coalesce(p.throttled, 0), "
           "coalesce(p.retries, 0), coalesce(p.failed_batches, 0), "
           "coalesce(p.completed_batches, 0), coalesce(p.purged_items, 0), p.last_error, "
           "(SELECT count(*) FROM " +
           queue +
           " q WHERE q.provider = n.provider AND q.batch_id IS NULL), "
           "b.queued, b.in_progress, b.completed, b.failed, b.failed_recent, b.retrying "
           "FROM (SELECT provider FROM " +
           providers + " UNION SELECT DISTINCT provider FROM " + queue +
           " WHERE batch_id IS NULL UNION SELECT DISTINCT provider FROM " + batches +
           ") n LEFT JOIN " + providers +
           " p ON p.provider = n.provider "
           "CROSS JOIN LATERAL (SELECT "
           "count(*) FILTER (WHERE state = 'queued') AS queued, "
           "count(*) FILTER (WHERE state = 'in_progress') AS in_progress, "
           "count(*) FILTER (WHERE state = 'completed') AS completed, "
           "count(*) FILTER (WHERE state = 'failed') AS failed, "
           "count(*) FILTER (WHERE state = 'failed' AND coalesce(completed_at, next_attempt_at) > "
           "clock_timestamp() - interval '15 minutes') AS failed_recent, "
           "count(*) FILTER (WHERE state IN ('queued', 'in_progress') AND attempts > 1) AS "
           "retrying "
           "FROM " +
           batches + " x WHERE x.provider = n.provider) b ORDER BY n.provider";
  });
  std::vector<std::string> listed =
      cdn::provider_list(settings.cdn_provider ? settings.cdn_provider : "");
  for (const OwnerRow &r : cdn) {
    CdnProviderGauges g;
    g.name = r[0].value_or("");
    if (r[1]) g.reachable = *r[1] == "t";
    g.api_calls = to_i64(r[2]);
    g.throttled = to_i64(r[3]);
    g.retries = to_i64(r[4]);
    g.failed_batches = to_i64(r[5]);
    g.completed_batches = to_i64(r[6]);
    g.purged_items = to_i64(r[7]);
    g.last_error = r[8].value_or("");
    g.queued_items = to_i64(r[9]);
    g.batches_queued = to_i64(r[10]);
    g.batches_in_progress = to_i64(r[11]);
    g.batches_completed = to_i64(r[12]);
    g.batches_failed = to_i64(r[13]);
    g.failed_recent = to_i64(r[14]);
    g.retrying = to_i64(r[15]);
    s.cdn.push_back(std::move(g));
  }
  if (!s.extension) return;
  for (const std::string &name : listed)
    if (std::none_of(s.cdn.begin(), s.cdn.end(),
                     [&](const CdnProviderGauges &g) { return g.name == name; })) {
      CdnProviderGauges g;
      g.name = name;
      s.cdn.push_back(std::move(g));
    }
  for (CdnProviderGauges &g : s.cdn)
    g.configured = std::find(listed.begin(), listed.end(), g.name) != listed.end() &&
                   provider_configured(g.name);
}

void judge(DatabaseState &s) {
  s.relay = cachekit::relay_status(s.relay_running);
  s.executors_status = executors_status(settings.task_workers, s.executors);
  s.outbox = outbox_status(s.outbox_depth, s.outbox_oldest_s, s.relay_running);
  std::vector<HealthStatus> all = {s.relay, s.executors_status, s.outbox};
  for (QueueGauges &q : s.queues) {
    q.status = queue_status(q.paused, q.depth, q.oldest_s, s.executors);
    all.push_back(q.status);
  }
  for (CdnProviderGauges &g : s.cdn) {
    CdnProviderHealthInput in{};
    in.configured = g.configured;
    in.enabled = settings.cdn_enabled;
    in.ever_attempted = g.reachable.has_value();
    in.last_reachable = g.reachable.value_or(true);
    in.waiting_items = g.queued_items + g.batches_queued + g.batches_in_progress;
    in.failed_batches_recent = g.failed_recent;
    in.throttled_recent = g.retrying > 0;
    g.status = cdn_provider_status(in);
    all.push_back(g.status);
  }
  s.overall = worst_status(all);
}

struct QueryAgg {
  uint64_t hits = 0, misses = 0;
  double hit_ms = 0, miss_ms = 0;
  double saved_s() const {
    if (hits == 0 || misses == 0) return 0;
    return std::max(0.0, hits * (miss_ms / misses - hit_ms / hits) / 1000.0);
  }
};

}  // namespace

DatabaseState collect_database_state() {
  DatabaseState s;
  s.dbid = MyDatabaseId;
  s.name = pg_call([] {
    char *n = get_database_name(MyDatabaseId);
    return std::string(n ? n : "");
  });
  read_tables(s);
  // Without shared_preload_libraries (health() still answers) there are no
  // generations, relays or executors to look at.
  if (!shmem_available()) {
    judge(s);
    return s;
  }
  for (const TableStats &t : table_stats_snapshot()) {
    if (t.dbid != MyDatabaseId) continue;
    if (t.relid == InvalidOid) {
      s.database_invalidations = t.invalidations;
      continue;
    }
    // A dropped table's entry lingers until reused: left out, as the
    // table_stats view leaves it out.
    std::string name = pg_call([&] {
      char *rel = get_rel_name(t.relid);
      char *nsp = rel ? get_namespace_name(get_rel_namespace(t.relid)) : nullptr;
      return rel && nsp ? std::string(quote_qualified_identifier(nsp, rel)) : std::string();
    });
    if (!name.empty()) s.tables.emplace_back(name, t.invalidations);
  }
  RelayStatus r = relay_status(MyDatabaseId);
  s.relay_running = r.pid != 0;
  s.executors = r.executors;
  judge(s);
  return s;
}

void add_database_samples(MetricSamples &out, const DatabaseState &s, const QuerySeries &qs) {
  const Labels db = {{"database", s.name}};
  auto with = [&](std::initializer_list<std::pair<std::string, std::string>> more) {
    Labels l = db;
    l.insert(l.end(), more.begin(), more.end());
    return l;
  };
  DatabaseCounters c = database_counters(s.dbid);
  out.add("cachekit_query_cache_operations_total", with({{"result", "hit"}}), c.hits);
  out.add("cachekit_query_cache_operations_total", with({{"result", "miss"}}), c.misses);
  out.add("cachekit_query_cache_operations_total", with({{"result", "bypass"}}), c.bypasses_total);
  for (int i = 0; i < static_cast<int>(Bypass::kCount); ++i)
    out.add("cachekit_query_cache_bypasses_total",
            with({{"reason", bypass_name(static_cast<Bypass>(i))}}), c.bypasses[i]);
  std::vector<uint64_t> hit(c.hit_buckets, c.hit_buckets + kLatencyBucketCount);
  std::vector<uint64_t> miss(c.miss_buckets, c.miss_buckets + kLatencyBucketCount);
  out.add_histogram("cachekit_query_cache_duration_seconds", with({{"result", "hit"}}),
                    latency_buckets(), hit, c.hit_seconds);
  out.add_histogram("cachekit_query_cache_duration_seconds", with({{"result", "miss"}}),
                    latency_buckets(), miss, c.miss_seconds);
  out.add("cachekit_query_cache_bytes_total", db, c.bytes);

  if (s.database_invalidations)
    out.add("cachekit_database_invalidations_total", db, *s.database_invalidations);
  for (const auto &[table, n] : s.tables)
    out.add("cachekit_table_invalidations_total", with({{"table", table}}), n);

  if (s.extension) {
    out.add("cachekit_outbox_depth", db, s.outbox_depth);
    out.add("cachekit_outbox_oldest_age_seconds", db, s.outbox_depth > 0 ? s.outbox_oldest_s : 0);
  }

  std::vector<QueueCounters> counters = queue_counters(s.dbid);
  std::map<std::string, TaskCounters> by_queue;
  for (const QueueCounters &q : counters) by_queue[q.queue] = q.counters;
  for (const QueueGauges &q : s.queues) by_queue.emplace(q.name, TaskCounters{});
  for (const auto &[name, t] : by_queue) {
    Labels l = with({{"queue", name}});
    out.add("cachekit_tasks_enqueued_total", l, t.enqueued);
    out.add("cachekit_tasks_succeeded_total", l, t.succeeded);
    out.add("cachekit_tasks_failed_total", l, t.failed);
    out.add("cachekit_tasks_retried_total", l, t.retried);
    out.add("cachekit_tasks_dead_total", l, t.dead);
    out.add_summary("cachekit_task_run_seconds", l, t.run_seconds, t.runs);
    out.add_summary("cachekit_task_wait_seconds", l, t.wait_seconds, t.waits);
  }
  for (const QueueGauges &q : s.queues) {
    Labels l = with({{"queue", q.name}});
    out.add("cachekit_queue_depth", l, q.depth);
    out.add("cachekit_queue_running", l, q.running);
    out.add("cachekit_queue_waiting_retry", l, q.waiting_retry);
    out.add("cachekit_queue_dead", l, q.dead);
    out.add("cachekit_queue_oldest_age_seconds", l, q.oldest_s);
    out.add("cachekit_queue_paused", l, q.paused ? 1 : 0);
  }

  for (const CdnProviderGauges &g : s.cdn) {
    Labels l = with({{"provider", g.name}});
    const std::pair<const char *, int64_t> states[] = {{"queued", g.batches_queued},
                                                       {"in_progress", g.batches_in_progress},
                                                       {"completed", g.batches_completed},
                                                       {"failed", g.batches_failed}};
    for (const auto &[state, n] : states)
      out.add("cachekit_cdn_batches", with({{"provider", g.name}, {"state", state}}), n);
    out.add("cachekit_cdn_api_calls_total", l, g.api_calls);
    out.add("cachekit_cdn_throttled_total", l, g.throttled);
    out.add("cachekit_cdn_retries_total", l, g.retries);
    out.add("cachekit_cdn_batches_completed_total", l, g.completed_batches);
    out.add("cachekit_cdn_batches_failed_total", l, g.failed_batches);
    out.add("cachekit_cdn_purged_items_total", l, g.purged_items);
    if (g.reachable) out.add("cachekit_cdn_provider_reachable", l, *g.reachable ? 1 : 0);
    out.add("cachekit_cdn_queued_items", l, g.queued_items);
  }

  out.add("cachekit_worker_up", with({{"worker", "relay"}}), s.relay_running ? 1 : 0);
  out.add("cachekit_worker_up", with({{"worker", "executor"}}), s.executors);
  out.add("cachekit_worker_starts_total", with({{"worker", "relay"}}), c.relay_starts);
  out.add("cachekit_worker_starts_total", with({{"worker", "executor"}}), c.executor_starts);

  auto status = [&](const char *component, HealthStatus st, Labels extra = {}) {
    if (st == HealthStatus::kOff) return;
    Labels l = with({{"component", component}});
    l.insert(l.end(), extra.begin(), extra.end());
    out.add("cachekit_component_status", l, health_status_value(st));
  };
  status("relay", s.relay);
  status("executors", s.executors_status);
  if (s.extension) status("outbox", s.outbox);
  for (const QueueGauges &q : s.queues) status("queue", q.status, {{"queue", q.name}});
  for (const CdnProviderGauges &g : s.cdn) status("cdn", g.status, {{"provider", g.name}});

  // Per query, last: one series per (namespace, fingerprint), summed over
  // roles. A snapshot too large for its board slot loses these first.
  std::vector<QueryStatsRow> rows = query_stats_snapshot(s.dbid, qs.viewer, qs.all_roles);
  std::map<std::pair<std::string, uint64_t>, QueryAgg> per_query;
  for (const QueryStatsRow &r : rows) {
    if (!r.text_visible) continue;
    QueryAgg &a = per_query[{r.ns, r.fingerprint}];
    a.hits += r.hits;
    a.misses += r.misses;
    a.hit_ms += r.hit_ms_total;
    a.miss_ms += r.miss_ms_total;
  }
  std::vector<std::pair<std::pair<std::string, uint64_t>, QueryAgg>> ranked(per_query.begin(),
                                                                            per_query.end());
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto &a, const auto &b) {
    return a.second.saved_s() > b.second.saved_s();
  });
  if (qs.top >= 0 && ranked.size() > static_cast<size_t>(qs.top)) ranked.resize(qs.top);
  for (const auto &[key, a] : ranked) {
    Labels l = with({{"namespace", key.first},
                     {"fingerprint", std::to_string(static_cast<int64_t>(key.second))}});
    out.add("cachekit_query_hits_total", l, a.hits);
    out.add("cachekit_query_misses_total", l, a.misses);
    out.add("cachekit_query_time_saved_seconds", l, a.saved_s());
  }
}

std::string database_health_json(const DatabaseState &s) {
  auto st = [](HealthStatus h) { return json_quote(health_status_name(h)); };
  std::string out = "{\"database\": " + json_quote(s.name) + ", \"status\": " + st(s.overall) +
                    ", \"extension\": " + (s.extension ? "true" : "false") +
                    ", \"relay\": {\"status\": " + st(s.relay) +
                    ", \"running\": " + (s.relay_running ? "true" : "false") + "}" +
                    ", \"executors\": {\"status\": " + st(s.executors_status) +
                    ", \"running\": " + std::to_string(s.executors) +
                    ", \"wanted\": " + std::to_string(settings.task_workers) + "}" +
                    ", \"outbox\": {\"status\": " + st(s.outbox) +
                    ", \"depth\": " + std::to_string(s.outbox_depth) +
                    ", \"oldest_s\": " + fmt(s.outbox_depth > 0 ? s.outbox_oldest_s : 0) + "}" +
                    ", \"queues\": {";
  for (size_t i = 0; i < s.queues.size(); ++i) {
    const QueueGauges &q = s.queues[i];
    out += std::string(i ? ", " : "") + json_quote(q.name) + ": {\"status\": " + st(q.status) +
           ", \"paused\": " + (q.paused ? "true" : "false") +
           ", \"runnable\": " + std::to_string(q.depth) +
           ", \"running\": " + std::to_string(q.running) + ", \"dead\": " + std::to_string(q.dead) +
           ", \"oldest_runnable_s\": " + fmt(q.oldest_s) + "}";
  }
  out += "}, \"cdn\": {";
  for (size_t i = 0; i < s.cdn.size(); ++i) {
    const CdnProviderGauges &g = s.cdn[i];
    out += std::string(i ? ", " : "") + json_quote(g.name) + ": {\"status\": " + st(g.status) +
           ", \"configured\": " + (g.configured ? "true" : "false") +
           ", \"reachable\": " + (g.reachable ? (*g.reachable ? "true" : "false") : "null") +
           ", \"queued_items\": " + std::to_string(g.queued_items) +
           ", \"open_batches\": " + std::to_string(g.batches_queued + g.batches_in_progress) +
           ", \"failed_batches_15m\": " + std::to_string(g.failed_recent) + "}";
  }
  return out + "}}";
}

}  // namespace cachekit::pg
