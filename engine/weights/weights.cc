#include "engine/weights/weights.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
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

}  // namespace

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
    // Appended tensor after tensor (no zero-fill pass over the buffer).
    snapshot->bytes.reserve(static_cast<size_t>(total));
    for (size_t i = 0; i < named.size(); ++i) {
      v1::TensorInfo* info = snapshot->manifest.mutable_tensors(i);
      // Copy straight into the snapshot: a CPU contiguous tensor is read
      // in place, anything else (CUDA, strided) goes through one
      // contiguous CPU copy.
      at::Tensor source = named[i].second.detach();
      if (!source.device().is_cpu() || !source.is_contiguous()) {
        source = source.to(c10::kCPU).contiguous();
      }
      snapshot->bytes.append(static_cast<const char*>(source.data_ptr()),
                             static_cast<size_t>(info->num_bytes()));
      info->set_crc32c(crc32c::Value(
          snapshot->bytes.data() + snapshot->offsets[i], info->num_bytes()));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("snapshotting weights version ",
                                            version, ": ",
                                            e.what_without_backtrace()));
  }
  return std::shared_ptr<const WeightsSnapshot>(std::move(snapshot));
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
      chunk->set_crc32c(crc32c::Value(tensor + offset, static_cast<size_t>(n)));
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
    case v1::WeightsMessage::kChunk:
      status = AddChunk(message.chunk());
      break;
    default:
      status = absl::InvalidArgumentError(
          "weights message with neither a manifest nor a chunk");
  }
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
  bytes_.reset(new char[static_cast<size_t>(std::max<int64_t>(total, 1))]);
  ranges_.assign(manifest.tensors_size(), {});
  has_manifest_ = true;
  return absl::OkStatus();
}

absl::Status WeightsAssembler::AddChunk(const v1::WeightChunk& chunk) {
  if (!has_manifest_) {
    return absl::FailedPreconditionError(
        "weights stream: a chunk before the manifest");
  }
  if (chunk.tensor_index() < 0 ||
      chunk.tensor_index() >= manifest_.tensors_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights chunk: tensor_index ", chunk.tensor_index(),
        " outside the manifest's ", manifest_.tensors_size(), " tensors"));
  }
  const v1::TensorInfo& info = manifest_.tensors(chunk.tensor_index());
  const int64_t offset = chunk.offset();
  const int64_t size = static_cast<int64_t>(chunk.data().size());
  const int64_t end = offset + size;
  if (offset < 0 || size == 0 || end > info.num_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights chunk of tensor ", info.name(), " at offset ", offset, ": ",
        size, " bytes do not fit in its ", info.num_bytes()));
  }
  const uint32_t crc = crc32c::Value(chunk.data().data(), chunk.data().size());
  if (crc != chunk.crc32c()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights chunk of tensor ", info.name(), " at offset ",
                     offset, ": CRC-32C mismatch (corrupted in transit)"));
  }
  std::map<int64_t, Range>& ranges = ranges_[chunk.tensor_index()];
  // The first range starting after `offset`, and the one before it: the
  // only ones that can overlap [offset, end).
  auto next = ranges.upper_bound(offset);
  if ((next != ranges.end() && next->first < end) ||
      (next != ranges.begin() && std::prev(next)->second.end > offset)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights chunk of tensor ", info.name(), " at offset ", offset,
        ": overlaps bytes already received (duplicate chunk)"));
  }
  ranges.emplace(offset, Range{end, crc});
  std::memcpy(bytes_.get() + offsets_[chunk.tensor_index()] + offset,
              chunk.data().data(), chunk.data().size());
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
      // A view of the assembled bytes; CopyWeightsFrom copies out of it
      // before this returns.
      char* data = bytes_.get() + offsets_[i];
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
