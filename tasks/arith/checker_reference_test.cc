// The checker against an independent reference on 100,000 random traces.
//
// The reference below shares no parsing or arithmetic code with checker.cc:
// it splits the response into a vector of lines, parses every line fully
// into a (lhs, op, rhs, result) record or an answer with absl::SimpleAtoi
// (canonical form checked by printing the value back), evaluates with
// __int128, and only then compares against the problem, line by line.
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/checker.h"
#include "tasks/arith/problem.h"
#include "tasks/arith/random.h"
#include "tasks/arith/solution.h"

namespace fapo::tasks::arith {
namespace {

// ---------------------------------------------------------------------------
// The reference checker.

struct ParsedLine {
  enum class Type { kStep, kAnswer, kGarbage } type = Type::kGarbage;
  int64_t lhs = 0;
  char op = 0;
  int64_t rhs = 0;
  int64_t result = 0;
  int64_t answer = 0;
};

// A canonical integer: SimpleAtoi accepts it and printing gives it back.
bool ParseNumber(const std::string& text, bool allow_negative, int64_t* value) {
  if (text.empty()) return false;
  if (!absl::SimpleAtoi(text, value)) return false;
  if (absl::StrCat(*value) != text) return false;
  return allow_negative || *value >= 0;
}

ParsedLine ParseLine(const std::string& line) {
  ParsedLine parsed;
  if (!line.empty() && line[0] == '#') {
    if (ParseNumber(line.substr(1), true, &parsed.answer)) {
      parsed.type = ParsedLine::Type::kAnswer;
    }
    return parsed;
  }
  const size_t equals = line.find('=');
  if (equals == std::string::npos) return parsed;
  const std::string left = line.substr(0, equals);
  const std::string right = line.substr(equals + 1);
  // The operator is the first + - * after the lhs's optional sign.
  const size_t op_at = left.find_first_of("+-*", 1);
  if (op_at == std::string::npos) return parsed;
  if (!ParseNumber(left.substr(0, op_at), true, &parsed.lhs)) return parsed;
  if (!ParseNumber(left.substr(op_at + 1), false, &parsed.rhs)) return parsed;
  if (!ParseNumber(right, true, &parsed.result)) return parsed;
  parsed.op = left[op_at];
  parsed.type = ParsedLine::Type::kStep;
  return parsed;
}

std::optional<int64_t> ReferenceApply(int64_t lhs, char op, int64_t rhs,
                                      int64_t modulus) {
  __int128 a = lhs, b = rhs, r = 0;
  if (op == '+') r = a + b;
  if (op == '-') r = a - b;
  if (op == '*') r = a * b;
  if (modulus > 0)
    return static_cast<int64_t>(((r % modulus) + modulus) % modulus);
  if (r > INT64_MAX || r < INT64_MIN) return std::nullopt;
  return static_cast<int64_t>(r);
}

int64_t ReferenceAnswer(int64_t value, int64_t modulus) {
  return modulus > 0 ? ((value % modulus) + modulus) % modulus : value;
}

CheckResult ReferenceCheck(const Problem& problem, std::string response,
                           const ArithOptions& options) {
  if (!response.empty() && response.back() == '\n') response.pop_back();
  std::vector<std::string> lines;
  if (!response.empty()) lines = absl::StrSplit(response, '\n');
  std::vector<ParsedLine> parsed;
  for (const std::string& line : lines) parsed.push_back(ParseLine(line));

  const int n = static_cast<int>(problem.operations.size());
  const int num_lines = static_cast<int>(lines.size());
  CheckResult result;
  result.num_steps = std::max(n + 1, num_lines);
  for (int i = 0; i < result.num_steps; ++i) {
    if (i >= num_lines || i > n) {
      result.first_error_step = i;  // missing, or extra
      break;
    }
    const int64_t previous =
        i == 0 ? problem.first_operand : parsed[i - 1].result;
    const ParsedLine& line = parsed[i];
    if (i < n) {
      const Operation& operation = problem.operations[i];
      const std::optional<int64_t> expected =
          ReferenceApply(previous, static_cast<char>(operation.op),
                         operation.operand, options.value_modulus);
      if (line.type != ParsedLine::Type::kStep || line.lhs != previous ||
          line.op != static_cast<char>(operation.op) ||
          line.rhs != operation.operand || !expected.has_value() ||
          line.result != *expected) {
        result.first_error_step = i;
        break;
      }
    } else if (line.type != ParsedLine::Type::kAnswer ||
               line.answer !=
                   ReferenceAnswer(previous, options.answer_modulus)) {
      result.first_error_step = i;
      break;
    }
  }
  std::optional<int64_t> truth = problem.first_operand;
  for (const Operation& operation : problem.operations) {
    if (truth.has_value()) {
      truth = ReferenceApply(*truth, static_cast<char>(operation.op),
                             operation.operand, options.value_modulus);
    }
  }
  result.answer_correct =
      num_lines > 0 && parsed.back().type == ParsedLine::Type::kAnswer &&
      truth.has_value() &&
      parsed.back().answer == ReferenceAnswer(*truth, options.answer_modulus);
  result.trace_class = !result.answer_correct ? TraceClass::kWrong
                       : result.first_error_step < 0
                           ? TraceClass::kSound
                           : TraceClass::kFlawedPositive;
  return result;
}

// ---------------------------------------------------------------------------
// Random traces.

class TraceMaker {
 public:
  TraceMaker(const ArithOptions& options, uint64_t seed)
      : options_(options), rng_(seed) {}

