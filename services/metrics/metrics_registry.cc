#include "services/metrics/metrics_registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/logging/log.h"

namespace fapo::metrics {
namespace {

// "gauge with help "..." and labels [a, b]", for AlreadyExists errors.
std::string DescribeDefinition(MetricType type, absl::string_view help,
                               const std::vector<std::string>& label_names,
                               const std::vector<double>& bucket_bounds) {
  std::string out =
      absl::StrCat(MetricTypeName(type), " with help \"", help,
                   "\" and labels [", absl::StrJoin(label_names, ", "), "]");
  if (type == MetricType::kHistogram) {
    absl::StrAppend(&out, " and buckets [", absl::StrJoin(bucket_bounds, ", "),
                    "]");
  }
  return out;
}

// Rounds to 15 significant digits (a double holds 15-17), which removes the
// representation noise of repeated float arithmetic from bucket bounds.
double RoundBound(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.15g", value);
  return std::strtod(buffer, nullptr);
}

template <typename Metric>
prometheus::Family<Metric>& Build(prometheus::Registry& registry,
                                  const std::string& name,
                                  const std::string& help) {
  if constexpr (std::is_same_v<Metric, Counter>) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
  } else if constexpr (std::is_same_v<Metric, Gauge>) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
  } else {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(
        registry);
  }
}

}  // namespace

template <typename Metric>
MetricFamily<Metric>::MetricFamily(prometheus::Family<Metric>* family,
                                   std::string name,
                                   std::vector<std::string> label_names,
                                   std::vector<double> bucket_bounds)
    : family_(family),
      name_(std::move(name)),
      label_names_(std::move(label_names)),
      bucket_bounds_(std::move(bucket_bounds)) {
  if constexpr (std::is_same_v<Metric, Histogram>) {
    detached_ = std::make_unique<Metric>(bucket_bounds_);
  } else {
    detached_ = std::make_unique<Metric>();
  }
}

template <typename Metric>
Metric& MetricFamily<Metric>::Add(const Labels& labels) {
  if constexpr (std::is_same_v<Metric, Histogram>) {
    return family_->Add(labels, bucket_bounds_);
  } else {
    return family_->Add(labels);
  }
}

template <typename Metric>
absl::StatusOr<Metric*> MetricFamily<Metric>::Get(const Labels& labels) {
  bool names_match = labels.size() == label_names_.size();
  for (size_t i = 0; names_match && i < label_names_.size(); ++i) {
    names_match = labels.count(label_names_[i]) > 0;
  }
  if (!names_match) {
    std::vector<std::string> given;
    for (const auto& [label, value] : labels) given.push_back(label);
    return absl::InvalidArgumentError(
        absl::StrCat("metric \"", name_, "\" has labels [",
                     absl::StrJoin(label_names_, ", "), "] but was given [",
                     absl::StrJoin(given, ", "), "]"));
  }
  for (const auto& [label, value] : labels) {
    if (!IsValidUtf8(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metric \"", name_, "\": value of label \"", label,
          "\" is not valid UTF-8 (Prometheus would reject the whole scrape)"));
    }
  }
  // The label names were checked at registration, so prometheus-cpp has
  // nothing to throw for.
  return &Add(labels);
}

template <typename Metric>
Metric& MetricFamily<Metric>::WithLabels(const Labels& labels) {
  absl::StatusOr<Metric*> metric = Get(labels);
  if (metric.ok()) return **metric;
  if (!logged_label_error_.exchange(true)) {
    FAPO_LOG(ERROR) << metric.status().message()
                    << "; updates go to a detached series that is not exported";
  }
  return *detached_;
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

MetricsRegistry::MetricsRegistry(MetricsRegistryOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>(
          prometheus::Registry::InsertBehavior::Throw)) {}

MetricsRegistry::~MetricsRegistry() = default;

template <typename Metric>
absl::StatusOr<MetricFamily<Metric>*> MetricsRegistry::Add(
    MetricType type, absl::string_view name, absl::string_view help,
    const std::vector<double>& bucket_bounds,
    const std::vector<std::string>& label_names) {
  absl::Status status = ValidateFamilyDefinition(type, name, help, label_names,
                                                 options_.required_name_prefix);
  if (!status.ok()) return status;
  absl::MutexLock lock(&mu_);
  auto it = definitions_.find(name);
  if (it != definitions_.end()) {
    const Definition& existing = it->second;
    if (existing.type == type && existing.help == help &&
        existing.label_names == label_names &&
        existing.bucket_bounds == bucket_bounds) {
      // Same type implies the same Metric: the cast is exact.
      return static_cast<MetricFamily<Metric>*>(existing.family);
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "metric \"", name, "\" is already registered as a ",
        DescribeDefinition(existing.type, existing.help, existing.label_names,
                           existing.bucket_bounds),
        "; cannot register it again as a ",
        DescribeDefinition(type, help, label_names, bucket_bounds)));
  }
  prometheus::Family<Metric>* built = nullptr;
  try {
    built = &Build<Metric>(*registry_, std::string(name), std::string(help));
  } catch (const std::exception& error) {
    // The checks above are stricter than prometheus-cpp's; kept as a
    // guard so that nothing throws across this boundary.
    return absl::InvalidArgumentError(
        absl::StrCat("metric \"", name, "\": ", error.what()));
  }
  std::unique_ptr<MetricFamily<Metric>> family(new MetricFamily<Metric>(
      built, std::string(name), label_names, bucket_bounds));
  MetricFamily<Metric>* raw = family.get();
  definitions_.emplace(
      std::string(name),
      Definition{type, std::string(help), label_names, bucket_bounds, raw});
  if constexpr (std::is_same_v<Metric, Counter>) {
    counters_.push_back(std::move(family));
  } else if constexpr (std::is_same_v<Metric, Gauge>) {
    gauges_.push_back(std::move(family));
  } else {
    histograms_.push_back(std::move(family));
  }
  // A family without labels has exactly one series; export it from the
  // start so dashboards see 0 rather than "no data".
  if (label_names.empty()) raw->Add({});
  return raw;
}

absl::StatusOr<CounterFamily*> MetricsRegistry::AddCounter(
    absl::string_view name, absl::string_view help,
    const std::vector<std::string>& label_names) {
  return Add<Counter>(MetricType::kCounter, name, help, {}, label_names);
}

absl::StatusOr<GaugeFamily*> MetricsRegistry::AddGauge(
    absl::string_view name, absl::string_view help,
    const std::vector<std::string>& label_names) {
  return Add<Gauge>(MetricType::kGauge, name, help, {}, label_names);
}

absl::StatusOr<HistogramFamily*> MetricsRegistry::AddHistogram(
    absl::string_view name, absl::string_view help,
    const std::vector<double>& bucket_bounds,
    const std::vector<std::string>& label_names) {
  absl::Status status = ValidateBucketBounds(bucket_bounds);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram \"", name, "\": ", status.message()));
  }
  return Add<Histogram>(MetricType::kHistogram, name, help, bucket_bounds,
                        label_names);
}

std::vector<prometheus::MetricFamily> MetricsRegistry::Collect() const {
  return registry_->Collect();
}

std::unique_ptr<MetricsRegistry> NewMetricsRegistry(
    MetricsRegistryOptions options) {
  return std::make_unique<MetricsRegistry>(std::move(options));
}

MetricsRegistry& DefaultMetricsRegistry() {
  static MetricsRegistry* const registry = NewMetricsRegistry().release();
  return *registry;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(RoundBound(start * std::pow(factor, i)));
  }
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(RoundBound(start + i * width));
  }
  return bounds;
}

}  // namespace fapo::metrics
