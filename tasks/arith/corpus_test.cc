#include "tasks/arith/corpus.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/checker.h"
#include "tasks/arith/problem.h"

namespace fapo::tasks::arith {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

struct Shares {
  double clean = 0, half = 0, wrong = 0;
};

// Generates `count` records and checks every one against the Checker.
Shares GenerateAndVerify(const ArithOptions& arith, const CorpusOptions& corpus,
                         uint64_t seed, int count) {
  Shares shares;
  absl::StatusOr<CorpusGenerator> generator =
      CorpusGenerator::Create(arith, corpus, seed);
  EXPECT_THAT(generator, IsOk());
  if (!generator.ok()) return shares;
  const Checker checker = *Checker::Create(arith);
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<CorpusRecord> record = generator->Next();
    EXPECT_THAT(record, IsOk());
    if (!record.ok()) return shares;
    absl::StatusOr<CheckResult> result =
        checker.CheckPromptText(record->prompt, record->response);
    EXPECT_THAT(result, IsOk());
    if (!result.ok()) return shares;
    EXPECT_EQ(result->first_error_step, record->first_error_step)
        << record->prompt << "\n"
        << record->response;
    switch (record->kind) {
      case TraceKind::kClean:
        EXPECT_EQ(result->trace_class, TraceClass::kSound);
        shares.clean += 1.0 / count;
        break;
      case TraceKind::kHalfSlip:
        EXPECT_EQ(result->trace_class, TraceClass::kFlawedPositive)
            << record->prompt << "\n"
            << record->response;
        EXPECT_GE(record->first_error_step, 0);
        shares.half += 1.0 / count;
        break;
      case TraceKind::kWrongSlip:
        EXPECT_EQ(result->trace_class, TraceClass::kWrong)
            << record->prompt << "\n"
            << record->response;
        EXPECT_GE(record->first_error_step, 0);
        // The slip is an operation line; the answer line follows from it.
        EXPECT_LT(record->first_error_step, result->num_steps - 1);
        shares.wrong += 1.0 / count;
        break;
    }
  }
  return shares;
}

TEST(ArithCorpusTest, DefaultSharesAndLabels) {
  // 20,000 draws: a share's standard error is at most 0.0035; allow ~4x.
  const Shares shares =
      GenerateAndVerify(ArithOptions(), CorpusOptions(), 1, 20000);
  EXPECT_NEAR(shares.clean, 0.65, 0.015);
  EXPECT_NEAR(shares.half, 0.25, 0.015);
  EXPECT_NEAR(shares.wrong, 0.10, 0.015);
}

TEST(ArithCorpusTest, HarderVariantIsJustOtherShares) {
  const Shares shares =
      GenerateAndVerify(ArithOptions(), {0.15, 0.55}, 2, 20000);
  EXPECT_NEAR(shares.clean, 0.30, 0.015);
  EXPECT_NEAR(shares.half, 0.15, 0.015);
  EXPECT_NEAR(shares.wrong, 0.55, 0.015);
}

TEST(ArithCorpusTest, OtherArithmetic) {
  // Exact arithmetic with answers mod 5; mod 12 with answers mod 4; a
  // non-divisor modulus pair with no half slips; full-value answers.
  GenerateAndVerify({1, 6, 9, 0, 5}, CorpusOptions(), 3, 3000);
  GenerateAndVerify({2, 5, 9, 12, 4}, {0.3, 0.3}, 4, 3000);
  const Shares shares = GenerateAndVerify({2, 5, 9, 10, 3}, {0, 0.5}, 5, 3000);
  EXPECT_EQ(shares.half, 0);
  GenerateAndVerify({2, 5, 9, 0, 0}, {0, 0.5}, 6, 3000);
  GenerateAndVerify({2, 5, 9, 10, 0}, {0, 0.5}, 7, 3000);
}

TEST(ArithCorpusTest, SlipsLandOnEveryStep) {
  ASSERT_OK_AND_ASSIGN(
      CorpusGenerator generator,
      CorpusGenerator::Create({6, 6, 9, 10, 5}, {0.5, 0.5}, 8));
  std::vector<int> half(6, 0), wrong(6, 0);
  for (int i = 0; i < 3000; ++i) {
    ASSERT_OK_AND_ASSIGN(CorpusRecord record, generator.Next());
    ASSERT_GE(record.first_error_step, 0);
    ASSERT_LT(record.first_error_step, 6);
    ++(record.kind == TraceKind::kHalfSlip ? half
                                           : wrong)[record.first_error_step];
  }
  for (int step = 0; step < 6; ++step) {
    EXPECT_GT(half[step], 150) << step;
    EXPECT_GT(wrong[step], 150) << step;
  }
}

TEST(ArithCorpusTest, ProblemsAreTheProblemGeneratorsAndSeedsReproduce) {
  ASSERT_OK_AND_ASSIGN(CorpusGenerator a,
                       CorpusGenerator::Create(ArithOptions(), {}, 9));
  ASSERT_OK_AND_ASSIGN(CorpusGenerator b,
                       CorpusGenerator::Create(ArithOptions(), {}, 9));
  ASSERT_OK_AND_ASSIGN(CorpusGenerator c,
                       CorpusGenerator::Create(ArithOptions(), {}, 10));
  ASSERT_OK_AND_ASSIGN(ProblemGenerator problems,
                       ProblemGenerator::Create(ArithOptions(), 9));
  ASSERT_OK_AND_ASSIGN(std::vector<CorpusRecord> records_a, a.Generate(500));
  ASSERT_OK_AND_ASSIGN(std::vector<CorpusRecord> records_b, b.Generate(500));
  ASSERT_OK_AND_ASSIGN(std::vector<CorpusRecord> records_c, c.Generate(500));
  EXPECT_EQ(records_a, records_b);
  EXPECT_NE(records_a, records_c);
  for (const CorpusRecord& record : records_a) {
    EXPECT_EQ(record.prompt, FormatPrompt(problems.Next()));
  }
}

