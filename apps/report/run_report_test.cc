#include "apps/report/run_report.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::report {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kConfig[] = R"(job:
  name: tiny
  steps: 4
data:
  task: arith
algorithm:
  reward: fapo
  flawed_penalty: 1.0
rollout:
  group_size: 2
  prompts_per_step: 2
)";

// A metrics line with the fields the report reads.
std::string MetricsLine(int step, double accuracy, double alpha, double gamma,
                        double step_s) {
  return absl::StrCat(
      R"({"step":)", step, R"(,"reward_mean":0.5,"accuracy":)", accuracy,
      R"(,"alpha":)", alpha, R"(,"beta":)", 1 - alpha - gamma, R"(,"gamma":)",
      gamma, R"(,"staleness_mean":1.0,"step_s":)", step_s, R"(,"train_s":)",
      step_s / 2, R"(,"generation_wait_s":0.0)",
      R"(,"genrm_wait_s":0.0,"weight_sync_s":0.0,"checkpoint_s":0.0})", "\n");
}

std::string Sample(bool correct, bool flawed, double advantage,
                   const std::string& outcome,
                   const std::string& drop_reason = "") {
  return absl::StrCat(
      R"({"answer_correct":)", correct ? "true" : "false", R"(,"flawed":)",
      flawed ? "true" : "false", R"(,"verdict_status":")",
      correct ? "ok" : "skipped", R"(","reward":1.0,"advantage":)", advantage,
      R"(,"outcome":")", outcome, R"(","drop_reason":)",
      drop_reason.empty() ? "null" : absl::StrCat("\"", drop_reason, "\""),
      "}\n");
}

class RunReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(dir_.status(), IsOk());
    Write("config.yaml", kConfig);
  }
  void Write(const std::string& name, const std::string& text) {
    const std::string path = files::JoinPath(dir_.path(), name);
    ASSERT_THAT(files::MakeDirectories(files::ParentDirectory(path)), IsOk());
    ASSERT_THAT(files::WriteFileAtomically(path, text), IsOk());
  }
  absl::StatusOr<std::string> Report(int rows = 2) {
    return MakeRunReport({dir_.path(), rows, ""});
  }

  testing::TempDir dir_{"fapo-report-test-"};
};

TEST_F(RunReportTest, CurveSpansAverageTheirSteps) {
  // Steps 1-2 then 3-4; the ratio is mean gamma / (mean alpha + gamma).
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 2.0) +
                             MetricsLine(2, 0.7, 0.4, 0.3, 1.0) +
                             MetricsLine(3, 0.9, 0.8, 0.1, 1.0) +
                             MetricsLine(4, 0.9, 0.8, 0.0, 1.0));
  absl::StatusOr<std::string> report = Report();
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(*report, HasSubstr("# Run report: tiny"));
  EXPECT_THAT(*report, HasSubstr("Step 4 of 4 (finished)"));
  EXPECT_THAT(*report, HasSubstr("fapo (flawed positives lose lambda = 1)"));
  // accuracy 0.6, alpha 0.4, beta 0.4, gamma 0.2, ratio 0.2/0.6.
  EXPECT_THAT(*report,
              HasSubstr("| 1-2 | 0.500 | 0.600 | 0.400 | 0.400 | 0.200 | "
                        "0.333 | 1.00 |"));
  EXPECT_THAT(*report,
              HasSubstr("| 3-4 | 0.500 | 0.900 | 0.800 | 0.150 | 0.050 | "
                        "0.059 | 1.00 |"));
  // Step time: steps 2-4 (the first waits for the first generation).
  EXPECT_THAT(*report, HasSubstr("Means over steps 2-4"));
  EXPECT_THAT(*report, HasSubstr("| whole step | 1.0000 | 100% |"));
  EXPECT_THAT(*report, HasSubstr("| training (TrainStep) | 0.5000 | 50% |"));
  EXPECT_THAT(*report, HasSubstr("Training took 5.0 s over 4 steps."));
  // No samples.jsonl, no eval.json: said, not failed.
  EXPECT_THAT(*report, Not(HasSubstr("## Trajectories")));
  EXPECT_THAT(*report, HasSubstr("None yet: `fapo eval"));
}

TEST_F(RunReportTest, SamplesAreCountedByOutcomeAndKind) {
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0));
  Write("samples.jsonl", Sample(true, false, 1.0, "trained") +
                             Sample(true, false, 0.5, "trained") +
                             Sample(true, true, -2.0, "trained") +
                             Sample(false, false, -1.0, "trained") +
                             Sample(true, false, 0.0, "dropped", "stale") +
                             Sample(false, false, 0.0, "dropped", "stale"));
  absl::StatusOr<std::string> report = Report();
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(*report, HasSubstr("6 written; 4 trained, 2 dropped as stale"));
  EXPECT_THAT(*report, HasSubstr("by status: ok 4; skipped 2."));
  EXPECT_THAT(*report, HasSubstr("| sound (answer and steps right) | 2 | 50% "
                                 "| 1.000 | 0.750 |"));
  EXPECT_THAT(*report, HasSubstr("| flawed positive (answer right, a step "
                                 "wrong) | 1 | 25% | 1.000 | -2.000 |"));
  EXPECT_THAT(*report,
              HasSubstr("| wrong answer | 1 | 25% | 1.000 | -1.000 |"));
}

