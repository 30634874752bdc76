// invalidate PATH...: one cachekit.cdn_purge() call, the request id on stdout;
// with --wait, poll cachekit.cdn_requests until every row of the request has
// completed or failed.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_error.h"
#include "cli/commands.h"
#include "cli/db.h"
#include "cli/s3_settings.h"
#include "cli/table.h"

namespace cachekit::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::vector<std::string>> request_rows(Db &db, const std::string &id) {
  Result r = db.exec(
      "SELECT provider, state, coalesce(provider_id, '-'), attempts, coalesce(last_error, '') "
      "FROM cachekit.cdn_requests WHERE request_id = $1 ORDER BY provider, provider_id",
      {id});
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < r.rows(); ++i)
    rows.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4)});
  return rows;
}

}  // namespace

int run_invalidate(const Options &o) {
  Db db = Db::connect(o.dbname, o.verbose);
  require_function(db, "cachekit.cdn_purge(text[])");
  Result r = db.exec("SELECT cachekit.cdn_purge($1::text[])", {text_array_literal(o.args)});
  std::optional<std::string> id = r.value(0, 0);
  if (!id) {
    std::fprintf(stderr,
                 "pg_cachekit-cdn: no purge request was queued (CDN purges are disabled)\n");
    return 0;
  }
  std::printf("%s\n", id->c_str());
  std::fflush(stdout);
  if (!o.wait) return 0;

  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<long long>(o.timeout_seconds * 1000));
  auto pause = std::chrono::milliseconds(100);
  std::string last_states;
  for (;;) {
    Result c = db.exec(
        "SELECT count(*), count(*) FILTER (WHERE state IN ('completed', 'failed')), "
        "count(*) FILTER (WHERE state = 'failed'), "
        "coalesce(string_agg(provider || ' ' || state, ', ' ORDER BY provider), '') "
        "FROM cachekit.cdn_requests WHERE request_id = $1",
        {*id});
    long total = std::stol(c.text(0, 0)), finished = std::stol(c.text(0, 1)),
         failed = std::stol(c.text(0, 2));
    std::string states = c.text(0, 3);
    if (o.verbose && states != last_states)
      std::fprintf(stderr, "pg_cachekit-cdn: request %s: %s\n", id->c_str(),
                   states.empty() ? "no provider has it yet" : states.c_str());
    last_states = states;
    if (total > 0 && finished == total) {
      print_table(stdout, {"provider", "state", "provider id", "attempts", "last error"},
                  request_rows(db, *id));
      if (failed > 0)
        throw CliError(kExitWait,
                       "purge request " + *id + " failed at " + std::to_string(failed) + " of " +
                           std::to_string(total) + (total == 1 ? " provider" : " providers"),
                       {}, "The last error of each is shown above.");
      return 0;
    }
    if (Clock::now() >= deadline) {
      throw CliError(kExitWait,
                     "purge request " + *id + " has not finished after " +
                         std::to_string(static_cast<long long>(o.timeout_seconds)) + " s",
                     states.empty() ? "No provider has taken it up yet; are CDN purges enabled?"
                                    : "Its state: " + states + ".",
                     "Follow it with: pg_cachekit-cdn status");
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    std::this_thread::sleep_for(std::min(pause, std::max(left, std::chrono::milliseconds(1))));
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace cachekit::cli