TEST(ArithCorpusTest, InvalidOptionsAreErrors) {
  EXPECT_THAT(
      CorpusGenerator::Create({0, 6, 9, 10, 5}, {}, 1),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_ops")));
  for (const CorpusOptions& bad :
       {CorpusOptions{-0.1, 0.1}, CorpusOptions{0.1, 1.5},
        CorpusOptions{0.6, 0.5}, CorpusOptions{std::nan(""), 0.1}}) {
    EXPECT_THAT(
        CorpusGenerator::Create(ArithOptions(), bad, 1),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("share")));
  }
  // Half slips need answer_modulus to properly divide value_modulus.
  for (const ArithOptions& arith :
       {ArithOptions{2, 6, 9, 10, 3}, ArithOptions{2, 6, 9, 10, 10},
        ArithOptions{2, 6, 9, 10, 0}, ArithOptions{2, 6, 9, 0, 0}}) {
    EXPECT_THAT(CorpusGenerator::Create(arith, {0.25, 0.1}, 1),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("proper divisor")));
    EXPECT_THAT(CorpusGenerator::Create(arith, {0, 0.1}, 1), IsOk());
  }
  EXPECT_THAT(CorpusGenerator::Create(ArithOptions(), {0.3, 0.7}, 1), IsOk());
}

TEST(ArithCorpusTest, JsonlFormatAndRoundTrip) {
  const CorpusRecord example{"3+7*4-2", "3+7=0\n0*4=0\n0-2=8\n#3",
                             TraceKind::kClean, -1};
  std::ostringstream one;
  ASSERT_THAT(WriteCorpusJsonl({example}, &one), IsOk());
  EXPECT_EQ(one.str(),
            "{\"prompt\":\"3+7*4-2\",\"response\":\"3+7=0\\n0*4=0\\n0-2=8\\n#3"
            "\",\"kind\":\"clean\",\"first_error_step\":-1}\n");

  ASSERT_OK_AND_ASSIGN(CorpusGenerator generator,
                       CorpusGenerator::Create(ArithOptions(), {}, 11));
  ASSERT_OK_AND_ASSIGN(std::vector<CorpusRecord> records,
                       generator.Generate(2000));
  std::stringstream stream;
  ASSERT_THAT(WriteCorpusJsonl(records, &stream), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<CorpusRecord> read_back,
                       ReadCorpusJsonl(&stream));
  EXPECT_EQ(read_back, records);

  const std::string path = ::testing::TempDir() + "/arith_corpus.jsonl";
  ASSERT_THAT(WriteCorpusJsonlFile(path, records), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<CorpusRecord> from_file,
                       ReadCorpusJsonlFile(path));
  EXPECT_EQ(from_file, records);
  std::remove(path.c_str());
  EXPECT_THAT(ReadCorpusJsonlFile(path), StatusIs(absl::StatusCode::kNotFound));
}

TEST(ArithCorpusTest, ReaderIsStrict) {
  const std::string good =
      "{\"prompt\":\"1+2\",\"response\":\"1+2=3\\n#3\",\"kind\":\"clean\","
      "\"first_error_step\":-1}\n";
  struct Case {
    std::string line;
    const char* message;
  };
  const Case cases[] = {
      {"not json", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {"", "not valid JSON"},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"clean\"}",
       "missing key \"first_error_step\""},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"clean\","
       "\"first_error_step\":-1,\"extra\":1}",
       "unknown key \"extra\""},
      {"{\"prompt\":1,\"response\":\"x\",\"kind\":\"clean\","
       "\"first_error_step\":-1}",
       "\"prompt\" must be a string"},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"dirty\","
       "\"first_error_step\":-1}",
       "trace kind"},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"clean\","
       "\"first_error_step\":1.5}",
       "\"first_error_step\" must be an integer"},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"clean\","
       "\"first_error_step\":-2}",
       "\"first_error_step\" must be in [-1"},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"half_slip\","
       "\"first_error_step\":-1}",
       "first_error_step must be -1 exactly when kind is clean"},
      {"{\"prompt\":\"1+2\",\"response\":\"x\",\"kind\":\"clean\","
       "\"first_error_step\":0}",
       "first_error_step must be -1 exactly when kind is clean"},
  };
  for (const Case& c : cases) {
    std::istringstream in(good + c.line + "\n" + good);
    EXPECT_THAT(ReadCorpusJsonl(&in),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("line 2: ", c.message))))
        << c.line;
  }
  std::istringstream empty("");
  EXPECT_THAT(ReadCorpusJsonl(&empty),
              ::fapo::testing::IsOkAndHolds(::testing::IsEmpty()));
}

TEST(ArithCorpusTest, KindNames) {
  for (TraceKind kind :
       {TraceKind::kClean, TraceKind::kHalfSlip, TraceKind::kWrongSlip}) {
    EXPECT_THAT(ParseTraceKind(TraceKindName(kind)),
                ::fapo::testing::IsOkAndHolds(kind));
  }
  EXPECT_EQ(TraceKindName(TraceKind::kHalfSlip), "half_slip");
  EXPECT_THAT(ParseTraceKind("Clean"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace fapo::tasks::arith
