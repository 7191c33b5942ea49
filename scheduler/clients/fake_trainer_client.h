// Test only: a TrainerClient and WeightSyncClient that record their calls
// and answer as a trainer would (policy version = step), with failures on
// demand.
#ifndef FAPO_SCHEDULER_CLIENTS_FAKE_TRAINER_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_FAKE_TRAINER_CLIENT_H_

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/clients/trainer_client.h"

namespace fapo::scheduler {

class FakeTrainerClient final : public TrainerClient, public WeightSyncClient {
 public:
  absl::StatusOr<v1::TrainStepResponse> TrainStep(
      const std::string& address, const v1::TrainStepRequest& request,
      absl::Time) override {
    absl::MutexLock lock(&mu_);
    steps_.push_back(request);
    if (fail_next_steps_ > 0) {
      --fail_next_steps_;
      return absl::UnavailableError("trainer " + address + " is restarting");
    }
    v1::TrainStepResponse response;
    response.set_step(request.step());
    response.set_policy_version(request.step());
    response.mutable_metrics()->set_loss(1.0 / request.step());
    response.mutable_metrics()->set_num_trajectories(
        request.trajectories_size());
    return response;
  }
  absl::StatusOr<v1::SaveCheckpointResponse> SaveCheckpoint(
      const std::string&, const v1::SaveCheckpointRequest& request,
      absl::Time) override {
    absl::MutexLock lock(&mu_);
    checkpoints_.push_back(request);
    v1::SaveCheckpointResponse response;
    response.set_path(absl::StrCat("/ckpt/step-", request.step()));
    return response;
  }
  absl::StatusOr<v1::ResumeState> GetResumeState(const std::string&,
                                                 absl::Time) override {
    absl::MutexLock lock(&mu_);
    return resume_;
  }
  absl::StatusOr<v1::UpdateWeightsResponse> UpdateWeights(
      const std::string& address, const v1::UpdateWeightsRequest& request,
      absl::Time) override {
    absl::MutexLock lock(&mu_);
    updates_.push_back({address, request.version()});
    if (broken_workers_.count(address) > 0) {
      return absl::UnavailableError(address + " is down");
    }
    v1::UpdateWeightsResponse response;
    response.set_policy_version(request.version());
    return response;
  }

  void FailNextSteps(int count) {
    absl::MutexLock lock(&mu_);
    fail_next_steps_ = count;
  }
  void BreakWorker(const std::string& address) {
    absl::MutexLock lock(&mu_);
    broken_workers_.insert(address);
  }
  void SetResumeState(v1::ResumeState state) {
    absl::MutexLock lock(&mu_);
    resume_ = std::move(state);
  }
  std::vector<v1::TrainStepRequest> steps() const {
    absl::MutexLock lock(&mu_);
    return steps_;
  }
  std::vector<v1::SaveCheckpointRequest> checkpoints() const {
    absl::MutexLock lock(&mu_);
    return checkpoints_;
  }
  std::vector<std::pair<std::string, int64_t>> updates() const {
    absl::MutexLock lock(&mu_);
    return updates_;
  }

 private:
  mutable absl::Mutex mu_;
  int fail_next_steps_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> broken_workers_ ABSL_GUARDED_BY(mu_);
  v1::ResumeState resume_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::TrainStepRequest> steps_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SaveCheckpointRequest> checkpoints_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int64_t>> updates_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_FAKE_TRAINER_CLIENT_H_
