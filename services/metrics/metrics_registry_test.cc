#include "services/metrics/metrics_registry.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/logging/log.h"
#include "services/metrics/text_format.h"
#include "services/status/status_matchers.h"

namespace fapo::metrics {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr double kInf = std::numeric_limits<double>::infinity();

class MetricsRegistryTest : public ::testing::Test {
 protected:
  std::unique_ptr<MetricsRegistry> registry_ = NewMetricsRegistry();
};

TEST_F(MetricsRegistryTest, CounterAddsNonNegativeAmounts) {
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * family,
      registry_->AddCounter("fapo_events_total", "Events.", {}));
  Counter& counter = family->WithLabels({});
  EXPECT_EQ(counter.Value(), 0);
  counter.Increment();
  counter.Increment(2);
  counter.Increment(0.25);
  counter.Increment(0);
  EXPECT_EQ(counter.Value(), 3.25);
  counter.Increment(-5);            // ignored: counters never go down
  counter.Increment(std::nan(""));  // ignored
  EXPECT_EQ(counter.Value(), 3.25);
  counter.Increment(1e10);  // above the integer fast path
  EXPECT_EQ(counter.Value(), 1e10 + 3.25);
}

TEST_F(MetricsRegistryTest, GaugeSetsIncrementsAndDecrements) {
  ASSERT_OK_AND_ASSIGN(GaugeFamily * family,
                       registry_->AddGauge("fapo_queue_depth", "Depth.", {}));
  Gauge& gauge = family->WithLabels({});
  EXPECT_EQ(gauge.Value(), 0);
  gauge.Set(10);
  gauge.Increment();
  gauge.Increment(2.5);
  gauge.Decrement();
  gauge.Decrement(20);
  EXPECT_EQ(gauge.Value(), -7.5);  // 10 + 1 + 2.5 - 1 - 20
  gauge.Set(-kInf);
  EXPECT_EQ(gauge.Value(), -kInf);
}

TEST_F(MetricsRegistryTest, HistogramCountsCumulativelyWithInclusiveBounds) {
  ASSERT_OK_AND_ASSIGN(
      HistogramFamily * family,
      registry_->AddHistogram("fapo_latency_seconds", "Latency.",
                              {0.1, 0.5, 1, 5}, {}));
  Histogram& histogram = family->WithLabels({});
  // 0.5 lands in le="0.5": bounds are inclusive upper bounds.
  for (double value : {0.05, 0.1, 0.3, 0.5, 2.0, 10.0, -1.0}) {
    histogram.Observe(value);
  }
  histogram.Observe(std::nan(""));  // ignored
  const HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_THAT(snapshot.bucket_bounds, ElementsAre(0.1, 0.5, 1, 5));
  EXPECT_THAT(snapshot.cumulative_counts, ElementsAre(3, 5, 5, 6, 7));
  EXPECT_EQ(snapshot.count, 7u);
  EXPECT_DOUBLE_EQ(snapshot.sum, 0.05 + 0.1 + 0.3 + 0.5 + 2 + 10 - 1);
  histogram.Observe(kInf);
  EXPECT_THAT(histogram.Snapshot().cumulative_counts,
              ElementsAre(3, 5, 5, 6, 8));
  EXPECT_EQ(histogram.Snapshot().sum, kInf);
}

TEST_F(MetricsRegistryTest, HistogramWithNoBoundsHasOnlyTheInfBucket) {
  ASSERT_OK_AND_ASSIGN(HistogramFamily * family,
                       registry_->AddHistogram("fapo_x_bytes", "X.", {}, {}));
  family->WithLabels({}).Observe(7);
  EXPECT_THAT(family->WithLabels({}).Snapshot().cumulative_counts,
              ElementsAre(1));
}

TEST_F(MetricsRegistryTest, LabelChildrenAreIndependentAndStable) {
  ASSERT_OK_AND_ASSIGN(CounterFamily * family,
                       registry_->AddCounter("fapo_verdicts_total", "Verdicts.",
                                             {"outcome", "genrm"}));
  Counter& flawed = family->WithLabels({{"outcome", "flawed"}, {"genrm", "a"}});
  Counter& sound = family->WithLabels({{"outcome", "sound"}, {"genrm", "a"}});
  EXPECT_NE(&flawed, &sound);
  // Same labels, in any map order, give the same child.
  EXPECT_EQ(&family->WithLabels({{"genrm", "a"}, {"outcome", "flawed"}}),
            &flawed);
  ASSERT_OK_AND_ASSIGN(Counter * via_get,
                       family->Get({{"outcome", "flawed"}, {"genrm", "a"}}));
  EXPECT_EQ(via_get, &flawed);
  flawed.Increment(2);
  sound.Increment();
  // Creating many more children does not move existing ones.
  for (int i = 0; i < 1000; ++i) {
    family->WithLabels({{"outcome", std::to_string(i)}, {"genrm", "b"}});
  }
  EXPECT_EQ(&family->WithLabels({{"outcome", "flawed"}, {"genrm", "a"}}),
            &flawed);
  EXPECT_EQ(flawed.Value(), 2);
  EXPECT_EQ(sound.Value(), 1);
  EXPECT_EQ(family->name(), "fapo_verdicts_total");
  EXPECT_THAT(family->label_names(), ElementsAre("outcome", "genrm"));
}

