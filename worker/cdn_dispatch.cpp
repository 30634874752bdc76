// The cdn_dispatch task: sends queued CDN purges. Run by a task executor
// (task_executor.cpp), so CDN purges need no worker of their own: the same
// launcher, claim, wake-up at commit, shutdown and crash handling. Every
// purge request's transaction queues one such task (cachekit._cdn_request),
// queue "cdn" runs one at a time, and an advisory lock keeps two from
// overlapping even if an admin raises that queue's concurrency.
//
// One run, per configured provider, in its own subtransaction:
//   send   batches committed by an earlier run whose time has come; the
//          provider's answer moves a batch to completed, in_progress
//          (CloudFront: polled), queued again with a backoff (429, 5xx,
//          throttling, network), or failed (a refusal that cannot change);
//   poll   in-progress batches due for a look;
//   plan   the items no batch holds yet: deduplicated across all queued
//          requests and split into batches within the provider's limits,
//          including what is already in flight (CloudFront: 3,000 paths and
//          15 wildcards in progress). A purge-all covers everything queued.
// New batches are sent by the next run, after this one committed them: a
// batch's id is in CloudFront's CallerReference, so whatever happens to a
// run that sent it (crash, timeout), a resend cannot create a second
// invalidation. Last, the run queues its successor for the earliest time
// work is due, unless a task already waits for it.
//
// Runs as the extension owner (the role of every dispatch task, checked),
// in a security-restricted operation with search_path pinned
// (task_executor.cpp's as_owner), on tables found through pg_depend.
// At-least-once towards providers without an idempotency key (Fastly,
// Cloudflare, HTTP): a run that dies after sending and before committing
// resends; purges are idempotent.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/aws_credentials.h"
#include "core/backoff.h"
#include "core/cdn_batch.h"
#include "core/cdn_settings.h"
#include "core/cdn_provider.h"
#include "core/error.h"
#include "core/host_allowlist.h"
#include "core/http_request.h"
#include "core/json.h"
#include "core/redis_url.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/extension_objects.h"
#include "pg/guc.h"
#include "pg/spi_text.h"
#include "pg/worker_log.h"
#include "worker/cdn_dispatch.h"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr int kBatchesPerRun = 20;  // sends per provider and run; the rest go next run
constexpr int kMaxAttempts = 25;    // then a batch fails ("gave up")
constexpr size_t kMaxPlanned = 100000;
constexpr long long kLockKey = 0x63646e5f64697370LL;  // "cdn_disp"

struct Names {
  std::string queue, batches, providers, tasks;
  Oid batches_oid = InvalidOid;
};

std::vector<SpiRow> sql(const std::string &text, const std::vector<Oid> &types,
                        const std::vector<std::optional<std::string>> &args) {
  return spi_text_query(text, types, args);
}

// Postgres text[] literal and its output form.
std::string array_literal(const std::vector<std::string> &items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::vector<std::string> parse_array(const std::string &s) {
  std::vector<std::string> out;
  if (s.size() < 2) return out;
  size_t i = 1;
  while (i < s.size() - 1) {
    std::string item;
    if (s[i] == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        item += s[i];
      }
      ++i;  // closing quote
    } else {
      for (; i < s.size() - 1 && s[i] != ','; ++i) item += s[i];
    }
    out.push_back(std::move(item));
    if (i < s.size() - 1 && s[i] == ',') ++i;
  }
  return out;
}

std::vector<std::string> configured_providers() {
  return cdn::provider_list(settings.cdn_provider ? settings.cdn_provider : "");
}

std::string str(const char *s) { return s ? s : ""; }

std::string secret_line(const char *path, const char *what, const char *setting) {
  if (str(path).empty())
    throw Error(sqlstate::kInvalidParameterValue, std::string(setting) + " is not set",
                std::string("The ") + what + " is read from that file.");
  return read_password_file(path, what);
}

// The host of an endpoint URL, as an allow-list entry: the provider's API
// is the only place its requests may go.
std::string endpoint_host(const std::string &url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string authority =
      url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  authority =
      authority.substr(authority.rfind('@') == std::string::npos ? 0 : authority.rfind('@') + 1);
  if (!authority.empty() && authority[0] == '[')
    return authority.substr(0, authority.find(']') + 1);
  return authority.substr(0, authority.find(':'));
}

