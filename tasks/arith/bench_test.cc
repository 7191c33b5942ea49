#include "tasks/arith/bench.h"

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/checker.h"
#include "tasks/arith/problem.h"
#include "tasks/arith/solution.h"

namespace fapo::tasks::arith {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

// Every record: a right answer, and the label the Checker gives.
void ExpectLabelsAgreeWithChecker(const ArithOptions& arith,
                                  const std::vector<BenchRecord>& records) {
  const Checker checker = *Checker::Create(arith);
  for (const BenchRecord& record : records) {
    ASSERT_OK_AND_ASSIGN(Problem problem, ParsePrompt(record.problem));
    ASSERT_OK_AND_ASSIGN(int64_t truth, GroundTruth(problem, arith));
    EXPECT_EQ(record.ground_truth, truth);
    const CheckResult result = checker.Check(problem, record.solution);
    EXPECT_TRUE(result.answer_correct) << record.problem << "\n"
                                       << record.solution;
    EXPECT_EQ(result.first_error_step, record.first_error_step)
        << record.problem << "\n"
        << record.solution;
    EXPECT_EQ(result.trace_class, record.kind == BenchKind::kSound
                                      ? TraceClass::kSound
                                      : TraceClass::kFlawedPositive);
  }
}

TEST(ArithBenchTest, LabelsAgreeWithTheChecker) {
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> records,
                       GenerateFlawedPositiveBench(ArithOptions(), {}, 1));
  EXPECT_EQ(records.size(), 1000u);
  ExpectLabelsAgreeWithChecker(ArithOptions(), records);
}

TEST(ArithBenchTest, LabelsAgreeUnderOtherArithmetic) {
  for (const ArithOptions& arith :
       {ArithOptions{1, 6, 9, 0, 5}, ArithOptions{2, 6, 9, 12, 4},
        ArithOptions{2, 6, 9, 12, 6}}) {
    ASSERT_OK_AND_ASSIGN(
        std::vector<BenchRecord> records,
        GenerateFlawedPositiveBench(arith, {400, 0.3, 0.3}, 2));
    ExpectLabelsAgreeWithChecker(arith, records);
  }
  // No half slips when answer_modulus does not divide value_modulus: lucky
  // slips only.
  const ArithOptions non_divisor{2, 6, 9, 10, 3};
  ASSERT_OK_AND_ASSIGN(
      std::vector<BenchRecord> records,
      GenerateFlawedPositiveBench(non_divisor, {300, 0, 0.5}, 3));
  ExpectLabelsAgreeWithChecker(non_divisor, records);
}

TEST(ArithBenchTest, ProportionsAreExact) {
  struct Case {
    BenchOptions options;
    int half, lucky, sound;
  };
  for (const Case& c :
       {Case{{1000, 0.25, 0.25}, 250, 250, 500},
        Case{{999, 0.5, 0.5}, 500, 499, 0}, Case{{10, 0.0, 0.3}, 0, 3, 7},
        Case{{7, 0.1, 0.1}, 1, 0, 6}, Case{{0, 0.5, 0.5}, 0, 0, 0}}) {
    ASSERT_OK_AND_ASSIGN(
        std::vector<BenchRecord> records,
        GenerateFlawedPositiveBench(ArithOptions(), c.options, 4));
    int counts[3] = {0, 0, 0};
    for (const BenchRecord& record : records) {
      ++counts[static_cast<int>(record.kind)];
    }
    EXPECT_EQ(counts[static_cast<int>(BenchKind::kHalfSlip)], c.half);
    EXPECT_EQ(counts[static_cast<int>(BenchKind::kLuckySlip)], c.lucky);
    EXPECT_EQ(counts[static_cast<int>(BenchKind::kSound)], c.sound);
  }
}

