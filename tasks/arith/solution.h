// Written solutions of arith problems: correct ones and planted slips.
//
// A solution has ONE STEP PER LINE ('\n'-separated, no trailing newline):
// each operation as `lhs<op>rhs=result`, the first lhs being the first
// operand and every later lhs the previous line's result, then the answer
// line `#d`. For 3+7*4-2 under value_modulus 10, answer_modulus 5:
//
//   3+7=0
//   0*4=0
//   0-2=8
//   #3
//
// Numbers are canonical decimals (NOTE [canonical numerals] in numerals.h);
// negative exact values carry a leading '-' ("-5-3=-8").
//
// A Trace is the content of a solution, the value each line states; a slip
// changes one step's stated result and recomputes the later steps
// consistently from it, as the testbed's flawed traces do.
#ifndef FAPO_TASKS_ARITH_SOLUTION_H_
#define FAPO_TASKS_ARITH_SOLUTION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tasks/arith/problem.h"

namespace fapo::tasks::arith {

struct Trace {
  // The result stated by each operation line; one per operation.
  std::vector<int64_t> stated_results;
  // The value stated by the answer line.
  int64_t stated_answer = 0;
};

// The text of `trace` for `problem`. Requires
// trace.stated_results.size() == problem.operations.size().
std::string FormatTrace(const Problem& problem, const Trace& trace);

// The correct trace. OutOfRange when exact arithmetic overflows int64.
absl::StatusOr<Trace> CorrectTrace(const Problem& problem,
                                   const ArithOptions& options);

// FormatTrace(CorrectTrace(...)): the correct solution.
absl::StatusOr<std::string> WriteSolution(const Problem& problem,
                                          const ArithOptions& options);

// The trace in which operation `step` (0-based, < number of operations)
// states `stated_value` instead of its correct result, and every later line,
// the answer line included, follows consistently from the stated values.
// nullopt when exact arithmetic overflows int64 along the way.
std::optional<Trace> SlippedTrace(const Problem& problem,
                                  const ArithOptions& options, int step,
                                  int64_t stated_value);

// Whether a "half slip" (a result written as result + answer_modulus, later
// steps consistent) always keeps the answer right under `options`: true iff
// answer_modulus > 0 and either value_modulus is 0 or answer_modulus is a
// proper divisor of value_modulus. Then (x + a) op b ≡ x op b (mod a) for
// + - *, and reducing mod value_modulus preserves residues mod a. Otherwise
// no fixed offset is guaranteed to keep the answer, and the generators here
// refuse a non-zero half-slip share.
bool HalfSlipsKeepAnswer(const ArithOptions& options);

// The value a half slip states at a step whose correct result is `value`:
// (value + answer_modulus) mod value_modulus, or value + answer_modulus under
// exact arithmetic (nullopt on int64 overflow). Requires
// HalfSlipsKeepAnswer(options).
std::optional<int64_t> HalfSlipValue(int64_t value,
                                     const ArithOptions& options);

}  // namespace fapo::tasks::arith

#endif  // FAPO_TASKS_ARITH_SOLUTION_H_
