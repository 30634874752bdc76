#include "core/metrics_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "core/utf8.h"

namespace cachekit {

namespace {

constexpr MetricType kCounter = MetricType::kCounter;
constexpr MetricType kGauge = MetricType::kGauge;
constexpr MetricType kHistogram = MetricType::kHistogram;
constexpr MetricType kSummary = MetricType::kSummary;

}  // namespace

const std::vector<MetricFamily> &metric_catalog() {
  // The order is the exposition's. Help texts are for the person reading a
  // scrape: what is counted, and where the unit or the labels are not obvious.
  static const std::vector<MetricFamily> catalog = {
      {"cachekit_up", kGauge, "Always 1: pg_cachekit answered this scrape."},
      {"cachekit_query_cache_operations_total", kCounter,
       "cached_query calls by outcome (result: hit, miss, bypass)."},
      {"cachekit_query_cache_bypasses_total", kCounter,
       "cached_query calls that did not use the cache, by reason (as last_outcome() names it)."},
      {"cachekit_query_cache_duration_seconds", kHistogram,
       "Time of cached_query calls that hit or missed."},
      {"cachekit_query_cache_bytes_total", kCounter,
       "Bytes of the results cached_query returned (hits and misses)."},
      {"cachekit_query_cache_coalesced_total", kCounter,
       "cached_query misses that took another session's result of the same key instead of "
       "running the query."},
      {"cachekit_l1_lookups_total", kCounter,
       "cached_query lookups in the L1 tier (shared memory, before Redis) by result (hit, miss)."},
      {"cachekit_l1_inserts_total", kCounter,
       "Results put into the L1 tier (stored in Redis, or read from it)."},
      {"cachekit_l1_evictions_total", kCounter,
       "L1 entries dropped to make room (expired, or not read since the last CLOCK pass)."},
      {"cachekit_l1_too_large_total", kCounter,
       "Results not put into the L1 tier because they exceed cachekit.l1_max_entry."},
      {"cachekit_l1_entries", kGauge, "Entries in the L1 tier."},
      {"cachekit_l1_used_bytes", kGauge, "Key and value bytes of the entries in the L1 tier."},
      {"cachekit_l1_size_bytes", kGauge,
       "Shared memory of the L1 tier (cachekit.l1_size; 0: none)."},
      {"cachekit_query_hits_total", kCounter,
       "cached_query hits of one query (by fingerprint, summed over roles)."},
      {"cachekit_query_misses_total", kCounter,
       "cached_query misses of one query (by fingerprint, summed over roles)."},
      {"cachekit_query_time_saved_seconds", kGauge,
       "Time one query's hits saved: hits times (mean miss time - mean hit time)."},
      {"cachekit_kv_operations_total", kCounter,
       "Key/value and session calls (operation: get, set, delete; result: hit, miss, ok)."},
      {"cachekit_kv_errors_total", kCounter, "Key/value and session calls that failed on Redis."},
      {"cachekit_kv_bytes_total", kCounter,
       "Bytes of values read from (direction=read) or written to Redis."},
      {"cachekit_table_invalidations_total", kCounter,
       "Invalidations of cached_query results per watched table."},
      {"cachekit_database_invalidations_total", kCounter,
       "Invalidations of every cached_query result of a database (invalidate_all)."},
      {"cachekit_pubsub_messages_total", kCounter, "Invalidation messages published to Redis."},
      {"cachekit_keys_deleted_total", kCounter, "Application keys deleted by key rules."},
      {"cachekit_key_patterns_flushed_total", kCounter,
       "Key patterns whose keys were deleted by the relay."},
      {"cachekit_invalidations_delivered_total", kCounter,
       "Invalidations delivered to Redis, by the committing backend (by=commit) or the relay."},
      {"cachekit_invalidation_delivery_failures_total", kCounter,
       "Deliveries of invalidations to Redis that failed (they wait in the outbox)."},
      {"cachekit_outbox_written_total", kCounter, "Invalidations written to the outbox."},
      {"cachekit_outbox_depth", kGauge, "Outbox rows not yet delivered."},
      {"cachekit_outbox_oldest_age_seconds", kGauge,
       "Age of the oldest undelivered outbox row (0 when the outbox is empty)."},
      {"cachekit_redis_up", kGauge, "1 when the Redis endpoint answered PING."},
      {"cachekit_redis_rtt_seconds", kGauge, "Round trip of a PING to the Redis endpoint."},
      {"cachekit_redis_used_memory_bytes", kGauge, "Redis INFO used_memory."},
      {"cachekit_redis_maxmemory_bytes", kGauge, "Redis INFO maxmemory (0: no limit)."},
      {"cachekit_redis_evicted_keys_total", kCounter, "Redis INFO evicted_keys."},
      {"cachekit_redis_expired_keys_total", kCounter, "Redis INFO expired_keys."},
      {"cachekit_tasks_enqueued_total", kCounter, "Tasks enqueued by committed transactions."},
      {"cachekit_tasks_succeeded_total", kCounter, "Task attempts that succeeded."},
      {"cachekit_tasks_failed_total", kCounter,
       "Task attempts that failed (each is then retried or dead)."},
      {"cachekit_tasks_retried_total", kCounter, "Failed task attempts scheduled again."},
      {"cachekit_tasks_dead_total", kCounter, "Tasks that failed their last attempt."},
      {"cachekit_task_run_seconds", kSummary, "Run time of task attempts."},
      {"cachekit_task_wait_seconds", kSummary,
       "Time from due to started of tasks' first attempts."},
      {"cachekit_queue_depth", kGauge, "Tasks that could run now."},
      {"cachekit_queue_running", kGauge, "Tasks running now."},
      {"cachekit_queue_waiting_retry", kGauge, "Tasks waiting for their next attempt."},
      {"cachekit_queue_dead", kGauge, "Dead tasks kept (cachekit.task_retention)."},
      {"cachekit_queue_oldest_age_seconds", kGauge,
       "How long the oldest task that could run has waited (0: none)."},
      {"cachekit_queue_paused", kGauge, "1 when the queue is paused."},
      {"cachekit_cdn_batches", kGauge,
       "CDN purge batches kept, by state (queued: planned, not yet accepted by the provider)."},
      {"cachekit_cdn_api_calls_total", kCounter, "Calls to the CDN provider's purge API."},
      {"cachekit_cdn_throttled_total", kCounter, "Rate-limited answers of the CDN provider."},
      {"cachekit_cdn_retries_total", kCounter, "CDN purge calls retried."},
      {"cachekit_cdn_batches_completed_total", kCounter, "CDN purge batches completed."},
      {"cachekit_cdn_batches_failed_total", kCounter, "CDN purge batches that failed."},
      {"cachekit_cdn_purged_items_total", kCounter, "Paths, tags or wildcards purged."},
      {"cachekit_cdn_provider_reachable", kGauge,
       "1 when the last call to the CDN provider got an answer (absent: never called)."},
      {"cachekit_cdn_queued_items", kGauge, "Purge items not yet in a batch."},
      {"cachekit_launcher_up", kGauge, "1 when the pg_cachekit launcher runs."},
      {"cachekit_worker_up", kGauge, "Background workers running (worker: relay, executor)."},
      {"cachekit_worker_starts_total", kCounter,
       "Background worker starts (more than one per worker means restarts)."},
      {"cachekit_component_status", kGauge,
       "Health of a component as cachekit.health() judges it: 0 ok, 1 degraded, 2 down."},
      {"cachekit_metrics_snapshot_age_seconds", kGauge,
       "Age of the numbers of a database the HTTP endpoint serves."},
  };
  return catalog;
}

namespace {

const std::unordered_map<std::string, size_t> &catalog_index() {
  static const std::unordered_map<std::string, size_t> index = [] {
    std::unordered_map<std::string, size_t> m;
    const auto &c = metric_catalog();
    for (size_t i = 0; i < c.size(); ++i) m.emplace(c[i].name, i);
    return m;
  }();
  return index;
}

}  // namespace

const MetricFamily *find_metric_family(const std::string &name) {
  const auto &index = catalog_index();
  auto it = index.find(name);
  return it == index.end() ? nullptr : &metric_catalog()[it->second];
}

const char *metric_type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kSummary:
      return "summary";
  }
  return "untyped";
}