TEST_F(MetricsRegistryTest, GetRejectsWrongLabelsAndInvalidUtf8) {
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * family,
      registry_->AddGauge("fapo_worker_up", "Liveness.", {"worker"}));
  EXPECT_THAT(family->Get({}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"fapo_worker_up\""),
                             HasSubstr("[worker]"), HasSubstr("given []"))));
  EXPECT_THAT(
      family->Get({{"wrker", "w1"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("given [wrker]")));
  EXPECT_THAT(family->Get({{"worker", "w1"}, {"extra", "x"}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(family->Get({{"worker", "bad\xff"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not valid UTF-8")));
  // Anything valid goes, including characters the text format escapes.
  EXPECT_THAT(family->Get({{"worker", "q\"uo\\te\nnl caf\xc3\xa9"}}), IsOk());
}

TEST_F(MetricsRegistryTest, WithLabelsMistakeLogsOnceAndUpdatesNothingVisible) {
  std::vector<std::string> lines;
  logging::SetSink([&](absl::string_view line) { lines.emplace_back(line); });
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * family,
      registry_->AddGauge("fapo_worker_up", "Liveness.", {"worker"}));
  Gauge& detached = family->WithLabels({{"typo", "w1"}});
  detached.Set(5);
  family->WithLabels({{"typo", "w2"}}).Set(6);
  logging::SetSink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("fapo_worker_up"));
  EXPECT_THAT(lines[0], HasSubstr("detached"));
  // The detached series is not exported.
  EXPECT_EQ(RenderTextFormat(registry_->Collect()), "");
}

TEST_F(MetricsRegistryTest, ConcurrentUpdatesGiveExactTotals) {
  ASSERT_OK_AND_ASSIGN(CounterFamily * counters,
                       registry_->AddCounter("fapo_ops_total", "Ops.", {"k"}));
  ASSERT_OK_AND_ASSIGN(GaugeFamily * gauges,
                       registry_->AddGauge("fapo_level", "Level.", {}));
  ASSERT_OK_AND_ASSIGN(
      HistogramFamily * histograms,
      registry_->AddHistogram("fapo_obs_seconds", "Obs.", {1, 2}, {}));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread also looks the child up itself, racing on creation.
      Counter& shared = counters->WithLabels({{"k", "shared"}});
      Counter& own = counters->WithLabels({{"k", std::to_string(t)}});
      Gauge& level = gauges->WithLabels({});
      Histogram& histogram = histograms->WithLabels({});
      for (int i = 0; i < kPerThread; ++i) {
        shared.Increment();
        shared.Increment(0.5);  // the CAS path
        own.Increment();
        level.Increment(t % 2 == 0 ? 1 : -1);
        histogram.Observe(i % 3);  // 0, 1, 2: buckets le=1 twice, le=2 once
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counters->WithLabels({{"k", "shared"}}).Value(),
            1.5 * kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counters->WithLabels({{"k", std::to_string(t)}}).Value(),
              kPerThread);
  }
  EXPECT_EQ(gauges->WithLabels({}).Value(), 0);
  const HistogramSnapshot snapshot = histograms->WithLabels({}).Snapshot();
  EXPECT_EQ(snapshot.count, static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(snapshot.cumulative_counts.back(), snapshot.count);
  // kPerThread = 20000 = 3 * 6666 + 2: values 0 and 1 occur 6667 times.
  EXPECT_EQ(snapshot.cumulative_counts[0], kThreads * 6667u * 2);
  EXPECT_EQ(snapshot.sum, kThreads * (6667.0 * 1 + 6666.0 * 2));
}

TEST_F(MetricsRegistryTest, CollectWhileUpdatingIsSafe) {
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * family,
      registry_->AddCounter("fapo_busy_total", "Busy.", {"worker"}));
  family->WithLabels({{"worker", "0"}});
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; !done.load(); ++i) {
      family->WithLabels({{"worker", std::to_string(i % 50)}}).Increment();
    }
  });
  for (int i = 0; i < 200; ++i) {
    const std::string text = RenderTextFormat(registry_->Collect());
    EXPECT_THAT(text, HasSubstr("# TYPE fapo_busy_total counter"));
  }
  done = true;
  writer.join();
}

TEST_F(MetricsRegistryTest, RegistrationValidatesNamesAndLabels) {
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(registry_->AddCounter("fapo_events", "Events.", {}),
              StatusIs(kInvalid, HasSubstr("_total")));
  EXPECT_THAT(registry_->AddGauge("queue_depth", "Depth.", {}),
              StatusIs(kInvalid, HasSubstr("fapo_")));
  EXPECT_THAT(registry_->AddGauge("fapo_queue-depth", "Depth.", {}),
              StatusIs(kInvalid, HasSubstr("'-'")));
  EXPECT_THAT(registry_->AddGauge("fapo_q", "Depth.", {"1st"}),
              StatusIs(kInvalid, HasSubstr("\"1st\"")));
  EXPECT_THAT(registry_->AddGauge("fapo_q", "Depth.", {"__x"}),
              StatusIs(kInvalid, HasSubstr("reserves")));
  EXPECT_THAT(registry_->AddHistogram("fapo_h_seconds", "H.", {1}, {"le"}),
              StatusIs(kInvalid, HasSubstr("\"le\"")));
  EXPECT_THAT(registry_->AddHistogram("fapo_h_seconds", "H.", {2, 1}, {}),
              StatusIs(kInvalid, AllOf(HasSubstr("\"fapo_h_seconds\""),
                                       HasSubstr("strictly increasing"))));
  EXPECT_THAT(registry_->AddHistogram("fapo_h_seconds", "H.", {1, kInf}, {}),
              StatusIs(kInvalid, HasSubstr("finite")));
  // Nothing was registered by the failed calls.
  EXPECT_THAT(registry_->Collect(), IsEmpty());
}

TEST_F(MetricsRegistryTest, RequiredPrefixIsConfigurable) {
  MetricsRegistryOptions options;
  options.required_name_prefix = "";
  std::unique_ptr<MetricsRegistry> registry = NewMetricsRegistry(options);
  EXPECT_THAT(registry->AddGauge("process_open_fds", "FDs.", {}), IsOk());
  options.required_name_prefix = "rollout_";
  registry = NewMetricsRegistry(options);
  EXPECT_THAT(
      registry->AddGauge("fapo_x", "X.", {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"rollout_\"")));
}

TEST_F(MetricsRegistryTest, SameDefinitionTwiceReturnsTheExistingFamily) {
  ASSERT_OK_AND_ASSIGN(CounterFamily * first,
                       registry_->AddCounter("fapo_x_total", "X.", {"a"}));
  ASSERT_OK_AND_ASSIGN(CounterFamily * second,
                       registry_->AddCounter("fapo_x_total", "X.", {"a"}));
  EXPECT_EQ(first, second);
  ASSERT_OK_AND_ASSIGN(HistogramFamily * h1,
                       registry_->AddHistogram("fapo_h", "H.", {1, 2}, {}));
  ASSERT_OK_AND_ASSIGN(HistogramFamily * h2,
                       registry_->AddHistogram("fapo_h", "H.", {1, 2}, {}));
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(registry_->Collect().size(), 2u);
}

TEST_F(MetricsRegistryTest, ConflictingDefinitionIsAlreadyExists) {
  constexpr auto kExists = absl::StatusCode::kAlreadyExists;
  ASSERT_THAT(registry_->AddGauge("fapo_x_total", "X.", {"a"}), IsOk());
  EXPECT_THAT(registry_->AddCounter("fapo_x_total", "X.", {"a"}),
              StatusIs(kExists, AllOf(HasSubstr("\"fapo_x_total\""),
                                      HasSubstr("registered as a gauge"),
                                      HasSubstr("again as a counter"))));
  EXPECT_THAT(registry_->AddGauge("fapo_x_total", "Other help.", {"a"}),
              StatusIs(kExists, HasSubstr("Other help.")));
  EXPECT_THAT(registry_->AddGauge("fapo_x_total", "X.", {"b"}),
              StatusIs(kExists, HasSubstr("labels [b]")));
  EXPECT_THAT(registry_->AddGauge("fapo_x_total", "X.", {}), StatusIs(kExists));
  ASSERT_THAT(registry_->AddHistogram("fapo_h", "H.", {1, 2}, {}), IsOk());
  EXPECT_THAT(registry_->AddHistogram("fapo_h", "H.", {1, 3}, {}),
              StatusIs(kExists, HasSubstr("buckets [1, 3]")));
}

TEST_F(MetricsRegistryTest, ExpositionOfASmallRegistryIsExact) {
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * trajectories,
      registry_->AddCounter("fapo_trajectories_total", "Trajectories by state.",
                            {"state"}));
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * depth,
      registry_->AddGauge("fapo_queue_depth", "Trajectories waiting.", {}));
  ASSERT_OK_AND_ASSIGN(HistogramFamily * latency,
                       registry_->AddHistogram("fapo_genrm_latency_seconds",
                                               "GenRM latency.\nPer request.",
                                               {0.5, 1, 2.5}, {"genrm"}));
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * unused,
      registry_->AddGauge("fapo_unused", "No series yet.", {"worker"}));
  (void)unused;
  // Children are created out of order; exposition sorts by label values.
  trajectories->WithLabels({{"state", "scored"}}).Increment(12);
  trajectories->WithLabels({{"state", "dropped"}}).Increment(3);
  trajectories->WithLabels({{"state", "a \"quoted\"\\path\n"}}).Increment();
  depth->WithLabels({}).Set(1e6);
  Histogram& rule = latency->WithLabels({{"genrm", "rule"}});
  for (double value : {0.25, 0.5, 0.75, 3.0}) rule.Observe(value);

  EXPECT_EQ(RenderTextFormat(registry_->Collect()),
            "# HELP fapo_genrm_latency_seconds GenRM latency.\\nPer request.\n"
            "# TYPE fapo_genrm_latency_seconds histogram\n"
            "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"0.5\"} 2\n"
            "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"1\"} 3\n"
            "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"2.5\"} 3\n"
            "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"+Inf\"} 4\n"
            "fapo_genrm_latency_seconds_sum{genrm=\"rule\"} 4.5\n"
            "fapo_genrm_latency_seconds_count{genrm=\"rule\"} 4\n"
            "# HELP fapo_queue_depth Trajectories waiting.\n"
            "# TYPE fapo_queue_depth gauge\n"
            "fapo_queue_depth 1000000\n"
            "# HELP fapo_trajectories_total Trajectories by state.\n"
            "# TYPE fapo_trajectories_total counter\n"
            "fapo_trajectories_total{state=\"a \\\"quoted\\\"\\\\path\\n\"} 1\n"
            "fapo_trajectories_total{state=\"dropped\"} 3\n"
            "fapo_trajectories_total{state=\"scored\"} 12\n");
}

