#include "engine/weights/weights_rpc.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/crc32c/crc32c.h"
#include "services/rpc/channel.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

// Writes the manifest, then chunk after chunk, each from OnWriteDone: one
// message in flight, so memory stays at one chunk whatever the model size.
class WeightsStreamReactor
    : public grpc::ServerWriteReactor<v1::WeightsMessage> {
 public:
  WeightsStreamReactor(std::shared_ptr<const WeightsSnapshot> snapshot,
                       int64_t max_chunk_bytes,
                       std::function<void(v1::WeightsMessage&)> corrupt)
      : snapshot_(std::move(snapshot)),
        max_chunk_bytes_(max_chunk_bytes > 0 ? max_chunk_bytes
                                             : kDefaultMaxChunkBytes),
        corrupt_(std::move(corrupt)) {
    *message_.mutable_manifest() = snapshot_->manifest;
    if (corrupt_) corrupt_(message_);
    StartWrite(&message_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      // The client went away (cancelled, deadline): nothing left to do.
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "weights stream cancelled"));
      return;
    }
    if (!NextChunk()) {
      Finish(grpc::Status::OK);
      return;
    }
    if (corrupt_) corrupt_(message_);
    StartWrite(&message_);
  }

  void OnDone() override { delete this; }

 private:
  // Fills message_ with the next chunk; false when all were sent.
  bool NextChunk() {
    const v1::WeightManifest& manifest = snapshot_->manifest;
    while (tensor_ < manifest.tensors_size() &&
           offset_ >= manifest.tensors(tensor_).num_bytes()) {
      ++tensor_;
      offset_ = 0;
    }
    if (tensor_ >= manifest.tensors_size()) return false;
    const int64_t n = std::min(max_chunk_bytes_,
                               manifest.tensors(tensor_).num_bytes() - offset_);
    const char* data =
        snapshot_->bytes.data() + snapshot_->offsets[tensor_] + offset_;
    v1::WeightChunk* chunk = message_.mutable_chunk();
    chunk->set_tensor_index(tensor_);
    chunk->set_offset(offset_);
    chunk->set_data(data, static_cast<size_t>(n));
    chunk->set_crc32c(crc32c::Value(data, static_cast<size_t>(n)));
    offset_ += n;
    return true;
  }

  const std::shared_ptr<const WeightsSnapshot> snapshot_;
  const int64_t max_chunk_bytes_;
  const std::function<void(v1::WeightsMessage&)> corrupt_;
  v1::WeightsMessage message_;
  int tensor_ = 0;
  int64_t offset_ = 0;
};

class ErrorReactor : public grpc::ServerWriteReactor<v1::WeightsMessage> {
 public:
  explicit ErrorReactor(const absl::Status& status) {
    Finish(rpc::ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::WeightsMessage>* NewWeightsStreamReactor(
    std::shared_ptr<const WeightsSnapshot> snapshot, int64_t max_chunk_bytes,
    std::function<void(v1::WeightsMessage&)> corrupt) {
  return new WeightsStreamReactor(std::move(snapshot), max_chunk_bytes,
                                  std::move(corrupt));
}

grpc::ServerWriteReactor<v1::WeightsMessage>* NewWeightsErrorReactor(
    const absl::Status& status) {
  return new ErrorReactor(status);
}

absl::Status PullWeights(v1::Trainer::StubInterface& stub, int64_t min_version,
                         const PullWeightsOptions& options,
                         WeightsAssembler& assembler) {
  std::unique_ptr<grpc::ClientContext> context =
      rpc::NewContext(options.timeout);
  if (options.on_context) options.on_context(context.get());
  v1::GetWeightsRequest request;
  request.set_min_version(min_version);
  request.set_max_chunk_bytes(options.max_chunk_bytes);
  std::unique_ptr<grpc::ClientReaderInterface<v1::WeightsMessage>> reader =
      stub.GetWeights(context.get(), request);
  v1::WeightsMessage message;
  absl::Status stream_error;
  while (reader->Read(&message)) {
    stream_error = assembler.Add(message);
    if (stream_error.ok() && message.has_manifest() &&
        assembler.version() < min_version) {
      stream_error = absl::FailedPreconditionError(
          absl::StrCat("GetWeights sent version ", assembler.version(),
                       ", below the requested ", min_version));
    }
    if (!stream_error.ok()) {
      // Stop the transfer now rather than read the rest for nothing.
      context->TryCancel();
      while (reader->Read(&message)) {
      }
      break;
    }
  }
  const grpc::Status call_status = reader->Finish();
  if (options.on_context) options.on_context(nullptr);
  if (!stream_error.ok()) return stream_error;
  if (!call_status.ok()) {
    return Annotate(
        rpc::FromGrpcStatus(call_status),
        absl::StrCat("GetWeights(min_version ", min_version, ") after ",
                     assembler.bytes_received(), " bytes"));
  }
  return assembler.Finish();
}

}  // namespace fapo::engine
