#include "services/metrics/metrics_registry.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "services/logging/log.h"
#include "services/metrics/metric_names.h"

namespace fapo::metrics {
namespace {

// std::atomic<double>::fetch_add is C++20; this is the usual CAS loop.
void AtomicAdd(std::atomic<double>* target, double amount) {
  double current = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(current, current + amount,
                                        std::memory_order_relaxed)) {
  }
}

// Counters are mostly incremented by whole numbers (events, tokens, bytes).
// Those go to an integer with a single fetch_add, which does not retry under
// contention the way a CAS loop on a double does; fractional amounts
// (seconds) go to the double. Value() is the sum of both, exact while the
// integer part stays below 2^53.
class CounterImpl final : public Counter {
 public:
  void Increment(double amount) override {
    if (!(amount >= 0)) return;  // negative or NaN
    if (amount < kMaxIntegerIncrement && amount == std::trunc(amount)) {
      integer_part_.fetch_add(static_cast<uint64_t>(amount),
                              std::memory_order_relaxed);
    } else {
      AtomicAdd(&fractional_part_, amount);
    }
  }
  double Value() const override {
    return static_cast<double>(integer_part_.load(std::memory_order_relaxed)) +
           fractional_part_.load(std::memory_order_relaxed);
  }
  void Fill(MetricSnapshot* snapshot) const { snapshot->value = Value(); }

 private:
  static constexpr double kMaxIntegerIncrement = 4294967296.0;  // 2^32
  std::atomic<uint64_t> integer_part_{0};
  std::atomic<double> fractional_part_{0};
};

class GaugeImpl final : public Gauge {
 public:
  void Set(double value) override {
    value_.store(value, std::memory_order_relaxed);
  }
  void Increment(double amount) override { AtomicAdd(&value_, amount); }
  void Decrement(double amount) override { AtomicAdd(&value_, -amount); }
  double Value() const override {
    return value_.load(std::memory_order_relaxed);
  }
  void Fill(MetricSnapshot* snapshot) const { snapshot->value = Value(); }

 private:
  std::atomic<double> value_{0};
};

// Per-bucket (not cumulative) counts, so Observe touches one bucket; the
// snapshot accumulates them and derives count from them, which keeps count
// equal to the +Inf bucket even while observations race with a scrape.
class HistogramImpl final : public Histogram {
 public:
  // `bounds` is the family's, which outlives every child.
  explicit HistogramImpl(const std::vector<double>* bounds)
      : bounds_(*bounds),
        bucket_counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      bucket_counts_[i].store(0, std::memory_order_relaxed);
    }
  }

  void Observe(double value) override {
    if (std::isnan(value)) return;
    const size_t bucket =
        std::lower_bound(bounds_.begin(), bounds_.end(), value) -
        bounds_.begin();
    bucket_counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    AtomicAdd(&sum_, value);
  }

  HistogramSnapshot Snapshot() const override {
    HistogramSnapshot snapshot;
    snapshot.bucket_bounds = bounds_;
    snapshot.cumulative_counts.resize(bounds_.size() + 1);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += bucket_counts_[i].load(std::memory_order_relaxed);
      snapshot.cumulative_counts[i] = cumulative;
    }
    snapshot.count = cumulative;
    snapshot.sum = sum_.load(std::memory_order_relaxed);
    return snapshot;
  }
  void Fill(MetricSnapshot* snapshot) const {
    snapshot->histogram = Snapshot();
  }

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> bucket_counts_;
  std::atomic<double> sum_{0};
};

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

// What the registry knows about every family, whatever its type.
class FamilyBase {
 public:
  FamilyBase(MetricType type, std::string name, std::string help,
             std::vector<std::string> label_names,
             std::vector<double> bucket_bounds)
      : type_(type),
        name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bucket_bounds_(std::move(bucket_bounds)) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  virtual FamilySnapshot Collect() const = 0;

  bool SameDefinition(MetricType type, absl::string_view help,
                      const std::vector<std::string>& label_names,
                      const std::vector<double>& bucket_bounds) const {
    return type_ == type && help_ == help && label_names_ == label_names &&
           bucket_bounds_ == bucket_bounds;
  }

