#include "engine/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

using Json = nlohmann::json;

constexpr char kSingleFileName[] = "model.safetensors";
constexpr char kIndexFileName[] = "model.safetensors.index.json";
constexpr char kMetadataKey[] = "__metadata__";
// The Rust safetensors crate refuses headers above 100 MB; so do we, so that
// a corrupt length cannot make us parse (or allocate for) gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

struct DTypeInfo {
  DType dtype;
  const char* name;
  int64_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4},
    {DType::kBF16, "BF16", 2}, {DType::kF16, "F16", 2},
    {DType::kI64, "I64", 8},   {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},     {DType::kBool, "BOOL", 1},
};

std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"", text, "\"");
}

std::string ErrnoText(int error_number) { return std::strerror(error_number); }

// Shape product times the dtype size, or an error on a negative dimension or
// an overflow of int64 (a corrupt header must not wrap around to a small,
// plausible size).
absl::StatusOr<int64_t> ByteSize(const std::vector<int64_t>& shape,
                                 DType dtype) {
  int64_t bytes = DTypeSize(dtype);
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("negative dimension ", dim, " in shape [",
                       absl::StrJoin(shape, ", "), "]"));
    }
    if (__builtin_mul_overflow(bytes, dim, &bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape [", absl::StrJoin(shape, ", "), "] overflows 64 bits"));
    }
  }
  return bytes;
}

// One entry of the header, validated against the data region's size.
absl::StatusOr<TensorView> ParseTensorEntry(const std::string& name,
                                            const Json& entry,
                                            const uint8_t* data_begin,
                                            uint64_t data_size) {
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry is not an object but ", entry.type_name()));
  }
  TensorView view;
  view.name = name;
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return absl::InvalidArgumentError("\"dtype\" missing or not a string");
  }
  ASSIGN_OR_RETURN(view.dtype, ParseDType(dtype_it->get<std::string>()));

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return absl::InvalidArgumentError("\"shape\" missing or not an array");
  }
  for (const Json& dim : *shape_it) {
    if (dim.is_number_unsigned()) {
      uint64_t value = dim.get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("dimension ", value, " too large"));
      }
      view.shape.push_back(static_cast<int64_t>(value));
    } else if (dim.is_number_integer()) {
      view.shape.push_back(dim.get<int64_t>());  // negative: ByteSize says so
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("shape has a non-integer dimension ", dim.dump()));
    }
  }
  ASSIGN_OR_RETURN(int64_t byte_size, ByteSize(view.shape, view.dtype));

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() ||
      offsets_it->size() != 2 || !(*offsets_it)[0].is_number_unsigned() ||
      !(*offsets_it)[1].is_number_unsigned()) {
    return absl::InvalidArgumentError(
        "\"data_offsets\" missing or not two non-negative integers");
  }
  uint64_t begin = (*offsets_it)[0].get<uint64_t>();
  uint64_t end = (*offsets_it)[1].get<uint64_t>();
  if (begin > end) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_offsets [", begin, ", ", end, "] are out of order"));
  }
  if (end > data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_offsets [", begin, ", ", end,
                     "] reach beyond the data (", data_size, " bytes)"));
  }
  if (end - begin != static_cast<uint64_t>(byte_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shape [", absl::StrJoin(view.shape, ", "), "] of ",
        DTypeName(view.dtype), " needs ", byte_size,
        " bytes but data_offsets [", begin, ", ", end, "] hold ", end - begin));
  }
  view.data = absl::Span<const uint8_t>(data_begin + begin, end - begin);
  return view;
}

// Reads a whole (small) file: config and index JSON.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error_number = errno;
    std::string message =
        absl::StrCat(path, ": cannot open: ", ErrnoText(error_number));
    return absl::Status(absl::ErrnoToStatusCode(error_number), message);
  }
  std::string text;
  char buffer[1 << 16];
  while (true) {
    ssize_t count = ::read(fd, buffer, sizeof(buffer));
    if (count < 0) {
      if (errno == EINTR) continue;
      int error_number = errno;
      ::close(fd);
      return absl::DataLossError(
          absl::StrCat(path, ": read failed: ", ErrnoText(error_number)));
    }
    if (count == 0) break;
    text.append(buffer, static_cast<size_t>(count));
  }
  ::close(fd);
  return text;
}

bool FileExists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string JoinPath(const std::string& directory, const std::string& name) {
  if (directory.empty() || directory.back() == '/') return directory + name;
  return absl::StrCat(directory, "/", name);
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) return info.dtype;
  }
  std::vector<std::string> known;
  for (const DTypeInfo& info : kDTypes) known.push_back(info.name);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype ", Quoted(name),
                   " (supported: ", absl::StrJoin(known, ", "), ")"));
}

int64_t DTypeSize(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.size;
  }
  return 0;
}

int64_t TensorView::num_elements() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

