// services/crc32c: CRC-32C (Castagnoli, iSCSI polynomial 0x1EDC6F41,
// reflected), the checksum of the weight transfer (trainer.proto
// WeightChunk / TensorInfo).
//
//   crc32c.h   Value, Extend, Combine
//
// SSE4.2's crc32 instruction when the CPU has it (checked once at run
// time), a slicing-by-8 table otherwise; both give the same values.
// Thread-safe; no LibTorch.
#ifndef FAPO_SERVICES_CRC32C_CRC32C_H_
#define FAPO_SERVICES_CRC32C_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace fapo::crc32c {

// The CRC-32C of data[0, n) appended to data whose CRC-32C is `crc`
// (0 for the empty string): Extend(Value(a), b) == Value(a + b).
uint32_t Extend(uint32_t crc, const void* data, size_t n);

// The CRC-32C of data[0, n). Value("123456789", 9) == 0xE3069283.
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// The CRC-32C of a + b from crc_a = Value(a), crc_b = Value(b) and
// b_length = |b|, without reading the data (zlib's crc32_combine over
// GF(2); O(log b_length)). Lets a receiver that checked every chunk derive
// a whole tensor's CRC without a second pass over its bytes.
uint32_t Combine(uint32_t crc_a, uint32_t crc_b, size_t b_length);

// Whether Extend uses the CPU's crc32 instruction (for benchmarks).
bool HardwareAccelerated();

namespace internal {
// The portable implementation, exposed so tests check it against the
// hardware one.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
}  // namespace internal

}  // namespace fapo::crc32c

#endif  // FAPO_SERVICES_CRC32C_CRC32C_H_
