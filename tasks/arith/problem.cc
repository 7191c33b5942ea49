#include "tasks/arith/problem.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "tasks/arith/numerals.h"
#include "tasks/arith/random.h"

namespace fapo::tasks::arith {
namespace {

int64_t FloorMod(int64_t value, int64_t modulus) {
  const int64_t r = value % modulus;
  return r < 0 ? r + modulus : r;
}

bool IsOperator(char c) { return c == '+' || c == '-' || c == '*'; }

}  // namespace

absl::Status ValidateArithOptions(const ArithOptions& options) {
  if (options.min_ops < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arith options: min_ops must be >= 1, got ", options.min_ops));
  }
  if (options.max_ops < options.min_ops || options.max_ops > kMaxOps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arith options: max_ops must be in [min_ops (", options.min_ops, "), ",
        kMaxOps, "], got ", options.max_ops));
  }
  if (options.operand_max < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arith options: operand_max must be >= 2 ('*' operands are drawn "
        "from [2, operand_max]), got ",
        options.operand_max));
  }
  if (options.value_modulus < 0 || options.value_modulus == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arith options: value_modulus must be 0 (exact arithmetic) or >= 2, "
        "got ",
        options.value_modulus));
  }
  if (options.answer_modulus < 0 || options.answer_modulus == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arith options: answer_modulus must be 0 (the full value) or >= 2, "
        "got ",
        options.answer_modulus));
  }
  if (options.value_modulus == 0) {
    // Worst case |value| after k operations: bound(0) = operand_max,
    // bound(k) = max(bound + operand_max, bound * operand_max); subtraction
    // from -bound is symmetric to addition.
    int64_t bound = options.operand_max;
    for (int k = 1; k <= options.max_ops; ++k) {
      int64_t product;
      if (__builtin_mul_overflow(bound, int64_t{options.operand_max},
                                 &product) ||
          product > std::numeric_limits<int64_t>::max() - options.operand_max) {
        return absl::InvalidArgumentError(absl::StrCat(
            "arith options: with value_modulus 0 (exact arithmetic), values "
            "can overflow int64 after ",
            k, " operations with operand_max ", options.operand_max,
            "; lower max_ops (", options.max_ops,
            ") or operand_max, or set value_modulus"));
      }
      bound = std::max(bound + options.operand_max, product);
    }
  }
  return absl::OkStatus();
}

bool operator==(const Operation& a, const Operation& b) {
  return a.op == b.op && a.operand == b.operand;
}

bool operator==(const Problem& a, const Problem& b) {
  return a.first_operand == b.first_operand && a.operations == b.operations;
}

std::string FormatPrompt(const Problem& problem) {
  std::string text = absl::StrCat(problem.first_operand);
  for (const Operation& operation : problem.operations) {
    text.push_back(static_cast<char>(operation.op));
    absl::StrAppend(&text, operation.operand);
  }
  return text;
}

absl::StatusOr<Problem> ParsePrompt(absl::string_view prompt) {
  Problem problem;
  size_t pos = 0;
  auto bad_operand = [&](size_t at) {
    return absl::InvalidArgumentError(
        absl::StrCat("arith prompt \"", prompt,
                     "\": expected a canonical non-negative "
                     "integer at column ",
                     at + 1));
  };
  if (!internal::ConsumeCanonicalInt(prompt, &pos, /*allow_negative=*/false,
                                     &problem.first_operand)) {
    return bad_operand(pos);
  }
  while (pos < prompt.size()) {
    if (!IsOperator(prompt[pos])) {
      return absl::InvalidArgumentError(absl::StrCat("arith prompt \"", prompt,
                                                     "\": expected + - or * at "
                                                     "column ",
                                                     pos + 1));
    }
    Operation operation;
    operation.op = static_cast<Operator>(prompt[pos]);
    ++pos;
    if (!internal::ConsumeCanonicalInt(prompt, &pos, /*allow_negative=*/false,
                                       &operation.operand)) {
      return bad_operand(pos);
    }
    problem.operations.push_back(operation);
  }
  return problem;
}

std::optional<int64_t> ApplyOperator(int64_t lhs, Operator op, int64_t rhs,
                                     int64_t value_modulus) {
  if (value_modulus > 0) {
    // Reducing the inputs first keeps every intermediate below m^2, which
    // fits int64 for any int modulus, and gives the same residue.
    const int64_t a = FloorMod(lhs, value_modulus);
    const int64_t b = FloorMod(rhs, value_modulus);
    switch (op) {
      case Operator::kAdd:
        return (a + b) % value_modulus;
      case Operator::kSubtract:
        return FloorMod(a - b, value_modulus);
      case Operator::kMultiply:
        return (a * b) % value_modulus;
    }
    return std::nullopt;
  }
  int64_t result;
  bool overflow = true;
  switch (op) {
    case Operator::kAdd:
      overflow = __builtin_add_overflow(lhs, rhs, &result);
      break;
    case Operator::kSubtract:
      overflow = __builtin_sub_overflow(lhs, rhs, &result);
      break;
    case Operator::kMultiply:
      overflow = __builtin_mul_overflow(lhs, rhs, &result);
      break;
  }
  if (overflow) return std::nullopt;
  return result;
}

int64_t AnswerOf(int64_t value, int64_t answer_modulus) {
  return answer_modulus > 0 ? FloorMod(value, answer_modulus) : value;
}

absl::StatusOr<int64_t> Evaluate(const Problem& problem,
                                 const ArithOptions& options) {
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
  }
  return value;
}

absl::StatusOr<int64_t> GroundTruth(const Problem& problem,
                                    const ArithOptions& options) {
  absl::StatusOr<int64_t> value = Evaluate(problem, options);
  if (!value.ok()) return value.status();
  return AnswerOf(*value, options.answer_modulus);
}

absl::StatusOr<ProblemGenerator> ProblemGenerator::Create(
    const ArithOptions& options, uint64_t seed) {
  if (absl::Status status = ValidateArithOptions(options); !status.ok()) {
    return status;
  }
  return ProblemGenerator(options, seed);
}

Problem ProblemGenerator::Next() {
  // The draw order is part of the reproducibility contract (NOTE
  // [reproducible randomness] in random.h): count, first operand, then
  // operator and operand for each operation.
  Problem problem;
  const int num_ops = static_cast<int>(
      UniformInRange(rng_, options_.min_ops, options_.max_ops));
  problem.first_operand = UniformInRange(rng_, 0, options_.operand_max);
  problem.operations.reserve(num_ops);
  for (int i = 0; i < num_ops; ++i) {
    Operation operation;
    switch (UniformInt(rng_, 3)) {
      case 0:
        operation.op = Operator::kAdd;
        break;
      case 1:
        operation.op = Operator::kSubtract;
        break;
      default:
        operation.op = Operator::kMultiply;
        break;
    }
    operation.operand =
        UniformInRange(rng_, operation.op == Operator::kMultiply ? 2 : 0,
                       options_.operand_max);
    problem.operations.push_back(operation);
  }
  return problem;
}

}  // namespace fapo::tasks::arith