// cachekit.cdn_http_headers: "Name: value; Name2: value2".
std::vector<std::pair<std::string, std::string>> header_list(const std::string &setting) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= setting.size()) {
    size_t end = setting.find(';', start);
    std::string entry =
        setting.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? setting.size() + 1 : end + 1;
    size_t b = entry.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    size_t colon = entry.find(':');
    if (colon == std::string::npos)
      throw Error(sqlstate::kInvalidParameterValue, "invalid entry in cachekit.cdn_http_headers",
                  "Entries are \"Name: value\", separated by semicolons.");
    std::string name = entry.substr(b, colon - b), value = entry.substr(colon + 1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    size_t vb = value.find_first_not_of(" \t");
    value = vb == std::string::npos ? "" : value.substr(vb);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    out.emplace_back(name, value);
  }
  return out;
}

struct Configured {
  std::unique_ptr<cdn::Provider> provider;
  HostAllowList allow;
  int parallel = 8;
};

Configured configure(const std::string &name) {
  Configured c;
  cdn::Common common;
  common.timeout_ms = settings.cdn_timeout_ms;
  common.ca_file = str(settings.cdn_ca_file);
  std::string endpoint;
  if (name == "cloudfront") {
    cdn::CloudFrontConfig cf;
    cf.common = common;
    cf.endpoint = endpoint = str(settings.cdn_cloudfront_endpoint);
    cf.distribution_id = str(settings.cdn_cloudfront_distribution_id);
    std::string file = str(settings.cdn_aws_credentials_file);
    if (file.empty())
      throw Error(sqlstate::kInvalidParameterValue, "cachekit.cdn_aws_credentials_file is not set",
                  "The CloudFront secret access key is read from that file.");
    AwsCredentials creds =
        parse_aws_credentials(read_private_file(file, "CloudFront credentials file"));
    cf.access_key_id = str(settings.cdn_aws_access_key_id).empty()
                           ? creds.access_key_id
                           : str(settings.cdn_aws_access_key_id);
    cf.secret_access_key = creds.secret_access_key;
    // Temporary credentials need X-Amz-Security-Token, which the CloudFront
    // provider does not send yet: say so, instead of 403 on every batch.
    if (!creds.session_token.empty())
      throw Error(sqlstate::kFeatureNotSupported,
                  "temporary AWS credentials (aws_session_token) are not supported for CloudFront",
                  "Use a long-term access key in cachekit.cdn_aws_credentials_file.");
    c.provider = cdn::make_cloudfront(std::move(cf));
  } else if (name == "fastly") {
    cdn::FastlyConfig f;
    f.common = common;
    f.endpoint = endpoint = str(settings.cdn_fastly_endpoint);
    f.service_id = str(settings.cdn_fastly_service_id);
    f.api_token = secret_line(settings.cdn_fastly_api_token_file, "Fastly API token file",
                              "cachekit.cdn_fastly_api_token_file");
    f.soft_purge = settings.cdn_fastly_soft_purge;
    f.base_url = str(settings.cdn_base_url);
    c.provider = cdn::make_fastly(std::move(f));
  } else if (name == "cloudflare") {
    cdn::CloudflareConfig f;
    f.common = common;
    f.endpoint = endpoint = str(settings.cdn_cloudflare_endpoint);
    f.zone_id = str(settings.cdn_cloudflare_zone_id);
    f.api_token = secret_line(settings.cdn_cloudflare_api_token_file, "Cloudflare API token file",
                              "cachekit.cdn_cloudflare_api_token_file");
    f.base_url = str(settings.cdn_base_url);
    c.provider = cdn::make_cloudflare(std::move(f));
  } else {
    cdn::HttpPurgeConfig h;
    h.common = common;
    h.purge_url_base = str(settings.cdn_http_purge_url);
    h.method = settings.cdn_http_method == kCdnBan ? "BAN" : "PURGE";
    h.headers = header_list(str(settings.cdn_http_headers));
    c.parallel = h.max_parallel;
    c.provider = cdn::make_http_purge(std::move(h));
    c.allow = HostAllowList::parse(str(settings.http_allowed_hosts));
    return c;
  }
  c.allow = HostAllowList::parse(endpoint_host(endpoint));
  return c;
}

cdn::PurgeKind kind_of(const std::string &k) {
  return k == "tag"   ? cdn::PurgeKind::kTags
         : k == "all" ? cdn::PurgeKind::kAll
                      : cdn::PurgeKind::kPaths;
}

