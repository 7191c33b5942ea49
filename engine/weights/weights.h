// engine/weights: a model's weights as a checksummed stream, both ways
// (the trainer's GetWeights, the rollout worker's UpdateWeights).
//
//   weights.h   WeightsSnapshot + SnapshotWeights     model -> bytes
//               ForEachWeightsMessage, ChunkCrc32c    bytes -> messages
//               WeightsAssembler                      messages -> model
//               WeightsBuffer                         huge-page byte buffer
//
// The wire format is fapo.v1.WeightsMessage (trainer.proto): one manifest
// (every tensor's name, dtype, shape, size and CRC-32C, in the model's
// named_parameters() order), then chunks, each a byte range of one tensor
// with the CRC-32C of its bytes. Chunks never span tensors; they may come in
// any order. Tensor bytes are the model dtype's native little-endian layout,
// row-major, as in safetensors.
//
// No LibTorch in this header: CausalLM is only named here.
#ifndef FAPO_ENGINE_WEIGHTS_WEIGHTS_H_
#define FAPO_ENGINE_WEIGHTS_WEIGHTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fapo/v1/trainer.pb.h"

namespace fapo::engine {

class CausalLM;

// Default largest chunk payload: 4 MiB (GetWeightsRequest.max_chunk_bytes 0).
inline constexpr int64_t kDefaultMaxChunkBytes = int64_t{4} << 20;

// The snapshot keeps the CRC-32C of every block of this many bytes of each
// tensor, so serving a chunk made of whole blocks costs no pass over its
// bytes (crc32c::Combine). 1 MiB: every power-of-two chunk size from 1 MiB
// up is whole blocks.
inline constexpr int64_t kCrcBlockBytes = int64_t{1} << 20;

// A model-sized byte buffer, uninitialized. NOTE [huge pages]: buffers of
// 2 MiB and more are 2 MiB aligned and advised as transparent huge pages
// (MADV_HUGEPAGE), so writing 100 MB takes ~50 page faults instead of
// ~25,000 (which cost as much as the copy itself). Falls back to ordinary
// pages where the kernel says no. Move-only.
class WeightsBuffer {
 public:
  WeightsBuffer() = default;
  explicit WeightsBuffer(int64_t size);
  WeightsBuffer(WeightsBuffer&& other) noexcept;
  WeightsBuffer& operator=(WeightsBuffer&& other) noexcept;
  WeightsBuffer(const WeightsBuffer&) = delete;
  WeightsBuffer& operator=(const WeightsBuffer&) = delete;
  ~WeightsBuffer();

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

// An immutable CPU copy of a model's weights at a version, in the model's
// dtype, laid out tensor after tensor, ready to stream (to any number of
// readers at once: share the pointer).
struct WeightsSnapshot {
  int64_t version = 0;
  // manifest.version == version; manifest.total_bytes == bytes.size().
  v1::WeightManifest manifest;
  // Every tensor's bytes, back to back in manifest order.
  WeightsBuffer bytes;
  // offsets[i]: where tensor i starts in `bytes`.
  std::vector<int64_t> offsets;
  // block_crc32c[i][k]: CRC-32C of tensor i's bytes [k, k + 1) *
  // kCrcBlockBytes (the last block ends with the tensor).
  std::vector<std::vector<uint32_t>> block_crc32c;
};

// The CRC-32C of tensor `tensor_index`'s bytes [offset, offset + size) in
// `snapshot`: combined from its block CRCs when the range is whole blocks
// (or ends with the tensor), computed from the bytes otherwise. The range
// must lie inside the tensor.
uint32_t ChunkCrc32c(const WeightsSnapshot& snapshot, int tensor_index,
                     int64_t offset, int64_t size);

// Copies the weights of `model` (named_parameters(): Hugging Face names, a
// tied lm_head not listed) to the CPU and checksums them. Call it on the
// thread that owns the model, between updates. Errors: a dtype other than
// float32/bfloat16/float16 (InvalidArgument), a LibTorch failure (Internal),
// no memory for the copy (ResourceExhausted).
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> SnapshotWeights(
    const CausalLM& model, int64_t version);

// Calls emit() with the manifest, then with chunks of at most
// `max_chunk_bytes` (<= 0: kDefaultMaxChunkBytes) in tensor order, each with
// its CRC-32C. Stops as soon as emit returns false (a cancelled stream) and
// returns false then; true when everything was emitted. `emit` may keep
// nothing: the message is reused between calls.
bool ForEachWeightsMessage(
    const WeightsSnapshot& snapshot, int64_t max_chunk_bytes,
    const std::function<bool(const v1::WeightsMessage&)>& emit);

// Receives one stream of WeightsMessages: Add() each in arrival order, then
// Finish(), then ApplyTo() the model. Every chunk's CRC-32C is checked on
// arrival, every tensor's CRC-32C and full coverage at Finish(). Errors are
// InvalidArgument naming the tensor and the byte offset (a corrupted,
// out-of-range, overlapping or duplicate chunk; a bad manifest), or
// FailedPrecondition for calls out of order (a chunk before the manifest, a
// second manifest, Add after Finish, ApplyTo before a successful Finish),
// or ResourceExhausted (no memory for the manifest's bytes). After an error
// the assembler is spent: start a new one. Not thread-safe.
class WeightsAssembler {
 public:
  WeightsAssembler() = default;
  // Assembles into `*reuse` (not owned; outlives the assembler, used by
  // nothing else meanwhile), reallocated only when the model's size
  // differs. A receiver that pulls version after version keeps one buffer:
  // a fresh 100 MB one costs ~15 ms of page zeroing per pull even on huge
  // pages, more than checksumming it.
  explicit WeightsAssembler(WeightsBuffer* reuse) : reuse_(reuse) {}
  WeightsAssembler(const WeightsAssembler&) = delete;
  WeightsAssembler& operator=(const WeightsAssembler&) = delete;

