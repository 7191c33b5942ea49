// services/metrics: Prometheus metrics for every fapo process.
//
//   metric_types.h      metric kinds, label maps, snapshot structs (data)
//   metric_names.h      name/label rules (Prometheus + project conventions)
//   metrics_registry.h  Counter, Gauge, Histogram, families, the registry
//                       interface and our in-process implementation (this)
//   text_format.h       text exposition format 0.0.4 renderer
//   metrics_server.h    civetweb HTTP endpoint: GET /metrics, GET /healthz
//
// Usage:
//
//   MetricsRegistry& registry = DefaultMetricsRegistry();  // or your own
//   ASSIGN_OR_RETURN(CounterFamily* trajectories,
//                    registry.AddCounter("fapo_trajectories_total",
//                                        "Trajectories by state.", {"state"}));
//   Counter& scored = trajectories->WithLabels({{"state", "scored"}});
//   scored.Increment();                         // hot path: one atomic add
//
// The interfaces (Counter, Gauge, Histogram, MetricFamily, MetricsRegistry)
// are what callers program against; NewMetricsRegistry() returns our
// implementation, and a prometheus-cpp backed registry could replace it
// without touching call sites.
#ifndef FAPO_SERVICES_METRICS_METRICS_REGISTRY_H_
#define FAPO_SERVICES_METRICS_METRICS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/metrics/metric_types.h"

namespace fapo::metrics {

// A value that only goes up (events, seconds spent, bytes sent).
// Thread-safe; Increment is lock-free.
class Counter {
 public:
  virtual ~Counter() = default;
  // Adds `amount`. Negative and NaN amounts are ignored: a counter never
  // goes down (Prometheus would read a decrease as a process restart).
  virtual void Increment(double amount) = 0;
  void Increment() { Increment(1.0); }
  virtual double Value() const = 0;
};

// A value that goes up and down (queue depth, policy version, a ratio).
// Thread-safe; every update is lock-free.
class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void Set(double value) = 0;
  virtual void Increment(double amount) = 0;
  void Increment() { Increment(1.0); }
  virtual void Decrement(double amount) = 0;
  void Decrement() { Decrement(1.0); }
  virtual double Value() const = 0;
};

// Counts observations into buckets with fixed upper bounds (latencies,
// staleness). Thread-safe; Observe is lock-free.
class Histogram {
 public:
  virtual ~Histogram() = default;
  // Counts `value` in the first bucket whose upper bound is >= value (the
  // +Inf bucket if none) and adds it to the sum. NaN is ignored, since it
  // would poison the sum forever.
  virtual void Observe(double value) = 0;
  // Point-in-time copy. Bucket counts and count are mutually consistent
  // (count is the +Inf bucket); `sum` may lag observations that are in
  // flight on other threads.
  virtual HistogramSnapshot Snapshot() const = 0;
};

// All series of one metric name, one child per combination of label values.
// Thread-safe. Children are created on first use, start at zero, and live
// as long as the registry: hot paths should look a child up once and keep
// the reference.
template <typename Metric>
class MetricFamily {
 public:
  virtual ~MetricFamily() = default;

  virtual const std::string& name() const = 0;
  virtual const std::vector<std::string>& label_names() const = 0;

  // The child for `labels`, whose keys must be exactly label_names(), and
  // whose values must be valid UTF-8 (any other content is fine; the text
  // format escapes it). InvalidArgument otherwise. Never null; owned by the
  // family.
  virtual absl::StatusOr<Metric*> Get(const Labels& labels) = 0;

  // Like Get, for call sites that have no use for an error. A mistake in
  // `labels` is logged (ERROR, once per family) and yields a detached child
  // that is never exported, so a metrics bug cannot take a training run
  // down. For a family without labels, WithLabels({}) is its only series.
  virtual Metric& WithLabels(const Labels& labels) = 0;
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

// Hands out metric families and collects them for exposition. Thread-safe:
// registration, updates and Collect may run concurrently.
//
// Registration checks (InvalidArgument, message names the metric and rule):
// see ValidateFamilyDefinition in metric_names.h (name syntax, "fapo_"
// prefix, "_total" on counters, reserved suffixes, non-empty help, label
// syntax, no "le" on histograms) and ValidateBucketBounds (finite, strictly
// increasing).
//
// Registering a name again with exactly the same definition (type, help,
// label names in the same order, bucket bounds) returns the existing family,
// so two components may declare a shared metric independently. Any
// difference is AlreadyExists, naming both definitions.
//
// Families without labels get their single series at registration, so they
// are exported (as 0) before the first update.
class MetricsRegistry {
 public:
  virtual ~MetricsRegistry() = default;

  virtual absl::StatusOr<CounterFamily*> AddCounter(
      absl::string_view name, absl::string_view help,
      const std::vector<std::string>& label_names) = 0;

  virtual absl::StatusOr<GaugeFamily*> AddGauge(
      absl::string_view name, absl::string_view help,
      const std::vector<std::string>& label_names) = 0;

  // `bucket_bounds`: finite upper bounds, strictly increasing; the +Inf
  // bucket is added implicitly. See ExponentialBuckets / LinearBuckets.
  virtual absl::StatusOr<HistogramFamily*> AddHistogram(
      absl::string_view name, absl::string_view help,
      const std::vector<double>& bucket_bounds,
      const std::vector<std::string>& label_names) = 0;

  // Snapshot of every family, sorted by name, each family's metrics sorted
  // by label values. Families are owned by the registry; pointers returned
  // by Add* stay valid for its lifetime.
  virtual std::vector<FamilySnapshot> Collect() const = 0;
};

struct MetricsRegistryOptions {
  // Every metric name must start with this. Default "fapo_" (DESIGN.md);
  // "" accepts any name that Prometheus accepts.
  std::string required_name_prefix = "fapo_";
};

// Our in-process implementation of MetricsRegistry.
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
