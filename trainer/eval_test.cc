#include "trainer/eval.h"

#include <ATen/Parallel.h>
#include <stdlib.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tools/tools.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/status/status_matchers.h"
#include "trainer/checkpoint_manager.h"

namespace fapo::trainer {
namespace {

namespace arith = ::fapo::tasks::arith;
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

arith::Problem ProblemOf(const std::string& prompt) {
  absl::StatusOr<arith::Problem> problem = arith::ParsePrompt(prompt);
  EXPECT_THAT(problem.status(), IsOk());
  return *problem;
}

TEST(HeldOutTest, ProblemsComeFromTheirOwnStream) {
  const arith::ArithOptions options;
  EXPECT_NE(HeldOutProblemSeed(1), 1u);
  EXPECT_NE(HeldOutProblemSeed(0), HeldOutProblemSeed(1));
  auto held_out = HeldOutProblems(options, 1, 64);
  ASSERT_THAT(held_out.status(), IsOk());
  ASSERT_EQ(held_out->size(), 64u);
  // Reproducible from the job seed.
  auto again = HeldOutProblems(options, 1, 64);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(*held_out, *again);
  // Not the training prompts' sequence (ProblemGenerator(options, job.seed)
  // in tasks/task_source.cc): those are a different stream.
  auto training = arith::ProblemGenerator::Create(options, 1);
  ASSERT_THAT(training.status(), IsOk());
  int same_position = 0;
  for (const arith::Problem& problem : *held_out) {
    if (problem == training->Next()) ++same_position;
  }
  EXPECT_LT(same_position, 4);
  arith::ArithOptions bad;
  bad.min_ops = 0;
  EXPECT_THAT(HeldOutProblems(bad, 1, 4).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GradeTest, CountsSoundFlawedAndWrong) {
  auto checker = arith::Checker::Create(arith::ArithOptions{});
  ASSERT_THAT(checker.status(), IsOk());
  const arith::Problem problem = ProblemOf("3+7*4-2");
  const std::vector<arith::Problem> problems(6, problem);
  const std::vector<std::string> responses = {
      "3+7=0\n0*4=0\n0-2=8\n#3",    // sound
      "3+7=0\n0*4=0\n0-2=8\n#3\n",  // sound (a final newline is allowed)
      "3+7=5\n5*4=0\n0-2=8\n#3",    // half slip: flawed, answer right
      "3+7=0\n0*4=0\n0-2=8\n#4",    // wrong answer
      "",                           // nothing: wrong
      "#3",                         // a bare right answer: flawed positive
  };
  auto counts = GradeResponses(*checker, problems, responses);
  ASSERT_THAT(counts.status(), IsOk());
  EXPECT_EQ(counts->sound, 2);
  EXPECT_EQ(counts->flawed_positive, 2);
  EXPECT_EQ(counts->wrong, 2);
  EXPECT_THAT(
      GradeResponses(*checker, problems, std::vector<std::string>(5, "#3"))
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GradeTest, SummaryHasSharesAndStandardErrors) {
  algorithm::FlawedCounts counts;
  counts.sound = 6;
  counts.flawed_positive = 2;
  counts.wrong = 2;
  const EvalSummary summary = SummarizeCounts(counts);
  EXPECT_EQ(summary.samples, 10);
  EXPECT_DOUBLE_EQ(summary.accuracy.value, 0.8);
  EXPECT_DOUBLE_EQ(summary.accuracy.standard_error, std::sqrt(0.8 * 0.2 / 10));
  EXPECT_DOUBLE_EQ(summary.alpha.value, 0.6);
  EXPECT_DOUBLE_EQ(summary.beta.value, 0.2);
  EXPECT_DOUBLE_EQ(summary.gamma.value, 0.2);
  EXPECT_DOUBLE_EQ(
      summary.alpha.value + summary.beta.value + summary.gamma.value, 1.0);
  // The ratio's error is over the 8 correct responses.
  EXPECT_DOUBLE_EQ(summary.flawed_positive_ratio.value, 0.25);
  EXPECT_DOUBLE_EQ(summary.flawed_positive_ratio.standard_error,
                   std::sqrt(0.25 * 0.75 / 8));
  // docs/arith-testbed.md: ~0.014 at ratio 0.24 over 1024 samples at 0.88.
  counts.sound = 685;
  counts.flawed_positive = 216;
  counts.wrong = 123;
  EXPECT_NEAR(SummarizeCounts(counts).flawed_positive_ratio.standard_error,
              0.014, 0.001);
  const EvalSummary empty = SummarizeCounts(algorithm::FlawedCounts{});
  EXPECT_EQ(empty.accuracy.value, 0);
  EXPECT_EQ(empty.flawed_positive_ratio.standard_error, 0);
}

class EvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    char pattern[] = "/tmp/eval_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    model_ = dir_ + "/model";
    ASSERT_THAT(engine::WriteTinyArithModel(model_, 3), IsOk());
  }
  void TearDown() override {
    ASSERT_THAT(files::RemoveRecursively(dir_), IsOk());
  }

  std::string dir_;
  std::string model_;
};

TEST_F(EvalTest, AnUntrainedModelScoresLow) {
  EvalOptions options;
  options.model_dir = model_;
  options.samples = 48;
  options.max_new_tokens = 24;
  options.generation_batch_size = 20;  // several batches, one partial
  auto report = RunEval(options);
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_EQ(report->summary.samples, 48);
  // Random tokens almost never end in the right "#d" line.
  EXPECT_LT(report->summary.accuracy.value, 0.2);
  EXPECT_GT(report->mean_response_tokens, 0);
  EXPECT_LE(report->mean_response_tokens, 24);
  // Same options, same figures.
  auto again = RunEval(options);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(again->summary.counts.wrong, report->summary.counts.wrong);
  EXPECT_EQ(again->truncated, report->truncated);
  options.model_dir = dir_ + "/missing";
  EXPECT_THAT(RunEval(options).status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EvalTest, CommandLine) {
  {
    std::ostringstream out, err;
    EXPECT_EQ(RunEvalCommand({}, out, err), 2);
    EXPECT_THAT(err.str(), HasSubstr("--model"));
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(
        RunEvalCommand({"--model", model_, "--temperature", "hot"}, out, err),
        2);
    EXPECT_THAT(err.str(), HasSubstr("--temperature"));
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(RunEvalCommand({"--model", model_, "--samples", "0"}, out, err),
              2);
    EXPECT_THAT(err.str(), HasSubstr("--samples"));
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(RunEvalCommand({"--model", model_, "--bogus"}, out, err), 2);
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(
        RunEvalCommand({"--model", model_, "--config", dir_ + "/missing.yaml"},
                       out, err),
        2);
    EXPECT_THAT(err.str(), HasSubstr("missing.yaml"));
  }
  {
    const std::string math_spec = dir_ + "/math.yaml";
    ASSERT_THAT(files::WriteFileAtomically(
                    math_spec,
                    "job:\n  name: m\ndata:\n  task: math\n  math:\n    path: "
                    "x.jsonl\n"),
                IsOk());
    std::ostringstream out, err;
    EXPECT_EQ(
        RunEvalCommand({"--model", model_, "--config", math_spec}, out, err), 2)
        << err.str();
    EXPECT_THAT(err.str(), HasSubstr("arith"));
  }
  {
    std::ostringstream out, err;
    EXPECT_EQ(RunEvalCommand({"--model", dir_ + "/nothing"}, out, err), 1);
    EXPECT_THAT(err.str(), HasSubstr("nothing"));
  }
  {
    const std::string spec = dir_ + "/job.yaml";
    ASSERT_THAT(files::WriteFileAtomically(
                    spec,
                    "job:\n  name: e\n  seed: 4\ndata:\n  task: arith\n  "
                    "eval_size: 12\nrollout:\n  max_new_tokens: 16\n"),
                IsOk());
    const std::string json_path = dir_ + "/eval.json";
    std::ostringstream out, err;
    EXPECT_EQ(RunEvalCommand({"--model", model_, "--config", spec, "--json",
                              json_path, "--temperature", "0.7", "--seed", "3"},
                             out, err),
              0)
        << err.str();
    EXPECT_THAT(out.str(), HasSubstr("flawed-positive ratio"));
    auto text = files::ReadFile(json_path);
    ASSERT_THAT(text.status(), IsOk());
    const nlohmann::json json = nlohmann::json::parse(*text);
    EXPECT_EQ(json["samples"], 12);  // data.eval_size
    EXPECT_DOUBLE_EQ(json["temperature"].get<double>(), 0.7);
    for (const char* key :
         {"accuracy", "accuracy_stderr", "alpha", "beta", "gamma",
          "flawed_positive_ratio", "flawed_positive_ratio_stderr", "sound",
          "flawed_positive", "wrong", "truncated", "seconds"}) {
      EXPECT_TRUE(json.contains(key)) << key;
    }
    EXPECT_LE(json["mean_response_tokens"].get<double>(), 16);
  }
}

}  // namespace
}  // namespace fapo::trainer
