#include "tasks/arith/checker.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/problem.h"
#include "tasks/arith/solution.h"

namespace fapo::tasks::arith {
namespace {

using ::fapo::testing::StatusIs;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n');
}

std::string Join(const std::vector<std::string>& lines) {
  return absl::StrJoin(lines, "\n");
}

// A line `lhs<op>rhs=result`.
std::string StepLine(int64_t lhs, char op, int64_t rhs, int64_t result) {
  return absl::StrCat(lhs, std::string(1, op), rhs, "=", result);
}

class CheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(checker_, Checker::Create(options_));
    ASSERT_OK_AND_ASSIGN(ProblemGenerator generator,
                         ProblemGenerator::Create(options_, 3));
    // Problems with every operation count, so every step position is
    // exercised.
    while (problems_.size() < 60) problems_.push_back(generator.Next());
  }

  CheckResult Check(const Problem& problem, const std::string& response) {
    return checker_.Check(problem, response);
  }

  ArithOptions options_;  // the testbed's: mod 10, answer mod 5
  Checker checker_ = *Checker::Create(ArithOptions());
  std::vector<Problem> problems_;
};

TEST_F(CheckerTest, CorrectSolutionsAreSound) {
  for (const Problem& problem : problems_) {
    ASSERT_OK_AND_ASSIGN(std::string solution,
                         WriteSolution(problem, options_));
    const CheckResult result = Check(problem, solution);
    EXPECT_EQ(result.first_error_step, -1) << solution;
    EXPECT_TRUE(result.answer_correct);
    EXPECT_EQ(result.num_steps,
              static_cast<int>(problem.operations.size()) + 1);
    EXPECT_EQ(result.trace_class, TraceClass::kSound);
  }
}

TEST_F(CheckerTest, HalfSlipsAreFlawedPositivesAtTheirStep) {
  for (const Problem& problem : problems_) {
    ASSERT_OK_AND_ASSIGN(Trace correct, CorrectTrace(problem, options_));
    for (int step = 0; step < static_cast<int>(problem.operations.size());
         ++step) {
      const std::optional<Trace> slipped =
          SlippedTrace(problem, options_, step,
                       *HalfSlipValue(correct.stated_results[step], options_));
      ASSERT_TRUE(slipped.has_value());
      const std::string text = FormatTrace(problem, *slipped);
      const CheckResult result = Check(problem, text);
      EXPECT_EQ(result.first_error_step, step) << text;
      EXPECT_TRUE(result.answer_correct) << text;
      EXPECT_EQ(result.trace_class, TraceClass::kFlawedPositive) << text;
    }
  }
}

TEST_F(CheckerTest, EveryOtherSlipIsCaughtAtItsStep) {
  // Every wrong value at every step, later steps consistent: the first
  // error is the slip, and the answer is right exactly when it happens to
  // be.
  int lucky = 0, wrong = 0;
  for (const Problem& problem : problems_) {
    ASSERT_OK_AND_ASSIGN(Trace correct, CorrectTrace(problem, options_));
    for (int step = 0; step < static_cast<int>(problem.operations.size());
         ++step) {
      for (int64_t value = 0; value < options_.value_modulus; ++value) {
        if (value == correct.stated_results[step]) continue;
        const std::optional<Trace> slipped =
            SlippedTrace(problem, options_, step, value);
        ASSERT_TRUE(slipped.has_value());
        const std::string text = FormatTrace(problem, *slipped);
        const CheckResult result = Check(problem, text);
        EXPECT_EQ(result.first_error_step, step) << text;
        const bool right = slipped->stated_answer == correct.stated_answer;
        EXPECT_EQ(result.answer_correct, right) << text;
        EXPECT_EQ(result.trace_class,
                  right ? TraceClass::kFlawedPositive : TraceClass::kWrong);
        ++(right ? lucky : wrong);
      }
    }
  }
  EXPECT_GT(lucky, 0);
  EXPECT_GT(wrong, 0);
}

