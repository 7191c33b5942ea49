#include "services/rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "fapo/v1/genrm.pb.h"
#include "fapo/v1/rollout.pb.h"
#include "fapo/v1/scheduler.pb.h"
#include "fapo/v1/trainer.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "services/rpc/server.h"
#include "services/status/status_macros.h"

namespace fapo::rpc {
namespace {

// gRPC's service config wants durations as decimal seconds: "0.1s".
std::string JsonDuration(absl::Duration duration) {
  return absl::StrCat(absl::ToDoubleSeconds(duration), "s");
}

}  // namespace

std::vector<std::string> RetryableMethods() {
  // One message per .proto file pulls that file's descriptors in.
  const google::protobuf::FileDescriptor* files[] = {
      fapo::v1::RegisterWorkerRequest::descriptor()->file(),
      fapo::v1::GenerateRequest::descriptor()->file(),
      fapo::v1::ScoreRequest::descriptor()->file(),
      fapo::v1::TrainStepRequest::descriptor()->file(),
  };
  std::vector<std::string> methods = {"grpc.health.v1.Health/Check"};
  for (const google::protobuf::FileDescriptor* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const google::protobuf::MethodDescriptor* method = service->method(m);
        auto level = method->options().idempotency_level();
        if (level == google::protobuf::MethodOptions::IDEMPOTENT ||
            level == google::protobuf::MethodOptions::NO_SIDE_EFFECTS) {
          methods.push_back(
              absl::StrCat(service->full_name(), "/", method->name()));
        }
      }
    }
  }
  std::sort(methods.begin(), methods.end());
  return methods;
}

std::string RetryServiceConfigJson(const RetryOptions& retry) {
  std::vector<std::string> names;
  for (const std::string& method : RetryableMethods()) {
    std::vector<std::string> parts = absl::StrSplit(method, '/');
    names.push_back(absl::StrCat(R"({"service":")", parts[0], R"(","method":")",
                                 parts[1], R"("})"));
  }
  return absl::StrCat(
      R"({"methodConfig":[{"name":[)", absl::StrJoin(names, ","),
      R"(],"retryPolicy":{"maxAttempts":)", retry.max_attempts,
      R"(,"initialBackoff":")", JsonDuration(retry.initial_backoff),
      R"(","maxBackoff":")", JsonDuration(retry.max_backoff),
      R"(","backoffMultiplier":)", retry.backoff_multiplier,
      R"(,"retryableStatusCodes":["UNAVAILABLE"]}}]})");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    absl::string_view target, const ChannelOptions& options) {
  InstallGrpcLogBridge();
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   MakeChannelCredentials(options.security));
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  args.SetServiceConfigJSON(RetryServiceConfigJson(options.retry));
  // The retry policy above is ours; never let DNS TXT records replace it.
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetInt(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  if (!options.security.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.security.server_name_override);
  }
  return grpc::CreateCustomChannel(std::string(target), credentials, args);
}

std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

}  // namespace fapo::rpc
