#include "tasks/arith/random.h"

namespace fapo::tasks::arith {

uint64_t UniformInt(std::mt19937_64& rng, uint64_t n) {
  // Accept raw outputs in [2^64 mod n, 2^64): that range holds a whole number
  // of copies of [0, n), so `r % n` is exactly uniform. `(0 - n) % n` is
  // 2^64 mod n in unsigned arithmetic. At most half the outputs are rejected.
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

int64_t UniformInRange(std::mt19937_64& rng, int64_t low, int64_t high) {
  // Unsigned arithmetic: high - low may not fit int64 but always fits
  // uint64. The full range [INT64_MIN, INT64_MAX] would need n = 2^64.
  const uint64_t span =
      static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  const uint64_t offset =
      span == UINT64_MAX ? rng() : UniformInt(rng, span + 1);
  return static_cast<int64_t>(static_cast<uint64_t>(low) + offset);
}

double UniformDouble(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

uint64_t MixSeed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + (stream + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace fapo::tasks::arith
