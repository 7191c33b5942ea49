// RolloutWorkerServer: what fapo-rollout-worker runs (a
// runtime::WorkerService). The Rollout service (rollout_service.h) over a
// RolloutWorker holding policy.model_dir (tokenizer: policy.tokenizer_path,
// else the model's tokenizer.json) that pulls new weights from the trainer
// over gRPC; registered with the scheduler as role ROLLOUT with capacity
// kRolloutCapacity, reporting the groups in flight and the policy version
// it holds.
//
// On stopping, the lease stops first, then the worker: open Generate
// streams end UNAVAILABLE at once (the scheduler retries the group
// elsewhere) rather than after the drain timeout.
#ifndef FAPO_ROLLOUT_WORKER_ROLLOUT_WORKER_SERVER_H_
#define FAPO_ROLLOUT_WORKER_ROLLOUT_WORKER_SERVER_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "rollout_worker/rollout_service.h"
#include "rollout_worker/rollout_worker.h"
#include "services/runtime/service_instance.h"

namespace fapo::rollout {

// Generate streams the scheduler may keep open on one worker: one group
// generating and one queued behind it, so the worker never waits for the
// scheduler between groups (groups run one at a time: NOTE [one model, one
// thread] in rollout_worker.h).
inline constexpr int kRolloutCapacity = 2;

class RolloutWorkerServer final : public runtime::WorkerService {
 public:
  // Sets LibTorch's intra-op threads to rollout.threads_per_worker (a
  // process-wide setting). Errors: FailedPrecondition when
  // policy.model_dir is empty; the model's and tokenizer's load errors.
  static absl::StatusOr<std::unique_ptr<RolloutWorkerServer>> Create(
      const runtime::ServiceContext& context);

  std::vector<rpc::RegisteredService> services() override;

  RolloutWorker* worker() { return worker_.get(); }

 private:
  explicit RolloutWorkerServer(const runtime::ServiceContext& context)
      : WorkerService(context) {}

  std::optional<runtime::WorkerRegistration> Registration() override;
  void Drain() override;

  // Destroyed in reverse order: the worker (whose callbacks reach the
  // service's reactors) before the service.
  std::unique_ptr<RolloutService> service_;
  std::unique_ptr<RolloutWorker> worker_;
};

}  // namespace fapo::rollout

#endif  // FAPO_ROLLOUT_WORKER_ROLLOUT_WORKER_SERVER_H_
