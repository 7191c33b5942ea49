#include "algorithm/verdict.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::algorithm {
namespace {

constexpr VerdictStatus kOk = VerdictStatus::kOk;
constexpr VerdictStatus kUnparsable = VerdictStatus::kUnparsable;
constexpr VerdictStatus kInvalid = VerdictStatus::kInvalid;
constexpr VerdictStatus kTimeout = VerdictStatus::kTimeout;
constexpr VerdictStatus kSkipped = VerdictStatus::kSkipped;

// A realistic critique in the style of FAPO-GenRM-4B, ending in \boxed{3}.
const std::string& RealisticFlawedCritique() {
  static const std::string* const text = new std::string(
      "Let me review the solution paragraph by paragraph.\n\n"
      "**Paragraph 0**: The solution restates the problem: find all real $x$ "
      "with $x^2 - 5x + 6 = 0$ and report their sum. This is a faithful "
      "restatement, no error here.\n\n"
      "**Paragraph 1**: It factors $x^2 - 5x + 6 = (x - 2)(x - 3)$. "
      "Expanding: $x^2 - 3x - 2x + 6 = x^2 - 5x + 6$. Correct.\n\n"
      "**Paragraph 2**: It concludes $x = 2$ or $x = 3$. Correct, by the zero "
      "product property.\n\n"
      "**Paragraph 3**: It claims that \"by Vieta's formulas the product of "
      "the roots is $-6$, so the sum is $5$\". The product of the roots is "
      "$c/a = 6$, not $-6$, and the sum does not follow from the product. "
      "The final number $5$ is right, but the reasoning in this paragraph is "
      "wrong: this is the earliest error.\n\n"
      "**Paragraph 4**: It reports $5$, which matches the ground truth, but "
      "it rests on paragraph 3.\n\n"
      "The earliest error occurs in paragraph 3.\n\n"
      "\\boxed{3}");
  return *text;
}

struct ParseCase {
  const char* name;
  std::string output;
  int num_steps;
  VerdictStatus status;
  int first_error_step;
};

std::vector<ParseCase> ParseCases() {
  return {
      // Plain answers.
      {"plain", "\\boxed{3}", 5, kOk, 3},
      {"minus_one", "\\boxed{-1}", 5, kOk, -1},
      {"zero", "\\boxed{0}", 5, kOk, 0},
      {"last_step", "\\boxed{4}", 5, kOk, 4},
      {"plus_sign", "\\boxed{+2}", 5, kOk, 2},
      {"leading_zeros", "\\boxed{007}", 10, kOk, 7},
      {"negative_zero", "\\boxed{-0}", 5, kOk, 0},
      {"spaces_inside", "\\boxed{ -1 }", 5, kOk, -1},
      {"trailing_space", "\\boxed{3 }", 5, kOk, 3},
      {"space_after_sign", "\\boxed{- 1}", 5, kOk, -1},
      {"trailing_dot", "\\boxed{2.}", 5, kOk, 2},
      {"trailing_dot_zero", "\\boxed{2.0}", 5, kOk, 2},
      {"minus_one_dot", "\\boxed{-1.}", 5, kOk, -1},
      // No usable box.
      {"no_box", "The earliest error is in paragraph 3.", 5, kUnparsable, -1},
      {"empty_output", "", 5, kUnparsable, -1},
      {"empty_box", "\\boxed{}", 5, kUnparsable, -1},
      {"blank_box", "\\boxed{  }", 5, kUnparsable, -1},
      {"unclosed", "\\boxed{3", 5, kUnparsable, -1},
      {"bare_command_at_end", "so the answer is \\boxed", 5, kUnparsable, -1},
      {"decimal", "\\boxed{2.5}", 5, kUnparsable, -1},
      {"two_decimal_zeros", "\\boxed{2.00}", 5, kUnparsable, -1},
      {"exponent", "\\boxed{1e3}", 5, kUnparsable, -1},
      {"word", "\\boxed{two}", 5, kUnparsable, -1},
      {"list", "\\boxed{1, 2}", 5, kUnparsable, -1},
      {"prose", "\\boxed{paragraph 2}", 5, kUnparsable, -1},
      {"sign_only", "\\boxed{-}", 5, kUnparsable, -1},
      {"double_sign", "\\boxed{--1}", 5, kUnparsable, -1},
      {"two_groups", "\\boxed{{1}{2}}", 5, kUnparsable, -1},
      {"two_texts", "\\boxed{\\text{3}\\text{4}}", 5, kUnparsable, -1},
      {"escaped_braces", "\\boxed{\\{2\\}}", 5, kUnparsable, -1},
      {"escaped_close_leaves_unclosed", "\\boxed{1\\}", 5, kUnparsable, -1},
      {"non_ascii_digit", "\\boxed{\xD9\xA3}", 5, kUnparsable, -1},
      {"other_command_only", "\\boxedsymbol{3}", 5, kUnparsable, -1},
      // Several boxes: the last one decides.
      {"last_box_wins", "First \\boxed{1}, on reflection \\boxed{2}", 5, kOk,
       2},
      {"last_box_unparsable", "\\boxed{1} no wait \\boxed{x}", 5, kUnparsable,
       -1},
      {"last_box_unclosed", "\\boxed{2} but \\boxed{", 5, kUnparsable, -1},
      {"last_box_empty", "\\boxed{2}. Format: \\boxed{}", 5, kUnparsable, -1},
      {"other_command_after", "\\boxed{2} and \\boxedfoo{3}", 5, kOk, 2},
      {"fbox_after_boxed", "\\boxed{2} ... \\fbox{4}", 5, kOk, 4},
      // Text after the box is ignored.
      {"text_after", "\\boxed{1}. I am confident in this.", 5, kOk, 1},
      {"stray_brace_after", "\\boxed{2}}", 5, kOk, 2},
      // LaTeX dressing.
      {"text_wrapper", "\\boxed{\\text{3}}", 5, kOk, 3},
      {"text_wrapper_spaces", "\\boxed{ \\text{ -1 } }", 5, kOk, -1},
      {"group", "\\boxed{{2}}", 5, kOk, 2},
      {"deep_groups", "\\boxed{{{{{1}}}}}", 5, kOk, 1},
      {"textbf", "\\boxed{\\textbf{2}}", 5, kOk, 2},
      {"mathbf", "\\boxed{\\mathbf{2}}", 5, kOk, 2},
      {"mathrm", "\\boxed{\\mathrm{4}}", 5, kOk, 4},
      {"inner_dollars", "\\boxed{$-1$}", 5, kOk, -1},
      {"outer_dollars", "$\\boxed{0}$", 5, kOk, 0},
      {"display_math", "\\[\\boxed{1}\\]", 5, kOk, 1},
      {"inline_parens", "\\(\\boxed{2}\\)", 5, kOk, 2},
      {"nested_box", "\\boxed{\\boxed{3}}", 5, kOk, 3},
      {"fbox_in_boxed", "\\boxed{\\fbox{2}}", 5, kOk, 2},
      {"fbox", "\\fbox{1}", 5, kOk, 1},
      {"newline_before_brace", "\\boxed\n{3}", 5, kOk, 3},
      {"space_bare_token", "\\boxed 4", 5, kOk, 4},
      {"space_bare_token_dot", "The answer: \\boxed 4.", 5, kOk, 4},
      {"space_bare_token_dollar", "$\\boxed -1$", 5, kOk, -1},
      {"space_bare_token_word", "\\boxed four", 5, kUnparsable, -1},
      // Unicode minus forms.
      {"minus_sign_u2212",
       "\\boxed{\xE2\x88\x92"
       "1}",
       5, kOk, -1},
      {"en_dash_u2013",
       "\\boxed{\xE2\x80\x93"
       "1}",
       5, kOk, -1},
      {"small_hyphen_ufe63",
       "\\boxed{\xEF\xB9\xA3"
       "1}",
       5, kOk, -1},
      {"fullwidth_hyphen_uff0d",
       "\\boxed{\xEF\xBC\x8D"
       "1}",
       5, kOk, -1},
      {"unicode_minus_two",
       "\\boxed{\xE2\x88\x92"
       "2}",
       5, kInvalid, -1},
      // Out of range.
      {"index_equals_num_steps", "\\boxed{5}", 5, kInvalid, -1},
      {"index_beyond", "\\boxed{17}", 5, kInvalid, -1},
      {"minus_two", "\\boxed{-2}", 5, kInvalid, -1},
      {"int32_overflow", "\\boxed{2147483648}", 5, kInvalid, -1},
      {"huge", "\\boxed{99999999999999999999999}", 5, kInvalid, -1},
      {"huge_negative", "\\boxed{-99999999999999999999999}", 5, kInvalid, -1},
      {"huge_with_dot", "\\boxed{99999999999999999999999.0}", 5, kInvalid, -1},
      {"zero_steps_zero", "\\boxed{0}", 0, kInvalid, -1},
      {"zero_steps_minus_one", "\\boxed{-1}", 0, kOk, -1},
      {"negative_steps", "\\boxed{0}", -3, kInvalid, -1},
      // Whole critiques.
      {"realistic_flawed", RealisticFlawedCritique(), 5, kOk, 3},
      {"realistic_flawed_too_few_steps", RealisticFlawedCritique(), 3, kInvalid,
       -1},
      {"realistic_sound",
       "Paragraph 0 sets up the equation correctly.\n\nParagraph 1 solves "
       "it; I checked $2 \\cdot 4 + 3 = 11$.\n\nNo paragraph contains an "
       "error, so the index is $-1$.\n\n**Final answer:** $\\boxed{-1}$",
       2, kOk, -1},
      {"realistic_quoting_the_format",
       "The instructions ask for the index in \\boxed{}. Paragraph 1 divides "
       "by zero.\n\nTherefore the earliest error is in paragraph "
       "\\boxed{\\text{1}}.\nI hope this helps.",
       4, kOk, 1},
      {"realistic_rambling_no_answer",
       "Paragraph 0 looks fine. Paragraph 1 might be wrong, or not. I "
       "cannot decide and will stop here",
       4, kUnparsable, -1},
  };
}

TEST(ParseVerdictTest, Table) {
  const std::vector<ParseCase> cases = ParseCases();
  ASSERT_GE(cases.size(), 40u);
  for (const ParseCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ParsedVerdict verdict = ParseVerdict(c.output, c.num_steps);
    EXPECT_EQ(VerdictStatusName(verdict.status), VerdictStatusName(c.status));
    EXPECT_EQ(verdict.first_error_step, c.first_error_step);
  }
}

TEST(ParseVerdictTest, WorstCasesStayCorrect) {
  // Thousands of decoy boxes, then deep nesting around the real answer.
  std::string many_boxes;
  for (int i = 0; i < 2000; ++i) many_boxes += "\\boxed{7} \\boxedx ";
  std::string deep = "\\boxed{";
  for (int i = 0; i < 5000; ++i) deep += "{";
  deep += "2";
  for (int i = 0; i < 5000; ++i) deep += "}";
  deep += "}";
  EXPECT_EQ(ParseVerdict(many_boxes + deep, 5).first_error_step, 2);
  EXPECT_EQ(ParseVerdict(many_boxes, 8).first_error_step, 7);
  // Deep and unclosed.
  EXPECT_EQ(ParseVerdict(deep.substr(0, deep.size() - 1), 5).status,
            kUnparsable);
  // A long run of digits.
  EXPECT_EQ(ParseVerdict("\\boxed{" + std::string(100000, '9') + "}", 5).status,
            kInvalid);
}

TEST(ParseVerdictTest, RandomInputsKeepTheContract) {
  // Random soups of the characters the parser cares about: never a crash,
  // and a kOk index is always in [-1, num_steps), anything else is -1.
  const std::string pieces[] = {
      "\\boxed", "\\fbox", "\\text", "{", "}", "$", " ",  "\n", "-",
      "+",       ".",      "0",      "1", "7", "9", "\\", "x",  "\xE2\x88\x92"};
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> piece(0, std::size(pieces) - 1);
  std::uniform_int_distribution<int> length(0, 40);
  std::uniform_int_distribution<int> steps(-1, 12);
  int ok = 0;
  for (int trial = 0; trial < 50000; ++trial) {
    std::string text;
    for (int n = length(rng); n > 0; --n) text += pieces[piece(rng)];
    const int num_steps = steps(rng);
    const ParsedVerdict verdict = ParseVerdict(text, num_steps);
    if (verdict.status == kOk) {
      ++ok;
      ASSERT_GE(verdict.first_error_step, -1) << text;
      ASSERT_LT(verdict.first_error_step, std::max(num_steps, 0) + 1) << text;
      if (verdict.first_error_step >= 0) {
        ASSERT_LT(verdict.first_error_step, num_steps) << text;
      }
    } else {
      ASSERT_TRUE(verdict.status == kUnparsable || verdict.status == kInvalid)
          << text;
      ASSERT_EQ(verdict.first_error_step, -1) << text;
    }
  }
  EXPECT_GT(ok, 100);  // the soup does produce answers
}

TEST(VerdictStatusTest, NamesRoundTrip) {
  EXPECT_EQ(VerdictStatusName(kOk), "ok");
  EXPECT_EQ(VerdictStatusName(kUnparsable), "unparsable");
  EXPECT_EQ(VerdictStatusName(kInvalid), "invalid");
  EXPECT_EQ(VerdictStatusName(kTimeout), "timeout");
  EXPECT_EQ(VerdictStatusName(kSkipped), "skipped");
  EXPECT_EQ(VerdictStatusName(static_cast<VerdictStatus>(99)), "");
  for (VerdictStatus status : kAllVerdictStatuses) {
    VerdictStatus parsed = kSkipped;
    ASSERT_TRUE(ParseVerdictStatusName(VerdictStatusName(status), &parsed));
    EXPECT_EQ(parsed, status);
  }
  VerdictStatus untouched = kTimeout;
  EXPECT_FALSE(ParseVerdictStatusName("OK", &untouched));
  EXPECT_FALSE(ParseVerdictStatusName("", &untouched));
  EXPECT_EQ(untouched, kTimeout);
}

ParsedVerdict Ok(int step) { return {kOk, step}; }
constexpr ParsedVerdict kU{kUnparsable, -1};
constexpr ParsedVerdict kI{kInvalid, -1};
constexpr ParsedVerdict kT{kTimeout, -1};

TEST(MajorityVoteTest, ClearMajority) {
  const MajorityVerdict vote =
      MajorityVote(std::vector<ParsedVerdict>{Ok(2), Ok(3), Ok(2), kU, Ok(2)});
  EXPECT_EQ(vote.status, kOk);
  EXPECT_EQ(vote.first_error_step, 2);
  EXPECT_EQ(vote.num_samples, 5);
  EXPECT_EQ(vote.num_agreeing, 3);
}

TEST(MajorityVoteTest, MajorityForSoundWins) {
  const MajorityVerdict vote =
      MajorityVote(std::vector<ParsedVerdict>{Ok(-1), Ok(2), Ok(-1)});
  EXPECT_EQ(vote.first_error_step, -1);
  EXPECT_EQ(vote.num_agreeing, 2);
}

TEST(MajorityVoteTest, TieBetweenSoundAndAStepFlagsTheStep) {
  for (const std::vector<ParsedVerdict>& verdicts :
       {std::vector<ParsedVerdict>{Ok(-1), Ok(3)},
        std::vector<ParsedVerdict>{Ok(3), Ok(-1)},
        std::vector<ParsedVerdict>{Ok(-1), Ok(-1), Ok(3), Ok(3), kU}}) {
    const MajorityVerdict vote = MajorityVote(verdicts);
    EXPECT_EQ(vote.status, kOk);
    EXPECT_EQ(vote.first_error_step, 3);
    EXPECT_EQ(vote.num_agreeing, static_cast<int>(verdicts.size()) / 2);
  }
}

TEST(MajorityVoteTest, TieBetweenStepsGoesToTheEarliest) {
  const MajorityVerdict vote =
      MajorityVote(std::vector<ParsedVerdict>{Ok(4), Ok(1), Ok(4), Ok(1)});
  EXPECT_EQ(vote.first_error_step, 1);
  EXPECT_EQ(vote.num_agreeing, 2);
}

TEST(MajorityVoteTest, TieBreakDoesNotDependOnOrder) {
  std::vector<int> steps = {-1, -1, 0, 0, 3, 3};
  std::sort(steps.begin(), steps.end());
  do {
    std::vector<ParsedVerdict> verdicts;
    for (int step : steps) verdicts.push_back(Ok(step));
    const MajorityVerdict vote = MajorityVote(verdicts);
    ASSERT_EQ(vote.first_error_step, 0);
    ASSERT_EQ(vote.num_agreeing, 2);
  } while (std::next_permutation(steps.begin(), steps.end()));
}

TEST(MajorityVoteTest, OnlyOkVerdictsVote) {
  const MajorityVerdict vote =
      MajorityVote(std::vector<ParsedVerdict>{kI, kU, kI, Ok(1), kT});
  EXPECT_EQ(vote.status, kOk);
  EXPECT_EQ(vote.first_error_step, 1);
  EXPECT_EQ(vote.num_samples, 5);
  EXPECT_EQ(vote.num_agreeing, 1);
}

TEST(MajorityVoteTest, AllUnparsable) {
  const MajorityVerdict vote = MajorityVote(std::vector<ParsedVerdict>{kU, kU});
  EXPECT_EQ(vote.status, kUnparsable);
  EXPECT_EQ(vote.first_error_step, -1);
  EXPECT_EQ(vote.num_samples, 2);
  EXPECT_EQ(vote.num_agreeing, 0);
}

TEST(MajorityVoteTest, MixedInvalidAndUnparsableIsInvalid) {
  const MajorityVerdict vote =
      MajorityVote(std::vector<ParsedVerdict>{kU, kI, kU});
  EXPECT_EQ(vote.status, kInvalid);
  EXPECT_EQ(vote.first_error_step, -1);
  EXPECT_EQ(vote.num_samples, 3);
  EXPECT_EQ(vote.num_agreeing, 0);
}

TEST(MajorityVoteTest, TimeoutsAloneAreUnparsableAndEmptyHasNoSamples) {
  EXPECT_EQ(MajorityVote(std::vector<ParsedVerdict>{kT, kT}).status,
            kUnparsable);
  const MajorityVerdict empty = MajorityVote({});
  EXPECT_EQ(empty.status, kUnparsable);
  EXPECT_EQ(empty.num_samples, 0);
  EXPECT_EQ(empty.first_error_step, -1);
}

struct RewardCase {
  const char* name;
  ParsedVerdict predicted;
  int true_first_error_step;
  int num_steps;
  double reward;
};

TEST(GenrmTrainingRewardTest, Table) {
  const RewardCase cases[] = {
      {"unparsable_on_sound", kU, -1, 5, -1.0},
      {"unparsable_on_flawed", kU, 2, 5, -1.0},
      {"invalid", kI, 2, 5, -1.0},
      {"timeout", kT, -1, 5, -1.0},
      {"ok_but_out_of_range", Ok(5), 2, 5, -1.0},
      {"ok_but_below_minus_one", Ok(-3), -1, 5, -1.0},
      {"sound_called_sound", Ok(-1), -1, 5, 1.0},
      {"sound_called_flawed", Ok(2), -1, 5, -1.0},
      {"flawed_called_sound", Ok(-1), 2, 5, -1.0},
      {"flawed_exact_step", Ok(2), 2, 5, 1.0},
      {"flawed_two_late", Ok(4), 2, 5, 0.6},
      {"flawed_two_early", Ok(0), 2, 5, 0.6},
      {"flawed_far", Ok(9), 0, 10, 0.1},
      {"one_step_exact", Ok(0), 0, 1, 1.0},
  };
  for (const RewardCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_DOUBLE_EQ(
        GenrmTrainingReward(c.predicted, c.true_first_error_step, c.num_steps),
        c.reward);
  }
}

TEST(GenrmTrainingRewardTest, ProcessTermStaysWithinMinusOneAndZero) {
  for (int num_steps = 1; num_steps <= 20; ++num_steps) {
    for (int truth = 0; truth < num_steps; ++truth) {
      for (int predicted = 0; predicted < num_steps; ++predicted) {
        const double reward =
            GenrmTrainingReward(Ok(predicted), truth, num_steps);
        const double process = reward - 1.0;  // R_outcome is +1 here
        ASSERT_LE(process, 0.0);
        ASSERT_GE(process, -1.0);
        ASSERT_NEAR(
            process,
            -static_cast<double>(std::abs(predicted - truth)) / num_steps,
            1e-12);
      }
    }
  }
}

}  // namespace
}  // namespace fapo::algorithm