// ---------------------------------------------------------------------------
// SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error_number = errno;
    std::string message =
        absl::StrCat(path, ": cannot open: ", ErrnoText(error_number));
    return absl::Status(absl::ErrnoToStatusCode(error_number), message);
  }
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < 8) {
    ::close(fd);
    return absl::DataLossError(
        absl::StrCat(path, ": file is ", file_size,
                     " bytes, shorter than the 8-byte header length"));
  }
  // The header's views point into the mapping, so the whole file is mapped
  // once and stays mapped for the reader's life (NOTE [mapping]: MAP_PRIVATE
  // read-only; a file replaced by rename keeps its old inode alive).
  void* mapping =
      ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, /*offset=*/0);
  int mmap_errno = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) {
    return absl::InternalError(
        absl::StrCat(path, ": mmap failed: ", ErrnoText(mmap_errno)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = mapping;
  file->mapping_size_ = file_size;
  const uint8_t* bytes = static_cast<const uint8_t*>(mapping);

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > file_size - 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": header length ", header_size,
                     " reaches beyond the file (", file_size, " bytes)"));
  }
  if (header_size > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header length ", header_size, " exceeds the 100 MB limit"));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  const uint8_t* data_begin = bytes + 8 + header_size;
  const uint64_t data_size = file_size - 8 - header_size;

  // nlohmann::json throws; this is the edge where that becomes a Status.
  Json header;
  try {
    header = Json::parse(header_begin, header_begin + header_size);
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header is not JSON: ", error.what()));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header is not a JSON object but ", header.type_name()));
  }
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      if (it->is_null()) continue;
      if (!it->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": \"__metadata__\" is not an object"));
      }
      for (auto meta = it->begin(); meta != it->end(); ++meta) {
        if (!meta->is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": \"__metadata__\" value of ",
                           Quoted(meta.key()), " is not a string"));
        }
        file->metadata_[meta.key()] = meta->get<std::string>();
      }
      continue;
    }
    auto view = ParseTensorEntry(it.key(), it.value(), data_begin, data_size);
    if (!view.ok()) {
      return absl::Status(view.status().code(),
                          absl::StrCat(path, ": tensor ", Quoted(it.key()),
                                       ": ", view.status().message()));
    }
    view->file = path;
    file->tensors_.push_back(*std::move(view));
  }

  // File order; then no two non-empty tensors may share bytes.
  std::stable_sort(file->tensors_.begin(), file->tensors_.end(),
                   [](const TensorView& a, const TensorView& b) {
                     if (a.data.data() != b.data.data()) {
                       return a.data.data() < b.data.data();
                     }
                     return a.data.size() < b.data.size();
                   });
  const TensorView* previous = nullptr;
  for (const TensorView& view : file->tensors_) {
    if (view.data.empty()) continue;
    if (previous != nullptr &&
        view.data.data() < previous->data.data() + previous->data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor ", Quoted(view.name), " overlaps tensor ",
          Quoted(previous->name), " in the data"));
    }
    previous = &view;
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  for (const TensorView& view : tensors_) {
    if (view.name == name) return &view;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// CheckpointReader

absl::StatusOr<std::unique_ptr<CheckpointReader>> CheckpointReader::Open(
    const std::string& directory) {
  std::unique_ptr<CheckpointReader> reader(new CheckpointReader());
  reader->directory_ = directory;
  const std::string single_path = JoinPath(directory, kSingleFileName);
  const std::string index_path = JoinPath(directory, kIndexFileName);

  // Like transformers, a single model.safetensors wins over an index.
  if (FileExists(single_path)) {
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single_path));
    reader->files_.push_back(std::move(file));
    for (const TensorView& view : reader->files_.back()->tensors()) {
      reader->by_name_.emplace(view.name, &view);
    }
    return reader;
  }
  if (!FileExists(index_path)) {
    return absl::NotFoundError(absl::StrCat(
        directory, ": neither ", kSingleFileName, " nor ", kIndexFileName));
  }
  ASSIGN_OR_RETURN(std::string index_text, ReadSmallFile(index_path));
  Json index;
  try {
    index = Json::parse(index_text);
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": not JSON: ", error.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        index_path, ": not an object with a \"weight_map\" object"));
  }
  const Json& weight_map = index["weight_map"];
  std::map<std::string, std::string> shard_of_tensor;
  std::set<std::string> shard_names;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry for tensor ",
                       Quoted(it.key()), " is not a file name"));
    }
    std::string shard = it->get<std::string>();
    // Shards live beside the index; a path would read outside the checkpoint.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." ||
        shard == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          index_path, ": tensor ", Quoted(it.key()), " is placed in ",
          Quoted(shard), ", which is not a file name in the directory"));
    }
    shard_of_tensor[it.key()] = shard;
    shard_names.insert(shard);
  }
  std::map<std::string, const SafetensorsFile*> file_of_shard;
  for (const std::string& shard : shard_names) {
    const std::string shard_path = JoinPath(directory, shard);
    auto file = SafetensorsFile::Open(shard_path);
    if (!file.ok()) {
      return absl::Status(
          file.status().code(),
          absl::StrCat(index_path, " names shard ", Quoted(shard), ": ",
                       file.status().message()));
    }
    file_of_shard[shard] = file->get();
    reader->files_.push_back(*std::move(file));
  }
  // Every tensor of every shard is readable, listed in the index or not, as
  // transformers loads whole shards; but never two tensors of one name.
  for (const auto& file : reader->files_) {
    for (const TensorView& view : file->tensors()) {
      auto [it, inserted] = reader->by_name_.emplace(view.name, &view);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat(directory, ": tensor ", Quoted(view.name),
                         " is in both ", it->second->file, " and ", view.file));
      }
    }
  }
  for (const auto& [name, shard] : shard_of_tensor) {
    if (file_of_shard[shard]->Find(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": tensor ", Quoted(name), " is placed in ",
                       shard, ", which lacks it"));
    }
  }
  return reader;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> result;
  result.reserve(by_name_.size());
  for (const auto& [name, view] : by_name_) result.push_back(name);
  return result;
}

const TensorView* CheckpointReader::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

absl::StatusOr<const TensorView*> CheckpointReader::Get(
    absl::string_view name) const {
  const TensorView* view = Find(name);
  if (view == nullptr) {
    return absl::NotFoundError(absl::StrCat("no tensor ", Quoted(name),
                                            " in checkpoint ", directory_));
  }
  return view;
}

}  // namespace fapo::engine
