#include "ops/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "ops/utf8.h"

namespace tactd {
namespace {

bool is_metric_name(std::string_view name) {
  if (name.empty()) return false;
  const auto start = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; };
  if (!start(name.front())) return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) { return start(c) || (c >= '0' && c <= '9'); });
}

bool is_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  const auto start = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!start(name.front())) return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) { return start(c) || (c >= '0' && c <= '9'); });
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// The sample names a family writes besides its own name.
std::vector<std::string> sample_names(MetricType type, const std::string& name) {
  if (type == MetricType::kHistogram) return {name + "_bucket", name + "_sum", name + "_count"};
  return {name};
}

// Invalid UTF-8 becomes U+FFFD (the exposition format requires UTF-8);
// the result is cut at a character boundary to at most `limit` bytes.
std::string valid_utf8(std::string_view text, std::size_t limit) {
  std::string out;
  out.reserve(std::min(text.size(), limit));
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8::sequence_length(text, at);
    const std::string_view piece = length == 0 ? std::string_view("\xEF\xBF\xBD") : text.substr(at, length);
    if (out.size() + piece.size() > limit) break;
    out += piece;
    at += length == 0 ? 1 : length;
  }
  return out;
}

// HELP text escapes backslash and newline; label values also the quote.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}`, with `extra` (le="...") last; empty without labels.
std::string label_text(const std::vector<std::string>& names, const LabelValues& values, std::string_view extra = {}) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + escape(values[i], true) + "\"";
  }
  if (!extra.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra;
  }
  if (!out.empty()) out += "}";
  return out;
}

void write_sample(std::string& out, const std::string& name, const std::string& labels, double value) {
  out += name;
  out += labels;
  out += ' ';
  out += format_metric_value(value);
  out += '\n';
}

}  // namespace

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Every integer below 2^53 is exact in a double; beyond 1e15 the shortest
  // form (with an exponent) is easier to read.
  if (value == std::trunc(value) && std::fabs(value) < 1e15) return std::to_string(static_cast<long long>(value));
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

MetricFamily::MetricFamily(MetricType type, std::string name, std::string help, std::vector<std::string> label_names,
                           std::vector<double> bounds)
    : type_(type),
      name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (label_names_.empty()) series({});
}

MetricFamily::Series& MetricFamily::series(const LabelValues& values) {
  if (values.size() != label_names_.size())
    throw std::logic_error("metric " + name_ + " has " + std::to_string(label_names_.size()) + " labels, given " +
                           std::to_string(values.size()) + " values");
  LabelValues key;
  key.reserve(values.size());
  for (const auto& value : values) key.push_back(valid_utf8(value, kMaxLabelValueBytes));
  auto found = series_.find(key);
  if (found != series_.end()) return found->second;
  if (series_.size() >= kMaxSeries) {
    key.assign(label_names_.size(), std::string(kOverflowValue));
    found = series_.find(key);
    if (found != series_.end()) return found->second;
    if (!overflow_logged_) {
      spdlog::warn("metrics: {} has {} label sets, the most it keeps; further ones are counted with every label \"{}\"",
                   name_, kMaxSeries, kOverflowValue);
      overflow_logged_ = true;
    }
  }
  Series fresh;
  if (type_ == MetricType::kHistogram) fresh.buckets.assign(bounds_.size() + 1, 0);
  return series_.emplace(std::move(key), std::move(fresh)).first->second;
}

const MetricFamily::Series* MetricFamily::find(const LabelValues& values) const {
  if (values.size() != label_names_.size())
    throw std::logic_error("metric " + name_ + " has " + std::to_string(label_names_.size()) + " labels, given " +
                           std::to_string(values.size()) + " values");
  LabelValues key;
  key.reserve(values.size());
  for (const auto& value : values) key.push_back(valid_utf8(value, kMaxLabelValueBytes));
  const auto found = series_.find(key);
  return found == series_.end() ? nullptr : &found->second;
}

void MetricFamily::render(std::string& out) const {
  out += "# HELP " + name_ + " " + escape(valid_utf8(help_, std::numeric_limits<std::size_t>::max()), false) + "\n";
  out += "# TYPE " + name_ + " " + type_name(type_) + "\n";
  for (const auto& [values, s] : series_) {
    if (type_ != MetricType::kHistogram) {
      write_sample(out, name_, label_text(label_names_, values), s.value);
      continue;
    }
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < s.buckets.size(); ++i) {
      cumulative += s.buckets[i];
      const std::string le = i < bounds_.size() ? format_metric_value(bounds_[i]) : "+Inf";
      write_sample(out, name_ + "_bucket", label_text(label_names_, values, "le=\"" + le + "\""),
                   static_cast<double>(cumulative));
    }
    write_sample(out, name_ + "_sum", label_text(label_names_, values), s.value);
    write_sample(out, name_ + "_count", label_text(label_names_, values), static_cast<double>(s.count));
  }
}

void Counter::add(const LabelValues& values, double amount) {
  if (!(amount >= 0))
    throw std::logic_error("counter " + name() + " cannot go down (add " + std::to_string(amount) + ")");
  series(values).value += amount;
}