  std::string Describe() const {
    return DescribeDefinition(type_, help_, label_names_, bucket_bounds_);
  }

  MetricType type() const { return type_; }

 protected:
  const MetricType type_;
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bucket_bounds_;
};

template <typename Metric, typename Impl>
class FamilyImpl final : public MetricFamily<Metric>, public FamilyBase {
 public:
  FamilyImpl(MetricType type, std::string name, std::string help,
             std::vector<std::string> label_names,
             std::vector<double> bucket_bounds)
      : FamilyBase(type, std::move(name), std::move(help),
                   std::move(label_names), std::move(bucket_bounds)),
        detached_(NewChild()) {}

  const std::string& name() const override { return name_; }
  const std::vector<std::string>& label_names() const override {
    return label_names_;
  }

  absl::StatusOr<Metric*> Get(const Labels& labels) override {
    std::vector<std::string> values;
    absl::Status status = OrderLabelValues(labels, &values);
    if (!status.ok()) return status;
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = children_.find(values);
      if (it != children_.end()) return it->second.get();
    }
    // Existing children passed this check when they were created.
    status = CheckLabelValues(values);
    if (!status.ok()) return status;
    absl::MutexLock lock(&mu_);
    std::unique_ptr<Impl>& child = children_[std::move(values)];
    if (child == nullptr) child = NewChild();  // lost no race: create it
    return child.get();
  }

  Metric& WithLabels(const Labels& labels) override {
    absl::StatusOr<Metric*> child = Get(labels);
    if (child.ok()) return **child;
    if (!logged_label_error_.exchange(true)) {
      FAPO_LOG(ERROR) << child.status().message()
                      << " (updates go to a detached series that is not "
                         "exported; further errors for this metric are not "
                         "logged)";
    }
    return *detached_;
  }

  FamilySnapshot Collect() const override {
    FamilySnapshot snapshot;
    snapshot.name = name_;
    snapshot.help = help_;
    snapshot.type = type_;
    snapshot.label_names = label_names_;
    absl::ReaderMutexLock lock(&mu_);
    snapshot.metrics.resize(children_.size());
    size_t i = 0;
    for (const auto& [values, child] : children_) {
      MetricSnapshot& metric = snapshot.metrics[i++];
      metric.label_values = values;
      child->Fill(&metric);
    }
    return snapshot;
  }

 private:
  std::unique_ptr<Impl> NewChild() const {
    if constexpr (std::is_same_v<Impl, HistogramImpl>) {
      return std::make_unique<Impl>(&bucket_bounds_);
    } else {
      return std::make_unique<Impl>();
    }
  }

  // Orders `labels` by label_names_; InvalidArgument unless the label names
  // are exactly label_names_.
  absl::Status OrderLabelValues(const Labels& labels,
                                std::vector<std::string>* values) const {
    bool names_match = labels.size() == label_names_.size();
    values->reserve(label_names_.size());
    for (size_t i = 0; names_match && i < label_names_.size(); ++i) {
      auto it = labels.find(label_names_[i]);
      if (it == labels.end()) {
        names_match = false;
      } else {
        values->push_back(it->second);
      }
    }
    if (!names_match) {
      std::vector<std::string> given;
      for (const auto& [label, value] : labels) given.push_back(label);
      return absl::InvalidArgumentError(
          absl::StrCat("metric \"", name_, "\" has labels [",
                       absl::StrJoin(label_names_, ", "), "] but was given [",
                       absl::StrJoin(given, ", "), "]"));
    }
    return absl::OkStatus();
  }

  // InvalidArgument unless every value is valid UTF-8.
  absl::Status CheckLabelValues(const std::vector<std::string>& values) const {
    for (size_t i = 0; i < values.size(); ++i) {
      if (!IsValidUtf8(values[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "metric \"", name_, "\": value of label \"", label_names_[i],
            "\" is not valid UTF-8 (Prometheus would reject the whole "
            "scrape)"));
      }
    }
    return absl::OkStatus();
  }

  mutable absl::Mutex mu_;
  // Keyed by label values in label_names_ order; std::map keeps exposition
  // order stable. unique_ptr keeps children at fixed addresses.
  std::map<std::vector<std::string>, std::unique_ptr<Impl>> children_
      ABSL_GUARDED_BY(mu_);
  const std::unique_ptr<Impl> detached_;
  std::atomic<bool> logged_label_error_{false};
};

