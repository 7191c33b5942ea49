#include "tasks/math/verifier.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::tasks::math {
namespace {

using ::testing::Eq;
using ::testing::Optional;

struct AnswerPair {
  const char* predicted;
  const char* ground_truth;
  bool equal;
  const char* why;
};

// Every normalisation rule in verifier.h has at least one equal pair, and
// near misses that must stay unequal sit beside them.
const std::vector<AnswerPair>& AnswerTable() {
  static const auto* const kTable = new std::vector<AnswerPair>{
      // ---- equal ----
      {"34", "34", true, "identical"},
      {"  34\n", "34", true, "surrounding whitespace"},
      {R"(\left( 1, 2 \right))", "(1,2)", true, R"(\left \right, spaces)"},
      {R"(5\quad)", "5", true, R"(\quad)"},
      {R"(\!1\,000\;\:)", "1000", true, R"(\! \, \; \: spacing)"},
      {R"(\dfrac{3}{4})", R"(\frac{3}{4})", true, R"(\dfrac)"},
      {R"(\tfrac{3}{4})", "0.75", true, R"(\tfrac vs decimal)"},
      {R"(\frac12)", R"(\frac{1}{2})", true, R"(\frac12 shorthand)"},
      {R"(\frac1{2})", "1/2", true, R"(\frac1{2} shorthand)"},
      {R"(\frac{\pi}{2})", R"(\frac\pi2)", true, "shorthand, non-numeric"},
      {R"(\text{5})", "5", true, R"(\text wrapper)"},
      {R"(\textbf{12})", "12", true, R"(\textbf wrapper)"},
      {R"(\mathrm{e})", "e", true, R"(\mathrm wrapper)"},
      {R"(\mbox{7})", "7", true, R"(\mbox wrapper)"},
      {"$42$", "42", true, "$...$"},
      {R"(\(42\))", "42", true, R"(\( \))"},
      {R"(\[42\])", "42", true, R"(\[ \])"},
      {"42.", "42", true, "trailing period"},
      {"3.0", "3", true, "trailing .0"},
      {"3.00", "3", true, "trailing .00"},
      {"50%", "50", true, "percent sign"},
      {R"(50\%)", "50", true, R"(\%)"},
      {R"(30^\circ)", "30", true, R"(^\circ)"},
      {R"(30^{\circ})", "30", true, R"(^{\circ})"},
      {"30\xC2\xB0", "30", true, "U+00B0 degree sign"},
      {R"(\$5)", "5", true, R"(\$)"},
      {R"(\$1,000.00)", "1000", true, "currency, thousands, .00"},
      {"1,000", "1000", true, "thousands separator"},
      {"1,234,567", "1234567", true, "two thousands separators"},
      {"1{,}000", "1000", true, "{,} separator"},
      {"x = 3", "3", true, "assignment with spaces"},
      {"x=3", "3", true, "assignment"},
      {R"(x_1 = \frac{1}{2})", "0.5", true, "subscripted variable"},
      {R"(\theta = 30^\circ)", "30", true, "Greek variable, degrees"},
      {"y = 2x + 1", "2x+1", true, "assignment of an expression"},
      {"\xE2\x88\x92"
       "5",
       "-5", true, "U+2212 minus"},
      {R"(2\cdot3)", "2*3", true, R"(\cdot -> *)"},
      {R"(2\times 3)", "2 * 3", true, R"(\times -> *)"},
      {"1/2", "0.5", true, "fraction vs decimal"},
      {".5", "1/2", true, "leading-dot decimal"},
      {R"(\frac{2}{4})", R"(\frac{1}{2})", true, "unreduced fraction"},
      {R"(-\frac{1}{2})", R"(\frac{-1}{2})", true, "sign outside vs inside"},
      {"-0.5", R"(-\frac12)", true, "negative decimal vs fraction"},
      {R"(\frac{6}{-4})", "-1.5", true, "negative denominator"},
      {"0.50", R"(\frac{1}{2})", true, "trailing zero decimal"},
      {"+3", "3", true, "explicit plus"},
      {"007", "7", true, "leading zeros"},
      {R"(\sqrt{2})", R"(\sqrt2)", true, R"(\sqrt2 shorthand)"},
      {R"(\sqrt[3]{2})", R"(\sqrt[3]2)", true, R"(\sqrt[n] shorthand)"},
      {R"(\dfrac{\sqrt{3}}{2})", R"(\frac{\sqrt3}{2})", true,
       "nested shorthand"},
      {"x^2", "x^{2}", true, "braced exponent"},
      {"(0,1]", "( 0 , 1 ]", true, "interval, spaces"},
      {"(1, 2)", "(1,2)", true, "tuple, spaces"},
      {"(0.5, 1)", R"((\frac12, 1.0))", true, "tuple elements as numbers"},
      {R"(\left[ 2, 5 \right))", "[2,5)", true, "half-open interval"},
      {R"(\pi)", "\xCF\x80", true, "U+03C0 pi"},
      {R"(\infty)", "\xE2\x88\x9E", true, "U+221E infinity"},
      {R"(\boxed{34})", "34", true, "boxed ground truth"},
      {"34", R"($\boxed{34}$)", true, "boxed ground truth in $"},
      {R"(\text{(A)})", "(A)", true, "wrapped choice"},
      {R"(x \le 3)", R"(x\leq3)", true, R"(\le alias)"},
      {R"(\{1, 2\})", R"(\{1,2\})", true, "set, spaces"},
      {"10", "{10}", true, "whole-answer brace group"},

      // ---- unequal ----
      {"1/2", "2", false, "fraction vs its denominator"},
      {"0.5", "0.51", false, "close decimals"},
      {"(1,2)", "(2,1)", false, "tuple order"},
      {"10%", "0.1", false, "percent is not scaled (documented)"},
      {"1,000", "1.000", false, "separator vs decimal point"},
      {"-1", "1", false, "sign"},
      {R"(\frac{1}{3})", "0.33", false, "rounded decimal"},
      {"0.333", R"(\frac{1}{3})", false, "rounded decimal, other way"},
      {"x=3", "y=4", false, "different values"},
      {"x = 3", "x = -3", false, "different signs under assignment"},
      {"", "0", false, "empty vs zero"},
      {"", "", false, "empty equals nothing"},
      {R"(\boxed{})", R"(\boxed{})", false, "empty box equals nothing"},
      {"3", "33", false, "prefix"},
      {"(0,1]", "(0,1)", false, "interval closedness"},
      {"[0,1]", "(0,1)", false, "interval brackets"},
      {R"(2\sqrt{2})", R"(\sqrt{8})", false,
       "symbolic equivalence not handled (documented)"},
      {R"(\sqrt{2})", R"(\sqrt{3})", false, "different radicands"},
      {"x^2", "x^3", false, "different exponents"},
      {R"(\frac{1}{2})", R"(\frac{1}{3})", false, "different fractions"},
      {R"(\pi)", "3.14", false, "pi vs approximation"},
      {"1e3", "1000", false, "scientific notation not handled (documented)"},
      {R"(5\text{ cm})", "5", false, "units not stripped (documented)"},
      {"A", "B", false, "different letters"},
      {R"(\infty)", R"(-\infty)", false, "signed infinity"},
      {R"(x \le 3)", R"(x \ge 3)", false, "inequality direction"},
      {R"(x \le 3)", "3", false, "an inequality is not an assignment"},
      {"1,2", "12", false, "list vs number"},
      {"1,2", "2,1", false, "lists are ordered (documented)"},
      {"0.1", "0.01", false, "decimal places"},
      {"(1,2,3)", "(1,2)", false, "tuple length"},
      {R"(-\frac{1}{2})", R"(\frac{1}{2})", false, "negated fraction"},
      {"123456789012345678901234567890", "123456789012345678901234567891",
       false, "overflowing integers compare as strings"},
      {"0.99999999999999999999", "1", false, "too precise for int64: string"},
      {R"(\frac{1}{2}x)", R"(\frac{x}{2})", false,
       "coefficient forms not handled (documented)"},
      {"1/0", "2/0", false, "division by zero stays a string"},
      {"2", "2/0", false, "zero denominator is not a number"},
      {R"(\mathbb{R})", "R", false, "blackboard bold is not a wrapper"},
      {"x=1,y=2", "1,2", false, "two assignments are not stripped"},
      {"3", "3=x", false, "right-hand variable is not an assignment"},
  };
  return *kTable;
}

TEST(AnswersEqualTest, TableHasEnoughOfEachKind) {
  int equal = 0;
  int unequal = 0;
  for (const AnswerPair& pair : AnswerTable()) (pair.equal ? equal : unequal)++;
  EXPECT_GE(equal, 25);
  EXPECT_GE(unequal, 25);
  EXPECT_GE(equal + unequal, 60);
}

TEST(AnswersEqualTest, Table) {
  for (const AnswerPair& pair : AnswerTable()) {
    EXPECT_EQ(AnswersEqual(pair.predicted, pair.ground_truth), pair.equal)
        << pair.why << ": \"" << pair.predicted << "\" vs \""
        << pair.ground_truth << "\" normalise to \""
        << NormalizeAnswer(pair.predicted) << "\" and \""
        << NormalizeAnswer(pair.ground_truth) << "\"";
  }
}

TEST(AnswersEqualTest, SymmetricOnTable) {
  for (const AnswerPair& pair : AnswerTable()) {
    EXPECT_EQ(AnswersEqual(pair.predicted, pair.ground_truth),
              AnswersEqual(pair.ground_truth, pair.predicted))
        << pair.why;
  }
}

TEST(AnswersEqualTest, ReflexiveExceptForEmpty) {
  for (const AnswerPair& pair : AnswerTable()) {
    for (const char* answer : {pair.predicted, pair.ground_truth}) {
      EXPECT_EQ(AnswersEqual(answer, answer), !NormalizeAnswer(answer).empty())
          << answer;
    }
  }
}

TEST(NormalizeAnswerTest, IdempotentOnTable) {
  for (const AnswerPair& pair : AnswerTable()) {
    for (const char* answer : {pair.predicted, pair.ground_truth}) {
      const std::string once = NormalizeAnswer(answer);
      EXPECT_EQ(NormalizeAnswer(once), once) << answer;
    }
  }
}

TEST(NormalizeAnswerTest, CanonicalForms) {
  EXPECT_EQ(NormalizeAnswer("0.5"), "1/2");
  EXPECT_EQ(NormalizeAnswer(R"(\dfrac12)"), "1/2");
  EXPECT_EQ(NormalizeAnswer(R"(x = -\frac{6}{4}.)"), "-3/2");
  EXPECT_EQ(NormalizeAnswer("3.000"), "3");
  EXPECT_EQ(NormalizeAnswer("-0"), "0");
  EXPECT_EQ(NormalizeAnswer(R"(\left( 1,\ 2 \right))"), "(1,2)");
  EXPECT_EQ(NormalizeAnswer(R"(\frac{\pi}{2})"), R"(\frac{\pi}{2})");
  EXPECT_EQ(NormalizeAnswer(R"(\pi r^2)"), R"(\pi r^{2})");
  EXPECT_EQ(NormalizeAnswer(R"(\sqrt 2)"), R"(\sqrt{2})");
  EXPECT_EQ(NormalizeAnswer(R"(\text{ cm})"), "cm");
  EXPECT_EQ(NormalizeAnswer("(0.25, [1/2, 3.0))"), "(1/4,[1/2,3))");
  EXPECT_EQ(NormalizeAnswer(R"(\left.\frac{x}{2}\right|)"), R"(\frac{x}{2}|)");
  EXPECT_EQ(NormalizeAnswer(R"(a \rightarrow b)"), R"(a\rightarrow b)");
  EXPECT_EQ(NormalizeAnswer(""), "");
  EXPECT_EQ(NormalizeAnswer(" $ $ . "), "");
}

TEST(NormalizeAnswerTest, Int64Edges) {
  // The largest int64 parses; one more does not and stays a string.
  EXPECT_EQ(NormalizeAnswer("9223372036854775807.0"), "9223372036854775807");
  EXPECT_EQ(NormalizeAnswer("9223372036854775808.0"), "9223372036854775808.0");
  EXPECT_EQ(NormalizeAnswer("-9223372036854775807"), "-9223372036854775807");
  // Trailing zeros never overflow.
  EXPECT_EQ(NormalizeAnswer("0.5000000000000000000000000000"), "1/2");
  // Cross-reduction keeps representable results representable.
  EXPECT_EQ(
      NormalizeAnswer(R"(\frac{4611686018427387904}{9223372036854775806})"),
      "2305843009213693952/4611686018427387903");
  EXPECT_EQ(NormalizeAnswer(R"(\frac{\frac{1}{2}}{\frac{3}{4}})"), "2/3");
}

struct ExtractionCase {
  const char* response;
  std::optional<std::string> answer;
  const char* why;
};

TEST(ExtractFinalAnswerTest, Table) {
  const std::vector<ExtractionCase> cases = {
      {R"(The answer is \boxed{42}.)", "42", "simple"},
      {R"(First \boxed{1}, then \boxed{2}.)", "2", "last box wins"},
      {R"(\boxed{\frac{1}{2}})", R"(\frac{1}{2})", "nested braces"},
      {R"(\boxed{{a}{b{c}}})", "{a}{b{c}}", "deeper nesting"},
      {R"(\fbox{7})", "7", R"(\fbox)"},
      {R"(\boxed{3} and then \fbox{4})", "4", "last of both commands"},
      {R"(\fbox{3} and then \boxed{4})", "4", "last of both, other order"},
      {"no box here", std::nullopt, "no box"},
      {"Work.\nAnswer: 34", "34", "DAPO answer line"},
      {"so...\n**Answer:** $\\frac{1}{2}$\n", "$\\frac{1}{2}$",
       "markdown answer line"},
      {"answer : 7\nThe answer: 8", "8", "last answer line wins"},
      {"Answer: 3\n\\boxed{4}", "4", "a box wins over an answer line"},
      {"Answer:\n", std::nullopt, "empty answer line"},
      {"the answer is 5", std::nullopt, "no colon, no answer"},
      {"", std::nullopt, "empty response"},
      {R"(\boxed{5)", std::nullopt, "unclosed box"},
      {R"(\boxed{3} but finally \boxed{4)", std::nullopt,
       "the last box is unclosed"},
      {R"(\boxed{3 oops \boxed{4})", "4", "an unclosed box before a good one"},
      {R"(\boxed 5)", "5", "bare token"},
      {R"(so $\boxed 5$.)", "5", "bare token ends at $"},
      {R"(\boxed 12 apples)", "12", "bare token ends at whitespace"},
      {R"(\boxed{\boxed{3}})", R"(\boxed{3})", "outer box of nested boxes"},
      {R"(\boxed{\{1,2\}})", R"(\{1,2\})", "escaped braces do not count"},
      {R"(\boxedx{3})", std::nullopt, "not the boxed command"},
      {R"(\boxed{})", std::nullopt, "empty box"},
      {R"(\boxed{   })", std::nullopt, "blank box"},
      {R"(\boxed {12})", "12", "space before the brace"},
      {R"(\boxed{ 7 })", "7", "trimmed"},
      {R"(\boxed)", std::nullopt, "command at the very end"},
      {R"(\boxed{a}}} \boxed{b})", "b", "stray closers"},
  };
  for (const ExtractionCase& c : cases) {
    EXPECT_EQ(ExtractFinalAnswer(c.response), c.answer)
        << c.why << ": " << c.response;
  }
}

TEST(IsCorrectResponseTest, ExtractsThenCompares) {
  EXPECT_TRUE(IsCorrectResponse(
      R"(Half of 1 is \(\frac12\). So the answer is $\boxed{0.5}$.)", "1/2"));
  EXPECT_TRUE(IsCorrectResponse(R"(... \boxed{\$1,000})", R"(\boxed{1000})"));
  EXPECT_FALSE(IsCorrectResponse("The answer is 34.", "34"));
  EXPECT_FALSE(IsCorrectResponse(R"(\boxed{34} no, \boxed{35})", "34"));
  EXPECT_FALSE(IsCorrectResponse(R"(\boxed{34} no, \boxed{3)", "34"));
  EXPECT_THAT(ExtractFinalAnswer(R"(\boxed{\boxed{3}})"),
              Optional(Eq(R"(\boxed{3})")));
  EXPECT_TRUE(IsCorrectResponse(R"(\boxed{\boxed{3}})", "3"));
}

}  // namespace
}  // namespace fapo::tasks::math
