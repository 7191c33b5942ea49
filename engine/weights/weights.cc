#include "engine/weights/weights.h"

#include <sys/mman.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/model/model.h"
#include "services/crc32c/crc32c.h"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

// safetensors dtype names; "" for dtypes the transfer does not carry.
const char* DtypeName(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat:
      return "F32";
    case c10::kBFloat16:
      return "BF16";
    case c10::kHalf:
      return "F16";
    default:
      return "";
  }
}

int64_t DtypeSize(const std::string& name) {
  if (name == "F32") return 4;
  if (name == "BF16" || name == "F16") return 2;
  return 0;
}

c10::ScalarType DtypeFromName(const std::string& name) {
  if (name == "BF16") return c10::kBFloat16;
  if (name == "F16") return c10::kHalf;
  return c10::kFloat;
}

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

constexpr size_t kHugePageBytes = size_t{2} << 20;

// Copies n bytes and returns crc extended over them, a cache-sized piece at
// a time: the checksum reads what the copy just read, from L1/L2 rather
// than memory, so the pair costs about one pass.
uint32_t CopyAndExtendCrc(uint32_t crc, char* destination, const char* source,
                          size_t n) {
  constexpr size_t kPieceBytes = size_t{64} << 10;
  for (size_t done = 0; done < n; done += kPieceBytes) {
    const size_t piece = std::min(kPieceBytes, n - done);
    crc = crc32c::Extend(crc, source + done, piece);
    std::memcpy(destination + done, source + done, piece);
  }
  return crc;
}

// crc32c::Combine(a, b, kCrcBlockBytes) as one 32x32 GF(2) matrix-vector
// product: Combine rebuilds its operator from the length on every call
// (~30 us), which at one call per block was 5% of serving a pull.
// Combine(a, 0, n) is linear in a, so column j is Combine(1 << j, 0, n).
class BlockCombiner {
 public:
  BlockCombiner() {
    for (int j = 0; j < 32; ++j) {
      shift_[j] = crc32c::Combine(uint32_t{1} << j, 0,
                                  static_cast<size_t>(kCrcBlockBytes));
    }
  }
  uint32_t Combine(uint32_t crc_a, uint32_t crc_b) const {
    uint32_t shifted = 0;
    for (int j = 0; crc_a != 0; ++j, crc_a >>= 1) {
      if (crc_a & 1) shifted ^= shift_[j];
    }
    return shifted ^ crc_b;
  }

 private:
  uint32_t shift_[32];
};

const BlockCombiner& GetBlockCombiner() {
  static const BlockCombiner* const combiner = new BlockCombiner();
  return *combiner;
}

// The CRC of blocks[first, ...) covering `size` bytes (the last block may be
// short).
uint32_t CombineBlocks(const std::vector<uint32_t>& blocks, int64_t first,
                       int64_t size) {
  const BlockCombiner& combiner = GetBlockCombiner();
  uint32_t crc = 0;
  for (int64_t block = first; size > 0; ++block) {
    const int64_t n = std::min(kCrcBlockBytes, size);
    crc = n == kCrcBlockBytes
              ? combiner.Combine(crc, blocks[block])
              : crc32c::Combine(crc, blocks[block], static_cast<size_t>(n));
    size -= n;
  }
  return crc;
}

}  // namespace

// ------------------------------------------------------------ WeightsBuffer

