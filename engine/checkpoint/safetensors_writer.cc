// WriteSafetensors and WriteCheckpointTensors (declared in safetensors.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/checkpoint/safetensors.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

// Keys in insertion order: "__metadata__" first, then tensors by name, as
// the Python safetensors package lays them out.
using OrderedJson = nlohmann::ordered_json;

constexpr char kSingleFileName[] = "model.safetensors";
constexpr char kIndexFileName[] = "model.safetensors.index.json";

using ::fapo::files::ErrnoError;
using ::fapo::files::JoinPath;
using ::fapo::files::MakeDirectories;
using ::fapo::files::ParentDirectory;

absl::Status ValidateTensors(absl::Span<const TensorToWrite> tensors,
                             absl::string_view where) {
  std::set<absl::string_view> names;
  for (const TensorToWrite& tensor : tensors) {
    std::string prefix = absl::StrCat(where, ": tensor \"", tensor.name, "\"");
    if (tensor.name.empty() || tensor.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ": reserved or empty name"));
    }
    if (!names.insert(tensor.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ": name given twice"));
    }
    if (DTypeSize(tensor.dtype) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, ": bad dtype"));
    }
    int64_t bytes = DTypeSize(tensor.dtype);
    for (int64_t dim : tensor.shape) {
      if (dim < 0 || __builtin_mul_overflow(bytes, dim, &bytes)) {
        return absl::InvalidArgumentError(absl::StrCat(
            prefix, ": bad shape [", absl::StrJoin(tensor.shape, ", "), "]"));
      }
    }
    if (static_cast<uint64_t>(bytes) != tensor.data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ": shape [", absl::StrJoin(tensor.shape, ", "),
                       "] of ", DTypeName(tensor.dtype), " needs ", bytes,
                       " bytes but ", tensor.data.size(), " are given"));
    }
  }
  return absl::OkStatus();
}

// The rank of a dtype in the Rust safetensors crate's Dtype enum (BOOL, U8,
// I8, I16, F16, BF16, I32, F32, F64, I64 among ours), which its writer sorts
// by, descending.
int DTypeOrderRank(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return 0;
    case DType::kU8:
      return 1;
    case DType::kI8:
      return 2;
    case DType::kI16:
      return 3;
    case DType::kF16:
      return 4;
    case DType::kBF16:
      return 5;
    case DType::kI32:
      return 6;
    case DType::kF32:
      return 7;
    case DType::kF64:
      return 8;
    case DType::kI64:
      return 9;
  }
  return 0;
}

absl::Status WriteFully(int fd, const uint8_t* bytes, size_t size,
                        const std::string& path) {
  while (size > 0) {
    ssize_t written = ::write(fd, bytes, std::min<size_t>(size, 1 << 30));
    if (written < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, absl::StrCat(path, ": write failed"));
    }
    bytes += written;
    size -= static_cast<size_t>(written);
  }
  return absl::OkStatus();
}

// NOTE [atomic write]: every file is written to a temporary file beside its
// final path, flushed, and renamed over it, so a reader (or a crash) sees the
// old file or the whole new one, never a partial one; on any failure the
// temporary file is removed.
absl::Status WriteFileAtomically(
    const std::string& path,
    const std::vector<absl::Span<const uint8_t>>& chunks) {
  std::string temp_path = absl::StrCat(path, ".tmp-XXXXXX");
  int fd = ::mkstemp(temp_path.data());
  if (fd < 0) {
    return ErrnoError(errno,
                      absl::StrCat(path, ": cannot create a temporary file in ",
                                   ParentDirectory(path)));
  }
  absl::Status status;
  // mkstemp creates 0600; checkpoints are shared like any written file.
  mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) {
    status = ErrnoError(errno, absl::StrCat(temp_path, ": chmod failed"));
  }
  for (const auto& chunk : chunks) {
    if (!status.ok()) break;
    status = WriteFully(fd, chunk.data(), chunk.size(), temp_path);
  }
  if (status.ok() && ::fsync(fd) != 0) {
    status = ErrnoError(errno, absl::StrCat(temp_path, ": fsync failed"));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = ErrnoError(errno, absl::StrCat(temp_path, ": close failed"));
  }
  if (status.ok() && ::rename(temp_path.c_str(), path.c_str()) != 0) {
    status = ErrnoError(
        errno, absl::StrCat(path, ": rename from ", temp_path, " failed"));
  }
  if (!status.ok()) ::unlink(temp_path.c_str());
  return status;
}

