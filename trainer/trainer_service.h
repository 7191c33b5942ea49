// TrainerService: the fapo.v1.Trainer gRPC adapter over a Trainer.
//
// Every call that touches the model (TrainStep, SaveCheckpoint) runs on the
// service's own trainer thread, one at a time, in arrival order; the
// handler returns at once and the reactor is finished from that thread when
// the work is done, so no gRPC thread ever blocks on training.
//
//   TrainStep       Trainer::TrainStep (NOTE [trainer step semantics] in
//                   trainer.h), over every trainer rank when the service
//                   is rank 0 of a group (NOTE [trainer ranks] in
//                   rank_group.h); after a step that trained, a WeightsSnapshot
//                   of the new version is taken before the call finishes, so
//                   a worker told of version v can pull it at once.
//   SaveCheckpoint  Trainer::SaveCheckpoint with the request's snapshot.
//   GetResumeState  what the Trainer resumed from (fixed at creation);
//                   answered inline.
//   GetWeights      streams the newest snapshot (engine/weights). NOTE
//                   [GetWeights min_version]: a min_version newer than the
//                   held version is FAILED_PRECONDITION at once (the caller
//                   asked for weights that do not exist yet; it learns the
//                   version from TrainStep's response, after which the
//                   snapshot is already there), rather than a wait that
//                   would tie up a call for an unbounded time.
//
// Thread-safe. The destructor runs what is queued, then joins the trainer
// thread: destroy the service after the gRPC server has shut down.
#ifndef FAPO_TRAINER_TRAINER_SERVICE_H_
#define FAPO_TRAINER_TRAINER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "fapo/v1/trainer.grpc.pb.h"
#include "services/metrics/metrics_registry.h"
#include "trainer/trainer.h"

namespace fapo::trainer {

class RankGroupLeader;

// GetWeights is a raw method: it streams the snapshot's bytes without
// copying them into messages (NOTE [zero-copy weights], weights_rpc.h).
class TrainerService final
    : public v1::Trainer::WithRawCallbackMethod_GetWeights<
          v1::Trainer::CallbackService> {
 public:
  // Takes the trainer over and snapshots its current weights (version =
  // its step). With a registry (not owned, outlives the service), exports
  // fapo_trainer_policy_version, fapo_trainer_steps_total{outcome},
  // fapo_trainer_step_seconds, fapo_trainer_tokens_total,
  // fapo_trainer_loss, fapo_trainer_grad_norm, fapo_trainer_learning_rate
  // and fapo_trainer_checkpoints_total{outcome}. Errors: a null trainer,
  // the snapshot's errors, the registry's. With `rank_group` (not owned;
  // outlives the service; made over this trainer), steps run over all
  // ranks through it; checkpoints stay rank 0's (rank_group.h).
  static absl::StatusOr<std::unique_ptr<TrainerService>> Create(
      std::unique_ptr<Trainer> trainer,
      metrics::MetricsRegistry* registry = nullptr,
      RankGroupLeader* rank_group = nullptr);

  ~TrainerService() override;
  TrainerService(const TrainerService&) = delete;
  TrainerService& operator=(const TrainerService&) = delete;

  grpc::ServerUnaryReactor* TrainStep(grpc::CallbackServerContext* context,
                                      const v1::TrainStepRequest* request,
                                      v1::TrainStepResponse* response) override;
  grpc::ServerUnaryReactor* SaveCheckpoint(
      grpc::CallbackServerContext* context,
      const v1::SaveCheckpointRequest* request,
      v1::SaveCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* GetResumeState(
      grpc::CallbackServerContext* context,
      const v1::GetResumeStateRequest* request,
      v1::ResumeState* response) override;
  // `request` is a v1::GetWeightsRequest's bytes; writes v1::WeightsMessage
  // bytes.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetWeights(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;

  // The version of the weights GetWeights serves (what a WorkerLease
  // reports).
  int64_t policy_version() const { return policy_version_.load(); }

 private:
  class TrainerThread;
  struct State;
  struct Metrics;

  TrainerService(std::unique_ptr<Trainer> trainer);

  std::unique_ptr<State> state_;
  std::unique_ptr<Metrics> metrics_;  // null: no registry
  // Null: one process.
  RankGroupLeader* rank_group_ = nullptr;
  std::atomic<int64_t> policy_version_{0};
  // Last member: joined first on destruction, while the state lives.
  std::unique_ptr<TrainerThread> thread_;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_TRAINER_SERVICE_H_
