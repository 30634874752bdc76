// http and email tasks: the task's jsonb arguments read into the core's
// request structs (core/http_request.h, core/smtp_mail.h), the outcome
// turned into what the executor records.
//
// http: 2xx and 3xx (redirects are not followed) succeed; 429 and 5xx fail
// and are retried, after Retry-After when the server sent one; other 4xx are
// dead at once (the same request would fail again). The response (status,
// headers, body up to cachekit.http_max_response_bytes) is the result either
// way. A host outside cachekit.http_allowed_hosts is dead at once too.
// jsonb holds only text in the database encoding without NUL: a body that is
// not such text is stored as "body_base64" (and "body": null), and a body cut
// at the cap loses the character the cut split.
#include "worker/task_kinds.h"

#include <optional>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "core/error.h"
#include "core/host_allowlist.h"
#include "core/http_request.h"
#include "core/json.h"
#include "core/redis_url.h"
#include "core/smtp_mail.h"
#include "pg/boundary.h"
#include "pg/guc.h"

extern "C" {
#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
}

namespace cachekit::pg {

namespace {

// Members of the task's jsonb arguments (an object: enqueue() checked).
class Args {
 public:
  explicit Args(Datum d) : jb_(pg_call([&] { return DatumGetJsonbP(d); })) {}

  // A string member; a number is accepted as its text.
  std::optional<std::string> text(const char *key) const {
    return pg_call([&]() -> std::optional<std::string> {
      JsonbValue *v = find(key);
      if (v == nullptr || v->type == jbvNull) return std::nullopt;
      if (v->type == jbvString) return std::string(v->val.string.val, v->val.string.len);
      if (v->type == jbvNumeric)
        return std::string(
            DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))));
      if (v->type == jbvBinary) {
        // An object or array body is sent as its JSON text.
        Jsonb *sub = JsonbValueToJsonb(v);
        return std::string(JsonbToCString(nullptr, &sub->root, VARSIZE(sub)));
      }
      return std::string(v->type == jbvBool && v->val.boolean ? "true" : "false");
    });
  }

  bool is_container(const char *key) const {
    return pg_call([&] {
      JsonbValue *v = find(key);
      return v != nullptr && v->type == jbvBinary;
    });
  }

  // A string, or an array of strings.
  std::vector<std::string> list(const char *key) const {
    std::vector<std::string> out;
    pg_call([&] {
      JsonbValue *v = find(key);
      if (v == nullptr || v->type == jbvNull) return;
      if (v->type == jbvString) {
        out.emplace_back(v->val.string.val, v->val.string.len);
        return;
      }
      if (v->type != jbvBinary) return;
      JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
      JsonbValue e;
      JsonbIteratorToken tok;
      while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
        if (tok == WJB_ELEM && e.type == jbvString)
          out.emplace_back(e.val.string.val, e.val.string.len);
    });
    return out;
  }

  // An object of string values.
  std::vector<std::pair<std::string, std::string>> pairs(const char *key) const {
    std::vector<std::pair<std::string, std::string>> out;
    pg_call([&] {
      JsonbValue *v = find(key);
      if (v == nullptr || v->type != jbvBinary) return;
      JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
      JsonbValue k;
      JsonbValue e;
      JsonbIteratorToken tok;
      while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE) {
        if (tok != WJB_KEY) continue;
        // No C++ object lives in this frame across a Postgres call (a longjmp
        // would skip its destructor): the key is kept as a pointer into the
        // jsonb until the value is read.
        const char *name = k.val.string.val;
        int name_len = k.val.string.len;
        tok = JsonbIteratorNext(&it, &e, true);
        if (tok == WJB_VALUE && e.type == jbvString)
          out.emplace_back(std::string(name, name_len),
                           std::string(e.val.string.val, e.val.string.len));
      }
    });
    return out;
  }

 private:
  JsonbValue *find(const char *key) const {
    JsonbValue k;
    k.type = jbvString;
    k.val.string.val = const_cast<char *>(key);
    k.val.string.len = static_cast<int>(strlen(key));
    return findJsonbValueFromContainer(&jb_->root, JB_FOBJECT, &k);
  }
  Jsonb *jb_;
};

long effective_timeout(std::optional<std::string> asked, int64_t task_timeout_ms) {
  long ms = 30000;
  if (asked) {
    try {
      ms = std::stol(*asked);
    } catch (const std::exception &) {
      throw Error(sqlstate::kInvalidParameterValue, "timeout_ms of an http task must be a number");
    }
  }
  if (task_timeout_ms > 0 && task_timeout_ms < ms) ms = static_cast<long>(task_timeout_ms);
  return ms;
}

std::string object_json(const std::vector<std::pair<std::string, std::string>> &pairs) {
  std::string j = "{";
  for (size_t i = 0; i < pairs.size(); ++i)
    j += (i ? "," : "") + json_quote(pairs[i].first) + ":" + json_quote(pairs[i].second);
  return j + "}";
}

