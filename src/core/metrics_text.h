// Prometheus text exposition (format 0.0.4) of pg_cachekit's metrics.
//
// The catalogue (docs: METRICS.md) is the contract between the producers: the SQL function
// cachekit.metrics() and the HTTP worker. Producers collect MetricSamples in any order;
// render_exposition() puts the families in catalogue order with their HELP and TYPE lines, so
// that a scrape is always a valid document whatever the producers did (unknown families and
// samples that would break the format are left out rather than failing a scrape).
//
// MetricSamples also travel between processes (a relay publishes its database's samples into
// shared memory for the HTTP worker): serialize()/parse() are an exact, line-based transport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cachekit {

enum class MetricType { kCounter, kGauge, kHistogram, kSummary };

struct MetricFamily {
  const char *name;
  MetricType type;
  const char *help;
};

// The catalogue of METRICS.md, in its order.
const std::vector<MetricFamily> &metric_catalog();

// The family of that name, or nullptr.
const MetricFamily *find_metric_family(const std::string &name);

// "counter", "gauge", "histogram", "summary".
const char *metric_type_name(MetricType type);

using Labels = std::vector<std::pair<std::string, std::string>>;

struct MetricSample {
  std::string family;  // a catalogue name
  std::string suffix;  // "" or "_bucket" / "_sum" / "_count" (histogram, summary)
  Labels labels;       // in the order given ("le" for buckets is just another label, last)
  double value;
};

class MetricSamples {
 public:
  void add(const std::string &family, Labels labels, double value);
  void add(const std::string &family, const std::string &suffix, Labels labels, double value);
  // A histogram from per-bucket (non-cumulative) counts: counts[i] are the observations in
  // (bounds[i-1], bounds[i]], with bounds ascending. counts has bounds.size() entries, or one
  // more for the observations above the last bound (see bucket_index()). A last bound of +Inf
  // is allowed and not repeated. Writes the cumulative _bucket series (le last), the +Inf
  // bucket (= _count) always, then _sum and _count. Throws cachekit::Error (internal error)
  // when the sizes do not fit.
  void add_histogram(const std::string &family, const Labels &labels,
                     const std::vector<double> &bounds, const std::vector<uint64_t> &counts,
                     double sum);
  void add_summary(const std::string &family, const Labels &labels, double sum, uint64_t count);
  void append(const MetricSamples &other);
  const std::vector<MetricSample> &samples() const;
  bool empty() const { return samples_.empty(); }
  size_t size() const { return samples_.size(); }

  // One sample per line, "\n"-terminated: tab-separated fields family, suffix, value, then
  // label name and value pairs. Fields escape backslash, tab, newline and carriage return,
  // so any bytes round-trip exactly; values use the shortest exact form ("nan", "inf").
  std::string serialize() const;
  // The inverse; throws cachekit::Error on malformed input, including a last line without
  // its newline (a truncated copy).
  static MetricSamples parse(const std::string &text);

 private:
  std::vector<MetricSample> samples_;
};

// The exposition document: families in catalogue order, each with "# HELP" and "# TYPE" when
// it has samples, then its samples in the order added. Left out rather than rendered: samples
// of unknown families, suffixes the family's type does not have, invalid label names and
// repeated label names. Label values are escaped (\\, \", \n) and invalid UTF-8 becomes
// U+FFFD (Prometheus rejects a whole scrape over one bad byte).
std::string render_exposition(const MetricSamples &samples);

// The escapes of the format, for the renderer and its tests: a HELP text (\\, \n), a label
// value (\\, \", \n; invalid UTF-8 becomes U+FFFD).
std::string escape_metric_help(const std::string &help);
std::string escape_label_value(const std::string &value);

// A sample value or "le" bound as the format wants it: integers (|v| < 2^53) without
// exponent or decimals, otherwise the shortest form that reads back exactly; "NaN", "+Inf",
// "-Inf".
std::string format_metric_value(double v);

// The bucket bounds of latency histograms in seconds, without +Inf.
const std::vector<double> &latency_buckets();

// Index of the bucket of a value: the first bound >= value, or bounds.size() (the +Inf
// bucket) when above them all. NaN goes to the +Inf bucket.
size_t bucket_index(const std::vector<double> &bounds, double value);

}  // namespace cachekit