TEST_F(MetricsRegistryTest, UnlabelledFamiliesAreExportedAtZeroImmediately) {
  ASSERT_THAT(registry_->AddCounter("fapo_restarts_total", "Restarts.", {}),
              IsOk());
  ASSERT_THAT(registry_->AddHistogram("fapo_wait_seconds", "Wait.", {1}, {}),
              IsOk());
  EXPECT_EQ(RenderTextFormat(registry_->Collect()),
            "# HELP fapo_restarts_total Restarts.\n"
            "# TYPE fapo_restarts_total counter\n"
            "fapo_restarts_total 0\n"
            "# HELP fapo_wait_seconds Wait.\n"
            "# TYPE fapo_wait_seconds histogram\n"
            "fapo_wait_seconds_bucket{le=\"1\"} 0\n"
            "fapo_wait_seconds_bucket{le=\"+Inf\"} 0\n"
            "fapo_wait_seconds_sum 0\n"
            "fapo_wait_seconds_count 0\n");
}

TEST(BucketHelpersTest, ExponentialBuckets) {
  EXPECT_THAT(ExponentialBuckets(0.001, 10, 4),
              ElementsAre(0.001, 0.01, 0.1, 1));
  EXPECT_THAT(ExponentialBuckets(1, 2, 5), ElementsAre(1, 2, 4, 8, 16));
  EXPECT_THAT(ExponentialBuckets(1, 2, 0), IsEmpty());
}