TEST_F(CheckerTest, InconsistentSlipIsCaughtAtTheSlipNotLater) {
  // The slipped value is not carried on: step k+1's lhs is then wrong too,
  // but the first error is still k.
  for (const Problem& problem : problems_) {
    ASSERT_OK_AND_ASSIGN(Trace correct, CorrectTrace(problem, options_));
    for (int step = 0; step < static_cast<int>(problem.operations.size());
         ++step) {
      Trace broken = correct;
      broken.stated_results[step] = (correct.stated_results[step] + 1) % 10;
      const CheckResult result = Check(problem, FormatTrace(problem, broken));
      EXPECT_EQ(result.first_error_step, step);
      EXPECT_TRUE(result.answer_correct);  // the answer line is untouched
    }
  }
}

TEST_F(CheckerTest, WrongOperatorOrOperandIsCaughtAtItsStep) {
  for (const Problem& problem : problems_) {
    ASSERT_OK_AND_ASSIGN(Trace correct, CorrectTrace(problem, options_));
    const int num_ops = static_cast<int>(problem.operations.size());
    for (int step = 0; step < num_ops; ++step) {
      const Operation& operation = problem.operations[step];
      const int64_t lhs =
          step == 0 ? problem.first_operand : correct.stated_results[step - 1];
      for (char op : {'+', '-', '*'}) {
        if (op == static_cast<char>(operation.op)) continue;
        // The result is right for the written operation: only the operator
        // is wrong.
        std::vector<std::string> lines =
            Lines(*WriteSolution(problem, options_));
        lines[step] = StepLine(lhs, op, operation.operand,
                               *ApplyOperator(lhs, static_cast<Operator>(op),
                                              operation.operand, 10));
        const CheckResult result = Check(problem, Join(lines));
        EXPECT_EQ(result.first_error_step, step) << Join(lines);
      }
      std::vector<std::string> lines = Lines(*WriteSolution(problem, options_));
      const int64_t other_operand = operation.operand == 9 ? 8 : 9;
      lines[step] =
          StepLine(lhs, static_cast<char>(operation.op), other_operand,
                   *ApplyOperator(lhs, operation.op, other_operand, 10));
      EXPECT_EQ(Check(problem, Join(lines)).first_error_step, step)
          << Join(lines);
    }
  }
}

TEST_F(CheckerTest, BadLhsIsCaughtAtItsStep) {
  for (const Problem& problem : problems_) {
    ASSERT_OK_AND_ASSIGN(Trace correct, CorrectTrace(problem, options_));
    for (int step = 0; step < static_cast<int>(problem.operations.size());
         ++step) {
      const Operation& operation = problem.operations[step];
      const int64_t lhs =
          step == 0 ? problem.first_operand : correct.stated_results[step - 1];
      const int64_t bad_lhs = (lhs + 3) % 10;
      std::vector<std::string> lines = Lines(*WriteSolution(problem, options_));
      // Arithmetic right for the bad lhs; only the lhs is wrong.
      lines[step] = StepLine(
          bad_lhs, static_cast<char>(operation.op), operation.operand,
          *ApplyOperator(bad_lhs, operation.op, operation.operand, 10));
      EXPECT_EQ(Check(problem, Join(lines)).first_error_step, step)
          << Join(lines);
    }
  }
}

