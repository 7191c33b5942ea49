// RolloutService: the thin gRPC adapter for fapo.v1.Rollout (docs/style.md,
// practice 5) over a RolloutWorker. Callback API; nothing here blocks a
// reactor thread (generation and transfers run on the worker's threads).
//
// Generate (server stream): each trajectory is written as the worker
// reports it (one write in flight, the rest queued in the reactor); the
// stream finishes with the worker's status once every trajectory was
// written (rpc::ToGrpcStatus: FAILED_PRECONDITION for a stale worker,
// INVALID_ARGUMENT, UNAVAILABLE when shutting down). A cancelled call (the
// client's deadline, the client gone, the server shutting down) cancels
// the worker's call; what it produces afterwards is dropped.
//
// UpdateWeights (unary): finishes when the worker has swapped the weights
// in (or acknowledged a version it already has, or failed: the old weights
// stay) with policy_version and bytes_received.
//
// Thread-safe. The worker (not owned) must outlive the service; shut the
// server down before destroying either.
#ifndef FAPO_ROLLOUT_WORKER_ROLLOUT_SERVICE_H_
#define FAPO_ROLLOUT_WORKER_ROLLOUT_SERVICE_H_

#include "fapo/v1/rollout.grpc.pb.h"
#include "rollout_worker/rollout_worker.h"

namespace fapo::rollout {

class RolloutService final : public v1::Rollout::CallbackService {
 public:
  explicit RolloutService(RolloutWorker* worker) : worker_(worker) {}
  RolloutService(const RolloutService&) = delete;
  RolloutService& operator=(const RolloutService&) = delete;

  grpc::ServerWriteReactor<v1::Trajectory>* Generate(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* UpdateWeights(
      grpc::CallbackServerContext* context,
      const v1::UpdateWeightsRequest* request,
      v1::UpdateWeightsResponse* response) override;

 private:
  RolloutWorker* const worker_;
};

}  // namespace fapo::rollout

#endif  // FAPO_ROLLOUT_WORKER_ROLLOUT_SERVICE_H_
