// Reproducible random draws for the arith task (internal to tasks/arith).
//
// NOTE [reproducible randomness]
// Every problem set, corpus and bench in this folder must be the same for the
// same seed on every run, compiler and machine: a warm-up corpus or an
// evaluation set is named by its seed in job specs and reports. The standard
// library fixes the engine std::mt19937_64 bit for bit (its output for a
// given seed is specified), but not the distributions:
// std::uniform_int_distribution and std::uniform_real_distribution may map
// the engine's output differently in libstdc++, libc++ and MSVC. So all draws
// go through the functions below, which map the engine's 64-bit outputs
// themselves:
//   - UniformInt: rejection sampling on the raw 64-bit output (exactly
//     uniform, no modulo bias);
//   - UniformDouble: the top 53 bits scaled by 2^-53 (exact in IEEE double);
//   - Shuffle: Fisher-Yates driven by UniformInt.
// Changing the order or the number of draws anywhere changes every data set
// downstream of that seed; golden tests (random_test.cc, problem_test.cc) pin
// the outputs so that such a change is seen.
#ifndef FAPO_TASKS_ARITH_RANDOM_H_
#define FAPO_TASKS_ARITH_RANDOM_H_

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace fapo::tasks::arith {

// A uniform integer in [0, n). Requires n >= 1.
uint64_t UniformInt(std::mt19937_64& rng, uint64_t n);

// A uniform integer in [low, high] (both inclusive). Requires low <= high.
int64_t UniformInRange(std::mt19937_64& rng, int64_t low, int64_t high);

// A uniform double in [0, 1), a multiple of 2^-53.
double UniformDouble(std::mt19937_64& rng);

// A well-mixed 64-bit value derived from `seed` (SplitMix64's finalizer), so
// that one user seed can seed several independent engines.
uint64_t MixSeed(uint64_t seed, uint64_t stream);

// Shuffles `items` in place (Fisher-Yates, last position first).
template <typename T>
void Shuffle(std::mt19937_64& rng, std::vector<T>* items) {
  for (size_t i = items->size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(UniformInt(rng, i));
    std::swap((*items)[i - 1], (*items)[j]);
  }
}

}  // namespace fapo::tasks::arith

#endif  // FAPO_TASKS_ARITH_RANDOM_H_
