// Settings of pg_cachekit. All are declared in guc.cpp, in one place.
#pragma once

#include <cstdint>

namespace cachekit::pg {

struct Settings {
  char *redis_url;
  char *session_redis_url;
  int default_ttl;  // seconds
  int session_ttl;  // seconds
  int connect_timeout_ms;
  int command_timeout_ms;
  int retry_interval_ms;
  char *key_prefix;
  int max_value_bytes;
  bool strict;
  int max_watched_tables = 4096;
  int uncacheable;  // UncacheablePolicy
  int max_result_bytes;
  int slow_query_ms;
  char *key_settings;
  int max_query_stats = 1000;
  char *invalidation_channel;
  bool publish_at_commit;
  int max_keys_per_xact;
  int debug_pause_lock;  // tests only
  int debug_pause_at;    // DebugPausePoint
  // Seconds; caps every cached_query ttl.
  int max_ttl = 86400;
  // Prepared cached_query queries per backend.
  int max_prepared_queries = 1000;
  char *redis_password_file;  // empty: no password unless the URL has one
  char *kv_namespace;         // empty: the database's name
  int max_databases = 64;
  // Tasks.
  int task_workers = 2;
  int task_poll_interval_ms = 1000;
  int task_max_backoff_s = 3600;
  int task_retention_s = 7 * 86400;
  int task_default_timeout_s = 3600;
  int result_ttl_s = 3600;
  char *http_allowed_hosts;
  int http_max_response_bytes = 1024 * 1024;
  char *smtp_url;
  char *smtp_username;
  char *smtp_password_file;
  char *smtp_from;
  bool smtp_require_tls = false;
  // CDN (see README "CDN"). Secrets only in files: Postgres logs a changed
  // setting's value on reload.
  bool cdn_enabled = false;
  char *cdn_provider;  // comma-separated: cloudfront, fastly, cloudflare, http
  char *cdn_base_url;
  bool cdn_auto_version = true;
  int cdn_timeout_ms = 30000;
  int cdn_poll_interval_ms = 10000;
  char *cdn_ca_file;
  char *cdn_aws_region;
  char *cdn_s3_bucket;
  char *cdn_aws_access_key_id;
  char *cdn_aws_credentials_file;
  char *cdn_cloudfront_distribution_id;
  char *cdn_cloudfront_endpoint;
  char *cdn_fastly_service_id;
  char *cdn_fastly_api_token_file;
  bool cdn_fastly_soft_purge = false;
  char *cdn_fastly_endpoint;
  char *cdn_cloudflare_zone_id;
  char *cdn_cloudflare_api_token_file;
  char *cdn_cloudflare_endpoint;
  char *cdn_http_purge_url;
  int cdn_http_method;  // CdnHttpMethod
  char *cdn_http_headers;
  // Monitoring.
  char *metrics_listen = nullptr;  // empty/NULL: no HTTP endpoint
  int metrics_top_queries = 20;
  // Miss coalescing: how long a miss waits for another session's run of
  // the same key (0: never waits).
  int coalesce_wait_ms = 1000;
  // Plan `SELECT * FROM cachekit.cached_query(...) AS r(...)` without the
  // planner (call_plan.cpp).
  bool call_plan = true;
  // Transparent caching of the application's own SELECTs (TransparentMode).
  int transparent = 0;
  // L1 tier (l1_cache.h): its shared memory in kB (0: none), whether this
  // session uses it, and the largest entry (key + value bytes).
  int l1_size_kb = 65536;
  bool l1 = true;
  int l1_max_entry = 1024 * 1024;
  // Per-value invalidation: shared bucket counters (a power of two), and the
  // most buckets a cached_query reader keys on before it depends on the
  // whole table.
  int value_generations = 65536;
  int value_max_buckets = 64;
};

enum CdnHttpMethod { kCdnPurge, kCdnBan };

enum TransparentMode { kTransparentOff, kTransparentRegistered, kTransparentAll };

enum UncacheablePolicy { kUncacheableError, kUncacheableBypass };

// Points in cached_query where the isolation tests can hold a reader.
enum DebugPausePoint {
  kPauseNone,
  kPauseAfterGenerations,
  kPauseBeforeStore,
  kPauseBeforeGenerations,
  kPauseBeforeLease
};

extern Settings settings;

// Bumped by the assign hook of every setting that changes how Redis is
// reached, so a backend reconfigures its connections only when needed.
extern uint64_t redis_config_generation;

// PGC_POSTMASTER settings (shared memory sizes) exist only when the library
// is loaded from shared_preload_libraries.
void define_settings(bool preloading);

}  // namespace cachekit::pg