int64_t now_unix() { return static_cast<int64_t>(time(nullptr)); }

// The "body" member(s) of an http task's result (see the top of the file).
std::string body_json(const std::string &body, bool truncated) {
  int n = static_cast<int>(body.size());
  int valid = pg_call([&] {
    int enc = GetDatabaseEncoding();
    int v = pg_encoding_verifymbstr(enc, body.data(), n);
    if (v < n && truncated && body[v] != '\0' && n - v < pg_encoding_mblen(enc, body.data() + v))
      n = v;
    return v;
  });
  if (valid == n) return "\"body\":" + json_quote(std::string_view(body.data(), n));
  std::string b64(static_cast<size_t>(pg_b64_enc_len(n)), '\0');
  int len = pg_call(
      [&] { return pg_b64_encode(body.data(), n, b64.data(), static_cast<int>(b64.size())); });
  b64.resize(len < 0 ? 0 : static_cast<size_t>(len));
  return "\"body\":null,\"body_base64\":\"" + b64 + "\"";
}

}  // namespace

TaskKindResult run_http_task(Datum datum, int64_t timeout_ms) {
  Args args(datum);
  HttpRequest req;
  req.url = args.text("url").value_or("");
  req.method = args.text("method").value_or("GET");
  req.headers = args.pairs("headers");
  req.body = args.text("body").value_or("");
  if (args.is_container("body")) {
    bool typed = false;
    for (const auto &h : req.headers)
      typed = typed || strcasecmp(h.first.c_str(), "content-type") == 0;
    if (!typed) req.headers.emplace_back("Content-Type", "application/json");
  }
  req.timeout_ms = effective_timeout(args.text("timeout_ms"), timeout_ms);
  HostAllowList allow =
      HostAllowList::parse(settings.http_allowed_hosts ? settings.http_allowed_hosts : "");

  TaskKindResult r;
  HttpResponse resp;
  try {
    resp = perform_http(req, allow, static_cast<size_t>(settings.http_max_response_bytes));
  } catch (const Error &e) {
    r.sqlstate = e.sqlstate();
    r.message = e.what();
    r.detail = e.detail();
    // Not allowed, or not a valid request: the same task would fail again.
    r.retryable = r.sqlstate != sqlstate::kInsufficientPrivilege &&
                  r.sqlstate != sqlstate::kInvalidParameterValue;
    return r;
  }
  for (const auto &h : resp.headers)
    if (strcasecmp(h.first.c_str(), "retry-after") == 0)
      resp.retry_after_seconds = parse_retry_after(h.second, now_unix());
  r.result_json = "{\"status\":" + std::to_string(resp.status) +
                  ",\"headers\":" + object_json(resp.headers) + "," +
                  body_json(resp.body, resp.body_truncated) +
                  ",\"truncated\":" + (resp.body_truncated ? "true" : "false") + "}";
  if (resp.status < 400) {
    r.ok = true;
    return r;
  }
  r.sqlstate = "58000";
  r.message = "HTTP " + std::to_string(resp.status) + " from " + req.method + " request";
  r.retryable = http_status_retryable(resp.status);
  r.retry_after_s = resp.retry_after_seconds;
  if (!r.retryable) r.detail = "A client error: the same request is not sent again.";
  return r;
}

TaskKindResult run_email_task(Datum datum, int64_t timeout_ms) {
  Args args(datum);
  MailMessage m;
  m.from = args.text("from").value_or(settings.smtp_from ? settings.smtp_from : "");
  if (m.from.empty())
    throw Error(sqlstate::kInvalidParameterValue, "an email task needs a sender",
                "Neither the task's \"from\" nor cachekit.smtp_from is set.");
  m.to = args.list("to");
  m.cc = args.list("cc");
  m.bcc = args.list("bcc");
  m.subject = args.text("subject").value_or("");
  m.text = args.text("text").value_or("");
  m.html = args.text("html").value_or("");
  m.headers = args.pairs("headers");
  SmtpServer server;
  server.url = settings.smtp_url ? settings.smtp_url : "";
  server.username = settings.smtp_username ? settings.smtp_username : "";
  if (settings.smtp_password_file && settings.smtp_password_file[0])
    server.password = read_password_file(settings.smtp_password_file);
  server.require_tls = settings.smtp_require_tls;
  if (timeout_ms > 0 && timeout_ms < server.timeout_ms)
    server.timeout_ms = static_cast<long>(timeout_ms);
  TaskKindResult r;
  try {
    send_mail(m, server, now_unix());
  } catch (const Error &e) {
    r.sqlstate = e.sqlstate();
    r.message = e.what();
    r.detail = e.detail();
    r.retryable = r.sqlstate != sqlstate::kInvalidParameterValue;
    return r;
  }
  r.ok = true;
  r.result_json =
      "{\"sent\":true,\"recipients\":" + std::to_string(m.to.size() + m.cc.size() + m.bcc.size()) +
      "}";
  return r;
}

}  // namespace cachekit::pg