struct Tally {
  int sent = 0, completed = 0, in_progress = 0, retried = 0, failed = 0, planned = 0;
  int misconfigured = 0;  // providers whose settings cannot work (cdn_status() says why)
  bool work_now = false;  // batches planned: the successor should run at once
};

class Dispatcher {
 public:
  Dispatcher(const Names &n, const std::string &provider, Configured c)
      : n_(n), name_(provider), c_(std::move(c)) {
    transport_ = [this](const std::vector<HttpRequest> &reqs) {
      return perform_http_many(reqs, c_.allow, 1024 * 1024, c_.parallel);
    };
    reference_prefix_ = "pg_cachekit-" + std::to_string(GetSystemIdentifier()) + "-" +
                        std::to_string(MyDatabaseId) + "-" + std::to_string(n_.batches_oid) + "-";
  }

  void run(Tally &t) {
    send_due(t);
    poll_due(t);
    plan(t);
  }

 private:
  cdn::Batch batch_of(const SpiRow &r) {
    cdn::Batch b;
    b.id = std::stoll(*r[0]);
    b.kind = kind_of(*r[1]);
    b.items = parse_array(*r[2]);
    b.caller_reference = reference_prefix_ + *r[0];
    return b;
  }

  void send_due(Tally &t) {
    auto rows = sql("SELECT id, kind, items, attempts FROM " + n_.batches +
                        " WHERE provider = $1 AND state = 'queued' AND next_attempt_at <= now()"
                        " ORDER BY id LIMIT " +
                        std::to_string(kBatchesPerRun),
                    {TEXTOID}, {name_});
    // The batches were committed by an earlier run, but maybe asynchronously
    // (synchronous_commit = off, or the executor's own claim commits): a
    // crash could still lose them and the next plan would give the same
    // paths a new CallerReference. Flushed first, a sent batch is durable.
    if (!rows.empty()) pg_call([] { XLogFlush(GetXLogInsertRecPtr()); });
    for (const SpiRow &r : rows) {
      check_for_interrupts();
      cdn::Batch b = batch_of(r);
      int attempts = std::stoi(*r[3]) + 1;
      cdn::SendResult res = c_.provider->send(b, transport_);
      ++t.sent;
      record(b, attempts, res, false, t);
      if (res.outcome == cdn::Outcome::kRetry) break;  // the rest wait with it (record)
    }
    if (static_cast<int>(rows.size()) == kBatchesPerRun) t.work_now = true;
  }

  void poll_due(Tally &t) {
    auto rows =
        sql("SELECT id, kind, items, attempts, provider_id FROM " + n_.batches +
                " WHERE provider = $1 AND state = 'in_progress' AND next_attempt_at <= now()"
                " ORDER BY id LIMIT 100",
            {TEXTOID}, {name_});
    for (const SpiRow &r : rows) {
      check_for_interrupts();
      cdn::Batch b = batch_of(r);
      cdn::SendResult res = c_.provider->poll(b, r[4].value_or(""), transport_);
      if (res.provider_id.empty()) res.provider_id = r[4].value_or("");
      record(b, std::stoi(*r[3]), res, true, t);
      if (res.outcome == cdn::Outcome::kRetry) break;
    }
  }

  // A batch that failed, for good or for now: its id, the requests it
  // serves (the first few: cachekit.cdn_requests.request_id), the provider
  // and what the provider said (res.error, the text last_error stores: no
  // token, no credentials). Completed batches are not logged.
  void log_batch(const std::string &id, const std::string &what) {
    auto req =
        sql("SELECT pg_catalog.string_agg(r::pg_catalog.text, ', '), pg_catalog.count(*)"
            " FROM (SELECT DISTINCT request_id AS r FROM " +
                n_.queue + " WHERE batch_id = $1 ORDER BY 1 LIMIT 6) s",
            {INT8OID}, {id});
    std::string requests = req.empty() || !req[0][0] ? "" : *req[0][0];
    if (!req.empty() && req[0][1] && *req[0][1] == "6") requests += ", ...";
    worker_log(LOG, LogComponent::kCdn, cdn_batch_subject(std::stoll(id)), nullptr,
               name_ + " " + what + (requests.empty() ? "" : " (cdn requests " + requests + ")"));
  }

