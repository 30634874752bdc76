// status: cachekit.cdn_status() per provider, then the most recent rows of
// cachekit.cdn_requests. The server does the JSON work: the tool parses none.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/db.h"
#include "cli/table.h"

namespace cachekit::cli {

namespace {

std::string yes_no(const std::optional<std::string> &v, const char *if_null) {
  if (!v) return if_null;
  if (*v == "true") return "yes";
  if (*v == "false") return "no";
  return *v;
}

}  // namespace

int run_status(const Options &o) {
  Db db = Db::connect(o.dbname, o.verbose);
  const std::string limit = std::to_string(o.limit);
  const char *recent =
      "SELECT request_id, provider, state, cardinality(paths) AS path_count, "
      "array_to_string(paths[1:3], ' ') || CASE WHEN cardinality(paths) > 3 THEN ' ...' ELSE '' "
      "END AS paths, provider_id, attempts, last_error, "
      "date_trunc('second', created_at) AS created_at, "
      "date_trunc('second', completed_at) AS completed_at "
      "FROM cachekit.cdn_requests ORDER BY created_at DESC, request_id DESC, provider LIMIT $1";
  if (o.json) {
    // Whole rows, paths and all: scripts want the data, not the abbreviation.
    Result r = db.exec(
        "SELECT jsonb_pretty(jsonb_build_object('status', cachekit.cdn_status(), "
        "'recent_requests', (SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.created_at DESC, "
        "q.request_id DESC, q.provider), '[]') FROM (SELECT * FROM cachekit.cdn_requests "
        "ORDER BY created_at DESC, request_id DESC, provider LIMIT $1) q)))",
        {limit});
    std::printf("%s\n", r.text(0, 0).c_str());
    return 0;
  }

  Result s = db.exec(
      "SELECT coalesce(s.j->>'enabled', 'false'), p.key, p.value->>'configured', "
      "p.value->>'reachable', date_trunc('second', (p.value->>'last_success')::timestamptz), "
      "p.value->>'in_flight', p.value->>'failures', "
      "nullif((p.value - '{configured,reachable,last_success,in_flight,failures}'::text[])::text, "
      "'{}') "
      "FROM (SELECT cachekit.cdn_status() AS j) s "
      "LEFT JOIN LATERAL jsonb_each(CASE jsonb_typeof(s.j->'providers') WHEN 'object' "
      "THEN s.j->'providers' ELSE '{}' END) p ON true ORDER BY p.key");
  bool enabled = s.rows() > 0 && s.text(0, 0) == "true";
  std::printf("CDN purges: %s\n\n", enabled ? "enabled" : "disabled (cachekit.cdn_enabled is off)");
  std::vector<std::vector<std::string>> providers;
  bool any_other = false;
  for (int i = 0; i < s.rows(); ++i) {
    if (s.is_null(i, 1)) continue;
    providers.push_back({s.text(i, 1), yes_no(s.value(i, 2), "-"),
                         yes_no(s.value(i, 3), "not yet known"), s.value(i, 4).value_or("-"),
                         s.value(i, 5).value_or("-"), s.value(i, 6).value_or("-"),
                         s.value(i, 7).value_or("")});
    any_other = any_other || !providers.back().back().empty();
  }
  std::vector<std::string> header = {"provider",     "configured", "reachable",
                                     "last success", "in flight",  "failures"};
  // Fields the server reports beyond these, only when it reports any.
  if (any_other)
    header.push_back("other");
  else
    for (auto &row : providers) row.pop_back();
  if (providers.empty())
    std::printf("No provider is known.\n");
  else
    print_table(stdout, header, providers);

  Result r = db.exec(recent, {limit});
  std::printf("\nRecent purge requests:\n");
  if (r.rows() == 0) {
    std::printf("none\n");
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < r.rows(); ++i)
    rows.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                    r.value(i, 5).value_or("-"), r.text(i, 6), r.value(i, 7).value_or(""),
                    r.text(i, 8), r.value(i, 9).value_or("-")});
  print_table(stdout,
              {"request", "provider", "state", "paths", "first paths", "provider id", "attempts",
               "last error", "created", "completed"},
              rows);
  return 0;
}

}  // namespace cachekit::cli
