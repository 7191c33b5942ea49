// services/metrics: Prometheus metrics for every fapo process, on
// prometheus-cpp (Debian's prometheus-cpp-dev: core for the metrics and
// the text format, pull for the /metrics endpoint).
//
//   metric_names.h      the project's naming rules on top of Prometheus's
//   metrics_registry.h  MetricsRegistry (this): families registered under
//                       those rules, over a prometheus::Registry
//   metrics_server.h    the /metrics endpoint (prometheus::Exposer)
//   metrics_testing.h   reading values back in tests
//
// Usage:
//
//   MetricsRegistry& registry = DefaultMetricsRegistry();  // or your own
//   ASSIGN_OR_RETURN(CounterFamily* trajectories,
//                    registry.AddCounter("fapo_trajectories_total",
//                                        "Trajectories by state.", {"state"}));
//   metrics::Counter& scored = trajectories->WithLabels({{"state", "scored"}});
//   scored.Increment();                         // hot path: one atomic add
//
// The metrics themselves are prometheus-cpp's (Counter, Gauge, Histogram:
// thread-safe; a counter ignores negative increments). What this layer adds
// to prometheus::Registry: the project's naming rules checked at
// registration with a Status instead of an exception; each family's label
// names declared once and checked on every child (prometheus-cpp would
// accept any label set); the same definition registered twice returns the
// one family, a different one is an error; and label-less families are
// exported (as 0) from their registration.
#ifndef FAPO_SERVICES_METRICS_METRICS_REGISTRY_H_
#define FAPO_SERVICES_METRICS_METRICS_REGISTRY_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/metrics/metric_names.h"

namespace fapo::metrics {

using Counter = prometheus::Counter;
using Gauge = prometheus::Gauge;
using Histogram = prometheus::Histogram;
// Label name -> label value, e.g. {{"state", "scored"}}.
using Labels = std::map<std::string, std::string>;

// All series of one metric name, one child per combination of label values.
// Thread-safe. Children are created on first use, start at zero, and live
// as long as the registry: hot paths should look a child up once and keep
// the reference.
template <typename Metric>
class MetricFamily {
 public:
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // The child for `labels`, whose keys must be exactly label_names() and
  // whose values must be valid UTF-8 (any other content is fine; the text
  // format escapes it). InvalidArgument otherwise. Never null; owned by the
  // family.
  absl::StatusOr<Metric*> Get(const Labels& labels);

  // Like Get, for call sites that have no use for an error. A mistake in
  // `labels` is logged (ERROR, once per family) and yields a detached child
  // that is never exported, so a metrics bug cannot take a training run
  // down. For a family without labels, WithLabels({}) is its only series.
  Metric& WithLabels(const Labels& labels);

 private:
  friend class MetricsRegistry;
  MetricFamily(prometheus::Family<Metric>* family, std::string name,
               std::vector<std::string> label_names,
               std::vector<double> bucket_bounds);
  Metric& Add(const Labels& labels);

  prometheus::Family<Metric>* const family_;  // owned by the registry
  const std::string name_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bucket_bounds_;  // histograms only
  std::unique_ptr<Metric> detached_;
  std::atomic<bool> logged_label_error_{false};
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

struct MetricsRegistryOptions {
  // Every metric name must start with this. Default "fapo_" (the project's names);
  // "" accepts any name that Prometheus accepts.
  std::string required_name_prefix = "fapo_";
};

// Hands out metric families and collects them for exposition. Thread-safe:
// registration, updates and Collect may run concurrently.
//
// Registration checks (InvalidArgument, message names the metric and rule):
// ValidateFamilyDefinition in metric_names.h (name syntax, the required
// prefix, "_total" on counters, reserved suffixes, help text, label syntax,
// no "le" on histograms) and ValidateBucketBounds (finite, strictly
// increasing).
//
// Registering a name again with exactly the same definition (type, help,
// label names in the same order, bucket bounds) returns the existing family,
// so two components may declare a shared metric independently. Any
// difference is AlreadyExists, naming both definitions.
class MetricsRegistry {
 public:
  explicit MetricsRegistry(MetricsRegistryOptions options = {});
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  absl::StatusOr<CounterFamily*> AddCounter(
      absl::string_view name, absl::string_view help,
      const std::vector<std::string>& label_names);

  absl::StatusOr<GaugeFamily*> AddGauge(
      absl::string_view name, absl::string_view help,
      const std::vector<std::string>& label_names);

  // `bucket_bounds`: finite upper bounds, strictly increasing; the +Inf
  // bucket is added implicitly. See ExponentialBuckets / LinearBuckets.
  absl::StatusOr<HistogramFamily*> AddHistogram(
      absl::string_view name, absl::string_view help,
      const std::vector<double>& bucket_bounds,
      const std::vector<std::string>& label_names);

  // Every family, in registration order, as prometheus-cpp collects it
  // (what /metrics serializes; tests read values from it through
  // metrics_testing.h).
  std::vector<prometheus::MetricFamily> Collect() const;

  // The prometheus-cpp registry behind this one, for an Exposer.
  std::shared_ptr<prometheus::Registry> prometheus_registry() const {
    return registry_;
  }

 private:
  struct Definition {
    MetricType type;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> bucket_bounds;
    void* family;  // the MetricFamily<T> of `type`
  };

  template <typename Metric>
  absl::StatusOr<MetricFamily<Metric>*> Add(
      MetricType type, absl::string_view name, absl::string_view help,
      const std::vector<double>& bucket_bounds,
      const std::vector<std::string>& label_names);

  const MetricsRegistryOptions options_;
  const std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex mu_;
  std::map<std::string, Definition, std::less<>> definitions_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<CounterFamily>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<GaugeFamily>> gauges_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<HistogramFamily>> histograms_
      ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<MetricsRegistry> NewMetricsRegistry(
    MetricsRegistryOptions options = {});

// The process-wide registry that services export on /metrics. Created on
// first use, never destroyed. Tests should prefer their own registry.
MetricsRegistry& DefaultMetricsRegistry();

// `count` bounds start, start*factor, start*factor^2, ...; empty when
// count <= 0. Bounds are rounded to 15 significant digits so that "le"
// labels read "0.3", not "0.30000000000000004". Parameters that do not give
// strictly increasing bounds (start <= 0, factor <= 1) are not fixed up
// here: AddHistogram rejects the result.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// `count` bounds start, start+width, start+2*width, ...; same rounding and
// error handling as ExponentialBuckets (width <= 0 is rejected later).
std::vector<double> LinearBuckets(double start, double width, int count);

}  // namespace fapo::metrics

#endif  // FAPO_SERVICES_METRICS_METRICS_REGISTRY_H_
