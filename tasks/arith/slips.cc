#include "tasks/arith/slips.h"

#include "tasks/arith/random.h"

namespace fapo::tasks::arith::internal {

std::optional<int64_t> DrawWrongValue(std::mt19937_64& rng, int64_t correct,
                                      const ArithOptions& options) {
  if (options.value_modulus > 0) {
    // Uniform over the m - 1 values other than `correct`: draw from
    // [0, m - 2] and skip over `correct`.
    const int64_t value = UniformInRange(rng, 0, options.value_modulus - 2);
    return value >= correct ? value + 1 : value;
  }
  int64_t delta =
      UniformInRange(rng, -options.operand_max, options.operand_max - 1);
  if (delta >= 0) ++delta;
  int64_t value;
  if (__builtin_add_overflow(correct, delta, &value)) return std::nullopt;
  return value;
}

}  // namespace fapo::tasks::arith::internal
