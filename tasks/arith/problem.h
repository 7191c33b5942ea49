// Problems of the arith task: options, the problem type, its prompt text, its
// exact evaluation and a seeded generator (docs/arith-testbed.md).
//
// A problem is a first operand and 1+ operations, evaluated strictly left to
// right: "3+7*4-2" is ((3+7)*4)-2. With value_modulus m > 0 every operation's
// result is reduced into [0, m); with m == 0 values are exact signed
// integers. The ground truth is the final value modulo answer_modulus
// (non-negative), or the full value when answer_modulus is 0.
//
// Not thread-safe: ProblemGenerator holds an engine; use one per thread. The
// free functions are pure.
#ifndef FAPO_TASKS_ARITH_PROBLEM_H_
#define FAPO_TASKS_ARITH_PROBLEM_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::tasks::arith {

// The task's knobs. Names match the job spec's data.arith section, which a
// later stage maps onto this struct.
struct ArithOptions {
  // Operations per problem, drawn uniformly from [min_ops, max_ops].
  // min_ops >= 1; max_ops in [min_ops, kMaxOps].
  int min_ops = 2;
  int max_ops = 6;
  // Operands are drawn from [0, operand_max], and from [2, operand_max] for
  // '*'. >= 2.
  int operand_max = 9;
  // 0 = exact integer arithmetic; else >= 2 and every result is reduced into
  // [0, value_modulus). With 0, operand_max and max_ops must keep every value
  // within int64 (see ValidateArithOptions).
  int value_modulus = 10;
  // 0 = the answer is the full final value; else >= 2 and the answer is the
  // final value modulo this, in [0, answer_modulus).
  int answer_modulus = 5;
};

// The largest max_ops accepted (the job spec's range for data.arith.max_ops).
inline constexpr int kMaxOps = 64;

// OK, or InvalidArgument naming the first bad field (data.arith key names):
// min_ops < 1, max_ops < min_ops or > kMaxOps, operand_max < 2 (no operand
// for '*'), value_modulus or answer_modulus negative or 1 (a modulus of 1
// makes every value 0), or, with value_modulus 0, a worst case that
// overflows int64 (operand_max multiplied in max_ops times, e.g.
// operand_max 9 allows max_ops up to 18).
absl::Status ValidateArithOptions(const ArithOptions& options);

enum class Operator : char { kAdd = '+', kSubtract = '-', kMultiply = '*' };

struct Operation {
  Operator op = Operator::kAdd;
  int64_t operand = 0;  // >= 0
};

struct Problem {
  int64_t first_operand = 0;  // >= 0
  std::vector<Operation> operations;
};

bool operator==(const Operation& a, const Operation& b);
bool operator==(const Problem& a, const Problem& b);
inline bool operator!=(const Problem& a, const Problem& b) { return !(a == b); }

// The prompt text, e.g. "3+7*4-2": canonical decimal operands, no spaces.
std::string FormatPrompt(const Problem& problem);

// Parses prompt text written by FormatPrompt. Strict: operands are canonical
// non-negative decimals within int64 ("0", "42"; not "07", "+4", " 4"), the
// operators are + - *, nothing else is allowed (no whitespace, no trailing
// newline). Zero operations ("7") is accepted. Operand ranges are not checked
// against any options. InvalidArgument with the offending column otherwise.
absl::StatusOr<Problem> ParsePrompt(absl::string_view prompt);

// lhs `op` rhs under value_modulus (0 = exact): with a modulus the result is
// in [0, value_modulus) (inputs of any sign are reduced first); exact
// arithmetic returns nullopt when the result does not fit int64.
// value_modulus must be 0 or in [2, INT32_MAX] (an ArithOptions value).
std::optional<int64_t> ApplyOperator(int64_t lhs, Operator op, int64_t rhs,
                                     int64_t value_modulus);

// The answer a final value gives: value mod answer_modulus in
// [0, answer_modulus), or value itself when answer_modulus is 0.
int64_t AnswerOf(int64_t value, int64_t answer_modulus);

// The final value of `problem` under options.value_modulus.
// OutOfRange when exact arithmetic overflows int64 (only possible for
// problems that the options' generator would not produce).
absl::StatusOr<int64_t> Evaluate(const Problem& problem,
                                 const ArithOptions& options);

// AnswerOf(Evaluate(problem), options.answer_modulus).
absl::StatusOr<int64_t> GroundTruth(const Problem& problem,
                                    const ArithOptions& options);

// Seeded problem source. Reproducible across runs and machines (NOTE
// [reproducible randomness] in random.h). Each problem is drawn as: the
// operation count, the first operand, then for each operation its operator
// (+ - * equally likely) and its operand. Copyable; a copy continues the same
// stream independently.
class ProblemGenerator {
 public:
  // InvalidArgument when ValidateArithOptions fails.
  static absl::StatusOr<ProblemGenerator> Create(const ArithOptions& options,
                                                 uint64_t seed);

  // The next problem. Evaluating it never overflows (options are validated).
  Problem Next();

  const ArithOptions& options() const { return options_; }

 private:
  ProblemGenerator(const ArithOptions& options, uint64_t seed)
      : options_(options), rng_(seed) {}

  ArithOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace fapo::tasks::arith

#endif  // FAPO_TASKS_ARITH_PROBLEM_H_