  int64_t Int(int64_t low, int64_t high) {
    return UniformInRange(rng_, low, high);
  }

  // A random value near `value`, including `value` itself now and then.
  int64_t Near(int64_t value) {
    switch (Int(0, 3)) {
      case 0:
        return value;
      case 1:
        return value + Int(-3, 3);
      case 2:
        return options_.value_modulus > 0 ? Int(0, options_.value_modulus - 1)
                                          : Int(-50, 50);
      default:
        return Int(-1000, 1000);
    }
  }

  std::string Make(const Problem& problem) {
    const Trace correct = *CorrectTrace(problem, options_);
    const int n = static_cast<int>(problem.operations.size());
    Trace trace = correct;
    // Content slips first (on the stated values), then text edits.
    const int content = static_cast<int>(Int(0, 5));
    if (content == 1 && options_.answer_modulus > 0) {  // half-like slip
      const int step = static_cast<int>(Int(0, n - 1));
      const std::optional<Trace> slipped = SlippedTrace(
          problem, options_, step,
          *ApplyOperator(correct.stated_results[step], Operator::kAdd,
                         options_.answer_modulus, options_.value_modulus));
      if (slipped.has_value()) trace = *slipped;
    } else if (content == 2) {  // any slip, carried on consistently
      const int step = static_cast<int>(Int(0, n - 1));
      const std::optional<Trace> slipped = SlippedTrace(
          problem, options_, step, Near(correct.stated_results[step]));
      if (slipped.has_value()) trace = *slipped;
    } else if (content == 3) {  // a slip not carried on
      const int step = static_cast<int>(Int(0, n - 1));
      trace.stated_results[step] = Near(trace.stated_results[step]);
    } else if (content == 4) {  // a wrong answer line
      trace.stated_answer = Near(trace.stated_answer);
    }
    std::vector<std::string> lines =
        absl::StrSplit(FormatTrace(problem, trace), '\n');
    const int edits = static_cast<int>(Int(0, 2));
    for (int e = 0; e < edits; ++e) Edit(problem, &lines);
    std::string text = absl::StrJoin(lines, "\n");
    switch (Int(0, 9)) {
      case 0:
        text += "\n";
        break;
      case 1:
        text += "\n\n";
        break;
      case 2:
        text += " ";
        break;
      case 3:
        text += absl::StrCat("\n#", correct.stated_answer);
        break;
      case 4:
        Garble(&text);
        break;
      default:
        break;
    }
    if (Int(0, 199) == 0) text = Int(0, 1) ? "" : "\n";
    return text;
  }

 private:
  void Edit(const Problem& problem, std::vector<std::string>* lines) {
    if (lines->empty()) return;
    const int at = static_cast<int>(Int(0, lines->size() - 1));
    switch (Int(0, 6)) {
      case 0:  // missing step
        lines->erase(lines->begin() + at);
        break;
      case 1:  // duplicated step
        lines->insert(lines->begin() + at, (*lines)[at]);
        break;
      case 2: {  // extra step anywhere
        const int64_t v = Near(0);
        lines->insert(lines->begin() + Int(0, lines->size()),
                      absl::StrCat(v, "+0=", v));
        break;
      }
      case 3:  // swapped steps
        std::swap((*lines)[at], (*lines)[Int(0, lines->size() - 1)]);
        break;
      case 4: {  // wrong operator
        std::string& line = (*lines)[at];
        const size_t op = line.find_first_of("+-*", 1);
        if (op != std::string::npos) line[op] = "+-*"[Int(0, 2)];
        break;
      }
      case 5: {  // wrong lhs, right arithmetic for it
        if (at >= static_cast<int>(problem.operations.size())) break;
        const Operation& operation = problem.operations[at];
        const int64_t lhs = Near(0);
        const std::optional<int64_t> result = ApplyOperator(
            lhs, operation.op, operation.operand, options_.value_modulus);
        if (result.has_value()) {
          (*lines)[at] =
              absl::StrCat(lhs, std::string(1, static_cast<char>(operation.op)),
                           operation.operand, "=", *result);
        }
        break;
      }
      default:
        Garble(&(*lines)[at]);
        break;
    }
  }