  void record(const cdn::Batch &b, int attempts, const cdn::SendResult &res, bool poll, Tally &t) {
    const std::string id = std::to_string(b.id);
    const std::string calls = std::to_string(res.api_calls);
    switch (res.outcome) {
      case cdn::Outcome::kCompleted:
        ++t.completed;
        sql("UPDATE " + n_.batches +
                " SET state = 'completed', attempts = $2, api_calls = api_calls + $3,"
                " provider_id = coalesce(nullif($4, ''), provider_id), last_error = NULL,"
                " sent_at = coalesce(sent_at, now()), completed_at = now() WHERE id = $1",
            {INT8OID, INT4OID, INT4OID, TEXTOID},
            {id, std::to_string(attempts), calls, res.provider_id});
        break;
      case cdn::Outcome::kInProgress:
        ++t.in_progress;
        sql("UPDATE " + n_.batches +
                " SET state = 'in_progress', attempts = $2, api_calls = api_calls + $3,"
                " provider_id = coalesce(nullif($4, ''), provider_id), last_error = NULL,"
                " sent_at = coalesce(sent_at, now()),"
                " next_attempt_at = now() + $5 * interval '1 millisecond' WHERE id = $1",
            {INT8OID, INT4OID, INT4OID, TEXTOID, INT4OID},
            {id, std::to_string(attempts), calls, res.provider_id,
             std::to_string(settings.cdn_poll_interval_ms)});
        break;
      case cdn::Outcome::kRetry: {
        ++t.retried;
        double delay = res.retry_after_s;
        if (delay < 0) {
          BackoffPolicy policy;
          policy.max_seconds = settings.task_max_backoff_s;
          delay =
              retry_delay_seconds(policy, attempts, static_cast<double>(random()) / 2147483648.0);
        }
        if (!poll && attempts >= kMaxAttempts) {
          ++t.failed;
          sql("UPDATE " + n_.batches +
                  " SET state = 'failed', attempts = $2, api_calls = api_calls + $3,"
                  " last_error = $4 WHERE id = $1",
              {INT8OID, INT4OID, INT4OID, TEXTOID},
              {id, std::to_string(attempts), calls,
               "gave up after " + std::to_string(attempts) + " attempts; last: " + res.error});
          log_batch(id, "purge failed, gave up after " + std::to_string(attempts) +
                            " attempts: " + res.error);
          break;
        }
        // Everything of this provider that is due waits as long: a provider
        // that is down or throttling gets one request per backoff, not one
        // per queued batch.
        sql("UPDATE " + n_.batches +
                " SET attempts = CASE WHEN id = $1 THEN $2 ELSE attempts END,"
                " api_calls = api_calls + CASE WHEN id = $1 THEN $3 ELSE 0 END,"
                " last_error = CASE WHEN id = $1 THEN $4 ELSE last_error END,"
                " next_attempt_at = now() + $5 * interval '1 second'"
                " WHERE provider = $6 AND state = $7 AND (id = $1 OR next_attempt_at <= now())",
            {INT8OID, INT4OID, INT4OID, TEXTOID, FLOAT8OID, TEXTOID, TEXTOID},
            {id, std::to_string(attempts), calls, res.error, std::to_string(delay), name_,
             poll ? "in_progress" : "queued"});
        {
          char in[32];
          snprintf(in, sizeof in, "%.1f", delay);
          log_batch(id, std::string(poll ? "status poll" : "purge") + " attempt " +
                            std::to_string(attempts) + " failed, retry in " + in +
                            " s: " + res.error);
        }
        break;
      }
      case cdn::Outcome::kFailed:
        ++t.failed;
        sql("UPDATE " + n_.batches +
                " SET state = 'failed', attempts = $2, api_calls = api_calls + $3,"
                " last_error = $4 WHERE id = $1",
            {INT8OID, INT4OID, INT4OID, TEXTOID}, {id, std::to_string(attempts), calls, res.error});
        log_batch(id, "purge failed: " + res.error);
        break;
    }
    const bool ok =
        res.outcome == cdn::Outcome::kCompleted || res.outcome == cdn::Outcome::kInProgress;
    sql("INSERT INTO " + n_.providers +
            " AS p (provider, reachable, last_attempt_at, last_success_at, last_error, api_calls,"
            " throttled, retries, failed_batches, completed_batches, purged_items)"
            " VALUES ($1, $2, now(), CASE WHEN $3 THEN now() END, nullif($4, ''), $5, $6, $7, $8,"
            " $9, $10)"
            " ON CONFLICT (provider) DO UPDATE SET reachable = excluded.reachable,"
            " last_attempt_at = now(), last_success_at = coalesce(excluded.last_success_at,"
            " p.last_success_at), last_error = CASE WHEN $3 THEN p.last_error ELSE"
            " excluded.last_error END, api_calls = p.api_calls + excluded.api_calls,"
            " throttled = p.throttled + excluded.throttled, retries = p.retries + excluded.retries,"
            " failed_batches = p.failed_batches + excluded.failed_batches,"
            " completed_batches = p.completed_batches + excluded.completed_batches,"
            " purged_items = p.purged_items + excluded.purged_items",
        {TEXTOID, BOOLOID, BOOLOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID},
        {name_, res.reachable ? "true" : "false", ok ? "true" : "false", ok ? "" : res.error, calls,
         res.throttled ? "1" : "0", res.outcome == cdn::Outcome::kRetry ? "1" : "0",
         res.outcome == cdn::Outcome::kFailed ? "1" : "0",
         res.outcome == cdn::Outcome::kCompleted ? "1" : "0",
         res.outcome == cdn::Outcome::kCompleted ? std::to_string(b.items.size()) : "0"});
  }

