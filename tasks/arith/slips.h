// Drawing slips for the corpus and the bench (internal to tasks/arith).
#ifndef FAPO_TASKS_ARITH_SLIPS_H_
#define FAPO_TASKS_ARITH_SLIPS_H_

#include <cstdint>
#include <optional>
#include <random>

#include "tasks/arith/problem.h"

namespace fapo::tasks::arith::internal {

// A random wrong result for a step whose correct result is `correct`:
//   - with value_modulus m: uniform over [0, m) without `correct` (which
//     must be in [0, m));
//   - exact arithmetic: correct + delta, delta uniform over
//     [-operand_max, operand_max] without 0 -- a slip of about an operand's
//     size; nullopt on int64 overflow.
// Draws exactly one UniformInRange.
std::optional<int64_t> DrawWrongValue(std::mt19937_64& rng, int64_t correct,
                                      const ArithOptions& options);

// Bound on redraws where a slip must satisfy a condition (a wrong slip that
// ends wrong, a lucky slip that ends right, no overflow). Reaching it means
// the options make such a slip impossible or very rare; callers return an
// error rather than loop forever.
inline constexpr int kMaxSlipAttempts = 100000;

}  // namespace fapo::tasks::arith::internal

#endif  // FAPO_TASKS_ARITH_SLIPS_H_
