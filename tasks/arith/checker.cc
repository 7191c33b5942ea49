#include "tasks/arith/checker.h"

#include <algorithm>
#include <optional>

#include "tasks/arith/numerals.h"

namespace fapo::tasks::arith {
namespace {

// Whether `line` is the step `expected_lhs` `operation` = correct result; on
// success *result is the stated result (then equal to the correct one).
bool StepIsRight(absl::string_view line, int64_t expected_lhs,
                 const Operation& operation, int64_t value_modulus,
                 int64_t* result) {
  size_t pos = 0;
  int64_t lhs;
  if (!internal::ConsumeCanonicalInt(line, &pos, /*allow_negative=*/true,
                                     &lhs) ||
      lhs != expected_lhs) {
    return false;
  }
  if (pos >= line.size() || line[pos] != static_cast<char>(operation.op)) {
    return false;
  }
  ++pos;
  int64_t rhs;
  if (!internal::ConsumeCanonicalInt(line, &pos, /*allow_negative=*/false,
                                     &rhs) ||
      rhs != operation.operand) {
    return false;
  }
  if (pos >= line.size() || line[pos] != '=') return false;
  ++pos;
  int64_t stated;
  if (!internal::ConsumeCanonicalInt(line, &pos, /*allow_negative=*/true,
                                     &stated) ||
      pos != line.size()) {
    return false;
  }
  const std::optional<int64_t> correct =
      ApplyOperator(lhs, operation.op, rhs, value_modulus);
  if (!correct.has_value() || stated != *correct) return false;
  *result = stated;
  return true;
}

// The value of the answer line `#d`, or nullopt when `line` is not one.
std::optional<int64_t> ParseAnswerLine(absl::string_view line) {
  if (line.empty() || line[0] != '#') return std::nullopt;
  size_t pos = 1;
  int64_t value;
  if (!internal::ConsumeCanonicalInt(line, &pos, /*allow_negative=*/true,
                                     &value) ||
      pos != line.size()) {
    return std::nullopt;
  }
  return value;
}

// GroundTruth without a Status: no allocation on the overflow path, which
// only hand-made exact problems reach.
std::optional<int64_t> GroundTruthOrNone(const Problem& problem,
                                         const ArithOptions& options) {
  int64_t value = problem.first_operand;
  for (const Operation& operation : problem.operations) {
    const std::optional<int64_t> next = ApplyOperator(
        value, operation.op, operation.operand, options.value_modulus);
    if (!next.has_value()) return std::nullopt;
    value = *next;
  }
  return AnswerOf(value, options.answer_modulus);
}

}  // namespace

absl::string_view TraceClassName(TraceClass trace_class) {
  switch (trace_class) {
    case TraceClass::kSound:
      return "sound";
    case TraceClass::kFlawedPositive:
      return "flawed_positive";
    case TraceClass::kWrong:
      return "wrong";
  }
  return "unknown";
}

bool operator==(const CheckResult& a, const CheckResult& b) {
  return a.first_error_step == b.first_error_step &&
         a.answer_correct == b.answer_correct && a.num_steps == b.num_steps &&
         a.trace_class == b.trace_class;
}

absl::StatusOr<Checker> Checker::Create(const ArithOptions& options) {
  if (absl::Status status = ValidateArithOptions(options); !status.ok()) {
    return status;
  }
  return Checker(options);
}

CheckResult Checker::Check(const Problem& problem,
                           absl::string_view response) const {
  // NOTE [arith checking rules] in checker.h. One pass over the lines; once a
  // wrong step is found the rest are only counted, and the last one kept for
  // the answer.
  if (!response.empty() && response.back() == '\n') response.remove_suffix(1);
  const int num_ops = static_cast<int>(problem.operations.size());
  int first_error_step = -1;
  int64_t last_stated = problem.first_operand;
  int num_lines = 0;
  absl::string_view last_line;
  if (!response.empty()) {
    size_t start = 0;
    while (true) {
      const size_t newline = response.find('\n', start);
      const size_t end =
          newline == absl::string_view::npos ? response.size() : newline;
      const absl::string_view line = response.substr(start, end - start);
      if (first_error_step < 0) {
        const int i = num_lines;
        if (i < num_ops) {
          if (!StepIsRight(line, last_stated, problem.operations[i],
                           options_.value_modulus, &last_stated)) {
            first_error_step = i;
          }
        } else if (i == num_ops) {
          const std::optional<int64_t> answer = ParseAnswerLine(line);
          if (!answer.has_value() ||
              *answer != AnswerOf(last_stated, options_.answer_modulus)) {
            first_error_step = i;
          }
        } else {
          first_error_step = i;  // an extra line after the answer line
        }
      }
      last_line = line;
      ++num_lines;
      if (newline == absl::string_view::npos) break;
      start = newline + 1;
    }
  }
  if (first_error_step < 0 && num_lines < num_ops + 1) {
    first_error_step = num_lines;  // the first missing step
  }

  CheckResult result;
  result.first_error_step = first_error_step;
  result.num_steps = std::max(num_ops + 1, num_lines);
  const std::optional<int64_t> stated_answer = ParseAnswerLine(last_line);
  if (stated_answer.has_value()) {
    const std::optional<int64_t> truth = GroundTruthOrNone(problem, options_);
    result.answer_correct = truth.has_value() && *truth == *stated_answer;
  }
  if (!result.answer_correct) {
    result.trace_class = TraceClass::kWrong;
  } else {
    result.trace_class =
        first_error_step < 0 ? TraceClass::kSound : TraceClass::kFlawedPositive;
  }
  return result;
}

bool Checker::AnswerCorrect(const Problem& problem,
                            absl::string_view response) const {
  // The same answer rule as Check (NOTE [arith checking rules]), without
  // walking the steps: only the last line matters.
  if (!response.empty() && response.back() == '\n') response.remove_suffix(1);
  const size_t newline = response.rfind('\n');
  const absl::string_view last_line = newline == absl::string_view::npos
                                          ? response
                                          : response.substr(newline + 1);
  const std::optional<int64_t> stated_answer = ParseAnswerLine(last_line);
  if (!stated_answer.has_value()) return false;
  const std::optional<int64_t> truth = GroundTruthOrNone(problem, options_);
  return truth.has_value() && *truth == *stated_answer;
}

absl::StatusOr<CheckResult> Checker::CheckPromptText(
    absl::string_view prompt, absl::string_view response) const {
  absl::StatusOr<Problem> problem = ParsePrompt(prompt);
  if (!problem.ok()) return problem.status();
  return Check(*problem, response);
}

}  // namespace fapo::tasks::arith