  // A new batch of `items`; state failed (with `error`) for items the
  // provider cannot take. Returns its id.
  std::string add_batch(const std::string &kind, const std::vector<std::string> &items, Tally &t,
                        const std::string &error = {}) {
    size_t wildcards = 0;
    for (const auto &i : items) wildcards += cdn::is_wildcard(i);
    auto rows = sql("INSERT INTO " + n_.batches +
                        " (provider, kind, items, wildcards, state, last_error)"
                        " VALUES ($1, $2, $3, $4, $5, nullif($6, '')) RETURNING id",
                    {TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, TEXTOID, TEXTOID},
                    {name_, kind, array_literal(items), std::to_string(wildcards),
                     error.empty() ? "queued" : "failed", error});
    if (error.empty()) {
      ++t.planned;
      t.work_now = true;
    } else {
      ++t.failed;
    }
    return *rows.at(0)[0];
  }

  // Queued items now belong to batches: all of them (a purge-all), or
  // items[i] of `kind` to ids[i], in one statement (one index lookup an
  // item, instead of a scan of the queue per batch).
  void assign_all(const std::string &id) {
    sql("UPDATE " + n_.queue + " SET batch_id = $1 WHERE provider = $2 AND batch_id IS NULL",
        {INT8OID, TEXTOID}, {id, name_});
  }
  void assign(const std::string &kind, const std::vector<std::string> &items,
              const std::vector<std::string> &ids) {
    if (items.empty()) return;
    sql("UPDATE " + n_.queue +
            " q SET batch_id = u.batch_id FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.text[]),"
            " pg_catalog.unnest($4::pg_catalog.int8[])) AS u(item, batch_id)"
            " WHERE q.provider = $1 AND q.batch_id IS NULL AND q.kind = $2 AND q.item = u.item",
        {TEXTOID, TEXTOID, TEXTARRAYOID, INT8ARRAYOID},
        {name_, kind, array_literal(items), array_literal(ids)});
  }

