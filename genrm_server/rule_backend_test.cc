#include "genrm_server/rule_backend.h"

#include <string>
#include <vector>

#include "algorithm/verdict.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/arith.h"

namespace fapo::genrm {
namespace {

namespace arith = ::fapo::tasks::arith;
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

fapo::v1::ScoreRequest ArithRequest(const std::string& id,
                                    const std::string& problem,
                                    const std::string& solution,
                                    const std::string& ground_truth = "") {
  fapo::v1::ScoreRequest request;
  request.set_request_id("req-" + id);
  request.set_trajectory_id(id);
  request.set_task("arith");
  request.set_problem(problem);
  request.set_ground_truth(ground_truth);
  request.set_solution(solution);
  return request;
}

BatchResults ScoreSync(GenrmBackend& backend,
                       std::vector<fapo::v1::ScoreRequest> requests) {
  BatchResults out;
  bool called = false;
  backend.ScoreBatch(std::move(requests), [&](BatchResults results) {
    out = std::move(results);
    called = true;
  });
  EXPECT_TRUE(called) << "the rule backend completes before returning";
  return out;
}

// The verdict must say exactly what the checker says, and its critique must
// parse back to the same step.
void ExpectAgreesWithChecker(const arith::Checker& checker,
                             const fapo::v1::ScoreRequest& request,
                             const absl::StatusOr<fapo::v1::Verdict>& result) {
  ASSERT_THAT(result, IsOk());
  ASSERT_OK_AND_ASSIGN(
      arith::CheckResult expected,
      checker.CheckPromptText(request.problem(), request.solution()));
  EXPECT_EQ(result->trajectory_id(), request.trajectory_id());
  EXPECT_EQ(result->status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(result->first_error_step(), expected.first_error_step);
  EXPECT_EQ(result->num_steps(), expected.num_steps);
  EXPECT_EQ(result->answer_correct(), expected.answer_correct);
  EXPECT_EQ(result->num_samples(), 1);
  EXPECT_EQ(result->num_agreeing(), 1);
  const algorithm::ParsedVerdict parsed =
      algorithm::ParseVerdict(result->critique(), result->num_steps());
  EXPECT_EQ(parsed.status, algorithm::VerdictStatus::kOk) << result->critique();
  EXPECT_EQ(parsed.first_error_step, expected.first_error_step);
}

TEST(RuleBackendTest, BenchVerdictsAgreeWithCheckerAndLabels) {
  const arith::ArithOptions options;
  ASSERT_OK_AND_ASSIGN(auto backend, RuleBackend::Create({options}));
  ASSERT_OK_AND_ASSIGN(arith::Checker checker, arith::Checker::Create(options));
  arith::BenchOptions bench_options;
  bench_options.num_records = 300;
  ASSERT_OK_AND_ASSIGN(
      std::vector<arith::BenchRecord> bench,
      arith::GenerateFlawedPositiveBench(options, bench_options, /*seed=*/11));

  std::vector<fapo::v1::ScoreRequest> requests;
  for (size_t i = 0; i < bench.size(); ++i) {
    requests.push_back(ArithRequest(absl::StrCat("t", i), bench[i].problem,
                                    bench[i].solution,
                                    absl::StrCat(bench[i].ground_truth)));
  }
  const BatchResults results = ScoreSync(*backend, requests);
  ASSERT_THAT(results, SizeIs(bench.size()));
  int per_kind[3] = {0, 0, 0};
  for (size_t i = 0; i < bench.size(); ++i) {
    SCOPED_TRACE(absl::StrCat(arith::BenchKindName(bench[i].kind), " ",
                              bench[i].problem, "\n", bench[i].solution));
    ExpectAgreesWithChecker(checker, requests[i], results[i]);
    ASSERT_THAT(results[i], IsOk());
    // Bench solutions all have the right answer; sound ones no wrong step,
    // half and lucky slips the labelled one.
    EXPECT_TRUE(results[i]->answer_correct());
    EXPECT_EQ(results[i]->first_error_step(), bench[i].first_error_step);
    if (bench[i].kind != arith::BenchKind::kSound) {
      EXPECT_GE(results[i]->first_error_step(), 0);
    }
    ++per_kind[static_cast<int>(bench[i].kind)];
  }
  EXPECT_GT(per_kind[0], 0);
  EXPECT_GT(per_kind[1], 0);
  EXPECT_GT(per_kind[2], 0);
}

TEST(RuleBackendTest, CorpusVerdictsIncludingWrongAnswersAgreeWithChecker) {
  const arith::ArithOptions options;
  ASSERT_OK_AND_ASSIGN(auto backend, RuleBackend::Create({options}));
  ASSERT_OK_AND_ASSIGN(arith::Checker checker, arith::Checker::Create(options));
  arith::CorpusOptions corpus_options;
  corpus_options.half_slip_share = 0.3;
  corpus_options.wrong_slip_share = 0.3;
  ASSERT_OK_AND_ASSIGN(
      arith::CorpusGenerator generator,
      arith::CorpusGenerator::Create(options, corpus_options, /*seed=*/5));
  ASSERT_OK_AND_ASSIGN(std::vector<arith::CorpusRecord> corpus,
                       generator.Generate(300));

  std::vector<fapo::v1::ScoreRequest> requests;
  for (size_t i = 0; i < corpus.size(); ++i) {
    requests.push_back(ArithRequest(absl::StrCat("c", i), corpus[i].prompt,
                                    corpus[i].response));
  }
  const BatchResults results = ScoreSync(*backend, requests);
  ASSERT_THAT(results, SizeIs(corpus.size()));
  int wrong = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    SCOPED_TRACE(corpus[i].prompt + "\n" + corpus[i].response);
    ExpectAgreesWithChecker(checker, requests[i], results[i]);
    ASSERT_THAT(results[i], IsOk());
    EXPECT_EQ(results[i]->first_error_step(), corpus[i].first_error_step);
    const bool wrong_slip = corpus[i].kind == arith::TraceKind::kWrongSlip;
    EXPECT_EQ(results[i]->answer_correct(), !wrong_slip);
    wrong += wrong_slip;
  }
  EXPECT_GT(wrong, 0);
}

TEST(RuleBackendTest, HandWrittenTraces) {
  // Default options: value_modulus 10, answer_modulus 5. 3+7*4-2:
  // 3+7=0, 0*4=0, 0-2=8, answer 8 mod 5 = 3.
  ASSERT_OK_AND_ASSIGN(auto backend, RuleBackend::Create({}));
  const BatchResults results = ScoreSync(
      *backend, {ArithRequest("sound", "3+7*4-2", "3+7=0\n0*4=0\n0-2=8\n#3"),
                 ArithRequest("half", "3+7*4-2", "3+7=5\n5*4=0\n0-2=8\n#3"),
                 ArithRequest("wrong", "3+7*4-2", "3+7=0\n0*4=0\n0-2=7\n#2"),
                 ArithRequest("short", "3+7*4-2", "3+7=0")});
  ASSERT_THAT(results, SizeIs(4));
  ASSERT_THAT(results[0], IsOk());
  EXPECT_EQ(results[0]->first_error_step(), -1);
  EXPECT_TRUE(results[0]->answer_correct());
  EXPECT_EQ(results[0]->num_steps(), 4);
  EXPECT_THAT(results[0]->critique(), HasSubstr("\\boxed{-1}"));
  ASSERT_THAT(results[1], IsOk());
  EXPECT_EQ(results[1]->first_error_step(), 0);
  EXPECT_TRUE(results[1]->answer_correct());
  ASSERT_THAT(results[2], IsOk());
  EXPECT_EQ(results[2]->first_error_step(), 2);
  EXPECT_FALSE(results[2]->answer_correct());
  ASSERT_THAT(results[3], IsOk());
  EXPECT_EQ(results[3]->first_error_step(), 1);
  EXPECT_FALSE(results[3]->answer_correct());
}

TEST(RuleBackendTest, ErrorsArePerRequest) {
  ASSERT_OK_AND_ASSIGN(auto backend, RuleBackend::Create({}));
  fapo::v1::ScoreRequest math = ArithRequest("m", "1+1", "1+1=2\n#2");
  math.set_task("math");
  fapo::v1::ScoreRequest no_task = ArithRequest("n", "1+1", "1+1=2\n#2");
  no_task.set_task("");
  const BatchResults results = ScoreSync(
      *backend,
      {ArithRequest("ok1", "3+7*4-2", "3+7=0\n0*4=0\n0-2=8\n#3"), math,
       ArithRequest("bad", "3++4", "x"), no_task,
       ArithRequest("gt", "3+7*4-2", "3+7=0\n0*4=0\n0-2=8\n#3", "4"),
       ArithRequest("ok2", "3+7*4-2", "3+7=0\n0*4=0\n0-2=8\n#3", "3")});
  ASSERT_THAT(results, SizeIs(6));
  EXPECT_THAT(results[0], IsOk());
  EXPECT_THAT(results[1].status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no step checker for task \"math\"")));
  EXPECT_THAT(results[2].status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("arith problem")));
  EXPECT_THAT(results[3].status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("task \"\"")));
  EXPECT_THAT(results[4].status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ground_truth \"4\" is not the answer 3")));
  ASSERT_THAT(results[5], IsOk());
  EXPECT_EQ(results[5]->trajectory_id(), "ok2");
}

TEST(RuleBackendTest, EmptyBatchAndBadOptions) {
  ASSERT_OK_AND_ASSIGN(auto backend, RuleBackend::Create({}));
  EXPECT_THAT(ScoreSync(*backend, {}), SizeIs(0));
  EXPECT_EQ(backend->name(), "rule");
  RuleBackendOptions bad;
  bad.arith.value_modulus = 1;
  EXPECT_THAT(
      RuleBackend::Create(bad).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("value_modulus")));
}

}  // namespace
}  // namespace fapo::genrm
