#include "engine/weights/weights_rpc.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

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
    chunk->set_crc32c(ChunkCrc32c(*snapshot_, tensor_, offset_, n));
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

template <typename Message>
class ErrorReactor : public grpc::ServerWriteReactor<Message> {
 public:
  explicit ErrorReactor(const absl::Status& status) {
    this->Finish(rpc::ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// Protobuf wire format, as much of it as a WeightsMessage needs.
constexpr uint8_t kWireVarint = 0;
constexpr uint8_t kWireLengthDelimited = 2;
constexpr uint8_t kWireFixed32 = 5;
constexpr uint8_t Tag(int field, uint8_t wire_type) {
  return static_cast<uint8_t>(field << 3 | wire_type);
}
// WeightsMessage.chunk, and WeightChunk's fields, numbered as protoc says
// (trainer.proto; one-byte tags while the numbers stay below 16).
constexpr uint8_t kChunkTag =
    Tag(v1::WeightsMessage::kChunkFieldNumber, kWireLengthDelimited);
constexpr uint8_t kTensorIndexTag =
    Tag(v1::WeightChunk::kTensorIndexFieldNumber, kWireVarint);
constexpr uint8_t kOffsetTag =
    Tag(v1::WeightChunk::kOffsetFieldNumber, kWireVarint);
constexpr uint8_t kDataTag =
    Tag(v1::WeightChunk::kDataFieldNumber, kWireLengthDelimited);
constexpr uint8_t kCrc32cTag =
    Tag(v1::WeightChunk::kCrc32CFieldNumber, kWireFixed32);
static_assert(v1::WeightsMessage::kChunkFieldNumber < 16 &&
                  v1::WeightChunk::kTensorIndexFieldNumber < 16 &&
                  v1::WeightChunk::kOffsetFieldNumber < 16 &&
                  v1::WeightChunk::kDataFieldNumber < 16 &&
                  v1::WeightChunk::kCrc32CFieldNumber < 16,
              "weights_rpc writes one-byte tags");

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

char* PutVarint(uint64_t value, char* out) {
  while (value >= 0x80) {
    *out++ = static_cast<char>(value | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

// A chunk's WeightsMessage bytes up to its payload: the message's tag and
// length, then WeightChunk's tensor_index, offset, crc32c, and data's tag
// and length (fields in any order are valid protobuf; crc32c goes before
// data so that the payload is last and can be a slice of its own). Zero
// integers are left out, as protobuf does.
absl::string_view ChunkHeader(int tensor_index, int64_t offset, uint32_t crc32c,
                              int64_t size, std::array<char, 48>& out) {
  const uint64_t data_size = static_cast<uint64_t>(size);
  const uint64_t chunk_size =
      (tensor_index != 0 ? 1 + VarintSize(tensor_index) : 0) +
      (offset != 0 ? 1 + VarintSize(offset) : 0) + 1 + 4 + 1 +
      VarintSize(data_size) + data_size;
  char* p = out.data();
  *p++ = static_cast<char>(kChunkTag);
  p = PutVarint(chunk_size, p);
  if (tensor_index != 0) {
    *p++ = static_cast<char>(kTensorIndexTag);
    p = PutVarint(static_cast<uint64_t>(tensor_index), p);
  }
  if (offset != 0) {
    *p++ = static_cast<char>(kOffsetTag);
    p = PutVarint(static_cast<uint64_t>(offset), p);
  }
  *p++ = static_cast<char>(kCrc32cTag);
  for (int byte = 0; byte < 4; ++byte) {
    *p++ = static_cast<char>(crc32c >> (8 * byte));  // little-endian
  }
  *p++ = static_cast<char>(kDataTag);
  p = PutVarint(data_size, p);
  return absl::string_view(out.data(), static_cast<size_t>(p - out.data()));
}

// The raw twin of WeightsStreamReactor (NOTE [zero-copy weights]): each
// chunk is a header slice and a slice of the snapshot itself.
class RawWeightsStreamReactor
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  RawWeightsStreamReactor(std::shared_ptr<const WeightsSnapshot> snapshot,
                          int64_t max_chunk_bytes)
      : snapshot_(std::move(snapshot)),
        max_chunk_bytes_(max_chunk_bytes > 0 ? max_chunk_bytes
                                             : kDefaultMaxChunkBytes) {
    v1::WeightsMessage message;
    *message.mutable_manifest() = snapshot_->manifest;
    grpc::Slice manifest(message.SerializeAsString());
    buffer_ = grpc::ByteBuffer(&manifest, 1);
    StartWrite(&buffer_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "weights stream cancelled"));
      return;
    }
    if (!NextChunk()) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&buffer_);
  }

  void OnDone() override { delete this; }

 private:
  // The payload slice's reference to the snapshot: gRPC may still hold the
  // slice after OnWriteDone (and after this reactor is gone) until the
  // transport has written it.
  static void ReleaseSnapshot(void* reference) {
    delete static_cast<std::shared_ptr<const WeightsSnapshot>*>(reference);
  }

  // Fills buffer_ with the next chunk; false when all were sent.
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
    char* data = const_cast<char*>(snapshot_->bytes.data()) +
                 snapshot_->offsets[tensor_] + offset_;
    std::array<char, 48> header_bytes;
    const absl::string_view header = ChunkHeader(
        tensor_, offset_, ChunkCrc32c(*snapshot_, tensor_, offset_, n), n,
        header_bytes);
    // The snapshot is immutable: the slice only ever reads it.
    grpc::Slice slices[2] = {
        grpc::Slice(header.data(), header.size()),
        grpc::Slice(data, static_cast<size_t>(n), &ReleaseSnapshot,
                    new std::shared_ptr<const WeightsSnapshot>(snapshot_))};
    grpc::ByteBuffer next(slices, 2);
    buffer_.Swap(&next);
    offset_ += n;
    return true;
  }

  const std::shared_ptr<const WeightsSnapshot> snapshot_;
  const int64_t max_chunk_bytes_;
  grpc::ByteBuffer buffer_;
  int tensor_ = 0;
  int64_t offset_ = 0;
};

// Reads protobuf wire format across the pieces of a received message.
class WireReader {
 public:
  explicit WireReader(absl::Span<const absl::string_view> pieces)
      : pieces_(pieces) {
    for (absl::string_view piece : pieces) remaining_ += piece.size();
  }