absl::Span<const uint8_t> AsBytes(const std::string& text) {
  return absl::Span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// Removes a file of the other layout left from an earlier write: a stale
// model.safetensors would shadow a new index (readers prefer it), and a
// stale index would describe shards that are no longer written.
absl::Status RemoveIfPresent(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat(path, ": cannot remove"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteSafetensors(
    const std::string& path, absl::Span<const TensorToWrite> tensors,
    const std::map<std::string, std::string>& metadata) {
  RETURN_IF_ERROR(ValidateTensors(tensors, path));
  std::vector<const TensorToWrite*> sorted;
  sorted.reserve(tensors.size());
  for (const TensorToWrite& tensor : tensors) sorted.push_back(&tensor);
  // NOTE [tensor order]: as the safetensors package orders them: by dtype,
  // widest alignment first (its Dtype enum, descending), then by name. With
  // the 8-byte-padded header this keeps every tensor aligned to its element
  // size within the file, so a mapped view can be used in place; for a
  // single-dtype checkpoint it is plain name order.
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) {
              int a_rank = DTypeOrderRank(a->dtype);
              int b_rank = DTypeOrderRank(b->dtype);
              if (a_rank != b_rank) return a_rank > b_rank;
              return a->name < b->name;
            });

  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const TensorToWrite* tensor : sorted) {
    OrderedJson entry = OrderedJson::object();
    entry["dtype"] = std::string(DTypeName(tensor->dtype));
    entry["shape"] = tensor->shape;
    entry["data_offsets"] = {offset, offset + tensor->data.size()};
    header[tensor->name] = entry;
    offset += tensor->data.size();
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const OrderedJson::exception& error) {  // invalid UTF-8 in a name
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot write the header: ", error.what()));
  }
  // Pad with spaces so the data starts 8-byte aligned, as Hugging Face does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) {
    prefix[i] = static_cast<char>(uint64_t{header_text.size()} >> (8 * i));
  }
  prefix += header_text;

  std::vector<absl::Span<const uint8_t>> chunks = {AsBytes(prefix)};
  for (const TensorToWrite* tensor : sorted) chunks.push_back(tensor->data);
  return WriteFileAtomically(path, chunks);
}

absl::Status WriteCheckpointTensors(const std::string& directory,
                                    absl::Span<const TensorToWrite> tensors,
                                    int64_t max_shard_bytes) {
  if (max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(directory, ": max_shard_bytes must be positive, got ",
                     max_shard_bytes));
  }
  // Everything is checked before anything is written.
  RETURN_IF_ERROR(ValidateTensors(tensors, directory));
  RETURN_IF_ERROR(MakeDirectories(directory));
  const std::string single_path = JoinPath(directory, kSingleFileName);
  const std::string index_path = JoinPath(directory, kIndexFileName);

  int64_t total_bytes = 0;
  for (const TensorToWrite& tensor : tensors) {
    total_bytes += static_cast<int64_t>(tensor.data.size());
  }
  if (total_bytes <= max_shard_bytes) {
    RETURN_IF_ERROR(WriteSafetensors(single_path, tensors));
    return RemoveIfPresent(index_path);
  }

  // Greedy, in the caller's order (a state dict's order, as transformers'
  // save_pretrained shards it): a shard closes when the next tensor would
  // push it past max_shard_bytes; a tensor larger than that gets its own.
  std::vector<std::vector<TensorToWrite>> shards(1);
  int64_t shard_bytes = 0;
  for (const TensorToWrite& tensor : tensors) {
    int64_t bytes = static_cast<int64_t>(tensor.data.size());
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(tensor);
    shard_bytes += bytes;
  }
  OrderedJson weight_map = OrderedJson::object();
  std::map<std::string, std::string> shard_of_tensor;
  for (size_t i = 0; i < shards.size(); ++i) {
    std::string shard_name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    RETURN_IF_ERROR(
        WriteSafetensors(JoinPath(directory, shard_name), shards[i]));
    for (const TensorToWrite& tensor : shards[i]) {
      shard_of_tensor[tensor.name] = shard_name;
    }
  }
  for (const auto& [name, shard] : shard_of_tensor) weight_map[name] = shard;
  OrderedJson index = OrderedJson::object();
  index["metadata"] = {{"total_size", total_bytes}};
  index["weight_map"] = weight_map;
  // The index goes last: it only ever names shards that are complete.
  std::string index_text = index.dump(2) + "\n";
  RETURN_IF_ERROR(WriteFileAtomically(index_path, {AsBytes(index_text)}));
  return RemoveIfPresent(single_path);
}

}  // namespace fapo::engine
