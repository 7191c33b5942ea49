// engine/checkpoint: Hugging Face checkpoints without LibTorch.
//
//   safetensors.h   *.safetensors files (memory-mapped), single or sharded
//                   (model.safetensors.index.json), read and written
//   model_config.h  config.json of the Qwen2/Qwen2.5, Qwen3 and Llama 2/3
//                   families, read and written
//
// Nothing here includes LibTorch: engine/model turns TensorViews into
// tensors. Every error names the file, and the tensor where there is one.
#ifndef FAPO_ENGINE_CHECKPOINT_SAFETENSORS_H_
#define FAPO_ENGINE_CHECKPOINT_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fapo::engine {

// The safetensors dtypes. Models load F32, BF16 and F16; the others are read
// (reference files hold I64 ids) and written as they are.
enum class DType { kF64, kF32, kBF16, kF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "BF16", ... as safetensors spells them.
absl::string_view DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(absl::string_view name);
int64_t DTypeSize(DType dtype);

// One tensor inside a mapped file. `data` stays valid while the reader
// that returned it lives.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> data;
  std::string file;  // the file it came from, for error messages

  int64_t num_elements() const;
};

// A read-only, memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  // Errors (InvalidArgument or DataLoss, naming the file and the tensor):
  // missing file (NotFound), file shorter than its header, header length
  // beyond the file, header not JSON, unknown dtype, offsets out of order,
  // overlapping or beyond the data, shape not matching the byte size.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In file order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* Find(absl::string_view name) const;
  // The header's "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards
// listed in model.safetensors.index.json (every shard mapped once).
class CheckpointReader {
 public:
  // Errors name the directory or file: no model.safetensors nor index, an
  // index that is not JSON or names a missing shard, a tensor the index
  // places in a shard that lacks it, a tensor present in two shards.
  static absl::StatusOr<std::unique_ptr<CheckpointReader>> Open(
      const std::string& directory);

  const std::string& directory() const { return directory_; }
  // Sorted.
  std::vector<std::string> names() const;
  const TensorView* Find(absl::string_view name) const;
  // Find, or NotFound naming the tensor and the directory.
  absl::StatusOr<const TensorView*> Get(absl::string_view name) const;

 private:
  CheckpointReader() = default;
  std::string directory_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// A tensor to write: its bytes are copied out during the write.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> data;  // num_elements * DTypeSize(dtype) bytes
};

// Writes one .safetensors file (tensors sorted by name, 8-byte aligned
// header, as Hugging Face's safetensors writes them), atomically: a
// temporary file, then rename.
// Like the Python package, wider dtypes come before narrower ones (names in
// order within each dtype), which keeps every tensor aligned to its element
// size; the bytes equal safetensors.torch.save_file's for the same tensors.
absl::Status WriteSafetensors(
    const std::string& path, absl::Span<const TensorToWrite> tensors,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes model.safetensors, or, when the tensors exceed max_shard_bytes,
// model-00001-of-0000N.safetensors shards plus model.safetensors.index.json
// (with metadata.total_size), in `directory` (created if missing).
absl::Status WriteCheckpointTensors(const std::string& directory,
                                    absl::Span<const TensorToWrite> tensors,
                                    int64_t max_shard_bytes = int64_t{5} << 30);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_CHECKPOINT_SAFETENSORS_H_
