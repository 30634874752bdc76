#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <string>

#include "core/error.h"
#include "core/metrics_text.h"

namespace cachekit {
namespace {

// The lines of a rendered document that belong to a family (its samples and comments).
std::vector<std::string> lines_of(const std::string &doc) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < doc.size()) {
    size_t nl = doc.find('\n', pos);
    EXPECT_NE(nl, std::string::npos) << "every line ends with a newline";
    if (nl == std::string::npos) break;
    out.push_back(doc.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

TEST(MetricCatalog, FollowsTheNamingRules) {
  const auto &c = metric_catalog();
  ASSERT_EQ(c.size(), 62u) << "the families of monitoring/metric_names.txt";
  EXPECT_STREQ(c.front().name, "cachekit_up");
  EXPECT_STREQ(c.back().name, "cachekit_metrics_snapshot_age_seconds");
  std::set<std::string> names;
  for (const MetricFamily &f : c) {
    const std::string name = f.name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    EXPECT_EQ(name.rfind("cachekit_", 0), 0u) << name;
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(total, f.type == MetricType::kCounter)
        << name << ": counters and only counters end in _total";
    EXPECT_GT(std::string(f.help).size(), 3u) << name << " needs help text";
    EXPECT_EQ(find_metric_family(name), &f);
  }
  EXPECT_EQ(find_metric_family("cachekit_nope"), nullptr);
  EXPECT_EQ(find_metric_family("cachekit_query_cache_duration_seconds")->type,
            MetricType::kHistogram);
  EXPECT_EQ(find_metric_family("cachekit_task_run_seconds")->type, MetricType::kSummary);
  EXPECT_EQ(find_metric_family("cachekit_task_wait_seconds")->type, MetricType::kSummary);
  EXPECT_EQ(find_metric_family("cachekit_cdn_batches")->type, MetricType::kGauge);
}

// monitoring/metric_names.txt (read by the dashboard and alert checks) is written from the
// same catalogue: the two must not drift apart.
TEST(MetricCatalog, MatchesMonitoringMetricNames) {
  std::string path = __FILE__;
  path = path.substr(0, path.rfind("test/unit/")) + "monitoring/metric_names.txt";
  std::ifstream f(path);
  if (!f) GTEST_SKIP() << "no " << path;
  std::vector<std::pair<std::string, std::string>> listed;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp1 = line.find(' ');
    const size_t sp2 = line.find(' ', sp1 + 1);
    ASSERT_NE(sp2, std::string::npos) << line;
    listed.emplace_back(line.substr(0, sp1), line.substr(sp1 + 1, sp2 - sp1 - 1));
  }
  std::vector<std::pair<std::string, std::string>> catalog;
  for (const MetricFamily &fam : metric_catalog())
    catalog.emplace_back(fam.name, metric_type_name(fam.type));
  EXPECT_EQ(catalog, listed);
}

TEST(MetricText, FormatsValues) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-0.0), "0");
  EXPECT_EQ(format_metric_value(42), "42");
  EXPECT_EQ(format_metric_value(-7), "-7");
  EXPECT_EQ(format_metric_value(1234567890123.0), "1234567890123");
  EXPECT_EQ(format_metric_value(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(format_metric_value(0.5), "0.5");
  EXPECT_EQ(format_metric_value(0.1), "0.1");
  EXPECT_EQ(format_metric_value(0.00025), "0.00025");
  EXPECT_EQ(format_metric_value(2.5), "2.5");
  EXPECT_EQ(format_metric_value(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(format_metric_value(1e300), "1e+300");
  EXPECT_EQ(format_metric_value(0.0001), "0.0001") << "like %g, not 1e-04";
  EXPECT_EQ(format_metric_value(0.0005), "0.0005");
  EXPECT_EQ(format_metric_value(0.00001), "1e-05");
  EXPECT_EQ(format_metric_value(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  // Whatever is written reads back as the same double.
  for (double v : {0.1, 1.0 / 3, 2.0 / 3 * 1e-9, 123456.789, 1e20, 9007199254740993.0, 5e-324}) {
    EXPECT_EQ(std::strtod(format_metric_value(v).c_str(), nullptr), v) << v;
  }
}

TEST(MetricText, RendersHelpTypeAndSamples) {
  MetricSamples s;
  s.add("cachekit_up", {}, 1);
  s.add("cachekit_query_cache_operations_total", {{"database", "app"}, {"result", "hit"}}, 12);
  s.add("cachekit_query_cache_operations_total", {{"database", "app"}, {"result", "miss"}}, 3);
  EXPECT_EQ(
      render_exposition(s),
      "# HELP cachekit_up Always 1: pg_cachekit answered this scrape.\n"
      "# TYPE cachekit_up gauge\n"
      "cachekit_up 1\n"
      "# HELP cachekit_query_cache_operations_total cached_query calls by outcome (result: hit, "
      "miss, bypass).\n"
      "# TYPE cachekit_query_cache_operations_total counter\n"
      "cachekit_query_cache_operations_total{database=\"app\",result=\"hit\"} 12\n"
      "cachekit_query_cache_operations_total{database=\"app\",result=\"miss\"} 3\n");
  EXPECT_EQ(render_exposition(MetricSamples()), "");
}

TEST(MetricText, EscapesLabelValues) {
  MetricSamples s;
  s.add("cachekit_table_invalidations_total",
        {{"database", "a\\b"}, {"table", "public.\"we\nird\""}}, 1);
  const std::string doc = render_exposition(s);
  EXPECT_NE(doc.find("cachekit_table_invalidations_total{database=\"a\\\\b\","
                     "table=\"public.\\\"we\\nird\\\"\"} 1\n"),
            std::string::npos)
      << doc;
  // Tabs, UTF-8 and '}' pass through; only \, " and newline are escaped.
  MetricSamples t;
  t.add("cachekit_table_invalidations_total", {{"table", "x\ty}{\xc3\xa9\xe2\x82\xac"}}, 2);
  EXPECT_NE(render_exposition(t).find("{table=\"x\ty}{\xc3\xa9\xe2\x82\xac\"} 2\n"),
            std::string::npos);
}

TEST(MetricText, ReplacesInvalidUtf8InLabelValues) {
  MetricSamples s;
  // A LATIN1 'é', a truncated 3-byte sequence, an overlong '/', then valid text.
  s.add("cachekit_table_invalidations_total", {{"table", "caf\xe9|\xe2\x82|\xc0\xaf|ok\xc3\xa9"}},
        1);
  const std::string r = "\xef\xbf\xbd";
  EXPECT_NE(render_exposition(s).find("{table=\"caf" + r + "|" + r + r + "|" + r + r +
                                      "|ok\xc3\xa9\"} 1\n"),
            std::string::npos)
      << render_exposition(s);
}

TEST(MetricText, EscapesHelp) {
  EXPECT_EQ(escape_metric_help("plain \"quoted\" text"), "plain \"quoted\" text")
      << "HELP leaves quotes alone";
  EXPECT_EQ(escape_metric_help("a\\b\nc"), "a\\\\b\\nc");
  EXPECT_EQ(escape_metric_help("\\n"), "\\\\n");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\te");
  // The catalogue's help is written through the same escape.
  MetricSamples s;
  s.add("cachekit_component_status", {{"component", "relay"}, {"database", "d"}}, 0);
  const std::string doc = render_exposition(s);
  EXPECT_NE(doc.find("# HELP cachekit_component_status Health of a component as "
                     "cachekit.health() judges it: 0 ok, 1 degraded, 2 down.\n"),
            std::string::npos)
      << doc;
}

TEST(MetricText, OrdersFamiliesByCatalogueAndKeepsSampleOrder) {
  MetricSamples s;
  s.add("cachekit_worker_up", {{"database", "b"}, {"worker", "relay"}}, 1);
  s.add("cachekit_up", {}, 1);
  s.add("cachekit_outbox_depth", {{"database", "z"}}, 5);
  s.add("cachekit_worker_up", {{"database", "a"}, {"worker", "relay"}}, 0);
  s.add("cachekit_outbox_depth", {{"database", "a"}}, 7);
  MetricSamples other;
  other.add("cachekit_worker_up", {{"database", "c"}, {"worker", "executor"}}, 2);
  s.append(other);
  const auto lines = lines_of(render_exposition(s));
  const std::vector<std::string> want = {
      "# HELP cachekit_up Always 1: pg_cachekit answered this scrape.",
      "# TYPE cachekit_up gauge",
      "cachekit_up 1",
      "# HELP cachekit_outbox_depth Outbox rows not yet delivered.",
      "# TYPE cachekit_outbox_depth gauge",
      "cachekit_outbox_depth{database=\"z\"} 5",
      "cachekit_outbox_depth{database=\"a\"} 7",
      "# HELP cachekit_worker_up Background workers running (worker: relay, executor).",
      "# TYPE cachekit_worker_up gauge",
      "cachekit_worker_up{database=\"b\",worker=\"relay\"} 1",
      "cachekit_worker_up{database=\"a\",worker=\"relay\"} 0",
      "cachekit_worker_up{database=\"c\",worker=\"executor\"} 2",
  };
  EXPECT_EQ(lines, want);
}

TEST(MetricText, WritesEachType) {
  MetricSamples s;
  for (const MetricFamily &f : metric_catalog()) {
    if (f.type == MetricType::kHistogram)
      s.add_histogram(f.name, {}, {1}, {1, 1}, 3);
    else if (f.type == MetricType::kSummary)
      s.add_summary(f.name, {}, 1, 1);
    else
      s.add(f.name, {}, 1);
  }
  const std::string doc = render_exposition(s);
  for (const MetricFamily &f : metric_catalog()) {
    const std::string type_line =
        std::string("# TYPE ") + f.name + " " + metric_type_name(f.type) + "\n";
    EXPECT_NE(doc.find(type_line), std::string::npos) << type_line;
    const std::string help_line = std::string("# HELP ") + f.name + " " + f.help + "\n";
    EXPECT_NE(doc.find(help_line), std::string::npos) << help_line;
  }
  EXPECT_NE(doc.find("# TYPE cachekit_query_cache_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(doc.find("# TYPE cachekit_task_run_seconds summary\n"), std::string::npos);
  EXPECT_NE(doc.find("# TYPE cachekit_kv_errors_total counter\n"), std::string::npos);
  EXPECT_NE(doc.find("# TYPE cachekit_redis_up gauge\n"), std::string::npos);
}

TEST(MetricText, HistogramBucketsAreCumulativeWithInfEqualToCount) {
  MetricSamples s;
  const std::vector<double> bounds = {0.001, 0.01, 0.1};
  s.add_histogram("cachekit_query_cache_duration_seconds", {{"database", "d"}, {"result", "hit"}},
                  bounds, {3, 0, 2, 4}, 1.25);
  const auto lines = lines_of(render_exposition(s));
  const std::vector<std::string> want = {
      "# HELP cachekit_query_cache_duration_seconds Time of cached_query calls that hit or missed.",
      "# TYPE cachekit_query_cache_duration_seconds histogram",
      "cachekit_query_cache_duration_seconds_bucket{database=\"d\",result=\"hit\",le=\"0.001\"} 3",
      "cachekit_query_cache_duration_seconds_bucket{database=\"d\",result=\"hit\",le=\"0.01\"} 3",
      "cachekit_query_cache_duration_seconds_bucket{database=\"d\",result=\"hit\",le=\"0.1\"} 5",
      "cachekit_query_cache_duration_seconds_bucket{database=\"d\",result=\"hit\",le=\"+Inf\"} 9",
      "cachekit_query_cache_duration_seconds_sum{database=\"d\",result=\"hit\"} 1.25",
      "cachekit_query_cache_duration_seconds_count{database=\"d\",result=\"hit\"} 9",
  };
  EXPECT_EQ(lines, want);

  // Without the overflow count, and with +Inf as the last bound: no second +Inf bucket.
  MetricSamples t;
  t.add_histogram("cachekit_query_cache_duration_seconds", {}, {1, 2}, {1, 1}, 2);
  t.add_histogram("cachekit_query_cache_duration_seconds", {{"result", "miss"}},
                  {1, std::numeric_limits<double>::infinity()}, {2, 5}, 9);
  const std::vector<std::string> want2 = {
      "cachekit_query_cache_duration_seconds_bucket{le=\"1\"} 1",
      "cachekit_query_cache_duration_seconds_bucket{le=\"2\"} 2",
      "cachekit_query_cache_duration_seconds_bucket{le=\"+Inf\"} 2",
      "cachekit_query_cache_duration_seconds_sum 2",
      "cachekit_query_cache_duration_seconds_count 2",
      "cachekit_query_cache_duration_seconds_bucket{result=\"miss\",le=\"1\"} 2",
      "cachekit_query_cache_duration_seconds_bucket{result=\"miss\",le=\"+Inf\"} 7",
      "cachekit_query_cache_duration_seconds_sum{result=\"miss\"} 9",
      "cachekit_query_cache_duration_seconds_count{result=\"miss\"} 7",
  };
  auto lines2 = lines_of(render_exposition(t));
  lines2.erase(lines2.begin(), lines2.begin() + 2);
  EXPECT_EQ(lines2, want2);
}

TEST(MetricText, HistogramRejectsMismatchedCounts) {
  MetricSamples s;
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(s.add_histogram("cachekit_query_cache_duration_seconds", {}, {1, 2}, {1}, 0), Error);
  EXPECT_THROW(
      s.add_histogram("cachekit_query_cache_duration_seconds", {}, {1, 2}, {1, 1, 1, 1}, 0), Error);
  EXPECT_THROW(s.add_histogram("cachekit_query_cache_duration_seconds", {}, {1, inf}, {1, 1, 1}, 0),
               Error);
  EXPECT_THROW(s.add_histogram("cachekit_query_cache_duration_seconds", {}, {2, 1}, {1, 1}, 0),
               Error);
  EXPECT_TRUE(s.empty()) << "nothing half-written";
}

TEST(MetricText, LatencyBucketsAndBucketIndex) {
  const auto &b = latency_buckets();
  ASSERT_EQ(b.size(), 15u);
  EXPECT_EQ(b.front(), 0.0001);
  EXPECT_EQ(b[1], 0.00025);
  EXPECT_EQ(b.back(), 5);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
  EXPECT_EQ(bucket_index(b, 0), 0u);
  EXPECT_EQ(bucket_index(b, 0.0001), 0u) << "upper bounds are inclusive (le)";
  EXPECT_EQ(bucket_index(b, 0.00010001), 1u);
  EXPECT_EQ(bucket_index(b, 0.003), 5u);
  EXPECT_EQ(bucket_index(b, 5), 14u);
  EXPECT_EQ(bucket_index(b, 5.01), 15u) << "the +Inf bucket";
  EXPECT_EQ(bucket_index(b, std::numeric_limits<double>::infinity()), 15u);
  EXPECT_EQ(bucket_index(b, std::nan("")), 15u);
  EXPECT_EQ(bucket_index({}, 3), 0u);

  // bucket_index and add_histogram fit together.
  std::vector<uint64_t> counts(b.size() + 1, 0);
  for (double v : {0.00005, 0.0004, 0.0004, 7.0}) counts[bucket_index(b, v)]++;
  MetricSamples s;
  s.add_histogram("cachekit_query_cache_duration_seconds", {}, b, counts, 7.00085);
  const std::string doc = render_exposition(s);
  EXPECT_NE(doc.find("_bucket{le=\"0.0001\"} 1\n"), std::string::npos) << doc;
  EXPECT_NE(doc.find("_bucket{le=\"0.00025\"} 1\n"), std::string::npos) << doc;
  EXPECT_NE(doc.find("_bucket{le=\"0.0005\"} 3\n"), std::string::npos) << doc;
  EXPECT_NE(doc.find("_bucket{le=\"5\"} 3\n"), std::string::npos) << doc;
  EXPECT_NE(doc.find("_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << doc;
  EXPECT_NE(doc.find("_count 4\n"), std::string::npos) << doc;
}

TEST(MetricText, Summary) {
  MetricSamples s;
  s.add_summary("cachekit_task_run_seconds", {{"database", "d"}, {"queue", "mail"}}, 0.75, 3);
  const auto lines = lines_of(render_exposition(s));
  const std::vector<std::string> want = {
      "# HELP cachekit_task_run_seconds Run time of task attempts.",
      "# TYPE cachekit_task_run_seconds summary",
      "cachekit_task_run_seconds_sum{database=\"d\",queue=\"mail\"} 0.75",
      "cachekit_task_run_seconds_count{database=\"d\",queue=\"mail\"} 3",
  };
  EXPECT_EQ(lines, want);
}

TEST(MetricText, SkipsWhatWouldBreakTheDocument) {
  MetricSamples s;
  s.add("cachekit_no_such_family_total", {}, 1);
  s.add("", {}, 1);
  s.add("cachekit_up", "_sum", {}, 1);                               // no suffix on a gauge
  s.add("cachekit_kv_errors_total", {{"bad-name", "x"}}, 1);         // invalid label name
  s.add("cachekit_kv_errors_total", {{"__name__", "x"}}, 1);         // reserved label name
  s.add("cachekit_kv_errors_total", {{"a", "x"}, {"a", "y"}}, 1);    // repeated label
  s.add("cachekit_kv_errors_total", {{"le", "1"}}, 1);               // le outside buckets
  s.add("cachekit_query_cache_duration_seconds", {}, 1);             // histogram without suffix
  s.add("cachekit_query_cache_duration_seconds", "_bucket", {}, 1);  // bucket without le
  s.add("cachekit_task_run_seconds", {}, 1);                         // summary sample w/o quantile
  EXPECT_EQ(render_exposition(s), "") << "no HELP/TYPE for families with nothing to show";
  s.add("cachekit_kv_errors_total", {{"a1", "x"}}, 4);
  EXPECT_EQ(render_exposition(s),
            "# HELP cachekit_kv_errors_total Key/value and session calls that failed on Redis.\n"
            "# TYPE cachekit_kv_errors_total counter\n"
            "cachekit_kv_errors_total{a1=\"x\"} 4\n");
}

TEST(MetricSamplesTransport, RoundTripsNastyValues) {
  MetricSamples s;
  const std::vector<std::string> nasty = {"",
                                          "\t",
                                          "\n",
                                          "\r\n",
                                          "\\",
                                          "\\t",
                                          "\"quoted\"",
                                          "a\tb",
                                          "x\\ny",
                                          "\\\\\t\\",
                                          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                          "\xff\xfe invalid utf-8",
                                          std::string("nul\0byte", 8),
                                          "}{=,",
                                          "trailing\\"};
  for (size_t i = 0; i < nasty.size(); ++i)
    s.add("cachekit_table_invalidations_total", {{"table", nasty[i]}, {nasty[i], "v"}},
          static_cast<double>(i));
  s.add("cachekit_up", {}, 1);
  s.add(nasty[2], "_sum", {}, 0.1);  // an unknown family survives the transport too
  s.add_histogram("cachekit_query_cache_duration_seconds", {{"database", "d\te"}},
                  latency_buckets(), std::vector<uint64_t>(16, 1), 1.0 / 3);
  s.add_summary("cachekit_task_wait_seconds", {{"queue", "q\n"}}, 1e-300, 0);
  s.add("cachekit_redis_rtt_seconds", {}, std::numeric_limits<double>::infinity());
  s.add("cachekit_redis_rtt_seconds", {}, -std::numeric_limits<double>::infinity());
  s.add("cachekit_redis_rtt_seconds", {}, -0.0);
  s.add("cachekit_redis_rtt_seconds", {}, 5e-324);
  s.add("cachekit_redis_rtt_seconds", {}, std::nan(""));

  const std::string text = s.serialize();
  // One sample per line: the transport's own separators never occur inside fields.
  size_t newlines = 0;
  for (char c : text) newlines += c == '\n';
  EXPECT_EQ(newlines, s.size());

  const MetricSamples back = MetricSamples::parse(text);
  ASSERT_EQ(back.size(), s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const MetricSample &a = s.samples()[i], &b = back.samples()[i];
    EXPECT_EQ(a.family, b.family) << i;
    EXPECT_EQ(a.suffix, b.suffix) << i;
    EXPECT_EQ(a.labels, b.labels) << i;
    if (std::isnan(a.value)) {
      EXPECT_TRUE(std::isnan(b.value)) << i;
    } else {
      EXPECT_EQ(a.value, b.value) << i;
      EXPECT_EQ(std::signbit(a.value), std::signbit(b.value)) << i;
    }
  }
  EXPECT_EQ(back.serialize(), text);
  EXPECT_EQ(render_exposition(back), render_exposition(s));
  EXPECT_TRUE(MetricSamples::parse("").empty());
}

TEST(MetricSamplesTransport, RejectsMalformedText) {
  const std::vector<std::string> bad = {
      "cachekit_up\t\t1",                   // no newline: truncated
      "cachekit_up\t\t1\ncachekit_up\t\t",  // truncated second line
      "cachekit_up\t\t\n",                  // no value
      "cachekit_up\t\n",                    // too few fields
      "cachekit_up\n",                      // too few fields
      "\n",                                 // empty line
      "cachekit_up\t\t1\tdatabase\n",       // label without a value
      "\t\t1\n",                            // empty family
      "cachekit_up\t_total\t1\n",           // unknown suffix
      "cachekit_up\t\t1x\n",                // junk after the value
      "cachekit_up\t\t 1\n",                // space before the value
      "cachekit_up\t\t+1\n",                // a sign the writer never writes
      "cachekit_up\t\tone\n",               // not a number
      "cachekit_up\t\t1\tdb\\\tx\n",        // backslash then a raw tab: odd field count
      "cachekit_up\t\t1\tdb\tx\\\n",        // backslash at the end of a field
      "cachekit_up\t\t1\tdb\tx\\q\n",       // unknown escape
  };
  for (const std::string &t : bad) {
    EXPECT_THROW(MetricSamples::parse(t), Error) << t;
  }
  try {
    MetricSamples::parse("cachekit_up\t\t1\ncachekit_up\t\tx\n");
    FAIL();
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), "22P02");
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

// ---- the real parser --------------------------------------------------------------------

constexpr const char kPromtool[] = "/usr/bin/promtool";

struct CheckResult {
  int exit_code;
  std::string output;
};

CheckResult promtool_check_metrics(const std::string &doc) {
  char path[] = "/tmp/cachekit_metrics_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  {
    std::ofstream f(path, std::ios::binary);
    f << doc;
  }
  close(fd);
  const std::string cmd = std::string(kPromtool) + " check metrics < " + path + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  unlink(path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(MetricTextPromtool, AcceptsEveryCatalogueFamily) {
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << "no " << kPromtool << " (Debian: prometheus)";
  MetricSamples s;
  const Labels nasty = {{"database", "d\\b \"q\"\nnew line\ttab caf\xc3\xa9 \xff"},
                        {"namespace", ""}};
  for (const MetricFamily &f : metric_catalog()) {
    switch (f.type) {
      case MetricType::kHistogram: {
        std::vector<uint64_t> counts(latency_buckets().size() + 1, 2);
        s.add_histogram(f.name, {{"database", "app"}, {"result", "hit"}}, latency_buckets(), counts,
                        0.123);
        s.add_histogram(f.name, nasty, latency_buckets(), counts, 1e-9);
        break;
      }
      case MetricType::kSummary:
        s.add_summary(f.name, {{"database", "app"}, {"queue", "default"}}, 2.5, 7);
        s.add_summary(f.name, nasty, 0, 0);
        break;
      default:
        s.add(f.name, {}, 0);
        s.add(f.name, {{"database", "app"}, {"fingerprint", "0123abcd"}}, 1.0 / 3);
        s.add(f.name, nasty, 1e300);
        s.add(f.name, {{"endpoint", "cache"}}, std::nan(""));
    }
  }
  // Added out of order on purpose: the document still groups families.
  s.add("cachekit_up", {{"component", "late"}}, 1);
  const std::string doc = render_exposition(s);
  const CheckResult r = promtool_check_metrics(doc);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << doc;
  EXPECT_EQ(r.output, "") << doc;
}

TEST(MetricTextPromtool, TheCheckCanFail) {
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << "no " << kPromtool << " (Debian: prometheus)";
  // A counter without _total and without help, as the lint sees it.
  const CheckResult lint =
      promtool_check_metrics("# TYPE cachekit_thing counter\ncachekit_thing 1\n");
  EXPECT_NE(lint.exit_code, 0);
  EXPECT_NE(lint.output, "");
  // An unescaped newline in a label value is a parse error.
  const CheckResult parse =
      promtool_check_metrics("# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"b\nc\"} 1\n");
  EXPECT_NE(parse.exit_code, 0);
}

}  // namespace
}  // namespace cachekit
