// Checks the exposition of our registry (prometheus-cpp's text serializer
// over families registered under our naming rules) with Prometheus's own
// linter, `promtool check metrics`, which parses the text with Prometheus's
// parser and applies the naming lints (counter suffixes, help text, units,
// reserved suffixes).
//
// promtool is part of Debian's `prometheus` package, which the install script
// installs; a missing promtool fails the test rather than skipping it, so the
// check cannot silently stop running.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "services/metrics/metrics_registry.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct PromtoolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `promtool check metrics` with `exposition` on its stdin.
PromtoolResult CheckMetrics(const std::string& promtool,
                            const std::string& exposition) {
  PromtoolResult result;
  absl::StatusOr<fapo::testing::CommandResult> run = fapo::testing::RunCommand(
      {promtool, "check", "metrics"}, absl::Seconds(60), exposition);
  if (!run.ok()) {
    result.output = std::string(run.status().message());
    return result;
  }
  result.exit_code = run->exit_code;
  result.output = run->stdout_text + run->stderr_text;
  return result;
}

class PromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    promtool_ = fapo::testing::FindOnPath("promtool");
    const char* path = std::getenv("PATH");
    ASSERT_FALSE(promtool_.empty())
        << "promtool is not on PATH (" << (path != nullptr ? path : "unset")
        << "). It comes with Debian's `prometheus` package, which the "
           "install script installs: apt-get install prometheus";
  }
  std::string promtool_;
};

TEST_F(PromtoolTest, ExpositionOfEveryMetricKindHasNoProblems) {
  std::unique_ptr<MetricsRegistry> registry = NewMetricsRegistry();
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * verdicts,
      registry->AddCounter("fapo_genrm_verdicts_total",
                           "GenRM verdicts by outcome.", {"outcome"}));
  ASSERT_OK_AND_ASSIGN(
      CounterFamily * tokens,
      registry->AddCounter("fapo_tokens_generated_total", "Tokens.", {}));
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * depth,
      registry->AddGauge("fapo_queue_depth",
                         "Trajectories waiting (\"queued\").", {}));
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * up,
      registry->AddGauge("fapo_worker_up", "Worker liveness.", {"worker"}));
  ASSERT_OK_AND_ASSIGN(
      GaugeFamily * ratio,
      registry->AddGauge("fapo_flawed_positive_ratio", "Ratio.", {}));
  ASSERT_OK_AND_ASSIGN(
      HistogramFamily * latency,
      registry->AddHistogram("fapo_genrm_latency_seconds", "Latency.",
                             ExponentialBuckets(0.001, 4, 8), {"genrm"}));
  ASSERT_OK_AND_ASSIGN(
      HistogramFamily * staleness,
      registry->AddHistogram("fapo_staleness_steps", "Staleness.",
                             LinearBuckets(0, 1, 5), {}));
  verdicts->WithLabels({{"outcome", "flawed"}}).Increment(3);
  verdicts->WithLabels({{"outcome", "sound"}}).Increment(10);
  verdicts->WithLabels({{"outcome", "un\"parsable\\\n"}}).Increment();
  tokens->WithLabels({}).Increment(123456789);
  depth->WithLabels({}).Set(-2.5);
  up->WithLabels({{"worker", "rollout-0"}}).Set(1);
  up->WithLabels({{"worker", "caf\xc3\xa9"}}).Set(0);
  ratio->WithLabels({}).Set(std::numeric_limits<double>::quiet_NaN());
  for (double value : {0.0005, 0.02, 0.3, 100.0}) {
    latency->WithLabels({{"genrm", "rule"}}).Observe(value);
  }
  staleness->WithLabels({}).Observe(2);

  // What /metrics serves: prometheus-cpp's serializer over our families.
  const std::string exposition =
      prometheus::TextSerializer().Serialize(registry->Collect());
  const PromtoolResult result = CheckMetrics(promtool_, exposition);
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input:\n"
                                 << exposition;
  EXPECT_THAT(result.output, IsEmpty()) << "--- input:\n" << exposition;
}

// Negative control: proves the check above can fail, i.e. that promtool
// really ran and looked at the text.
TEST_F(PromtoolTest, HandWrittenBadExpositionIsFlagged) {
  const PromtoolResult lint = CheckMetrics(promtool_,
                                           "# HELP fapo_requests Requests.\n"
                                           "# TYPE fapo_requests counter\n"
                                           "fapo_requests 1\n");
  EXPECT_NE(lint.exit_code, 0) << lint.output;
  EXPECT_THAT(lint.output, HasSubstr("_total"));

  const PromtoolResult parse =
      CheckMetrics(promtool_, "fapo_broken{label=\"unterminated} 1\n");
  EXPECT_NE(parse.exit_code, 0) << parse.output;
}

}  // namespace
}  // namespace fapo::metrics
