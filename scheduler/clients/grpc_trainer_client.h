// The real TrainerClient and WeightSyncClient (trainer_client.h): unary
// gRPC calls with the given deadline, one cached channel per address.
#ifndef FAPO_SCHEDULER_CLIENTS_GRPC_TRAINER_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_GRPC_TRAINER_CLIENT_H_

#include <memory>
#include <string>

#include "fapo/v1/rollout.grpc.pb.h"
#include "fapo/v1/trainer.grpc.pb.h"
#include "scheduler/clients/trainer_client.h"
#include "services/rpc/channel.h"
#include "services/rpc/stub_cache.h"

namespace fapo::scheduler {

class GrpcTrainerClient final : public TrainerClient, public WeightSyncClient {
 public:
  // `channel`: the job's security. Errors: credentials files unreadable.
  static absl::StatusOr<std::unique_ptr<GrpcTrainerClient>> Create(
      rpc::ChannelOptions channel);

  absl::StatusOr<v1::TrainStepResponse> TrainStep(
      const std::string& address, const v1::TrainStepRequest& request,
      absl::Time deadline) override;
  absl::StatusOr<v1::SaveCheckpointResponse> SaveCheckpoint(
      const std::string& address, const v1::SaveCheckpointRequest& request,
      absl::Time deadline) override;
  absl::StatusOr<v1::ResumeState> GetResumeState(const std::string& address,
                                                 absl::Time deadline) override;
  absl::StatusOr<v1::UpdateWeightsResponse> UpdateWeights(
      const std::string& address, const v1::UpdateWeightsRequest& request,
      absl::Time deadline) override;

 private:
  explicit GrpcTrainerClient(rpc::ChannelOptions channel)
      : trainers_(channel), rollouts_(channel) {}

  rpc::StubCache<v1::Trainer> trainers_;
  rpc::StubCache<v1::Rollout> rollouts_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_GRPC_TRAINER_CLIENT_H_