WeightsBuffer::WeightsBuffer(int64_t size) : size_(static_cast<size_t>(size)) {
  if (size_ < kHugePageBytes) {
    data_ = static_cast<char*>(std::malloc(std::max<size_t>(size_, 1)));
  } else {
    // NOTE [huge pages] in the header: whole huge pages, so the tail is one
    // too.
    const size_t allocated =
        (size_ + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* memory = nullptr;
    if (posix_memalign(&memory, kHugePageBytes, allocated) == 0) {
      data_ = static_cast<char*>(memory);
      // Advice only: without THP the buffer is ordinary pages.
      madvise(data_, allocated, MADV_HUGEPAGE);
    }
  }
  if (data_ == nullptr) throw std::bad_alloc();
}

WeightsBuffer::WeightsBuffer(WeightsBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

WeightsBuffer& WeightsBuffer::operator=(WeightsBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

WeightsBuffer::~WeightsBuffer() { std::free(data_); }

// ---------------------------------------------------------------- snapshot

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> SnapshotWeights(
    const CausalLM& model, int64_t version) {
  auto snapshot = std::make_shared<WeightsSnapshot>();
  snapshot->version = version;
  snapshot->manifest.set_version(version);
  const auto& named = model.named_parameters();
  try {
    torch::NoGradGuard no_grad;
    // Sizes first, so the bytes are allocated once.
    int64_t total = 0;
    for (const auto& [name, tensor] : named) {
      const char* dtype = DtypeName(tensor.scalar_type());
      if (*dtype == '\0') {
        return absl::InvalidArgumentError(absl::StrCat(
            "weight ", name, ": dtype ", c10::toString(tensor.scalar_type()),
            " cannot be transferred (F32, BF16, F16 only)"));
      }
      v1::TensorInfo* info = snapshot->manifest.add_tensors();
      info->set_name(name);
      info->set_dtype(dtype);
      for (int64_t size : tensor.sizes()) info->add_shape(size);
      info->set_num_bytes(tensor.numel() *
                          static_cast<int64_t>(tensor.element_size()));
      snapshot->offsets.push_back(total);
      total += info->num_bytes();
    }
    snapshot->manifest.set_total_bytes(total);
    snapshot->bytes = WeightsBuffer(total);
    snapshot->block_crc32c.resize(named.size());
    for (size_t i = 0; i < named.size(); ++i) {
      v1::TensorInfo* info = snapshot->manifest.mutable_tensors(i);
      // Copy straight into the snapshot: a CPU contiguous tensor is read
      // in place, anything else (CUDA, strided) goes through one
      // contiguous CPU copy.
      at::Tensor source = named[i].second.detach();
      if (!source.device().is_cpu() || !source.is_contiguous()) {
        source = source.to(c10::kCPU).contiguous();
      }
      // Block by block, copied and checksummed in one pass; the tensor's
      // CRC folds from its blocks'.
      const char* from = static_cast<const char*>(source.data_ptr());
      char* to = snapshot->bytes.data() + snapshot->offsets[i];
      std::vector<uint32_t>& blocks = snapshot->block_crc32c[i];
      for (int64_t offset = 0; offset < info->num_bytes();
           offset += kCrcBlockBytes) {
        const int64_t n = std::min(kCrcBlockBytes, info->num_bytes() - offset);
        blocks.push_back(CopyAndExtendCrc(0, to + offset, from + offset,
                                          static_cast<size_t>(n)));
      }
      info->set_crc32c(CombineBlocks(blocks, 0, info->num_bytes()));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("snapshotting weights version ",
                                            version, ": ",
                                            e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("snapshotting weights version ", version, ": cannot ",
                     "allocate ", snapshot->manifest.total_bytes(), " bytes"));
  }
  return std::shared_ptr<const WeightsSnapshot>(std::move(snapshot));
}

uint32_t ChunkCrc32c(const WeightsSnapshot& snapshot, int tensor_index,
                     int64_t offset, int64_t size) {
  const int64_t num_bytes = snapshot.manifest.tensors(tensor_index).num_bytes();
  const std::vector<uint32_t>& blocks = snapshot.block_crc32c[tensor_index];
  if (offset % kCrcBlockBytes != 0 ||
      (size % kCrcBlockBytes != 0 && offset + size != num_bytes)) {
    return crc32c::Value(
        snapshot.bytes.data() + snapshot.offsets[tensor_index] + offset,
        static_cast<size_t>(size));
  }
  return CombineBlocks(blocks, offset / kCrcBlockBytes, size);
}

bool ForEachWeightsMessage(
    const WeightsSnapshot& snapshot, int64_t max_chunk_bytes,
    const std::function<bool(const v1::WeightsMessage&)>& emit) {
  if (max_chunk_bytes <= 0) max_chunk_bytes = kDefaultMaxChunkBytes;
  v1::WeightsMessage message;
  *message.mutable_manifest() = snapshot.manifest;
  if (!emit(message)) return false;
  v1::WeightChunk* chunk = message.mutable_chunk();
  for (int i = 0; i < snapshot.manifest.tensors_size(); ++i) {
    const int64_t num_bytes = snapshot.manifest.tensors(i).num_bytes();
    const char* tensor = snapshot.bytes.data() + snapshot.offsets[i];
    for (int64_t offset = 0; offset < num_bytes; offset += max_chunk_bytes) {
      const int64_t n = std::min(max_chunk_bytes, num_bytes - offset);
      chunk->set_tensor_index(i);
      chunk->set_offset(offset);
      chunk->set_data(tensor + offset, static_cast<size_t>(n));
      chunk->set_crc32c(ChunkCrc32c(snapshot, i, offset, n));
      if (!emit(message)) return false;
    }
  }
  return true;
}

int64_t WeightsAssembler::version() const {
  return has_manifest_ ? manifest_.version() : -1;
}

absl::Status WeightsAssembler::Add(const v1::WeightsMessage& message) {
  if (failed_) {
    return absl::FailedPreconditionError(
        "weights assembler: an earlier message failed; start over");
  }
  if (finished_) {
    return absl::FailedPreconditionError(
        "weights assembler: message after Finish()");
  }
  absl::Status status;
  switch (message.payload_case()) {
    case v1::WeightsMessage::kManifest:
      status = AddManifest(message.manifest());
      break;
    case v1::WeightsMessage::kChunk: {
      const v1::WeightChunk& chunk = message.chunk();
      const absl::string_view data = chunk.data();
      status = AddChunkChecked(chunk.tensor_index(), chunk.offset(),
                               chunk.crc32c(), {&data, 1});
      break;
    }
    default:
      status = absl::InvalidArgumentError(
          "weights message with neither a manifest nor a chunk");
  }
  if (!status.ok()) failed_ = true;
  return status;
}

absl::Status WeightsAssembler::AddChunk(
    int64_t tensor_index, int64_t offset, uint32_t chunk_crc32c,
    absl::Span<const absl::string_view> pieces) {
  if (failed_) {
    return absl::FailedPreconditionError(
        "weights assembler: an earlier message failed; start over");
  }
  if (finished_) {
    return absl::FailedPreconditionError(
        "weights assembler: message after Finish()");
  }
  absl::Status status =
      AddChunkChecked(tensor_index, offset, chunk_crc32c, pieces);
  if (!status.ok()) failed_ = true;
  return status;
}

absl::Status WeightsAssembler::AddManifest(const v1::WeightManifest& manifest) {
  if (has_manifest_) {
    return absl::FailedPreconditionError("weights stream: a second manifest");
  }
  int64_t total = 0;
  std::vector<int64_t> offsets;
  offsets.reserve(manifest.tensors_size());
  for (const v1::TensorInfo& info : manifest.tensors()) {
    const int64_t element = DtypeSize(info.dtype());
    if (element == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights manifest: tensor ", info.name(), ": dtype \"",
                       info.dtype(), "\" (F32, BF16, F16 only)"));
    }
    int64_t numel = 1;
    for (int64_t size : info.shape()) {
      // Bounded so the product cannot overflow before the size check.
      if (size < 0 || size > (int64_t{1} << 40) ||
          (size > 0 && numel > (int64_t{1} << 40) / size)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights manifest: tensor ", info.name(), ": shape ",
                         ShapeString(info.shape())));
      }
      numel *= size;
    }
    if (info.num_bytes() != numel * element) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights manifest: tensor ", info.name(), ": num_bytes ",
                       info.num_bytes(), ", but ", info.dtype(), " ",
                       ShapeString(info.shape()), " is ", numel * element));
    }
    offsets.push_back(total);
    total += info.num_bytes();
  }
  if (total != manifest.total_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights manifest: total_bytes ", manifest.total_bytes(),
                     ", but the tensors add up to ", total));
  }
  manifest_ = manifest;
  offsets_ = std::move(offsets);
  if (reuse_ != nullptr) bytes_ = reuse_;
  try {
    if (bytes_->data() == nullptr ||
        bytes_->size() != static_cast<size_t>(total)) {
      *bytes_ = WeightsBuffer();  // the old one goes before the new one comes
      *bytes_ = WeightsBuffer(total);
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "weights manifest: cannot allocate ", total, " bytes to assemble"));
  }
  ranges_.assign(manifest.tensors_size(), {});
  has_manifest_ = true;
  return absl::OkStatus();
}