  // One to three random character edits from the response alphabet plus
  // some noise.
  void Garble(std::string* text) {
    static constexpr char kAlphabet[] = "0123456789+-*=#\n \r0-";
    const int edits = static_cast<int>(Int(1, 3));
    for (int e = 0; e < edits; ++e) {
      const char c = kAlphabet[Int(0, sizeof(kAlphabet) - 2)];
      const size_t at = static_cast<size_t>(Int(0, text->size()));
      switch (Int(0, 2)) {
        case 0:
          text->insert(text->begin() + at, c);
          break;
        case 1:
          if (at < text->size()) (*text)[at] = c;
          break;
        default:
          if (at < text->size()) text->erase(at, 1);
          break;
      }
    }
  }

  ArithOptions options_;
  std::mt19937_64 rng_;
};

std::string Describe(const CheckResult& result) {
  return absl::StrCat("{first_error_step=", result.first_error_step,
                      ", answer_correct=", result.answer_correct,
                      ", num_steps=", result.num_steps,
                      ", class=", TraceClassName(result.trace_class), "}");
}

TEST(CheckerReferenceTest, AgreesOnRandomTraces) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ArithOptions> option_sets = {
      {2, 6, 9, 10, 5},   // the testbed
      {1, 4, 9, 0, 0},    // exact, full-value answers (negative values)
      {1, 5, 9, 0, 5},    // exact, answer mod 5
      {2, 6, 12, 12, 0},  // mod 12, full-value answers
      {1, 3, 20, 7, 3},   // operands above the modulus, non-divisor moduli
  };
  constexpr int kTracesPerOptions = 20000;
  int total = 0, mismatches = 0, answer_mismatches = 0;
  int classes[3] = {0, 0, 0};
  for (size_t o = 0; o < option_sets.size(); ++o) {
    const ArithOptions& options = option_sets[o];
    ASSERT_OK_AND_ASSIGN(Checker checker, Checker::Create(options));
    ASSERT_OK_AND_ASSIGN(ProblemGenerator problems,
                         ProblemGenerator::Create(options, 100 + o));
    TraceMaker maker(options, 200 + o);
    for (int i = 0; i < kTracesPerOptions; ++i) {
      const Problem problem = problems.Next();
      const std::string response = maker.Make(problem);
      const CheckResult actual = checker.Check(problem, response);
      const CheckResult expected = ReferenceCheck(problem, response, options);
      // The last-line shortcut the scheduler's verifier uses agrees too.
      if (checker.AnswerCorrect(problem, response) != expected.answer_correct) {
        ++answer_mismatches;
      }
      ++total;
      ++classes[static_cast<int>(actual.trace_class)];
      if (!(actual == expected)) {
        ++mismatches;
        if (mismatches <= 10) {
          ADD_FAILURE() << "options #" << o << " problem "
                        << FormatPrompt(problem) << " response \""
                        << absl::CEscape(response) << "\": checker "
                        << Describe(actual) << ", reference "
                        << Describe(expected);
        }
      }
    }
  }
  EXPECT_EQ(total, 100000);
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(answer_mismatches, 0);
  // The mix exercises all three classes substantially.
  EXPECT_GT(classes[static_cast<int>(TraceClass::kSound)], 10000);
  EXPECT_GT(classes[static_cast<int>(TraceClass::kFlawedPositive)], 5000);
  EXPECT_GT(classes[static_cast<int>(TraceClass::kWrong)], 20000);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_LT(seconds, 10.0);
}

TEST(CheckerReferenceTest, ReferenceItselfCatchesPlantedErrors) {
  // The reference is only useful if it is right: spot-check it on the
  // testbed example.
  const Problem problem = *ParsePrompt("3+7*4-2");
  const ArithOptions options;
  EXPECT_EQ(
      ReferenceCheck(problem, "3+7=0\n0*4=0\n0-2=8\n#3", options).trace_class,
      TraceClass::kSound);
  EXPECT_EQ(ReferenceCheck(problem, "3+7=5\n5*4=0\n0-2=8\n#3", options)
                .first_error_step,
            0);
  EXPECT_EQ(
      ReferenceCheck(problem, "3+7=0\n0*4=0\n0-2=3\n#3", options).trace_class,
      TraceClass::kFlawedPositive);
  EXPECT_EQ(
      ReferenceCheck(problem, "3+7=0\n0*4=0\n#3", options).first_error_step, 2);
}

}  // namespace
}  // namespace fapo::tasks::arith