  size_t remaining() const { return remaining_; }

  bool ReadVarint(uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t byte;
      if (!ReadByte(&byte)) return false;
      result |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;
  }

  bool ReadFixed32(uint32_t* value) {
    uint32_t result = 0;
    for (int byte = 0; byte < 4; ++byte) {
      uint8_t b;
      if (!ReadByte(&b)) return false;
      result |= static_cast<uint32_t>(b) << (8 * byte);
    }
    *value = result;
    return true;
  }

  // The next n bytes as views of the pieces they lie in.
  bool Take(size_t n, std::vector<absl::string_view>* out) {
    if (n > remaining_) return false;
    remaining_ -= n;
    while (n > 0) {
      SkipEmpty();
      const size_t k = std::min(n, pieces_[piece_].size() - at_);
      out->push_back(pieces_[piece_].substr(at_, k));
      at_ += k;
      n -= k;
    }
    return true;
  }

 private:
  void SkipEmpty() {
    while (piece_ < pieces_.size() && at_ == pieces_[piece_].size()) {
      ++piece_;
      at_ = 0;
    }
  }

  bool ReadByte(uint8_t* byte) {
    if (remaining_ == 0) return false;
    SkipEmpty();
    *byte = static_cast<uint8_t>(pieces_[piece_][at_++]);
    --remaining_;
    return true;
  }

  absl::Span<const absl::string_view> pieces_;
  size_t piece_ = 0;
  size_t at_ = 0;
  size_t remaining_ = 0;
};

// The fields of a WeightsMessage that is exactly one chunk, each field at
// most once and none unknown; false for anything else (a manifest, an
// encoding this parser leaves to protobuf). `data` views the pieces.
struct RawChunk {
  int64_t tensor_index = 0;
  int64_t offset = 0;
  uint32_t crc32c = 0;
  std::vector<absl::string_view> data;
};

bool ParseRawChunk(absl::Span<const absl::string_view> pieces,
                   RawChunk* chunk) {
  WireReader reader(pieces);
  uint64_t tag = 0;
  uint64_t size = 0;
  if (!reader.ReadVarint(&tag) || tag != kChunkTag ||
      !reader.ReadVarint(&size) || size != reader.remaining()) {
    return false;
  }
  bool seen_tensor_index = false;
  bool seen_offset = false;
  bool seen_crc32c = false;
  bool seen_data = false;
  while (reader.remaining() > 0) {
    uint64_t value = 0;
    if (!reader.ReadVarint(&tag)) return false;
    switch (tag) {
      case kTensorIndexTag:
        if (seen_tensor_index || !reader.ReadVarint(&value)) return false;
        // int32: protobuf keeps the low 32 bits.
        chunk->tensor_index = static_cast<int32_t>(value);
        seen_tensor_index = true;
        break;
      case kOffsetTag:
        if (seen_offset || !reader.ReadVarint(&value)) return false;
        chunk->offset = static_cast<int64_t>(value);
        seen_offset = true;
        break;
      case kCrc32cTag:
        if (seen_crc32c || !reader.ReadFixed32(&chunk->crc32c)) return false;
        seen_crc32c = true;
        break;
      case kDataTag:
        if (seen_data || !reader.ReadVarint(&value) ||
            !reader.Take(value, &chunk->data)) {
          return false;
        }
        seen_data = true;
        break;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

absl::Status AddWeightsMessageBytes(const grpc::ByteBuffer& buffer,
                                    WeightsAssembler& assembler) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) {
    return absl::InternalError("weights stream: unreadable message buffer");
  }
  std::vector<absl::string_view> pieces;
  pieces.reserve(slices.size());
  for (const grpc::Slice& slice : slices) {
    pieces.emplace_back(reinterpret_cast<const char*>(slice.begin()),
                        slice.size());
  }
  RawChunk chunk;
  if (ParseRawChunk(pieces, &chunk)) {
    return assembler.AddChunk(chunk.tensor_index, chunk.offset, chunk.crc32c,
                              chunk.data);
  }
  std::string bytes;
  for (absl::string_view piece : pieces) {
    bytes.append(piece.data(), piece.size());
  }
  v1::WeightsMessage message;
  if (!message.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights stream: a message of ", bytes.size(),
                     " bytes that is not a fapo.v1.WeightsMessage"));
  }
  return assembler.Add(message);
}