TEST(ArithBenchTest, KindsAreShuffled) {
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> records,
                       GenerateFlawedPositiveBench(ArithOptions(), {}, 5));
  int kinds_in_first_quarter[3] = {0, 0, 0};
  for (int i = 0; i < 250; ++i) {
    ++kinds_in_first_quarter[static_cast<int>(records[i].kind)];
  }
  for (int count : kinds_in_first_quarter) EXPECT_GT(count, 30);
}

// The stated results of a solution's operation lines.
std::vector<int64_t> StatedResults(const std::string& solution) {
  std::vector<int64_t> results;
  for (absl::string_view line : absl::StrSplit(solution, '\n')) {
    if (line[0] == '#') break;
    int64_t value = 0;
    EXPECT_TRUE(absl::SimpleAtoi(line.substr(line.find('=') + 1), &value));
    results.push_back(value);
  }
  return results;
}

TEST(ArithBenchTest, LuckySlipsAreReallyCorrectButFlawedByLuck) {
  const ArithOptions arith;  // mod 10, answer mod 5
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> records,
                       GenerateFlawedPositiveBench(arith, {600, 0, 1}, 6));
  const Checker checker = *Checker::Create(arith);
  for (const BenchRecord& record : records) {
    ASSERT_EQ(record.kind, BenchKind::kLuckySlip);
    const Problem problem = *ParsePrompt(record.problem);
    const CheckResult result = checker.Check(problem, record.solution);
    EXPECT_EQ(result.trace_class, TraceClass::kFlawedPositive);
    const int step = record.first_error_step;
    ASSERT_GE(step, 0);
    // Not a half slip: the slipped value is off by something other than a
    // multiple of 5...
    const Trace correct = *CorrectTrace(problem, arith);
    const int64_t stated = StatedResults(record.solution)[step];
    EXPECT_NE(AnswerOf(stated, 5), AnswerOf(correct.stated_results[step], 5))
        << record.problem << "\n"
        << record.solution;
    // ...so mod 5 the difference survives + and - and only a later '*5'
    // can erase it: the luck must come from one.
    bool later_times_five = false;
    for (size_t i = step + 1; i < problem.operations.size(); ++i) {
      later_times_five = later_times_five ||
                         (problem.operations[i].op == Operator::kMultiply &&
                          problem.operations[i].operand == 5);
    }
    EXPECT_TRUE(later_times_five) << record.problem << "\n" << record.solution;
    // And the slipped solution is the consistent continuation of the slip.
    EXPECT_EQ(FormatTrace(problem, *SlippedTrace(problem, arith, step, stated)),
              record.solution);
  }
}

TEST(ArithBenchTest, HalfSlipsArePlusAnswerModulus) {
  const ArithOptions arith;
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> records,
                       GenerateFlawedPositiveBench(arith, {300, 1, 0}, 7));
  for (const BenchRecord& record : records) {
    const Problem problem = *ParsePrompt(record.problem);
    const Trace correct = *CorrectTrace(problem, arith);
    const int step = record.first_error_step;
    EXPECT_EQ(StatedResults(record.solution)[step],
              (correct.stated_results[step] + 5) % 10);
  }
}

