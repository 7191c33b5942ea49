#include "rollout_worker/rollout_service.h"

#include <deque>
#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "services/rpc/status_conversion.h"

namespace fapo::rollout {
namespace {

// One Generate stream. Lifetime: gRPC calls OnDone only after Finish, and
// Finish is called only after the worker's on_done (its last callback), so
// the worker never calls into a deleted reactor.
class GenerateReactor : public grpc::ServerWriteReactor<v1::Trajectory> {
 public:
  GenerateReactor(RolloutWorker* worker, const v1::GenerateRequest& request) {
    // The worker may answer (on_done) before Generate returns: call_ is
    // then set after the fact, which only matters for OnCancel.
    std::shared_ptr<RolloutWorker::Call> call = worker->Generate(
        request,
        [this](v1::Trajectory trajectory) { Enqueue(std::move(trajectory)); },
        [this](absl::Status status) { WorkerDone(std::move(status)); });
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      call_ = call;
      cancel = cancelled_;
    }
    // Outside the lock: cancelling a queued call runs on_done inline.
    if (cancel) call->Cancel();
  }

  void OnCancel() override {
    std::shared_ptr<RolloutWorker::Call> call;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      call = call_;
    }
    if (call != nullptr) call->Cancel();
  }

  void OnWriteDone(bool ok) override {
    const v1::Trajectory* next = nullptr;
    bool finish = false;
    grpc::Status status;
    std::shared_ptr<RolloutWorker::Call> cancel;
    {
      absl::MutexLock lock(&mu_);
      pending_.pop_front();
      writing_ = false;
      if (!ok) {
        // The stream is broken (client gone): stop producing, drop the
        // rest; OnCancel follows.
        broken_ = true;
        pending_.clear();
        cancel = call_;
      }
      if (!pending_.empty()) {
        writing_ = true;
        next = &pending_.front();
      } else if (worker_done_ && !finished_) {
        finished_ = true;
        finish = true;
        status = final_status_;
      }
    }
    if (cancel != nullptr) cancel->Cancel();  // may run WorkerDone inline
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(status);
  }

  void OnDone() override { delete this; }

 private:
  void Enqueue(v1::Trajectory trajectory) {
    const v1::Trajectory* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (broken_ || cancelled_) return;
      // Elements of a deque stay put when others are added at the back.
      pending_.push_back(std::move(trajectory));
      if (!writing_) {
        writing_ = true;
        next = &pending_.front();
      }
    }
    if (next != nullptr) StartWrite(next);
  }

  void WorkerDone(absl::Status status) {
    grpc::Status grpc_status = rpc::ToGrpcStatus(status);
    {
      absl::MutexLock lock(&mu_);
      worker_done_ = true;
      final_status_ = grpc_status;
      if (writing_ || finished_) return;  // OnWriteDone finishes
      finished_ = true;
    }
    // Nothing of this reactor is touched after Finish: OnDone may run (and
    // delete it) at once on another thread.
    Finish(grpc_status);
  }

  absl::Mutex mu_;
  std::shared_ptr<RolloutWorker::Call> call_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::Trajectory> pending_ ABSL_GUARDED_BY(mu_);  // front: writing
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool worker_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<v1::Trajectory>* RolloutService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new GenerateReactor(worker_, *request);
}

grpc::ServerUnaryReactor* RolloutService::UpdateWeights(
    grpc::CallbackServerContext* context,
    const v1::UpdateWeightsRequest* request,
    v1::UpdateWeightsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The reactor and response live until Finish; Finish runs exactly once,
  // from the worker's callback (possibly before this returns).
  worker_->UpdateWeights(
      request->version(), request->source_address(),
      [reactor, response](absl::StatusOr<WeightsUpdate> update) {
        if (!update.ok()) {
          reactor->Finish(rpc::ToGrpcStatus(update.status()));
          return;
        }
        response->set_policy_version(update->policy_version);
        response->set_bytes_received(update->bytes_received);
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

}  // namespace fapo::rollout