  absl::Status Add(const v1::WeightsMessage& message);
  // Add() of a WeightChunk whose data arrives as `pieces`, concatenated
  // (a received gRPC message's slices, never copied into a proto): the same
  // checks, and one pass that checksums and copies each piece.
  absl::Status AddChunk(int64_t tensor_index, int64_t offset,
                        uint32_t chunk_crc32c,
                        absl::Span<const absl::string_view> pieces);
  // Checks that every byte of every tensor arrived and every tensor's
  // CRC-32C matches the manifest's.
  absl::Status Finish();

  // The manifest's version (-1 before it arrives).
  int64_t version() const;
  // Chunk payload bytes accepted so far.
  int64_t bytes_received() const { return bytes_received_; }
  bool has_manifest() const { return has_manifest_; }
  bool finished() const { return finished_; }
  const v1::WeightManifest& manifest() const { return manifest_; }

  // All-or-nothing: checks every tensor's name, shape and dtype against the
  // model's first (the same set of names, InvalidArgument naming the first
  // mismatch), then copies in place under no-grad
  // (CausalLM::CopyWeightsFrom). The model is unchanged on any error. Call
  // on the thread that owns the model.
  absl::Status ApplyTo(CausalLM& model) const;

 private:
  absl::Status AddManifest(const v1::WeightManifest& manifest);
  absl::Status AddChunkChecked(int64_t tensor_index, int64_t offset,
                               uint32_t chunk_crc32c,
                               absl::Span<const absl::string_view> pieces);

  v1::WeightManifest manifest_;
  bool has_manifest_ = false;
  bool finished_ = false;
  bool failed_ = false;
  // Every tensor, back to back (not zero-filled: Finish checks that every
  // byte was written): owned_, or *reuse_ when given.
  WeightsBuffer* const reuse_ = nullptr;
  WeightsBuffer owned_;
  WeightsBuffer* bytes_ = &owned_;
  std::vector<int64_t> offsets_;  // where tensor i starts in bytes_
  // A chunk received: where it ends and the CRC-32C of its bytes (checked
  // on arrival), from which Finish derives the tensor's CRC without
  // reading the bytes again (crc32c::Combine).
  struct Range {
    int64_t end = 0;
    uint32_t crc32c = 0;
  };
  // Per tensor: received byte ranges by offset.
  std::vector<std::map<int64_t, Range>> ranges_;
  int64_t bytes_received_ = 0;
};

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_WEIGHTS_WEIGHTS_H_
