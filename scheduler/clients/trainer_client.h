// scheduler/clients/trainer_client.h: how the scheduler drives the trainer and
// tells rollout workers about new weights.
//
//   trainer_client.h        TrainerClient and WeightSyncClient (this)
//   grpc_trainer_client.h   the real ones, over fapo.v1.Trainer and
//                           fapo.v1.Rollout/UpdateWeights
//   fake_trainer_client.h   test-only fakes
//
// Both are synchronous (the TrainerDriver calls them from its own thread)
// and every call has a deadline. Errors keep their canonical codes.
#ifndef FAPO_SCHEDULER_CLIENTS_TRAINER_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_TRAINER_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fapo/v1/rollout.pb.h"
#include "fapo/v1/trainer.pb.h"

namespace fapo::scheduler {

class TrainerClient {
 public:
  virtual ~TrainerClient() = default;
  // The trainer (rank 0) at `address`.
  virtual absl::StatusOr<v1::TrainStepResponse> TrainStep(
      const std::string& address, const v1::TrainStepRequest& request,
      absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::SaveCheckpointResponse> SaveCheckpoint(
      const std::string& address, const v1::SaveCheckpointRequest& request,
      absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ResumeState> GetResumeState(
      const std::string& address, absl::Time deadline) = 0;
};

class WeightSyncClient {
 public:
  virtual ~WeightSyncClient() = default;
  // Asks the rollout worker at `address` to pull `request.version` from
  // request.source_address (a trainer's GetWeights).
  virtual absl::StatusOr<v1::UpdateWeightsResponse> UpdateWeights(
      const std::string& address, const v1::UpdateWeightsRequest& request,
      absl::Time deadline) = 0;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_TRAINER_CLIENT_H_