absl::Status WeightsAssembler::AddChunkChecked(
    int64_t tensor_index, int64_t offset, uint32_t chunk_crc32c,
    absl::Span<const absl::string_view> pieces) {
  if (!has_manifest_) {
    return absl::FailedPreconditionError(
        "weights stream: a chunk before the manifest");
  }
  if (tensor_index < 0 || tensor_index >= manifest_.tensors_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights chunk: tensor_index ", tensor_index,
        " outside the manifest's ", manifest_.tensors_size(), " tensors"));
  }
  const v1::TensorInfo& info = manifest_.tensors(tensor_index);
  int64_t size = 0;
  for (absl::string_view piece : pieces) {
    size += static_cast<int64_t>(piece.size());
  }
  if (offset < 0 || size == 0 || offset > info.num_bytes() ||
      size > info.num_bytes() - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights chunk of tensor ", info.name(), " at offset ", offset, ": ",
        size, " bytes do not fit in its ", info.num_bytes()));
  }
  const int64_t end = offset + size;
  std::map<int64_t, Range>& ranges = ranges_[tensor_index];
  // The first range starting after `offset`, and the one before it: the
  // only ones that can overlap [offset, end). Checked before the copy, so
  // a duplicate never overwrites bytes already accepted.
  auto next = ranges.upper_bound(offset);
  if ((next != ranges.end() && next->first < end) ||
      (next != ranges.begin() && std::prev(next)->second.end > offset)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights chunk of tensor ", info.name(), " at offset ", offset,
        ": overlaps bytes already received (duplicate chunk)"));
  }
  // Copied and checksummed in one pass. Bytes of a chunk that then fails
  // its CRC are in the buffer, but the assembler is spent (failed_) and the
  // model is never touched.
  char* destination = bytes_->data() + offsets_[tensor_index] + offset;
  uint32_t crc = 0;
  for (absl::string_view piece : pieces) {
    crc = CopyAndExtendCrc(crc, destination, piece.data(), piece.size());
    destination += piece.size();
  }
  if (crc != chunk_crc32c) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights chunk of tensor ", info.name(), " at offset ",
                     offset, ": CRC-32C mismatch (corrupted in transit)"));
  }
  ranges.emplace(offset, Range{end, crc});
  bytes_received_ += size;
  return absl::OkStatus();
}

