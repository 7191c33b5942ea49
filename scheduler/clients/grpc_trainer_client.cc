#include "scheduler/clients/grpc_trainer_client.h"

#include <grpcpp/client_context.h>

#include "absl/time/clock.h"
#include "services/rpc/security.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {
namespace {

// One unary call on `stub` with `deadline`; errors name the address.
template <typename Stub, typename Request, typename Response, typename Method>
absl::StatusOr<Response> Call(Stub& stub, Method method,
                              const std::string& address,
                              const Request& request, absl::Time deadline,
                              const char* what) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  Response response;
  grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) {
    return Annotate(rpc::FromGrpcStatus(status),
                    std::string(what) + " at " + address);
  }
  return response;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcTrainerClient>> GrpcTrainerClient::Create(
    rpc::ChannelOptions channel) {
  RETURN_IF_ERROR(rpc::MakeChannelCredentials(channel.security).status());
  return std::unique_ptr<GrpcTrainerClient>(new GrpcTrainerClient(channel));
}

absl::StatusOr<v1::TrainStepResponse> GrpcTrainerClient::TrainStep(
    const std::string& address, const v1::TrainStepRequest& request,
    absl::Time deadline) {
  ASSIGN_OR_RETURN(auto stub, trainers_.Get(address));
  return Call<v1::Trainer::Stub, v1::TrainStepRequest, v1::TrainStepResponse>(
      *stub, &v1::Trainer::Stub::TrainStep, address, request, deadline,
      "TrainStep");
}

absl::StatusOr<v1::SaveCheckpointResponse> GrpcTrainerClient::SaveCheckpoint(
    const std::string& address, const v1::SaveCheckpointRequest& request,
    absl::Time deadline) {
  ASSIGN_OR_RETURN(auto stub, trainers_.Get(address));
  return Call<v1::Trainer::Stub, v1::SaveCheckpointRequest,
              v1::SaveCheckpointResponse>(
      *stub, &v1::Trainer::Stub::SaveCheckpoint, address, request, deadline,
      "SaveCheckpoint");
}

absl::StatusOr<v1::ResumeState> GrpcTrainerClient::GetResumeState(
    const std::string& address, absl::Time deadline) {
  ASSIGN_OR_RETURN(auto stub, trainers_.Get(address));
  return Call<v1::Trainer::Stub, v1::GetResumeStateRequest, v1::ResumeState>(
      *stub, &v1::Trainer::Stub::GetResumeState, address,
      v1::GetResumeStateRequest(), deadline, "GetResumeState");
}

absl::StatusOr<v1::UpdateWeightsResponse> GrpcTrainerClient::UpdateWeights(
    const std::string& address, const v1::UpdateWeightsRequest& request,
    absl::Time deadline) {
  ASSIGN_OR_RETURN(auto stub, rollouts_.Get(address));
  return Call<v1::Rollout::Stub, v1::UpdateWeightsRequest,
              v1::UpdateWeightsResponse>(
      *stub, &v1::Rollout::Stub::UpdateWeights, address, request, deadline,
      "UpdateWeights");
}

}  // namespace fapo::scheduler
