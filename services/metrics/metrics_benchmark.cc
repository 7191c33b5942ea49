// Costs of the metrics hot paths and of one scrape's rendering.
//
//   ninja -C build metrics_benchmark && build/bench/metrics_benchmark
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "prometheus/text_serializer.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::metrics {
namespace {

template <typename T>
T Must(absl::StatusOr<T> value) {
  if (!value.ok()) std::abort();
  return *value;
}

void BM_CounterIncrement(benchmark::State& state) {
  static MetricsRegistry* const registry = NewMetricsRegistry().release();
  static Counter* const counter =
      &Must(registry->AddCounter("fapo_bench_total", "Bench.", {}))
           ->WithLabels({});
  for (auto _ : state) counter->Increment();
  benchmark::DoNotOptimize(counter->Value());
}
BENCHMARK(BM_CounterIncrement)->ThreadRange(1, 2);

void BM_CounterIncrementFractional(benchmark::State& state) {
  static MetricsRegistry* const registry = NewMetricsRegistry().release();
  static Counter* const counter =
      &Must(registry->AddCounter("fapo_bench_seconds_total", "Bench.", {}))
           ->WithLabels({});
  for (auto _ : state) counter->Increment(0.001);
  benchmark::DoNotOptimize(counter->Value());
}
BENCHMARK(BM_CounterIncrementFractional)->ThreadRange(1, 2);

void BM_GaugeSet(benchmark::State& state) {
  std::unique_ptr<MetricsRegistry> registry = NewMetricsRegistry();
  Gauge& gauge =
      Must(registry->AddGauge("fapo_bench", "Bench.", {}))->WithLabels({});
  double value = 0;
  for (auto _ : state) gauge.Set(value += 1);
}
BENCHMARK(BM_GaugeSet);

// Looking a child up by labels each time (what hot paths should avoid by
// keeping the reference), with 10 existing children.
void BM_LabelledChildLookup(benchmark::State& state) {
  std::unique_ptr<MetricsRegistry> registry = NewMetricsRegistry();
  CounterFamily* family = Must(
      registry->AddCounter("fapo_bench_total", "Bench.", {"outcome", "genrm"}));
  for (int i = 0; i < 10; ++i) {
    family->WithLabels({{"outcome", absl::StrCat("o", i)}, {"genrm", "rule"}});
  }
  const Labels labels = {{"outcome", "o5"}, {"genrm", "rule"}};
  for (auto _ : state) family->WithLabels(labels).Increment();
}
BENCHMARK(BM_LabelledChildLookup);

void BM_HistogramObserve(benchmark::State& state) {
  static MetricsRegistry* const registry = NewMetricsRegistry().release();
  static Histogram* const histogram =
      &Must(registry->AddHistogram("fapo_bench_seconds", "Bench.",
                                   ExponentialBuckets(0.001, 2, 16), {}))
           ->WithLabels({});
  double value = 0;
  for (auto _ : state) {
    histogram->Observe(value);
    value = value > 60 ? 0 : value + 0.37;
  }
}
BENCHMARK(BM_HistogramObserve)->ThreadRange(1, 2);

// A registry of ~100 series: 40 counter series, 40 gauge series and 2
// histograms with 9 buckets (12 series each), like a busy service.
std::unique_ptr<MetricsRegistry> HundredSeriesRegistry() {
  std::unique_ptr<MetricsRegistry> registry = NewMetricsRegistry();
  for (int f = 0; f < 4; ++f) {
    CounterFamily* counters =
        Must(registry->AddCounter(absl::StrCat("fapo_bench_", f, "_total"),
                                  "Bench counters.", {"state"}));
    GaugeFamily* gauges = Must(registry->AddGauge(
        absl::StrCat("fapo_bench_gauge_", f), "Bench gauges.", {"worker"}));
    for (int c = 0; c < 10; ++c) {
      counters->WithLabels({{"state", absl::StrCat("state", c)}})
          .Increment(c * 1000 + 7);
      gauges->WithLabels({{"worker", absl::StrCat("worker-", c)}})
          .Set(c * 0.37);
    }
  }
  for (int h = 0; h < 2; ++h) {
    HistogramFamily* histograms = Must(registry->AddHistogram(
        absl::StrCat("fapo_bench_latency_", h, "_seconds"), "Bench.",
        ExponentialBuckets(0.005, 3, 9), {}));
    for (int i = 0; i < 1000; ++i) {
      histograms->WithLabels({}).Observe(i * 0.013);
    }
  }
  return registry;
}

void BM_RenderHundredSeries(benchmark::State& state) {
  std::unique_ptr<MetricsRegistry> registry = HundredSeriesRegistry();
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text =
        prometheus::TextSerializer().Serialize(registry->Collect());
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["exposition_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderHundredSeries);

}  // namespace
}  // namespace fapo::metrics

BENCHMARK_MAIN();
