#include "services/metrics/metrics_registry.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "services/logging/log.h"
#include "services/metrics/metrics_testing.h"
#include "services/status/status_matchers.h"

namespace fapo::metrics {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr double kInf = std::numeric_limits<double>::infinity();

// What /metrics serves for `registry` (prometheus-cpp's serializer).
std::string Exposition(const MetricsRegistry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

class MetricsRegistryTest : public ::testing::Test {
 protected:
  std::unique_ptr<MetricsRegistry> registry_ = NewMetricsRegistry();
};

TEST_F(MetricsRegistryTest, FamiliesAreRegisteredWithPrometheusCpp) {
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * events,
      registry_->AddCounter("fapo_events_total", "Events.", {"kind"}));
  ASSERT_OK_AND_ASSIGN(GaugeFamily * depth,
                       registry_->AddGauge("fapo_queue_depth", "Depth.", {}));
  ASSERT_OK_AND_ASSIGN(
      HistogramFamily * latency,
      registry_->AddHistogram("fapo_latency_seconds", "Latency.",
                              {0.1, 0.5, 1, 5}, {}));
  events->WithLabels({{"kind", "a"}}).Increment(2);
  events->WithLabels({{"kind", "a"}}).Increment(-5);  // counters never go down
  depth->WithLabels({}).Set(-7.5);
  // 0.5 lands in le="0.5": bounds are inclusive upper bounds.
  for (double value : {0.05, 0.1, 0.3, 0.5, 2.0, 10.0, -1.0}) {
    latency->WithLabels({}).Observe(value);
  }
  EXPECT_EQ(testing::Value(*registry_, "fapo_events_total", {{"kind", "a"}}),
            2);
  EXPECT_EQ(testing::Value(*registry_, "fapo_queue_depth"), -7.5);
  EXPECT_EQ(testing::HistogramCount(*registry_, "fapo_latency_seconds"), 7u);
  const std::vector<prometheus::MetricFamily> families = registry_->Collect();
  const prometheus::MetricFamily* histogram =
      testing::FindFamily(families, "fapo_latency_seconds");
  ASSERT_NE(histogram, nullptr);
  std::vector<uint64_t> cumulative;
  for (const auto& bucket : histogram->metric[0].histogram.bucket) {
    cumulative.push_back(bucket.cumulative_count);
  }
  EXPECT_THAT(cumulative, ElementsAre(3, 5, 5, 6, 7));
  EXPECT_EQ(testing::Value(*registry_, "fapo_events_total", {{"kind", "b"}}),
            std::nullopt);
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
  EXPECT_THAT(testing::SeriesLabels(*registry_, "fapo_worker_up"), IsEmpty());
  EXPECT_THAT(Exposition(*registry_), Not(HasSubstr("fapo_worker_up{")));
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
  const prometheus::ClientMetric::Histogram snapshot =
      histograms->WithLabels({}).Collect().histogram;
  EXPECT_EQ(snapshot.sample_count,
            static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(snapshot.bucket.back().cumulative_count, snapshot.sample_count);
  // kPerThread = 20000 = 3 * 6666 + 2: values 0 and 1 occur 6667 times.
  EXPECT_EQ(snapshot.bucket[0].cumulative_count, kThreads * 6667u * 2);
  EXPECT_EQ(snapshot.sample_sum, kThreads * (6667.0 * 1 + 6666.0 * 2));
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
    const std::string text = Exposition(*registry_);
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
  EXPECT_THAT(registry_->AddGauge("fapo_g", "Two\nlines.", {}),
              StatusIs(kInvalid, HasSubstr("newline")));
  EXPECT_THAT(registry_->AddGauge("fapo_g", "A \\ backslash.", {}),
              StatusIs(kInvalid, HasSubstr("backslash")));
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
  first->WithLabels({{"a", "1"}}).Increment();
  EXPECT_EQ(second->WithLabels({{"a", "1"}}).Value(), 1);
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
                                               "GenRM latency per request.",
                                               {0.5, 1, 2.5}, {"genrm"}));
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * unused,
      registry_->AddGauge("fapo_unused", "No series yet.", {"worker"}));
  (void)unused;
  trajectories->WithLabels({{"state", "a \"quoted\"\\path\n"}}).Increment();
  depth->WithLabels({}).Set(1e6);
  Histogram& rule = latency->WithLabels({{"genrm", "rule"}});
  for (double value : {0.25, 0.5, 0.75, 3.0}) rule.Observe(value);

  // Families in registration order; a family without series is left out.
  EXPECT_EQ(
      Exposition(*registry_),
      "# HELP fapo_trajectories_total Trajectories by state.\n"
      "# TYPE fapo_trajectories_total counter\n"
      "fapo_trajectories_total{state=\"a \\\"quoted\\\"\\\\path\\n\"} 1\n"
      "# HELP fapo_queue_depth Trajectories waiting.\n"
      "# TYPE fapo_queue_depth gauge\n"
      "fapo_queue_depth 1000000\n"
      "# HELP fapo_genrm_latency_seconds GenRM latency per request.\n"
      "# TYPE fapo_genrm_latency_seconds histogram\n"
      "fapo_genrm_latency_seconds_count{genrm=\"rule\"} 4\n"
      "fapo_genrm_latency_seconds_sum{genrm=\"rule\"} 4.5\n"
      "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"0.5\"} 2\n"
      "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"1\"} 3\n"
      "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"2.5\"} 3\n"
      "fapo_genrm_latency_seconds_bucket{genrm=\"rule\",le=\"+Inf\"} 4\n");
}

TEST_F(MetricsRegistryTest, UnlabelledFamiliesAreExportedAtZeroImmediately) {
  ASSERT_THAT(registry_->AddCounter("fapo_restarts_total", "Restarts.", {}),
              IsOk());
  ASSERT_THAT(registry_->AddHistogram("fapo_wait_seconds", "Wait.", {1}, {}),
              IsOk());
  EXPECT_EQ(Exposition(*registry_),
            "# HELP fapo_restarts_total Restarts.\n"
            "# TYPE fapo_restarts_total counter\n"
            "fapo_restarts_total 0\n"
            "# HELP fapo_wait_seconds Wait.\n"
            "# TYPE fapo_wait_seconds histogram\n"
            "fapo_wait_seconds_count 0\n"
            "fapo_wait_seconds_sum 0\n"
            "fapo_wait_seconds_bucket{le=\"1\"} 0\n"
            "fapo_wait_seconds_bucket{le=\"+Inf\"} 0\n");
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
  EXPECT_EQ(testing::Value(DefaultMetricsRegistry(),
                           "fapo_default_registry_test_total"),
            1);
}

}  // namespace
}  // namespace fapo::metrics