TEST(ArithBenchTest, SeedsReproduce) {
  ASSERT_OK_AND_ASSIGN(auto a, GenerateFlawedPositiveBench({}, {200}, 8));
  ASSERT_OK_AND_ASSIGN(auto b, GenerateFlawedPositiveBench({}, {200}, 8));
  ASSERT_OK_AND_ASSIGN(auto c, GenerateFlawedPositiveBench({}, {200}, 9));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(ArithBenchTest, ErrorsForBadOptions) {
  EXPECT_THAT(
      GenerateFlawedPositiveBench({0, 6, 9, 10, 5}, {}, 1),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_ops")));
  for (const BenchOptions& bad :
       {BenchOptions{-1, 0.25, 0.25}, BenchOptions{10, 0.7, 0.7},
        BenchOptions{10, -0.1, 0.2}}) {
    EXPECT_THAT(GenerateFlawedPositiveBench(ArithOptions(), bad, 1),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  EXPECT_THAT(GenerateFlawedPositiveBench({2, 6, 9, 10, 3}, {10, 0.5, 0}, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("proper divisor")));
  // Exact arithmetic with full-value answers: every operation is injective,
  // so no slip can leave the answer right.
  EXPECT_THAT(
      GenerateFlawedPositiveBench({1, 3, 9, 0, 0}, {5, 0, 0.5}, 1),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lucky_slip")));
  // ...but sound-only benches need no slips.
  EXPECT_THAT(GenerateFlawedPositiveBench({1, 3, 9, 0, 0}, {5, 0, 0}, 1),
              IsOk());
}

TEST(ArithBenchTest, JsonlRoundTrip) {
  const BenchRecord example{"3+7*4-2", 3, "3+7=0\n0*4=0\n0-2=3\n#3", 2,
                            BenchKind::kHalfSlip};
  std::ostringstream one;
  ASSERT_THAT(WriteBenchJsonl({example}, &one), IsOk());
  EXPECT_EQ(one.str(),
            "{\"problem\":\"3+7*4-2\",\"ground_truth\":\"3\",\"solution\":"
            "\"3+7=0\\n0*4=0\\n0-2=3\\n#3\",\"first_error_step\":2,"
            "\"kind\":\"half_slip\"}\n");

  ASSERT_OK_AND_ASSIGN(
      std::vector<BenchRecord> records,
      GenerateFlawedPositiveBench({1, 6, 9, 0, 0}, {500, 0, 0}, 10));
  std::stringstream stream;
  ASSERT_THAT(WriteBenchJsonl(records, &stream), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> read_back,
                       ReadBenchJsonl(&stream));
  EXPECT_EQ(read_back, records);

  ASSERT_OK_AND_ASSIGN(records,
                       GenerateFlawedPositiveBench(ArithOptions(), {}, 11));
  const std::string path = ::testing::TempDir() + "/arith_bench.jsonl";
  ASSERT_THAT(WriteBenchJsonlFile(path, records), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> from_file,
                       ReadBenchJsonlFile(path));
  EXPECT_EQ(from_file, records);
  std::remove(path.c_str());
}

TEST(ArithBenchTest, ReaderAcceptsIntegerGroundTruthAndRejectsBadOnes) {
  std::istringstream integer(
      "{\"problem\":\"1-5\",\"ground_truth\":-4,\"solution\":\"1-5=-4\\n#-4\","
      "\"first_error_step\":-1,\"kind\":\"sound\"}\n");
  ASSERT_OK_AND_ASSIGN(std::vector<BenchRecord> records,
                       ReadBenchJsonl(&integer));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].ground_truth, -4);
  for (const char* truth : {"\"03\"", "\"3 \"", "\"x\"", "3.5", "null"}) {
    std::istringstream in(
        absl::StrCat("{\"problem\":\"1+2\",\"ground_truth\":", truth,
                     ",\"solution\":\"1+2=3\\n#3\",\"first_error_step\":-1,"
                     "\"kind\":\"sound\"}\n"));
    EXPECT_THAT(ReadBenchJsonl(&in),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("line 1: \"ground_truth\"")))
        << truth;
  }
  std::istringstream bad_kind(
      "{\"problem\":\"1+2\",\"ground_truth\":\"3\",\"solution\":\"x\","
      "\"first_error_step\":1,\"kind\":\"sound\"}\n");
  EXPECT_THAT(ReadBenchJsonl(&bad_kind),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("-1 exactly when kind is sound")));
  std::istringstream missing(
      "{\"problem\":\"1+2\",\"ground_truth\":\"3\",\"solution\":\"x\","
      "\"first_error_step\":-1}\n");
  EXPECT_THAT(ReadBenchJsonl(&missing),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing key \"kind\"")));
}

}  // namespace
}  // namespace fapo::tasks::arith
