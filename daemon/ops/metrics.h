// Prometheus metrics: counter, gauge and histogram families in one registry,
// rendered in the text exposition format 0.0.4 for GET /metrics.
//
// A family is declared once, with a name, a help text and label names; its
// series are addressed by label values in the same order. Mistakes in
// declaring or addressing a family are bugs and throw std::logic_error:
// an invalid name, the same name declared with other labels, a wrong number
// of label values, a counter going down.
//
// Call everything on the loop's thread; nothing here is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tactd {

// Label values, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

enum class MetricType { kCounter, kGauge, kHistogram };

// What every family has: name, help, label names and its series, bounded.
class MetricFamily {
 public:
  // A family keeps at most this many label sets. Values for a new label set
  // beyond it go to one extra series whose label values are all
  // kOverflowValue, and a warning is logged once for the family.
  static constexpr std::size_t kMaxSeries = 500;
  static constexpr std::string_view kOverflowValue = "other";
  // Longer label values are cut at a UTF-8 character boundary.
  static constexpr std::size_t kMaxLabelValueBytes = 256;

  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Label sets seen so far, the overflow series included.
  std::size_t series_count() const { return series_.size(); }

 protected:
  struct Series {
    double value = 0;                    // counter and gauge value; histogram sum
    std::vector<std::uint64_t> buckets;  // histogram: observations per bucket, not cumulative; +Inf last
    std::uint64_t count = 0;             // histogram: observations
  };

  MetricFamily(MetricType type, std::string name, std::string help, std::vector<std::string> label_names,
               std::vector<double> bounds);

  // The series for `values`, created (zero) when new, or the overflow series
  // when kMaxSeries label sets exist. Throws std::logic_error when the
  // number of values is not the number of labels.
  Series& series(const LabelValues& values);
  // The series for `values` if it exists; never creates one.
  const Series* find(const LabelValues& values) const;

  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class Metrics;
  void render(std::string& out) const;

  MetricType type_;
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histogram bucket upper bounds, without +Inf
  std::map<LabelValues, Series> series_;
  bool overflow_logged_ = false;
};

// Counts things that only ever go up: one value per label set.
class Counter final : public MetricFamily {
 public:
  // Adds `amount`; a negative or NaN amount throws std::logic_error.
  void add(const LabelValues& values, double amount = 1);
  // The value for `values`; 0 for a label set never counted. A wrong
  // number of values throws std::logic_error.
  double value(const LabelValues& values) const;

 private:
  friend class Metrics;
  using MetricFamily::MetricFamily;
};

// A value that goes up and down: a depth, a size, a time of the last event.
class Gauge final : public MetricFamily {
 public:
  // Like every method taking label values, these throw std::logic_error
  // when the number of values is not the number of label names.
  void set(const LabelValues& values, double value);
  void add(const LabelValues& values, double delta);
  // Sets the value to `at` in seconds since the Unix epoch, for gauges such
  // as `tactd_source_last_success_timestamp_seconds`.
  void set_to_time(const LabelValues& values, std::chrono::system_clock::time_point at);
  // The value for `values`; 0 for a label set never set. A wrong number of
  // values throws std::logic_error.
  double value(const LabelValues& values) const;

 private:
  friend class Metrics;
  using MetricFamily::MetricFamily;
};

// Counts observations (latencies, sizes) into buckets of the upper bounds
// given when it was declared, plus +Inf; keeps their sum and count.
class Histogram final : public MetricFamily {
 public:
  // Counts `value` in the first bucket whose bound is >= value. NaN throws
  // std::logic_error.
  void observe(const LabelValues& values, double value);

 private:
  friend class Metrics;
  using MetricFamily::MetricFamily;
};

// The registry. Families returned by reference live as long as the registry.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Declares a family, or returns the one already declared under `name` when
  // its type and label names (and buckets) are the same; anything else
  // throws std::logic_error. The help text of the first declaration stays.
  //
  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in `_total`,
  // other families end in none of `_total`, `_count`, `_sum`, `_bucket`.
  // Label names must match [a-zA-Z_][a-zA-Z0-9_]*, not start with `__`, be
  // unique, and `le` is not one for a histogram. Help must not be empty.
  // A family without labels has its one series (zero) from the start.
  Counter& counter(const std::string& name, const std::string& help, const std::vector<std::string>& label_names);
  Gauge& gauge(const std::string& name, const std::string& help, const std::vector<std::string>& label_names);
  // `bounds` must be finite and strictly increasing; +Inf is added.
  Histogram& histogram(const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
                       const std::vector<double>& bounds);

  // Runs `collector` at the start of every render(), in the order added, to
  // set gauges from state that is cheaper to read than to track. What it
  // refers to must outlive the registry's last render(). An exception from a
  // collector is logged and the render goes on.
  void on_scrape(std::function<void()> collector);

  // Runs the collectors, then writes every family in the text exposition
  // format 0.0.4: families sorted by name, series by label values.
  std::string render();

 private:
  MetricFamily& declare(MetricType type, const std::string& name, const std::string& help,
                        const std::vector<std::string>& label_names, const std::vector<double>& bounds);

  std::map<std::string, std::unique_ptr<MetricFamily>, std::less<>> families_;
  std::vector<std::function<void()>> collectors_;
};

// A sample value as the exposition format writes it: integers below 1e15
// (all exact in a double) without exponent or fraction, otherwise the
// shortest decimal that reads back the same (`0.005`, `1e+20`); `+Inf`,
// `-Inf`, `NaN`.
std::string format_metric_value(double value);

}  // namespace tactd
