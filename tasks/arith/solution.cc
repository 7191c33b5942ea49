#include "tasks/arith/solution.h"

#include "absl/strings/str_cat.h"

namespace fapo::tasks::arith {

std::string FormatTrace(const Problem& problem, const Trace& trace) {
  std::string text;
  // Room for short traces without reallocation: ~8 characters a line.
  text.reserve(8 * (problem.operations.size() + 1));
  int64_t lhs = problem.first_operand;
  for (size_t i = 0; i < problem.operations.size(); ++i) {
    const Operation& operation = problem.operations[i];
    absl::StrAppend(&text, lhs);
    text.push_back(static_cast<char>(operation.op));
    absl::StrAppend(&text, operation.operand, "=", trace.stated_results[i],
                    "\n");
    lhs = trace.stated_results[i];
  }
  absl::StrAppend(&text, "#", trace.stated_answer);
  return text;
}

absl::StatusOr<Trace> CorrectTrace(const Problem& problem,
                                   const ArithOptions& options) {
  Trace trace;
  trace.stated_results.reserve(problem.operations.size());
  int64_t value = problem.first_operand;
  for (size_t i = 0; i < problem.operations.size(); ++i) {
    const Operation& operation = problem.operations[i];
    const std::optional<int64_t> next = ApplyOperator(
        value, operation.op, operation.operand, options.value_modulus);
    if (!next.has_value()) {
      return absl::OutOfRangeError(absl::StrCat(
          "arith problem \"", FormatPrompt(problem),
          "\": exact arithmetic overflows int64 at operation ", i));
    }
    value = *next;
    trace.stated_results.push_back(value);
  }
  trace.stated_answer = AnswerOf(value, options.answer_modulus);
  return trace;
}

absl::StatusOr<std::string> WriteSolution(const Problem& problem,
                                          const ArithOptions& options) {
  absl::StatusOr<Trace> trace = CorrectTrace(problem, options);
  if (!trace.ok()) return trace.status();
  return FormatTrace(problem, *trace);
}

std::optional<Trace> SlippedTrace(const Problem& problem,
                                  const ArithOptions& options, int step,
                                  int64_t stated_value) {
  Trace trace;
  trace.stated_results.reserve(problem.operations.size());
  int64_t value = problem.first_operand;
  for (size_t i = 0; i < problem.operations.size(); ++i) {
    const Operation& operation = problem.operations[i];
    if (static_cast<int>(i) == step) {
      value = stated_value;
    } else {
      const std::optional<int64_t> next = ApplyOperator(
          value, operation.op, operation.operand, options.value_modulus);
      if (!next.has_value()) return std::nullopt;
      value = *next;
    }
    trace.stated_results.push_back(value);
  }
  trace.stated_answer = AnswerOf(value, options.answer_modulus);
  return trace;
}

bool HalfSlipsKeepAnswer(const ArithOptions& options) {
  if (options.answer_modulus <= 0) return false;
  if (options.value_modulus == 0) return true;
  return options.answer_modulus < options.value_modulus &&
         options.value_modulus % options.answer_modulus == 0;
}

std::optional<int64_t> HalfSlipValue(int64_t value,
                                     const ArithOptions& options) {
  return ApplyOperator(value, Operator::kAdd, options.answer_modulus,
                       options.value_modulus);
}

}  // namespace fapo::tasks::arith