TEST_F(CheckerTest, MissingAndExtraStepsAreCaughtAtTheirIndex) {
  for (const Problem& problem : problems_) {
    const std::vector<std::string> lines =
        Lines(*WriteSolution(problem, options_));
    const int num_lines = static_cast<int>(lines.size());
    for (int step = 0; step < num_lines; ++step) {
      std::vector<std::string> missing = lines;
      missing.erase(missing.begin() + step);
      const CheckResult result = Check(problem, Join(missing));
      EXPECT_EQ(result.first_error_step, step) << Join(missing);
      // Dropping an operation keeps the answer line; dropping the answer
      // line leaves no answer.
      EXPECT_EQ(result.answer_correct, step < num_lines - 1);
    }
    ASSERT_OK_AND_ASSIGN(Trace correct, CorrectTrace(problem, options_));
    for (int step = 0; step <= num_lines; ++step) {
      // An extra, internally consistent step "v*1=v" of the current value,
      // inserted before line `step` (step num_lines: after the answer). No
      // real operation is "*1" ('*' operands are >= 2), so it cannot be
      // mistaken for the step it displaces.
      const int64_t value =
          step == 0 ? problem.first_operand
                    : correct.stated_results[std::min<size_t>(
                          step - 1, correct.stated_results.size() - 1)];
      std::vector<std::string> extra = lines;
      extra.insert(extra.begin() + step, StepLine(value, '*', 1, value));
      const CheckResult result = Check(problem, Join(extra));
      EXPECT_EQ(result.first_error_step, step) << Join(extra);
      EXPECT_EQ(result.num_steps, num_lines + 1);
      // The answer line is still the last line, except when the extra step
      // comes after it.
      EXPECT_EQ(result.answer_correct, step < num_lines) << Join(extra);
    }
  }
}

TEST_F(CheckerTest, AnswerLineErrors) {
  const Problem problem = *ParsePrompt("3+7*4-2");
  // A wrong answer after sound steps: error at the answer line.
  CheckResult result = Check(problem, "3+7=0\n0*4=0\n0-2=8\n#4");
  EXPECT_EQ(result.first_error_step, 3);
  EXPECT_FALSE(result.answer_correct);
  EXPECT_EQ(result.trace_class, TraceClass::kWrong);
  // The full value instead of the value mod 5.
  EXPECT_EQ(Check(problem, "3+7=0\n0*4=0\n0-2=8\n#8").first_error_step, 3);
  // Garbled answer lines.
  for (const char* answer :
       {"#", "3", "# 3", "#03", "#3#", "##3", "#-3", "#+3", "3#"}) {
    result = Check(problem, absl::StrCat("3+7=0\n0*4=0\n0-2=8\n", answer));
    EXPECT_EQ(result.first_error_step, 3) << answer;
    EXPECT_FALSE(result.answer_correct) << answer;
  }
  // An extra line after the answer: error there; the stated final answer is
  // the last line.
  result = Check(problem, "3+7=0\n0*4=0\n0-2=8\n#3\n#3");
  EXPECT_EQ(result.first_error_step, 4);
  EXPECT_TRUE(result.answer_correct);
  EXPECT_EQ(result.num_steps, 5);
  EXPECT_EQ(result.trace_class, TraceClass::kFlawedPositive);
  result = Check(problem, "3+7=0\n0*4=0\n0-2=8\n#3\nso the answer is 3");
  EXPECT_EQ(result.first_error_step, 4);
  EXPECT_FALSE(result.answer_correct);
  // Answer follows from the last STATED result: after a slip to 7 the
  // consistent answer #2 is not an error, but the answer is wrong.
  result = Check(problem, "3+7=0\n0*4=0\n0-2=7\n#2");
  EXPECT_EQ(result.first_error_step, 2);
  EXPECT_FALSE(result.answer_correct);
  // ...and the answer that does not follow from the slip is right by the
  // ground truth but still flawed at the slip.
  result = Check(problem, "3+7=0\n0*4=0\n0-2=7\n#3");
  EXPECT_EQ(result.first_error_step, 2);
  EXPECT_TRUE(result.answer_correct);
}

