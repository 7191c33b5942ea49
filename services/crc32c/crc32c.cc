#include "services/crc32c/crc32c.h"

#include <array>
#include <cstring>

namespace fapo::crc32c {
namespace {

constexpr uint32_t kReflectedPolynomial = 0x82F63B78u;

// tables[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t;
  Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t crc = b;
      for (int bit = 0; bit < 8; ++bit) {
        crc = (crc & 1) ? (crc >> 1) ^ kReflectedPolynomial : crc >> 1;
      }
      t[0][b] = crc;
    }
    for (uint32_t b = 0; b < 256; ++b) {
      for (int k = 1; k < 8; ++k) {
        t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
      }
    }
  }
};

const Tables& GetTables() {
  static const Tables* const tables = new Tables();
  return *tables;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc,
                                                          const void* data,
                                                          size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t state = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    state = __builtin_ia32_crc32qi(static_cast<uint32_t>(state), *p++);
    --n;
  }
  // Three independent words per iteration would hide the instruction's
  // latency further; one stream already runs at several GB/s, far above
  // what the weight transfer needs.
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    state = __builtin_ia32_crc32di(state, word);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    state = __builtin_ia32_crc32qi(static_cast<uint32_t>(state), *p++);
    --n;
  }
  return ~static_cast<uint32_t>(state);
}

bool CpuHasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#else
bool CpuHasSse42() { return false; }
#endif

}  // namespace

namespace internal {

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n) {
  const auto& t = GetTables().t;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint32_t state = ~crc;
  while (n >= 8) {
    // Little-endian load of the first four bytes folded into the state.
    const uint32_t low =
        state ^
        (static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24);
    state = t[7][low & 0xFF] ^ t[6][(low >> 8) & 0xFF] ^
            t[5][(low >> 16) & 0xFF] ^ t[4][low >> 24] ^ t[3][p[4]] ^
            t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    state = (state >> 8) ^ t[0][(state ^ *p++) & 0xFF];
    --n;
  }
  return ~state;
}

}  // namespace internal

bool HardwareAccelerated() { return CpuHasSse42(); }

namespace {

// matrix (32 columns over GF(2)) times vector.
uint32_t Gf2MatrixTimes(const uint32_t* matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (; vector != 0; vector >>= 1, ++matrix) {
    if (vector & 1) sum ^= *matrix;
  }
  return sum;
}

void Gf2MatrixSquare(uint32_t* square, const uint32_t* matrix) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2MatrixTimes(matrix, matrix[n]);
}

}  // namespace

uint32_t Combine(uint32_t crc_a, uint32_t crc_b, size_t b_length) {
  if (b_length == 0) return crc_a;
  // Appending b_length zero bytes to a is a linear map of its CRC: the
  // operator for one zero bit, squared up to the bits of the length. The
  // pre- and post-inversion cancel out in the final xor (as in zlib).
  uint32_t even[32];
  uint32_t odd[32];
  odd[0] = kReflectedPolynomial;
  uint32_t row = 1;
  for (int n = 1; n < 32; ++n) {
    odd[n] = row;
    row <<= 1;
  }
  Gf2MatrixSquare(even, odd);  // two zero bits
  Gf2MatrixSquare(odd, even);  // four zero bits
  // Each round squares once more (8, 16, ... zero bits) and applies the
  // operator where b_length, in bytes, has a one bit.
  do {
    Gf2MatrixSquare(even, odd);
    if (b_length & 1) crc_a = Gf2MatrixTimes(even, crc_a);
    b_length >>= 1;
    if (b_length == 0) break;
    Gf2MatrixSquare(odd, even);
    if (b_length & 1) crc_a = Gf2MatrixTimes(odd, crc_a);
    b_length >>= 1;
  } while (b_length != 0);
  return crc_a ^ crc_b;
}

uint32_t Extend(uint32_t crc, const void* data, size_t n) {
#if defined(__x86_64__)
  if (CpuHasSse42()) return ExtendHardware(crc, data, n);
#endif
  return internal::ExtendPortable(crc, data, n);
}

}  // namespace fapo::crc32c