// ---- samples ----------------------------------------------------------------------------------

void MetricSamples::add(const std::string &family, Labels labels, double value) {
  samples_.push_back(MetricSample{family, std::string(), std::move(labels), value});
}

void MetricSamples::add(const std::string &family, const std::string &suffix, Labels labels,
                        double value) {
  samples_.push_back(MetricSample{family, suffix, std::move(labels), value});
}

void MetricSamples::add_histogram(const std::string &family, const Labels &labels,
                                  const std::vector<double> &bounds,
                                  const std::vector<uint64_t> &counts, double sum) {
  const bool inf_last = !bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0;
  const size_t finite = inf_last ? bounds.size() - 1 : bounds.size();
  if (counts.size() != bounds.size() && !(counts.size() == bounds.size() + 1 && !inf_last))
    throw Error(sqlstate::kInternalError,
                "histogram " + family + " has " + std::to_string(counts.size()) +
                    " bucket counts for " + std::to_string(bounds.size()) + " bounds");
  for (size_t i = 0; i < finite; ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i])))
      throw Error(sqlstate::kInternalError,
                  "histogram " + family + " has bounds that are not finite and ascending");
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i < finite; ++i) {
    cumulative += counts[i];
    Labels l = labels;
    l.emplace_back("le", format_metric_value(bounds[i]));
    add(family, "_bucket", std::move(l), static_cast<double>(cumulative));
  }
  uint64_t total = cumulative;
  for (size_t i = finite; i < counts.size(); ++i) total += counts[i];
  Labels l = labels;
  l.emplace_back("le", "+Inf");
  add(family, "_bucket", std::move(l), static_cast<double>(total));
  add(family, "_sum", labels, sum);
  add(family, "_count", labels, static_cast<double>(total));
}