// What samples.jsonl writes for a trajectory dropped before its verdict
// (interrupted by a resume, a group aborted): nulls, not absent fields.
TEST_F(RunReportTest, NullFieldsOfDroppedSamplesReadAsAbsent) {
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0));
  Write("samples.jsonl",
        Sample(true, false, 1.0, "trained") +
            R"({"answer_correct":null,"flawed":null,"verdict_status":null,)"
            R"("reward":null,"advantage":null,"outcome":"dropped",)"
            R"("drop_reason":"interrupted"})"
            "\n" +
            R"({"outcome":null,"verdict_status":7})"
            "\n");
  absl::StatusOr<std::string> report = Report();
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(*report, HasSubstr("3 written; 1 trained, 1 dropped as "
                                 "interrupted, 1 dropped as unknown"));
  EXPECT_THAT(*report, HasSubstr("by status: ok 1."));
}

TEST_F(RunReportTest, EvaluationsAreListedByStep) {
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0));
  const std::string eval =
      R"({"samples":1024,"temperature":1.0,"accuracy":0.9,"accuracy_stderr":0.01,)"
      R"("alpha":0.7,"beta":0.1,"gamma":0.2,"flawed_positive_ratio":0.22,)"
      R"("flawed_positive_ratio_stderr":0.014})";
  Write("warm-start/eval.json", eval);
  Write("checkpoints/step-10/policy/eval.json", eval);
  Write("checkpoints/step-2/policy/eval.json", eval);
  absl::StatusOr<std::string> report = Report();
  ASSERT_THAT(report, IsOk());
  const size_t warm = report->find("| warm start | 1024 | 1.0 | 0.900 ± 0.010");
  const size_t two = report->find("| step 2 |");
  const size_t ten = report->find("| step 10 |");
  ASSERT_NE(warm, std::string::npos) << *report;
  ASSERT_NE(two, std::string::npos);
  ASSERT_NE(ten, std::string::npos);
  EXPECT_LT(warm, two);
  EXPECT_LT(two, ten);  // by step number, not by name
  EXPECT_THAT(*report, HasSubstr("0.220 ± 0.014 |"));
}

TEST_F(RunReportTest, ARunGivenItsStartingPolicyShowsThatPolicysEvaluation) {
  const std::string start = files::JoinPath(dir_.path(), "given-policy");
  Write("config.yaml",
        absl::StrCat(kConfig, "policy:\n  model_dir: \"", start, "\"\n"));
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0));
  Write("given-policy/eval.json",
        R"({"samples":64,"accuracy":0.5,"flawed_positive_ratio":0.25})");
  absl::StatusOr<std::string> report = Report();
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(*report, HasSubstr("| start | 64 | - | 0.500 ± - |"));
  EXPECT_THAT(*report, HasSubstr("| 0.250 ± - |"));
}

TEST_F(RunReportTest, BadInputNamesTheFileAndLine) {
  EXPECT_THAT(Report(), StatusIs(absl::StatusCode::kNotFound,
                                 HasSubstr("metrics.jsonl does not exist")));
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0) + "{oops\n" +
                             MetricsLine(3, 0.5, 0.4, 0.1, 1.0));
  EXPECT_THAT(Report(), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("metrics.jsonl:2: not a JSON")));
  Write("metrics.jsonl", R"({"accuracy":0.5})"
                         "\n");
  EXPECT_THAT(Report(), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("metrics.jsonl:1: no integer")));
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0));
  Write("warm-start/eval.json", "[1, 2]");
  EXPECT_THAT(Report(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("warm-start/eval.json: not a JSON")));
  EXPECT_THAT(MakeRunReport({dir_.path(), 0, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RunReportTest, ATornLastLineIsLeftOutAndSaid) {
  // The writer died mid-line: no newline at the end.
  Write("metrics.jsonl",
        MetricsLine(1, 0.5, 0.4, 0.1, 1.0) + R"({"step":2,"accur)");
  absl::StatusOr<std::string> report = Report();
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(*report, HasSubstr("Step 1 of 4 (not finished)"));
  EXPECT_THAT(*report, HasSubstr("metrics.jsonl was cut short"));
}

TEST_F(RunReportTest, WriteRunReportWritesReportMd) {
  Write("metrics.jsonl", MetricsLine(1, 0.5, 0.4, 0.1, 1.0));
  std::string markdown;
  absl::StatusOr<std::string> path =
      WriteRunReport({dir_.path(), 10, ""}, &markdown);
  ASSERT_THAT(path, IsOk());
  EXPECT_EQ(*path, files::JoinPath(dir_.path(), "report.md"));
  absl::StatusOr<std::string> written = files::ReadFile(*path);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(*written, markdown);
  EXPECT_THAT(markdown, HasSubstr("| 1 | 0.500 |"));  // one step, one row
}

}  // namespace
}  // namespace fapo::report