TEST_F(CheckerTest, FormattingRules) {
  const Problem problem = *ParsePrompt("3+7*4-2");
  const std::string good = "3+7=0\n0*4=0\n0-2=8\n#3";
  // One trailing newline is fine.
  EXPECT_EQ(Check(problem, good + "\n").trace_class, TraceClass::kSound);
  // Two make an empty extra line: error at 4, and no final answer.
  CheckResult result = Check(problem, good + "\n\n");
  EXPECT_EQ(result.first_error_step, 4);
  EXPECT_FALSE(result.answer_correct);
  EXPECT_EQ(result.num_steps, 5);
  // Whitespace, CR, leading zeros, signs: the line does not parse.
  for (const char* bad_first_line :
       {"3+7=0 ", " 3+7=0", "3 + 7 = 0", "3+7=0\r", "03+7=0", "3+07=0",
        "3+7=00", "3+7=+0", "+3+7=0", "3+7=-0", "3+7", "3+7=", "=0", "3+7=0=0",
        "", "3+7=10", "3+7=-10"}) {
    std::vector<std::string> lines = Lines(good);
    lines[0] = bad_first_line;
    result = Check(problem, Join(lines));
    EXPECT_EQ(result.first_error_step, 0) << "\"" << bad_first_line << "\"";
    EXPECT_TRUE(result.answer_correct);  // the answer line is intact
  }
  // An empty response, or just a newline: missing step 0, wrong.
  for (const char* empty : {"", "\n"}) {
    result = Check(problem, empty);
    EXPECT_EQ(result.first_error_step, 0);
    EXPECT_FALSE(result.answer_correct);
    EXPECT_EQ(result.num_steps, 4);
    EXPECT_EQ(result.trace_class, TraceClass::kWrong);
  }
  // Truncated mid-trace: the first missing step.
  EXPECT_EQ(Check(problem, "3+7=0\n0*4=0").first_error_step, 2);
  EXPECT_EQ(Check(problem, "3+7=0\n0*4=0\n").first_error_step, 2);
}

TEST(CheckerExactTest, NegativeValuesAndOverflow) {
  ArithOptions options{1, 6, 9, 0, 0};
  ASSERT_OK_AND_ASSIGN(Checker checker, Checker::Create(options));
  const Problem problem = *ParsePrompt("1-5*3");
  EXPECT_EQ(checker.Check(problem, "1-5=-4\n-4*3=-12\n#-12").trace_class,
            TraceClass::kSound);
  EXPECT_EQ(checker.Check(problem, "1-5=-4\n-4*3=-12\n#12").first_error_step,
            2);
  EXPECT_EQ(checker.Check(problem, "1-5=4\n4*3=12\n#12").first_error_step, 0);
  // A stated value that overflows int64 does not parse; a product that
  // would overflow is never right.
  const Problem big = *ParsePrompt("9223372036854775807*2");
  CheckResult result = checker.Check(big, "9223372036854775807*2=-2\n#-2");
  EXPECT_EQ(result.first_error_step, 0);
  EXPECT_FALSE(result.answer_correct);
  EXPECT_EQ(checker.Check(*ParsePrompt("9-9"), "9-9=0\n#0").trace_class,
            TraceClass::kSound);
  // INT64_MIN round-trips through the numeral parser.
  const Problem low = *ParsePrompt("0-9223372036854775807-1");
  EXPECT_EQ(checker
                .Check(low,
                       "0-9223372036854775807=-9223372036854775807\n"
                       "-9223372036854775807-1=-9223372036854775808\n"
                       "#-9223372036854775808")
                .trace_class,
            TraceClass::kSound);
}

TEST(CheckerPromptTextTest, ParsesThePromptOrFails) {
  ASSERT_OK_AND_ASSIGN(Checker checker, Checker::Create(ArithOptions()));
  EXPECT_THAT(checker.CheckPromptText("3+7*", "#3"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(CheckResult result,
                       checker.CheckPromptText("3+7*4-2", "3+7=0\n#3"));
  EXPECT_EQ(result.first_error_step, 1);
  EXPECT_TRUE(result.answer_correct);
  EXPECT_EQ(result.trace_class, TraceClass::kFlawedPositive);
}

TEST(CheckerPromptTextTest, ClassNames) {
  EXPECT_EQ(TraceClassName(TraceClass::kSound), "sound");
  EXPECT_EQ(TraceClassName(TraceClass::kFlawedPositive), "flawed_positive");
  EXPECT_EQ(TraceClassName(TraceClass::kWrong), "wrong");
}

}  // namespace
}  // namespace fapo::tasks::arith