void MetricSamples::add_summary(const std::string &family, const Labels &labels, double sum,
                                uint64_t count) {
  add(family, "_sum", labels, sum);
  add(family, "_count", labels, static_cast<double>(count));
}

void MetricSamples::append(const MetricSamples &other) {
  samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
}

const std::vector<MetricSample> &MetricSamples::samples() const { return samples_; }

// ---- transport --------------------------------------------------------------------------------

namespace {

void append_field(std::string &out, const std::string &s) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

std::string transport_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

[[noreturn]] void malformed(size_t line, const std::string &why) {
  throw Error(sqlstate::kInvalidTextRepresentation,
              "malformed metric samples at line " + std::to_string(line) + ": " + why);
}

std::string unescape_field(const char *begin, const char *end, size_t line) {
  std::string out;
  out.reserve(end - begin);
  for (const char *p = begin; p < end; ++p) {
    if (*p != '\\') {
      out += *p;
      continue;
    }
    if (++p == end) malformed(line, "backslash at the end of a field");
    switch (*p) {
      case '\\':
        out += '\\';
        break;
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      default:
        malformed(line, "unknown escape");
    }
  }
  return out;
}

}  // namespace

std::string MetricSamples::serialize() const {
  std::string out;
  for (const MetricSample &s : samples_) {
    append_field(out, s.family);
    out += '\t';
    append_field(out, s.suffix);
    out += '\t';
    out += transport_value(s.value);
    for (const auto &[name, value] : s.labels) {
      out += '\t';
      append_field(out, name);
      out += '\t';
      append_field(out, value);
    }
    out += '\n';
  }
  return out;
}

MetricSamples MetricSamples::parse(const std::string &text) {
  MetricSamples result;
  size_t pos = 0, line = 0;
  while (pos < text.size()) {
    ++line;
    const size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) malformed(line, "no newline at the end");
    std::vector<std::string> fields;
    size_t start = pos;
    while (true) {
      size_t tab = text.find('\t', start);
      if (tab == std::string::npos || tab > eol) tab = eol;
      fields.push_back(unescape_field(text.data() + start, text.data() + tab, line));
      if (tab == eol) break;
      start = tab + 1;
    }
    pos = eol + 1;
    if (fields.size() < 3 || fields.size() % 2 == 0)
      malformed(line, std::to_string(fields.size()) + " fields");
    MetricSample s;
    s.family = std::move(fields[0]);
    s.suffix = std::move(fields[1]);
    if (s.family.empty()) malformed(line, "empty family name");
    if (!s.suffix.empty() && s.suffix != "_bucket" && s.suffix != "_sum" && s.suffix != "_count")
      malformed(line, "unknown suffix");
    const std::string &v = fields[2];
    const char *vb = v.data(), *ve = v.data() + v.size();
    // from_chars takes no '+' sign; the writer never produces one.
    auto r = std::from_chars(vb, ve, s.value);
    if (v.empty() || r.ec != std::errc() || r.ptr != ve) malformed(line, "bad value");
    for (size_t i = 3; i < fields.size(); i += 2)
      s.labels.emplace_back(std::move(fields[i]), std::move(fields[i + 1]));
    result.samples_.push_back(std::move(s));
  }
  return result;
}