TEST(BucketHelpersTest, LinearBucketsHaveNoRepresentationNoise) {
  EXPECT_THAT(LinearBuckets(0.1, 0.1, 5), ElementsAre(0.1, 0.2, 0.3, 0.4, 0.5));
  EXPECT_THAT(LinearBuckets(-1, 1, 3), ElementsAre(-1, 0, 1));
  EXPECT_THAT(LinearBuckets(0, 1, -1), IsEmpty());
}

TEST(BucketHelpersTest, BadParametersAreRejectedAtRegistration) {
  std::unique_ptr<MetricsRegistry> registry = NewMetricsRegistry();
  EXPECT_THAT(
      registry->AddHistogram("fapo_a", "A.", LinearBuckets(1, 0, 3), {}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      registry->AddHistogram("fapo_b", "B.", ExponentialBuckets(1, 1, 3), {}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      registry->AddHistogram("fapo_c", "C.", ExponentialBuckets(0, 2, 3), {}),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DefaultMetricsRegistryTest, IsOneProcessWideInstance) {
  MetricsRegistry& registry = DefaultMetricsRegistry();
  EXPECT_EQ(&registry, &DefaultMetricsRegistry());
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * family,
      registry.AddCounter("fapo_default_registry_test_total", "Test.", {}));
  family->WithLabels({}).Increment();
  EXPECT_THAT(RenderTextFormat(DefaultMetricsRegistry().Collect()),
              HasSubstr("fapo_default_registry_test_total 1\n"));
}

}  // namespace
}  // namespace fapo::metrics