absl::Status WeightsAssembler::Finish() {
  if (failed_) {
    return absl::FailedPreconditionError(
        "weights assembler: an earlier message failed; start over");
  }
  if (finished_) return absl::OkStatus();
  if (!has_manifest_) {
    failed_ = true;
    return absl::InvalidArgumentError(
        "weights stream ended without a manifest");
  }
  for (int i = 0; i < manifest_.tensors_size(); ++i) {
    const v1::TensorInfo& info = manifest_.tensors(i);
    // Ranges do not overlap (AddChunk), so walking them in order finds the
    // first gap; on the way, the chunk CRCs (each checked against its
    // bytes on arrival) fold into the tensor's.
    int64_t covered = 0;
    uint32_t crc = 0;
    for (const auto& [offset, range] : ranges_[i]) {
      if (offset != covered) break;
      crc = crc32c::Combine(crc, range.crc32c,
                            static_cast<size_t>(range.end - offset));
      covered = range.end;
    }
    if (covered != info.num_bytes()) {
      failed_ = true;
      return absl::InvalidArgumentError(
          absl::StrCat("weights stream incomplete: tensor ", info.name(),
                       " is missing bytes from offset ", covered, " (of ",
                       info.num_bytes(), ")"));
    }
    if (crc != info.crc32c()) {
      failed_ = true;
      return absl::InvalidArgumentError(absl::StrCat(
          "weights of tensor ", info.name(),
          ": CRC-32C of the whole tensor does not match the manifest's"));
    }
  }
  finished_ = true;
  return absl::OkStatus();
}

absl::Status WeightsAssembler::ApplyTo(CausalLM& model) const {
  if (!finished_) {
    return absl::FailedPreconditionError(
        "weights assembler: ApplyTo before a successful Finish()");
  }
  const auto& params = model.named_parameters();
  if (static_cast<int>(params.size()) != manifest_.tensors_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights version ", manifest_.version(), " hold ",
        manifest_.tensors_size(), " tensors, the model has ", params.size()));
  }
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, tensor] : params) by_name[name] = &tensor;
  std::vector<std::pair<std::string, at::Tensor>> named;
  named.reserve(params.size());
  try {
    for (int i = 0; i < manifest_.tensors_size(); ++i) {
      const v1::TensorInfo& info = manifest_.tensors(i);
      auto it = by_name.find(info.name());
      if (it == by_name.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "weights: tensor ", info.name(), ": the model has no such tensor"));
      }
      const at::Tensor& target = *it->second;
      const std::vector<int64_t> shape(info.shape().begin(),
                                       info.shape().end());
      if (target.sizes() != c10::IntArrayRef(shape)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights: tensor ", info.name(), ": shape ",
                         ShapeString(info.shape()), ", the model's is [",
                         absl::StrJoin(target.sizes(), ", "), "]"));
      }
      if (info.dtype() != DtypeName(target.scalar_type())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "weights: tensor ", info.name(), ": dtype ", info.dtype(),
            ", the model's is ", DtypeName(target.scalar_type())));
      }
      // A view of the assembled bytes; CopyWeightsFrom only reads it, and
      // before this returns.
      char* data = bytes_->data() + offsets_[i];
      named.emplace_back(info.name(),
                         at::from_blob(data, shape,
                                       at::TensorOptions().dtype(
                                           DtypeFromName(info.dtype()))));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("weights: viewing version ",
                                            manifest_.version(), ": ",
                                            e.what_without_backtrace()));
  }
  return Annotate(
      model.CopyWeightsFrom(named),
      absl::StrCat("applying weights version ", manifest_.version()));
}

}  // namespace fapo::engine
