// The exact step checker of the arith task: the `rule` GenRM's ground truth
// and the RLVR answer check, run on every rollout.
//
// NOTE [arith checking rules]
// A response is read as lines: one trailing '\n' is dropped (a response may
// or may not end with a newline), then the text is split on '\n'; an empty
// response (or "\n") has no lines. With n operations, line i < n must be
// `lhs<op>rhs=result` and line n the answer line `#d`. Everything else is
// strict: no whitespace (not even '\r'), canonical numerals only (NOTE
// [canonical numerals] in numerals.h), nothing before or after.
//
// Step i (0-based) is wrong when:
//   - i < n and line i does not parse as a step, its lhs is not the previous
//     line's stated result (line 0: not the first operand as written), its
//     operator or right operand differs from operation i, or its result is
//     not lhs<op>rhs (reduced into [0, value_modulus) with a modulus; with
//     exact arithmetic a result that overflows int64 can never be right);
//   - i == n and line n is not an answer line whose value is the answer of
//     the last stated result (AnswerOf(line n-1's result)) -- so in a trace
//     whose later steps follow consistently from a slip, only the slip is
//     wrong, and the answer line is not;
//   - a line is missing: the response has L < n + 1 lines and no earlier
//     step is wrong; the error is at index L (the first missing step);
//   - a line is extra: line n + 1 exists and no earlier step is wrong. (An
//     extra operation line before the answer is wrong at its own index,
//     since line n must be the answer line.)
// The first wrong step is first_error_step (-1 when none).
//
// The stated final answer is the LAST line, when it is an answer line `#d`;
// answer_correct iff it exists and equals the ground truth. So trailing text
// after the answer makes the answer missing (wrong), while a repeated answer
// line is an extra step with a right answer (a flawed positive).
//
// Classes: sound (answer correct, no wrong step), flawed_positive (answer
// correct, some step wrong), wrong (answer not correct). A response with no
// wrong step always has a correct answer, so these three cover everything.
//
// num_steps = max(n + 1, L): the operations plus the answer line, or the
// response's line count when it has more; so first_error_step, when not -1,
// is always in [0, num_steps).
#ifndef FAPO_TASKS_ARITH_CHECKER_H_
#define FAPO_TASKS_ARITH_CHECKER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasks/arith/problem.h"

namespace fapo::tasks::arith {

enum class TraceClass { kSound, kFlawedPositive, kWrong };

// "sound", "flawed_positive", "wrong".
absl::string_view TraceClassName(TraceClass trace_class);

struct CheckResult {
  // Index of the first wrong step (the answer line is step n); -1 if none.
  int first_error_step = -1;
  // The stated final answer equals the ground truth.
  bool answer_correct = false;
  // max(operations + 1, lines in the response).
  int num_steps = 0;
  TraceClass trace_class = TraceClass::kWrong;
};

bool operator==(const CheckResult& a, const CheckResult& b);

// Checks responses under one ArithOptions (only the two moduli matter to the
// verdict). Immutable after Create: thread-safe, cheap to copy. Check does
// not allocate.
class Checker {
 public:
  // InvalidArgument when ValidateArithOptions fails.
  static absl::StatusOr<Checker> Create(const ArithOptions& options);

  // The verdict on `response` for `problem` (NOTE [arith checking rules]).
  // Any Problem is accepted, including ones the generator would not make;
  // when its exact evaluation overflows int64 no answer is correct.
  CheckResult Check(const Problem& problem, absl::string_view response) const;

  // Check(problem, response).answer_correct, reading only the last line:
  // what the outcome reward needs, at a cost independent of the length.
  bool AnswerCorrect(const Problem& problem, absl::string_view response) const;

  // Same as Check, with the problem given as prompt text. InvalidArgument when
  // ParsePrompt rejects `prompt`.
  absl::StatusOr<CheckResult> CheckPromptText(absl::string_view prompt,
                                              absl::string_view response) const;

  const ArithOptions& options() const { return options_; }

 private:
  explicit Checker(const ArithOptions& options) : options_(options) {}

  ArithOptions options_;
};

}  // namespace fapo::tasks::arith

#endif  // FAPO_TASKS_ARITH_CHECKER_H_
