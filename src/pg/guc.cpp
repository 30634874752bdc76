// Every setting of pg_cachekit, declared in one place (as pg_stat_statements
// does). Secrets: the Redis URLs may carry a password, so they are
// superuser-only (invisible to other roles, even in pg_settings), their SHOW
// output is redacted for everyone, and a password is refused where every
// role could read it (per database, per role, in a function). The password
// belongs in cachekit.redis_password_file: postgresql.conf changes are also
// logged with their values on reload.
#include <climits>
#include <string>

#include "core/cdn_settings.h"
#include "core/error.h"
#include "core/http_endpoint.h"
#include "core/keys.h"
#include "core/redis_url.h"
#include "pg/guc.h"

extern "C" {
#include "postgres.h"
#include "utils/guc.h"
#include "utils/plancache.h"
}

namespace cachekit::pg {

Settings settings;
uint64_t redis_config_generation = 1;

namespace {

// Redacts into a static buffer: hooks are called from C code, so nothing may
// throw out of them, and nothing C++-owned may be alive when Postgres
// allocates (and might fail) afterwards.
const char *redacted(const char *value) {
  static char buf[1024];
  try {
    std::string r = value ? redact_redis_url(value) : std::string();
    strlcpy(buf, r.c_str(), sizeof buf);
  } catch (...) {
    strlcpy(buf, "********", sizeof buf);
  }
  return buf;
}

// Sources whose values every role can read: ALTER DATABASE/ROLE ... SET
// (pg_db_role_setting, applied at connection start as GLOBAL, DATABASE, USER
// and DATABASE_USER) and a function's SET clause (pg_proc). Both validate
// with PGC_S_TEST when the setting is stored (guc.c's
// validate_option_array_item, via GUCArrayAdd).
bool world_readable_source(GucSource source) {
  return source == PGC_S_TEST || source == PGC_S_GLOBAL || source == PGC_S_DATABASE ||
         source == PGC_S_USER || source == PGC_S_DATABASE_USER;
}

bool check_redis_url(char **newval, GucSource source, const char *name, bool allow_empty) {
  if (*newval == nullptr || (*newval)[0] == '\0') return allow_empty;
  // Copy the text out of the handler: GUC_check_errdetail allocates and so
  // must not run inside a catch block.
  static char msg[256];
  msg[0] = '\0';
  bool has_password = false;
  try {
    has_password = !parse_redis_url(*newval).password.empty();
  } catch (const std::exception &e) {
    strlcpy(msg, e.what(), sizeof msg);
  } catch (...) {
    strlcpy(msg, "malformed Redis URL", sizeof msg);
  }
  if (msg[0] != '\0') {
    // Replace Postgres' own message, which would quote the value, password included.
    GUC_check_errmsg("invalid Redis URL \"%s\"", redacted(*newval));
    GUC_check_errdetail("%s", msg);
    return false;
  }
  if (has_password && world_readable_source(source)) {
    GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
    GUC_check_errmsg(
        "%s must not contain a password when set per database, per role or in a function", name);
    GUC_check_errdetail(
        "Such settings are stored in pg_db_role_setting or pg_proc, which every role can read.");
    GUC_check_errhint(
        "Remove the password from the URL, put it in a file and set "
        "cachekit.redis_password_file to that file's path in postgresql.conf.");
    return false;
  }
  return true;
}

bool check_power_of_two(int *newval, void **, GucSource) {
  if (*newval > 0 && (*newval & (*newval - 1)) == 0) return true;
  GUC_check_errmsg("cachekit.value_generations must be a power of two, not %d", *newval);
  return false;
}

bool check_cache_url(char **newval, void **, GucSource source) {
  return check_redis_url(newval, source, "cachekit.redis_url", false);
}

bool check_session_url(char **newval, void **, GucSource source) {
  return check_redis_url(newval, source, "cachekit.session_redis_url", true);
}

// The file must exist and be private now; it is read again (and checked
// again) when a backend connects, see redis_conn.cpp.
bool check_password_file(char **newval, void **, GucSource) {
  if (*newval == nullptr || (*newval)[0] == '\0') return true;
  static char msg[512];
  msg[0] = '\0';
  try {
    read_password_file(*newval);
  } catch (const Error &e) {
    strlcpy(msg, e.detail().c_str(), sizeof msg);
  } catch (...) {
    strlcpy(msg, "The file cannot be read.", sizeof msg);
  }
  if (msg[0] == '\0') return true;
  GUC_check_errcode(ERRCODE_CONFIG_FILE_ERROR);
  GUC_check_errdetail("%s", msg);
  GUC_check_errhint(
      "Make it a file owned by the database server's operating system user, with permissions "
      "u=rw (0600) or less.");
  return false;
}

bool check_kv_namespace(char **newval, void **, GucSource) {
  if (*newval != nullptr && strlen(*newval) > kMaxNamespaceBytes) {
    GUC_check_errdetail("cachekit.kv_namespace is limited to %d bytes.",
                        static_cast<int>(kMaxNamespaceBytes));
    return false;
  }
  return true;
}

bool check_key_prefix(char **newval, void **, GucSource) {
  if (*newval != nullptr && strlen(*newval) > kMaxPrefixBytes) {
    GUC_check_errdetail("cachekit.key_prefix is limited to %d bytes.",
                        static_cast<int>(kMaxPrefixBytes));
    return false;
  }
  return true;
}

void bump_string(const char *, void *) { ++redis_config_generation; }
void bump_int(int, void *) { ++redis_config_generation; }

// SHOW never prints a password, not even to a superuser.
const char *show_url(const char *value) { return redacted(value); }

const char *show_cache_url() { return show_url(settings.redis_url); }
const char *show_session_url() { return show_url(settings.session_redis_url); }

const struct config_enum_entry uncacheable_options[] = {
    {"error", kUncacheableError, false},
    {"bypass", kUncacheableBypass, false},
    {nullptr, 0, false},
};

const struct config_enum_entry transparent_options[] = {
    {"off", kTransparentOff, false},
    {"registered", kTransparentRegistered, false},
    {"all", kTransparentAll, false},
    {nullptr, 0, false},
};

// A cached plan was made under the old mode: wrapped in the cache node or
// not (transparent_plan.cpp). Forget this backend's plans, as a changed
// search_path does, so that prepared statements follow the new mode.
void assign_transparent(int newval, void *) {
  if (newval != settings.transparent) ResetPlanCache();
}

const struct config_enum_entry pause_options[] = {
    {"none", kPauseNone, false},
    {"after_generations", kPauseAfterGenerations, false},
    {"before_store", kPauseBeforeStore, false},
    {"before_generations", kPauseBeforeGenerations, false},
    {"before_lease", kPauseBeforeLease, false},
    {nullptr, 0, false},
};

}  // namespace

// One argument per line, as pg_stat_statements does: kept out of clang-format.
// clang-format off
const struct config_enum_entry cdn_http_methods[] = {
    {"PURGE", kCdnPurge, false}, {"purge", kCdnPurge, true},
    {"BAN", kCdnBan, false},     {"ban", kCdnBan, true},
    {nullptr, 0, false}};

bool check_cdn_providers(char **newval, void **, GucSource) {
  static char msg[128];
  msg[0] = '\0';
  try {
    for (const std::string &p : cdn::provider_list(*newval ? *newval : ""))
      if (!cdn::known_provider(p)) {
        snprintf(msg, sizeof msg, "Unknown CDN provider \"%.60s\".", p.c_str());
        break;
      }
  } catch (...) {
    snprintf(msg, sizeof msg, "The list could not be read.");
  }
  if (msg[0] == '\0') return true;
  // Outside the try: these allocate in Postgres memory.
  GUC_check_errdetail("%s", msg);
  GUC_check_errhint("The providers are cloudfront, fastly, cloudflare and http.");
  return false;
}

bool check_metrics_listen(char **newval, void **, GucSource) {
  std::string v = *newval ? *newval : "";
  if (v.empty()) return true;
  try {
    (void)parse_listen_address(v);
    return true;
  } catch (const Error &e) {
    GUC_check_errdetail("%s", e.what());
    GUC_check_errhint("For example 127.0.0.1:9187, localhost:9187 or [::1]:9187.");
    return false;
  }
}

void define_settings(bool preloading) {
  DefineCustomStringVariable(
      "cachekit.redis_url",
      "Redis server for the cache: redis://[:password@]host[:port][/db] or unix:///path[?db=N].",
      "Superuser only; the password is never shown.",
      &settings.redis_url,
      "redis://127.0.0.1:6379/0",
      PGC_SUSET,
      GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
      check_cache_url, bump_string, show_cache_url);

  DefineCustomStringVariable(
      "cachekit.session_redis_url",
      "Redis server for the session store; empty means database 1 of cachekit.redis_url.",
      "Superuser only; the password is never shown.",
      &settings.session_redis_url,
      "",
      PGC_SUSET,
      GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
      check_session_url, bump_string, show_session_url);

  DefineCustomIntVariable(
      "cachekit.default_ttl",
      "Time to live of cache entries written without an explicit ttl.",
      nullptr,
      &settings.default_ttl,
      300, 1, INT_MAX,
      PGC_USERSET,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.session_ttl",
      "Time to live of sessions written or touched without an explicit ttl.",
      nullptr,
      &settings.session_ttl,
      1800, 1, INT_MAX,
      PGC_USERSET,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.redis_connect_timeout_ms",
      "How long a backend waits for a connection to Redis.",
      nullptr,
      &settings.connect_timeout_ms,
      200, 1, 60000,
      PGC_USERSET,
      GUC_UNIT_MS,
      nullptr, bump_int, nullptr);

  DefineCustomIntVariable(
      "cachekit.redis_command_timeout_ms",
      "How long a backend waits for one Redis command (or pipeline) to answer.",
      "A Redis that does not answer in time counts as down.",
      &settings.command_timeout_ms,
      200, 1, 60000,
      PGC_USERSET,
      GUC_UNIT_MS,
      nullptr, bump_int, nullptr);

  DefineCustomIntVariable(
      "cachekit.redis_retry_interval_ms",
      "After a Redis failure, how long calls fail fast before one retries the connection.",
      "The per-backend circuit breaker: while open, a cache call costs microseconds.",
      &settings.retry_interval_ms,
      1000, 0, 3600000,
      PGC_USERSET,
      GUC_UNIT_MS,
      nullptr, bump_int, nullptr);

  DefineCustomStringVariable(
      "cachekit.key_prefix",
      "Prefix of every Redis key pg_cachekit writes.",
      "Lets several applications or databases share one Redis without collisions.",
      &settings.key_prefix,
      "ck:",
      PGC_SUSET,
      0,
      check_key_prefix, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.max_value_bytes",
      "Largest value cache_set and session_set accept.",
      nullptr,
      &settings.max_value_bytes,
      1024 * 1024, 1, 512 * 1024 * 1024,
      PGC_SUSET,
      GUC_UNIT_BYTE,
      nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "cachekit.strict",
      "Raise an error instead of a warning when Redis is unavailable.",
      "Off: reads behave as misses and writes are skipped, with one WARNING per outage.",
      &settings.strict,
      false,
      PGC_USERSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomEnumVariable(
      "cachekit.transparent",
      "Serves the application's own SELECT statements from the cache: off, registered, or all.",
      "registered: statements of a shape registered with cachekit.create_cache(); all: every "
      "cacheable SELECT that reads only watched tables. Served statements keep cached_query's "
      "guarantee (never stale after a commit) and its bypasses. Needs shared_preload_libraries.",
      &settings.transparent,
      kTransparentOff,
      transparent_options,
      PGC_USERSET,
      0,
      nullptr, assign_transparent, nullptr);

  // Sizes shared memory: only while the postmaster loads the library.
  if (preloading) {
    DefineCustomIntVariable(
        "cachekit.max_watched_tables",
        "How many tables get their own generation counter in shared memory.",
        "Beyond it, tables share one coarse counter: more invalidation, never less.",
        &settings.max_watched_tables,
        4096, 16, 1000000,
        PGC_POSTMASTER,
        0,
        nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "cachekit.value_generations",
        "Shared counters for the value buckets of tables watched by a column (a power of two).",
        "Buckets of all tables share them by hash: fewer counters invalidate more cached results "
        "on a write, never fewer. 8 bytes each.",
        &settings.value_generations,
        65536, 1024, 1 << 24,
        PGC_POSTMASTER,
        0,
        check_power_of_two, nullptr, nullptr);
  }

  DefineCustomIntVariable(
      "cachekit.value_max_buckets",
      "Most value buckets a cached_query call depends on before it depends on the whole table.",
      "For a table watched by a column: an IN list or range covering more buckets than this keys "
      "on the table's generation instead (any value is safe; larger keys read more counters).",
      &settings.value_max_buckets,
      64, 1, 4096,
      PGC_USERSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomEnumVariable(
      "cachekit.uncacheable",
      "What cached_query does with a query it cannot cache safely.",
      "error: raise an error naming the reason; bypass: run it uncached (counted).",
      &settings.uncacheable,
      kUncacheableError,
      uncacheable_options,
      PGC_USERSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.max_result_bytes",
      "Largest encoded result cached_query stores; larger results are returned uncached.",
      nullptr,
      &settings.max_result_bytes,
      4 * 1024 * 1024, 1, 512 * 1024 * 1024,
      PGC_SUSET,
      GUC_UNIT_BYTE,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.slow_query_ms",
      "cachekit.query_stats flags queries whose mean miss time is above this.",
      nullptr,
      &settings.slow_query_ms,
      100, 0, INT_MAX,
      PGC_USERSET,
      GUC_UNIT_MS,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.key_settings",
      "Comma-separated settings whose values are part of every cached_query key.",
      "For settings that change query results without row-level security, e.g. app.locale.",
      &settings.key_settings,
      "",
      PGC_USERSET,
      GUC_LIST_INPUT,
      nullptr, nullptr, nullptr);

  // Sizes shared memory: only while the postmaster loads the library.
  if (preloading) {
    DefineCustomIntVariable(
        "cachekit.max_query_stats",
        "How many distinct queries cachekit.query_stats tracks.",
        nullptr,
        &settings.max_query_stats,
        1000, 16, 100000,
        PGC_POSTMASTER,
        0,
        nullptr, nullptr, nullptr);
  }

  DefineCustomStringVariable(
      "cachekit.invalidation_channel",
      "Redis pub/sub channel of the messages published when watched tables change.",
      "Empty: publish nothing (key rules still delete keys).",
      &settings.invalidation_channel,
      "cachekit:invalidate",
      PGC_SUSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "cachekit.publish_at_commit",
      "Whether the committing backend publishes its pub/sub messages itself.",
      "Only when nothing of its database waits in the relay's queue or outbox, together with "
      "its key deletion, before COMMIT returns but after its locks are released; off: the "
      "messages go through the relay's queue in shared memory.",
      &settings.publish_at_commit,
      false,
      PGC_SUSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.max_keys_per_xact",
      "How many application keys one transaction collects before deleting by key pattern.",
      "Above it, the table's key rules fall back to SCAN + UNLINK of the rule's pattern by the worker.",
      &settings.max_keys_per_xact,
      10000, 1, 10000000,
      PGC_SUSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.debug_pause_lock",
      "For tests: advisory lock cached_query waits on at cachekit.debug_pause_at (0: never).",
      "Lets isolation tests pin a reader between reading generations and storing its rows.",
      &settings.debug_pause_lock,
      0, 0, INT_MAX,
      PGC_SUSET,
      GUC_NOT_IN_SAMPLE,
      nullptr, nullptr, nullptr);

  DefineCustomEnumVariable(
      "cachekit.debug_pause_at",
      "For tests: where cached_query waits on cachekit.debug_pause_lock.",
      nullptr,
      &settings.debug_pause_at,
      kPauseNone,
      pause_options,
      PGC_SUSET,
      GUC_NOT_IN_SAMPLE,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.max_ttl",
      "Longest time a cached_query result is kept in Redis; larger ttls are capped to it.",
      "Applies to the ttl argument, namespace ttls and cachekit.default_ttl alike.",
      &settings.max_ttl,
      86400, 1, INT_MAX,
      PGC_SUSET,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.max_prepared_queries",
      "How many prepared cached_query queries one backend keeps; the least recently used go first.",
      "Each costs its plan's memory (kilobytes); an evicted query is prepared again when next used.",
      &settings.max_prepared_queries,
      1000, 1, 1000000,
      PGC_USERSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.redis_password_file",
      "File holding the Redis password, for URLs of cachekit.redis_url and session_redis_url without one.",
      "Its first line is the password. It must be owned by the server's OS user with no group or world access (or by root, at most group-readable). Relative paths start at the data directory.",
      &settings.redis_password_file,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      check_password_file, bump_string, nullptr);

  DefineCustomStringVariable(
      "cachekit.kv_namespace",
      "Namespace of the key/value cache and the session store: keys are <key_prefix>kv:<namespace>:<key>.",
      "Empty means the database's name, so databases sharing one Redis do not see each other's keys; databases that set the same namespace share them.",
      &settings.kv_namespace,
      "",
      PGC_SUSET,
      0,
      check_kv_namespace, nullptr, nullptr);
  if (preloading) {
    DefineCustomIntVariable(
        "cachekit.max_databases",
        "Databases the pg_cachekit launcher can serve with an outbox relay.",
        "One registry slot in shared memory each (about 4 kB, with its task executors). A database beyond it gets no "
        "relay: the launcher warns, its commits stay durable in its outbox, and "
        "cachekit.health() says why.",
        &settings.max_databases,
        64, 1, 8192,
        PGC_POSTMASTER,
        0,
        nullptr, nullptr, nullptr);
  }

  DefineCustomIntVariable(
      "cachekit.task_workers",
      "Task executors (background workers) per database that has pg_cachekit.",
      "Each runs one task at a time; the launcher starts them once the database's relay found the "
      "extension. They count against max_worker_processes (the launcher, plus per database a relay "
      "and these). 0 runs no tasks.",
      &settings.task_workers,
      2, 0, 32,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.task_poll_interval",
      "Longest time an idle task executor sleeps without being woken.",
      "Executors are woken when an enqueue commits; the poll is a safety net (and picks up tasks "
      "committed by COMMIT PREPARED, which wakes no one).",
      &settings.task_poll_interval_ms,
      1000, 10, 600000,
      PGC_SIGHUP,
      GUC_UNIT_MS,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.task_max_backoff",
      "Longest delay before a failed task is tried again.",
      "Attempt n waits min(task_max_backoff, n^4 seconds) plus or minus 10 % jitter, or what a "
      "Retry-After header asks for (up to this) for HTTP tasks.",
      &settings.task_max_backoff_s,
      3600, 1, 7 * 86400,
      PGC_SIGHUP,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.task_retention",
      "How long finished tasks (succeeded, dead, cancelled) are kept before the maintenance schedule deletes them.",
      nullptr,
      &settings.task_retention_s,
      7 * 86400, 60, INT_MAX,
      PGC_SIGHUP,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.task_default_timeout",
      "Timeout of a task enqueued without one (0: none).",
      "A task that runs longer is cancelled (statement_timeout for SQL functions) and retried.",
      &settings.task_default_timeout_s,
      3600, 0, INT_MAX,
      PGC_SIGHUP,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.result_ttl",
      "How long task results are also kept in Redis for cachekit.task_result() (0: only in the table).",
      "Storing a result in Redis never fails a task: on a Redis error the table alone has it.",
      &settings.result_ttl_s,
      3600, 0, INT_MAX,
      PGC_SIGHUP,
      GUC_UNIT_S,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.http_allowed_hosts",
      "Hosts HTTP tasks may connect to: host names, *.domain, addresses, CIDRs, or loopback.",
      "Checked on the resolved address when connecting, so DNS cannot redirect a task elsewhere.",
      &settings.http_allowed_hosts,
      "loopback",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.http_max_response_bytes",
      "Largest HTTP response body kept as a task's result; the rest is cut off (and flagged).",
      nullptr,
      &settings.http_max_response_bytes,
      1024 * 1024, 0, 64 * 1024 * 1024,
      PGC_SIGHUP,
      GUC_UNIT_BYTE,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.smtp_url",
      "SMTP server of e-mail tasks (smtp:// or smtps://).",
      nullptr,
      &settings.smtp_url,
      "smtp://127.0.0.1:25",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.smtp_username",
      "User name for SMTP authentication (empty: none).",
      nullptr,
      &settings.smtp_username,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.smtp_password_file",
      "File holding the SMTP password for cachekit.smtp_username (empty: none).",
      "Like cachekit.redis_password_file: its first line, owned by the server's OS user with no "
      "group or world access. A file rather than a setting, so no role can read the password.",
      &settings.smtp_password_file,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      check_password_file, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.smtp_from",
      "Sender of e-mail tasks whose arguments name none.",
      nullptr,
      &settings.smtp_from,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "cachekit.smtp_require_tls",
      "Require STARTTLS (or smtps://) for e-mail tasks.",
      nullptr,
      &settings.smtp_require_tls,
      false,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  // CDN ---------------------------------------------------------------------
  // Read by the backends that queue purges and by the task executors that
  // send them, so all are PGC_SIGHUP: one value cluster-wide, from
  // postgresql.conf (or ALTER SYSTEM).
  DefineCustomBoolVariable(
      "cachekit.cdn_enabled",
      "Queue CDN purges and serve asset URLs from cachekit.cdn_base_url.",
      "Off: cdn_purge() is refused, purge rules queue nothing and cdn_url() returns local paths.",
      &settings.cdn_enabled,
      false,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_provider",
      "CDN providers purges go to, comma-separated: cloudfront, fastly, cloudflare, http.",
      "Each purge is sent to every provider listed.",
      &settings.cdn_provider,
      "",
      PGC_SIGHUP,
      GUC_LIST_INPUT,
      check_cdn_providers, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_base_url",
      "Base URL of the site on the CDN, e.g. https://cdn.example.com (cdn_url(), and full URLs of purges).",
      nullptr,
      &settings.cdn_base_url,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "cachekit.cdn_auto_version",
      "Append ?v=<content hash> from the asset manifest to asset URLs.",
      nullptr,
      &settings.cdn_auto_version,
      true,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.cdn_timeout",
      "Time limit of one CDN API request.",
      nullptr,
      &settings.cdn_timeout_ms,
      30000, 100, 600000,
      PGC_SIGHUP,
      GUC_UNIT_MS,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.cdn_poll_interval",
      "How often an in-progress CloudFront invalidation is checked for completion.",
      nullptr,
      &settings.cdn_poll_interval_ms,
      10000, 10, 3600000,
      PGC_SIGHUP,
      GUC_UNIT_MS,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_ca_file",
      "CA bundle that verifies the CDN APIs' TLS certificates (empty: the system's).",
      "Verification is never turned off; this is for private CAs.",
      &settings.cdn_ca_file,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_aws_region",
      "AWS region of the S3 bucket of pg_cachekit-cdn sync (CloudFront itself signs in us-east-1).",
      nullptr,
      &settings.cdn_aws_region,
      "us-east-1",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_s3_bucket",
      "S3 bucket that pg_cachekit-cdn sync uploads assets to.",
      nullptr,
      &settings.cdn_s3_bucket,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_aws_access_key_id",
      "AWS access key id for CloudFront (empty: the one in cachekit.cdn_aws_credentials_file).",
      nullptr,
      &settings.cdn_aws_access_key_id,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_aws_credentials_file",
      "AWS shared credentials file ([default] profile) holding the CloudFront secret access key.",
      "Owned by the server's OS user, no group or world access. A file rather than a setting: "
      "Postgres logs changed settings with their values.",
      &settings.cdn_aws_credentials_file,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_cloudfront_distribution_id",
      "CloudFront distribution purged by the cloudfront provider.",
      nullptr,
      &settings.cdn_cloudfront_distribution_id,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_cloudfront_endpoint",
      "CloudFront API endpoint (changed only for tests).",
      nullptr,
      &settings.cdn_cloudfront_endpoint,
      "https://cloudfront.amazonaws.com",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_fastly_service_id",
      "Fastly service purged by the fastly provider.",
      nullptr,
      &settings.cdn_fastly_service_id,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_fastly_api_token_file",
      "File holding the Fastly API token (first line; server's OS user only).",
      nullptr,
      &settings.cdn_fastly_api_token_file,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "cachekit.cdn_fastly_soft_purge",
      "Fastly purges mark content stale instead of removing it (Fastly-Soft-Purge).",
      nullptr,
      &settings.cdn_fastly_soft_purge,
      false,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_fastly_endpoint",
      "Fastly API endpoint (changed only for tests).",
      nullptr,
      &settings.cdn_fastly_endpoint,
      "https://api.fastly.com",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_cloudflare_zone_id",
      "Cloudflare zone purged by the cloudflare provider.",
      nullptr,
      &settings.cdn_cloudflare_zone_id,
      "",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_cloudflare_api_token_file",
      "File holding the Cloudflare API token (first line; server's OS user only).",
      nullptr,
      &settings.cdn_cloudflare_api_token_file,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_cloudflare_endpoint",
      "Cloudflare API endpoint (changed only for tests).",
      nullptr,
      &settings.cdn_cloudflare_endpoint,
      "https://api.cloudflare.com/client/v4",
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_http_purge_url",
      "Base URL that the http provider sends PURGE or BAN requests to (Varnish, nginx).",
      "A path /a/b is purged at this URL + /a/b. Its host must be in cachekit.http_allowed_hosts. "
      "Superuser-only to read: a URL may carry credentials.",
      &settings.cdn_http_purge_url,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  DefineCustomEnumVariable(
      "cachekit.cdn_http_method",
      "Method of the http provider's requests: PURGE (one object) or BAN (also prefixes and tags).",
      nullptr,
      &settings.cdn_http_method,
      kCdnPurge,
      cdn_http_methods,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "cachekit.cdn_http_headers",
      "Extra headers of the http provider's requests: \"Name: value; Name2: value2\".",
      nullptr,
      &settings.cdn_http_headers,
      "",
      PGC_SIGHUP,
      GUC_SUPERUSER_ONLY,
      nullptr, nullptr, nullptr);

  // Monitoring (README "Monitoring").
  if (preloading) {
    DefineCustomStringVariable(
        "cachekit.metrics_listen",
        "Address (host:port) of the HTTP endpoint serving /metrics and /health; empty: no endpoint.",
        "A background worker answers Prometheus scrapes from shared memory, without a database "
        "connection of its own. Anyone who can reach the address can read the metrics: keep it on "
        "loopback (e.g. 127.0.0.1:9187) unless a firewall guards it.",
        &settings.metrics_listen,
        "",
        PGC_POSTMASTER,
        0,
        check_metrics_listen, nullptr, nullptr);
  }

  DefineCustomIntVariable(
      "cachekit.coalesce_wait_ms",
      "How long a cached_query miss waits for another session already running the same query.",
      "When several sessions miss the same key at once, one runs the query and the others wait "
      "up to this long for its result, then run it themselves. 0: every miss runs the query.",
      &settings.coalesce_wait_ms,
      1000, 0, 60000,
      PGC_USERSET,
      GUC_UNIT_MS,
      nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "cachekit.call_plan",
      "Plans SELECT * FROM cachekit.cached_query(...) AS r(...) without the planner.",
      "The plan of that statement is always one Function Scan; building it directly saves the "
      "planner's work at every simple-protocol call. Off: the planner plans it as any statement.",
      &settings.call_plan,
      true,
      PGC_USERSET,
      0,
      nullptr, nullptr, nullptr);

  // Sizes shared memory: only while the postmaster loads the library.
  if (preloading) {
    DefineCustomIntVariable(
        "cachekit.l1_size",
        "Shared memory for the L1 tier of cached_query results, kept in the server in front of Redis.",
        "Results live there under their Redis key, as fresh as in Redis, evicted by CLOCK when it is "
        "full. 0: no L1 tier; a size too small for its 16 partitions (under about 80kB) turns it "
        "off, with a LOG message.",
        &settings.l1_size_kb,
        65536, 0, INT_MAX / 2,
        PGC_POSTMASTER,
        GUC_UNIT_KB,
        nullptr, nullptr, nullptr);
  }

  DefineCustomBoolVariable(
      "cachekit.l1",
      "Whether this session's cached_query calls use the L1 tier (shared memory before Redis).",
      "Off: hits come from Redis only, and nothing is added to L1 by this session.",
      &settings.l1,
      true,
      PGC_USERSET,
      0,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.l1_max_entry",
      "Largest cached_query result the L1 tier keeps (its key and encoded rows, in bytes).",
      "Larger results are served from Redis only. 0: nothing is kept in L1. Never more than a "
      "quarter of an L1 partition (a little under cachekit.l1_size / 64), whatever this says.",
      &settings.l1_max_entry,
      1024 * 1024, 0, INT_MAX,
      PGC_SUSET,
      GUC_UNIT_BYTE,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "cachekit.metrics_top_queries",
      "Per-query series (by fingerprint, never query text) the HTTP endpoint shows per database.",
      "The queries that saved the most time; 0 shows none. cachekit.metrics() shows every query the "
      "caller may see in cachekit.query_stats.",
      &settings.metrics_top_queries,
      20, 0, 100,
      PGC_SIGHUP,
      0,
      nullptr, nullptr, nullptr);

  MarkGUCPrefixReserved("cachekit");
}
// clang-format on

}  // namespace cachekit::pg