// ---- exposition -------------------------------------------------------------------------------

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0)
    return std::to_string(static_cast<int64_t>(v));
  // %g's look (0.0001, not 1e-04) at the least precision that reads back exactly.
  char buf[64];
  for (int precision = 1;; ++precision) {
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, precision);
    double back = 0;
    std::from_chars(buf, r.ptr, back);
    if (back == v || precision >= 17) return std::string(buf, r.ptr);
  }
}

namespace {

bool valid_label_name(const std::string &n) {
  if (n.empty() || (n.size() >= 2 && n[0] == '_' && n[1] == '_')) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Whether the sample can be written under its family's TYPE without making the document
// invalid (or failing promtool's lint).
bool renderable(const MetricFamily &f, const MetricSample &s) {
  bool has_le = false, has_quantile = false;
  for (size_t i = 0; i < s.labels.size(); ++i) {
    const std::string &name = s.labels[i].first;
    if (!valid_label_name(name)) return false;
    for (size_t j = 0; j < i; ++j)
      if (s.labels[j].first == name) return false;
    has_le |= name == "le";
    has_quantile |= name == "quantile";
  }
  switch (f.type) {
    case MetricType::kCounter:
    case MetricType::kGauge:
      return s.suffix.empty() && !has_le && !has_quantile;
    case MetricType::kHistogram:
      if (s.suffix == "_bucket") return has_le && !has_quantile;
      return (s.suffix == "_sum" || s.suffix == "_count") && !has_le && !has_quantile;
    case MetricType::kSummary:
      if (s.suffix.empty()) return has_quantile && !has_le;
      return (s.suffix == "_sum" || s.suffix == "_count") && !has_le && !has_quantile;
  }
  return false;
}

// Valid UTF-8 as is; otherwise each byte that does not start a valid sequence becomes U+FFFD.
std::string utf8_or_replaced(const std::string &s) {
  if (valid_utf8(s)) return s;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len > 0 && i + len <= s.size() && valid_utf8(std::string_view(s).substr(i, len))) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

void append_label_value(std::string &out, const std::string &raw) {
  for (char c : utf8_or_replaced(raw)) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void append_help(std::string &out, std::string_view help) {
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

}  // namespace

std::string escape_label_value(const std::string &value) {
  std::string out;
  append_label_value(out, value);
  return out;
}

std::string escape_metric_help(const std::string &help) {
  std::string out;
  append_help(out, help);
  return out;
}

std::string render_exposition(const MetricSamples &samples) {
  const auto &catalog = metric_catalog();
  const auto &index = catalog_index();
  std::vector<std::vector<const MetricSample *>> by_family(catalog.size());
  for (const MetricSample &s : samples.samples()) {
    auto it = index.find(s.family);
    if (it == index.end()) continue;
    if (!renderable(catalog[it->second], s)) continue;
    by_family[it->second].push_back(&s);
  }
  std::string out;
  for (size_t i = 0; i < catalog.size(); ++i) {
    if (by_family[i].empty()) continue;
    const MetricFamily &f = catalog[i];
    out += "# HELP ";
    out += f.name;
    out += ' ';
    append_help(out, f.help);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += metric_type_name(f.type);
    out += '\n';
    for (const MetricSample *s : by_family[i]) {
      out += f.name;
      out += s->suffix;
      if (!s->labels.empty()) {
        out += '{';
        for (size_t j = 0; j < s->labels.size(); ++j) {
          if (j > 0) out += ',';
          out += s->labels[j].first;
          out += "=\"";
          append_label_value(out, s->labels[j].second);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      out += format_metric_value(s->value);
      out += '\n';
    }
  }
  return out;
}

const std::vector<double> &latency_buckets() {
  static const std::vector<double> buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  return buckets;
}

size_t bucket_index(const std::vector<double> &bounds, double value) {
  if (std::isnan(value)) return bounds.size();
  return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) -
                             bounds.begin());
}

}  // namespace cachekit