namespace {

// The loop both PullWeights share: Read() until the stream ends, adding
// each message; a failure cancels the call at once.
template <typename Reader, typename Message, typename AddFn>
absl::Status ReadWeightsStream(Reader& reader, grpc::ClientContext& context,
                               int64_t min_version,
                               const PullWeightsOptions& options,
                               WeightsAssembler& assembler, Message& message,
                               const AddFn& add) {
  absl::Status stream_error;
  bool version_checked = false;
  while (reader.Read(&message)) {
    stream_error = add(message);
    if (stream_error.ok() && !version_checked && assembler.has_manifest()) {
      version_checked = true;
      if (assembler.version() < min_version) {
        stream_error = absl::FailedPreconditionError(
            absl::StrCat("GetWeights sent version ", assembler.version(),
                         ", below the requested ", min_version));
      }
    }
    if (!stream_error.ok()) {
      // Stop the transfer now rather than read the rest for nothing.
      context.TryCancel();
      while (reader.Read(&message)) {
      }
      break;
    }
  }
  const grpc::Status call_status = reader.Finish();
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

}  // namespace

grpc::ServerWriteReactor<v1::WeightsMessage>* NewWeightsStreamReactor(
    std::shared_ptr<const WeightsSnapshot> snapshot, int64_t max_chunk_bytes,
    std::function<void(v1::WeightsMessage&)> corrupt) {
  return new WeightsStreamReactor(std::move(snapshot), max_chunk_bytes,
                                  std::move(corrupt));
}

grpc::ServerWriteReactor<v1::WeightsMessage>* NewWeightsErrorReactor(
    const absl::Status& status) {
  return new ErrorReactor<v1::WeightsMessage>(status);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewRawWeightsStreamReactor(
    std::shared_ptr<const WeightsSnapshot> snapshot, int64_t max_chunk_bytes) {
  return new RawWeightsStreamReactor(std::move(snapshot), max_chunk_bytes);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewRawWeightsErrorReactor(
    const absl::Status& status) {
  return new ErrorReactor<grpc::ByteBuffer>(status);
}

absl::StatusOr<v1::GetWeightsRequest> ParseGetWeightsRequest(
    const grpc::ByteBuffer& request) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (request.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    v1::GetWeightsRequest parsed;
    if (parsed.ParseFromString(bytes)) return parsed;
  }
  return absl::InvalidArgumentError(
      "GetWeights: the request is not a fapo.v1.GetWeightsRequest");
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
  return ReadWeightsStream(
      *reader, *context, min_version, options, assembler, message,
      [&](const v1::WeightsMessage& read) { return assembler.Add(read); });
}

absl::Status PullWeights(grpc::ChannelInterface& channel, int64_t min_version,
                         const PullWeightsOptions& options,
                         WeightsAssembler& assembler) {
  std::unique_ptr<grpc::ClientContext> context =
      rpc::NewContext(options.timeout);
  if (options.on_context) options.on_context(context.get());
  v1::GetWeightsRequest request;
  request.set_min_version(min_version);
  request.set_max_chunk_bytes(options.max_chunk_bytes);
  // Trainer.GetWeights as the generated stub calls it, with the response
  // left as bytes (what the stub's reader would hand to protobuf).
  static const std::string* const kMethod = new std::string(
      absl::StrCat("/", v1::Trainer::service_full_name(), "/GetWeights"));
  const grpc::internal::RpcMethod method(
      kMethod->c_str(), grpc::internal::RpcMethod::SERVER_STREAMING);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          &channel, method, context.get(), request));
  grpc::ByteBuffer message;
  return ReadWeightsStream(*reader, *context, min_version, options, assembler,
                           message, [&](const grpc::ByteBuffer& read) {
                             return AddWeightsMessageBytes(read, assembler);
                           });
}

}  // namespace fapo::engine