using CounterFamilyImpl = FamilyImpl<Counter, CounterImpl>;
using GaugeFamilyImpl = FamilyImpl<Gauge, GaugeImpl>;
using HistogramFamilyImpl = FamilyImpl<Histogram, HistogramImpl>;

class Registry final : public MetricsRegistry {
 public:
  explicit Registry(MetricsRegistryOptions options)
      : options_(std::move(options)) {}
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  absl::StatusOr<CounterFamily*> AddCounter(
      absl::string_view name, absl::string_view help,
      const std::vector<std::string>& label_names) override {
    return Add<CounterFamilyImpl>(MetricType::kCounter, name, help, {},
                                  label_names);
  }

  absl::StatusOr<GaugeFamily*> AddGauge(
      absl::string_view name, absl::string_view help,
      const std::vector<std::string>& label_names) override {
    return Add<GaugeFamilyImpl>(MetricType::kGauge, name, help, {},
                                label_names);
  }

  absl::StatusOr<HistogramFamily*> AddHistogram(
      absl::string_view name, absl::string_view help,
      const std::vector<double>& bucket_bounds,
      const std::vector<std::string>& label_names) override {
    absl::Status status = ValidateBucketBounds(bucket_bounds);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram \"", name, "\": ", status.message()));
    }
    return Add<HistogramFamilyImpl>(MetricType::kHistogram, name, help,
                                    bucket_bounds, label_names);
  }

  std::vector<FamilySnapshot> Collect() const override {
    absl::ReaderMutexLock lock(&mu_);
    std::vector<FamilySnapshot> snapshots;
    snapshots.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      snapshots.push_back(family->Collect());
    }
    return snapshots;
  }

 private:
  template <typename Impl>
  absl::StatusOr<Impl*> Add(MetricType type, absl::string_view name,
                            absl::string_view help,
                            const std::vector<double>& bucket_bounds,
                            const std::vector<std::string>& label_names) {
    absl::Status status = ValidateFamilyDefinition(
        type, name, help, label_names, options_.required_name_prefix);
    if (!status.ok()) return status;
    absl::MutexLock lock(&mu_);
    auto it = families_.find(name);
    if (it != families_.end()) {
      FamilyBase& existing = *it->second;
      if (existing.SameDefinition(type, help, label_names, bucket_bounds)) {
        // Same type implies same Impl: the downcast is exact.
        return static_cast<Impl*>(&existing);
      }
      return absl::AlreadyExistsError(absl::StrCat(
          "metric \"", name, "\" is already registered as a ",
          existing.Describe(), "; cannot register it again as a ",
          DescribeDefinition(type, help, label_names, bucket_bounds)));
    }
    auto family = std::make_unique<Impl>(
        type, std::string(name), std::string(help), label_names, bucket_bounds);
    Impl* raw = family.get();
    families_.emplace(std::string(name), std::move(family));
    // A family without labels has exactly one series; export it from the
    // start so dashboards see 0 rather than "no data".
    if (label_names.empty()) raw->WithLabels({});
    return raw;
  }

  const MetricsRegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_
      ABSL_GUARDED_BY(mu_);
};

// Rounds to 15 significant digits (a double holds 15-17), which removes the
// representation noise of repeated float arithmetic from bucket bounds.
double RoundBound(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.15g", value);
  return std::strtod(buffer, nullptr);
}

}  // namespace

std::unique_ptr<MetricsRegistry> NewMetricsRegistry(
    MetricsRegistryOptions options) {
  return std::make_unique<Registry>(std::move(options));
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
  for (int i = 0; i < count; ++i)
    bounds.push_back(RoundBound(start + i * width));
  return bounds;
}

}  // namespace fapo::metrics