  void plan_kind(const std::string &kind, std::vector<std::string> items, Tally &t) {
    cdn::Limits limits = c_.provider->limits();
    size_t open_paths = 0, open_wildcards = 0;
    if (kind == "path") {
      auto open =
          sql("SELECT coalesce(sum(cardinality(items) - wildcards), 0),"
              " coalesce(sum(wildcards), 0) FROM " +
                  n_.batches +
                  " WHERE provider = $1 AND kind = 'path' AND state IN ('queued', "
                  "'in_progress')",
              {TEXTOID}, {name_});
      open_paths = std::stoull(*open.at(0)[0]);
      open_wildcards = std::stoull(*open.at(0)[1]);
    }
    cdn::Plan p =
        cdn::plan_batches(std::move(items), limits, open_paths, open_wildcards,
                          kind == "path" ? cdn::PurgeKind::kPaths : cdn::PurgeKind::kTags);
    std::vector<std::string> items_out, ids_out;
    std::unordered_map<std::string, std::string> wildcard_batch;  // wildcard -> batch id
    for (const auto &b : p.batches) {
      std::string id = add_batch(kind, b, t);
      for (const auto &i : b) {
        items_out.push_back(i);
        ids_out.push_back(id);
        if (cdn::is_wildcard(i)) wildcard_batch[i] = id;
      }
    }
    // An item a planned wildcard covers is done when the wildcard's batch is.
    for (const auto &[item, wildcard] : p.covered) {
      auto w = wildcard_batch.find(wildcard);
      if (w == wildcard_batch.end()) continue;  // the planner names only planned wildcards
      items_out.push_back(item);
      ids_out.push_back(w->second);
    }
    std::string rejected_id, rejected_why;
    if (!p.rejected.empty()) {
      std::string why = kind == "tag"
                            ? std::string(name_) + " cannot purge by tag"
                            : std::string(name_) + " cannot purge by prefix (a path ending in *)";
      if (name_ == "http") why += " with cachekit.cdn_http_method = PURGE; use BAN";
      std::string id = add_batch(kind, p.rejected, t, why);
      for (const auto &i : p.rejected) {
        items_out.push_back(i);
        ids_out.push_back(id);
      }
      rejected_id = id;
      rejected_why = why;
    }
    assign(kind, items_out, ids_out);
    if (!rejected_id.empty())
      log_batch(rejected_id, "purge failed without sending: " + rejected_why);
  }

  void plan(Tally &t) {
    auto rows = sql("SELECT kind, item FROM " + n_.queue +
                        " WHERE provider = $1 AND batch_id IS NULL GROUP BY kind, item"
                        " ORDER BY min(request_id), kind, item LIMIT " +
                        std::to_string(kMaxPlanned),
                    {TEXTOID}, {name_});
    if (rows.empty()) return;
    std::vector<std::string> paths, tags;
    for (const SpiRow &r : rows) {
      if (*r[0] == "all") {
        // Everything queued for this provider goes with the purge-all.
        assign_all(add_batch("all", {}, t));
        return;
      }
      (*r[0] == "tag" ? tags : paths).push_back(*r[1]);
    }
    if (!paths.empty()) plan_kind("path", std::move(paths), t);
    if (!tags.empty()) plan_kind("tag", std::move(tags), t);
  }

  const Names &n_;
  std::string name_;
  Configured c_;
  cdn::Transport transport_;
  std::string reference_prefix_;
};

