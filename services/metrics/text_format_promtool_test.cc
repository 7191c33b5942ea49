// Checks our exposition with Prometheus's own linter, `promtool check
// metrics`, which parses the text with Prometheus's parser and applies the
// naming lints (counter suffixes, help text, units, reserved suffixes).
//
// promtool is part of Debian's `prometheus` package, which the install script
// installs; a missing promtool fails the test rather than skipping it, so the
// check cannot silently stop running.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/text_format.h"
#include "services/status/status_matchers.h"

namespace fapo::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The full path of `program` on $PATH, or "" when it is not there.
std::string FindOnPath(absl::string_view program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct PromtoolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `promtool check metrics` with `exposition` on its stdin.
PromtoolResult CheckMetrics(const std::string& promtool,
                            const std::string& exposition) {
  // A file + shell redirect rather than writing to popen's pipe: promtool's
  // output is read through the pipe, and one pipe cannot carry both ways.
  const std::filesystem::path input =
      std::filesystem::temp_directory_path() /
      absl::StrCat("fapo_promtool_input_", getpid(), ".txt");
  {
    std::ofstream file(input, std::ios::binary);
    file << exposition;
  }
  const std::string command =
      absl::StrCat(promtool, " check metrics < '", input.string(), "' 2>&1");
  PromtoolResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed";
    return result;
  }
  char buffer[4096];
  size_t read;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, read);
  }
  const int status = pclose(pipe);
  std::filesystem::remove(input);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class PromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    promtool_ = FindOnPath("promtool");
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
  ASSERT_OK_AND_ASSIGN(GaugeFamily * depth,
                       registry->AddGauge("fapo_queue_depth",
                                          "Trajectories waiting.\nHelp with "
                                          "a \\ backslash and a newline.",
                                          {}));
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

  const std::string exposition = RenderTextFormat(registry->Collect());
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
