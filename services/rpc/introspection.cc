#include "services/rpc/introspection.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "services/rpc/channel.h"
#include "services/rpc/status_conversion.h"

namespace fapo::rpc {
namespace {

using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// A length-delimited field as protobuf encodes it: tag, length, bytes.
std::string EncodeBytesField(int field_number, const std::string& value) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag((field_number << 3) | 2);
  coded.WriteVarint32(static_cast<uint32_t>(value.size()));
  coded.WriteString(value);
  return out;
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

absl::StatusOr<std::string> FromByteBuffer(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  grpc::Status status = buffer.DumpToSingleSlice(&slice);
  if (!status.ok()) return FromGrpcStatus(status);
  return std::string(reinterpret_cast<const char*>(slice.begin()),
                     slice.size());
}

// UnknownFieldSet is neither copyable nor movable, hence the unique_ptr.
absl::StatusOr<std::unique_ptr<UnknownFieldSet>> ParseFields(
    const std::string& bytes, absl::string_view what) {
  auto fields = std::make_unique<UnknownFieldSet>();
  if (!fields->ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("malformed ", what));
  }
  return fields;
}

// One request, one response, over the bidi reflection stream.
class ReflectionCall
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  ReflectionCall(grpc::GenericStub* stub, grpc::ClientContext* context,
                 const std::string& request)
      : request_(ToByteBuffer(request)) {
    stub->PrepareBidiStreamingCall(
        context,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        grpc::StubOptions(), this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadDone(bool ok) override { got_response_ = ok; }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }

  absl::StatusOr<std::string> Await() {
    done_.WaitForNotification();
    if (!status_.ok()) return FromGrpcStatus(status_);
    if (!got_response_) {
      return absl::DataLossError("reflection stream ended without a response");
    }
    return FromByteBuffer(response_);
  }

 private:
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  bool got_response_ = false;
  grpc::Status status_;
  absl::Notification done_;
};

}  // namespace

absl::StatusOr<HealthStatus> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
    absl::Duration timeout) {
  grpc::GenericStub stub(channel);
  std::unique_ptr<grpc::ClientContext> context = NewContext(timeout);
  // HealthCheckRequest { string service = 1; }
  grpc::ByteBuffer request =
      ToByteBuffer(service.empty() ? "" : EncodeBytesField(1, service));
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(context.get(), "/grpc.health.v1.Health/Check",
                 grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status);

  std::string bytes;
  {
    auto dumped = FromByteBuffer(response);
    if (!dumped.ok()) return dumped.status();
    bytes = *std::move(dumped);
  }
  // HealthCheckResponse { ServingStatus status = 1; } SERVING = 1,
  // NOT_SERVING = 2, SERVICE_UNKNOWN = 3; an absent field means UNKNOWN.
  auto fields = ParseFields(bytes, "health check response");
  if (!fields.ok()) return fields.status();
  for (int i = 0; i < (*fields)->field_count(); ++i) {
    const UnknownField& field = (*fields)->field(i);
    if (field.number() != 1 || field.type() != UnknownField::TYPE_VARINT) {
      continue;
    }
    switch (field.varint()) {
      case 1:
        return HealthStatus::kServing;
      case 2:
        return HealthStatus::kNotServing;
      case 3:
        return HealthStatus::kServiceUnknown;
      default:
        return HealthStatus::kUnknown;
    }
  }
  return HealthStatus::kUnknown;
}

absl::StatusOr<std::vector<std::string>> ListServices(
    const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  grpc::GenericStub stub(channel);
  std::unique_ptr<grpc::ClientContext> context = NewContext(timeout);
  // ServerReflectionRequest { oneof { string list_services = 7; } }
  ReflectionCall call(&stub, context.get(), EncodeBytesField(7, ""));
  auto bytes = call.Await();
  if (!bytes.ok()) return bytes.status();

  // ServerReflectionResponse { ListServiceResponse list_services_response
  // = 6; ErrorResponse error_response = 7; } ListServiceResponse {
  // repeated ServiceResponse service = 1; } ServiceResponse { string name =
  // 1; }
  auto response = ParseFields(*bytes, "reflection response");
  if (!response.ok()) return response.status();
  std::vector<std::string> names;
  for (int i = 0; i < (*response)->field_count(); ++i) {
    const UnknownField& field = (*response)->field(i);
    if (field.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    if (field.number() == 7) {
      return absl::UnknownError("server reflection returned an error");
    }
    if (field.number() != 6) continue;
    auto list = ParseFields(field.length_delimited(), "list_services_response");
    if (!list.ok()) return list.status();
    for (int j = 0; j < (*list)->field_count(); ++j) {
      const UnknownField& service = (*list)->field(j);
      if (service.number() != 1 ||
          service.type() != UnknownField::TYPE_LENGTH_DELIMITED) {
        continue;
      }
      auto entry = ParseFields(service.length_delimited(), "service entry");
      if (!entry.ok()) return entry.status();
      for (int k = 0; k < (*entry)->field_count(); ++k) {
        if ((*entry)->field(k).number() == 1 &&
            (*entry)->field(k).type() == UnknownField::TYPE_LENGTH_DELIMITED) {
          names.push_back((*entry)->field(k).length_delimited());
        }
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace fapo::rpc