// Runs f in a subtransaction: a Postgres error in it (a provider's SQL,
// a lock timeout) is rolled back and reported instead of ending the run.
template <typename F>
std::optional<std::string> in_subtransaction(F f) {
  MemoryContext cxt = CurrentMemoryContext;
  ResourceOwner owner = CurrentResourceOwner;
  pg_call([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(cxt);
  try {
    f();
    pg_call([] { ReleaseCurrentSubTransaction(); });
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
    return std::nullopt;
  } catch (const std::exception &e) {
    std::string why = e.what();
    pg_call([] { RollbackAndReleaseCurrentSubTransaction(); });
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
    return why;
  }
}

}  // namespace

namespace cachekit::pg {

TaskKindResult run_cdn_dispatch(Oid role) {
  TaskKindResult r;
  ExtensionObjects o = pg_call([] { return find_extension_objects(); });
  if (!OidIsValid(o.cdn_queue) || !OidIsValid(o.cdn_batches) || !OidIsValid(o.cdn_providers) ||
      !OidIsValid(o.tasks)) {
    r.retryable = false;
    r.sqlstate = "55000";
    r.message = "the CDN tables of pg_cachekit are missing";
    return r;
  }
  if (role != o.owner) {
    r.retryable = false;
    r.sqlstate = "42501";
    r.message = "cdn_dispatch tasks run only as the extension owner";
    return r;
  }
  Names n;
  n.queue = pg_call([&] { return std::string(qualified_name(o.cdn_queue)); });
  n.batches = pg_call([&] { return std::string(qualified_name(o.cdn_batches)); });
  n.providers = pg_call([&] { return std::string(qualified_name(o.cdn_providers)); });
  n.tasks = pg_call([&] { return std::string(qualified_name(o.tasks)); });
  n.batches_oid = o.cdn_batches;
  // The executor's claim settings (no sorts, no bitmap scans) would price
  // this run's GROUP BY and ORDER BY at 1e10 and so have them JIT-compiled:
  // 200 ms of LLVM per run, measured with perf. All are reverted with
  // as_owner's nest level.
  pg_call([] {
    for (const char *name : {"enable_sort", "enable_bitmapscan"})
      (void)set_config_option(name, "on", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                              false);
    (void)set_config_option("jit", "off", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
    // The queue is often empty when its statistics are taken and then
    // holds 10,000 rows: a nested loop over it per planned item took 40 s
    // (test/bench/cdn.sh). Hash joins cost little when it is small.
    (void)set_config_option("enable_nestloop", "off", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                            true, 0, false);
  });
  sql("SELECT pg_catalog.pg_advisory_xact_lock($1)", {INT8OID}, {std::to_string(kLockKey)});

  Tally t;
  std::string errors;
  std::vector<std::string> providers = configured_providers();
  for (const std::string &p : settings.cdn_enabled ? providers : std::vector<std::string>{}) {
    Configured c;
    try {
      c = configure(p);
    } catch (const PgError &) {
      throw;
    } catch (const Error &e) {
      // Misconfigured: nothing is sent; the requests wait, and cdn_status()
      // says why.
      sql("INSERT INTO " + n.providers +
              " AS p (provider, last_attempt_at, last_error) VALUES ($1, now(), $2)"
              " ON CONFLICT (provider) DO UPDATE SET last_attempt_at = now(),"
              " last_error = excluded.last_error",
          {TEXTOID, TEXTOID}, {p, std::string("configuration: ") + e.what()});
      ++t.misconfigured;
      continue;
    }
    std::optional<std::string> err =
        in_subtransaction([&] { Dispatcher(n, p, std::move(c)).run(t); });
    if (err) errors += (errors.empty() ? "" : "; ") + p + ": " + *err;
  }

  // The successor: at once for the batches just planned, else when the
  // earliest open batch of a configured provider is due. Work that no
  // configured provider can take now (purges disabled, a provider
  // misconfigured or no longer listed) is looked at again every
  // cachekit.cdn_poll_interval, so that fixing the configuration is enough.
  std::vector<std::string> list = settings.cdn_enabled ? providers : std::vector<std::string>{};
  auto next =
      sql("SELECT CASE WHEN $2 THEN now() ELSE least("
          " (SELECT min(next_attempt_at) FROM " +
              n.batches +
              " WHERE provider = ANY ($1) AND state IN ('queued', 'in_progress')),"
              " CASE WHEN EXISTS (SELECT 1 FROM " +
              n.queue +
              " WHERE batch_id IS NULL)"
              " OR EXISTS (SELECT 1 FROM " +
              n.batches +
              " WHERE state IN ('queued', 'in_progress'))"
              " THEN now() + greatest($3, 1000) * interval '1 millisecond' END) END",
          {TEXTARRAYOID, BOOLOID, INT4OID},
          {array_literal(list), t.work_now ? "true" : "false",
           std::to_string(settings.cdn_poll_interval_ms)});
  if (!next.empty() && next[0][0]) {
    auto added =
        sql("INSERT INTO " + n.tasks +
                " (queue, kind, task, args, run_at, priority, max_attempts, role)"
                " SELECT 'cdn', 'cdn_dispatch', 'cdn_dispatch', '{}', $1, 0, 25, $2"
                " WHERE NOT EXISTS (SELECT 1 FROM " +
                n.tasks +
                " WHERE kind = 'cdn_dispatch' AND state IN ('queued', 'failed') AND run_at <= $1)"
                " RETURNING id",
            {TIMESTAMPTZOID, OIDOID}, {*next[0][0], std::to_string(role)});
    r.wake_after_commit = !added.empty() && t.work_now;
  }

  r.result_json =
      "{\"sent\":" + std::to_string(t.sent) + ",\"completed\":" + std::to_string(t.completed) +
      ",\"in_progress\":" + std::to_string(t.in_progress) +
      ",\"retried\":" + std::to_string(t.retried) + ",\"failed\":" + std::to_string(t.failed) +
      ",\"planned\":" + std::to_string(t.planned) +
      ",\"misconfigured\":" + std::to_string(t.misconfigured) + "}";
  if (!errors.empty()) {
    // An SQL error in a provider's run: its batches wait, the task is
    // retried like any failed task.
    r.ok = false;
    r.retryable = true;
    r.sqlstate = "58000";
    r.message = "CDN dispatch could not serve every provider";
    r.detail = errors;
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace cachekit::pg