double Counter::value(const LabelValues& values) const {
  const Series* s = find(values);
  return s ? s->value : 0;
}

void Gauge::set(const LabelValues& values, double value) { series(values).value = value; }

void Gauge::add(const LabelValues& values, double delta) { series(values).value += delta; }

void Gauge::set_to_time(const LabelValues& values, std::chrono::system_clock::time_point at) {
  // Whole seconds and the fraction apart: nanoseconds * 1e-9 in one double
  // multiplication would lose the fraction's last digits (…200.2499998).
  const auto since = at.time_since_epoch();
  const auto whole = std::chrono::floor<std::chrono::seconds>(since);
  set(values, static_cast<double>(whole.count()) + std::chrono::duration<double>(since - whole).count());
}

double Gauge::value(const LabelValues& values) const {
  const Series* s = find(values);
  return s ? s->value : 0;
}

void Histogram::observe(const LabelValues& values, double value) {
  if (std::isnan(value)) throw std::logic_error("histogram " + name() + " cannot observe NaN");
  Series& s = series(values);
  const auto bucket = std::lower_bound(bounds().begin(), bounds().end(), value) - bounds().begin();
  ++s.buckets[static_cast<std::size_t>(bucket)];
  s.value += value;
  ++s.count;
}

Metrics::Metrics() = default;
Metrics::~Metrics() = default;

MetricFamily& Metrics::declare(MetricType type, const std::string& name, const std::string& help,
                               const std::vector<std::string>& label_names, const std::vector<double>& bounds) {
  if (auto found = families_.find(name); found != families_.end()) {
    const MetricFamily& existing = *found->second;
    if (existing.type() != type || existing.label_names() != label_names || existing.bounds() != bounds)
      throw std::logic_error("metric " + name + " is already declared as a " + type_name(existing.type()) +
                             " with other labels or buckets");
    return *found->second;
  }
  if (!is_metric_name(name)) throw std::logic_error("'" + name + "' is not a valid metric name");
  const bool total = name.ends_with("_total");
  if (type == MetricType::kCounter && !total) throw std::logic_error("counter " + name + " must end in _total");
  if (type != MetricType::kCounter &&
      (total || name.ends_with("_count") || name.ends_with("_sum") || name.ends_with("_bucket")))
    throw std::logic_error(std::string(type_name(type)) + " " + name +
                           " must not end in _total, _count, _sum or _bucket");
  if (help.empty()) throw std::logic_error("metric " + name + " needs a help text");
  std::set<std::string, std::less<>> seen;
  for (const auto& label : label_names) {
    if (!is_label_name(label)) throw std::logic_error("'" + label + "' is not a valid label name for " + name);
    if (type == MetricType::kHistogram && label == "le")
      throw std::logic_error("histogram " + name + " cannot have a label 'le'");
    if (!seen.insert(label).second) throw std::logic_error("metric " + name + " has label '" + label + "' twice");
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]))
      throw std::logic_error("histogram " + name + " has a bucket bound that is not finite");
    if (i > 0 && !(bounds[i - 1] < bounds[i]))
      throw std::logic_error("histogram " + name + " bucket bounds must be strictly increasing");
  }
  // A histogram writes name_bucket, name_sum and name_count: no other
  // family may write a sample of the same name.
  for (const auto& sample : sample_names(type, name)) {
    for (const auto& [other_name, other] : families_) {
      const auto others = sample_names(other->type(), other_name);
      if (std::find(others.begin(), others.end(), sample) != others.end())
        throw std::logic_error("metric " + name + " would write samples named " + sample + " like " + other_name);
    }
  }
  std::unique_ptr<MetricFamily> family;
  switch (type) {
    case MetricType::kCounter:
      family.reset(new Counter(type, name, help, label_names, bounds));
      break;
    case MetricType::kGauge:
      family.reset(new Gauge(type, name, help, label_names, bounds));
      break;
    case MetricType::kHistogram:
      family.reset(new Histogram(type, name, help, label_names, bounds));
      break;
  }
  return *families_.emplace(name, std::move(family)).first->second;
}

Counter& Metrics::counter(const std::string& name, const std::string& help,
                          const std::vector<std::string>& label_names) {
  return static_cast<Counter&>(declare(MetricType::kCounter, name, help, label_names, {}));
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help, const std::vector<std::string>& label_names) {
  return static_cast<Gauge&>(declare(MetricType::kGauge, name, help, label_names, {}));
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                              const std::vector<std::string>& label_names, const std::vector<double>& bounds) {
  return static_cast<Histogram&>(declare(MetricType::kHistogram, name, help, label_names, bounds));
}

void Metrics::on_scrape(std::function<void()> collector) { collectors_.push_back(std::move(collector)); }

std::string Metrics::render() {
  for (std::size_t i = 0; i < collectors_.size(); ++i) {
    try {
      collectors_[i]();
    } catch (const std::exception& e) {
      spdlog::error("metrics: scrape collector {} failed: {}", i + 1, e.what());
    } catch (...) {
      spdlog::error("metrics: scrape collector {} failed with an exception that is not a std::exception", i + 1);
    }
  }
  std::string out;
  for (const auto& [name, family] : families_) family->render(out);
  return out;
}

}  // namespace tactd
