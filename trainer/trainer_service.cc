#include "trainer/trainer_service.h"

#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/weights/weights.h"
#include "engine/weights/weights_rpc.h"
#include "services/logging/log.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_macros.h"
#include "trainer/comm/rank_group.h"

namespace fapo::trainer {

// One thread running queued work in order: the only thread that touches
// the Trainer (and its model) once the service exists.
class TrainerService::TrainerThread {
 public:
  TrainerThread() : thread_([this] { Run(); }) {}
  ~TrainerThread() {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    thread_.join();
  }

  void Post(std::function<void()> work) {
    absl::MutexLock lock(&mutex_);
    queue_.push_back(std::move(work));
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> work;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](TrainerThread* self)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mutex_) {
                   return self->stopping_ || !self->queue_.empty();
                 },
            this));
        // Work queued before the stop still runs: its reactor must finish.
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      work();
    }
  }

  absl::Mutex mutex_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;  // last: starts once the rest is constructed
};

struct TrainerService::State {
  std::unique_ptr<Trainer> trainer;  // touched on the trainer thread only
  ResumeInfo resume_info;            // fixed at creation
  absl::Mutex mutex;
  std::shared_ptr<const engine::WeightsSnapshot> snapshot
      ABSL_GUARDED_BY(mutex);
};

struct TrainerService::Metrics {
  metrics::Gauge* policy_version;
  metrics::Counter* steps_ok;
  metrics::Counter* steps_failed;
  metrics::Histogram* step_seconds;
  metrics::Counter* tokens;
  metrics::Gauge* loss;
  metrics::Gauge* grad_norm;
  metrics::Gauge* learning_rate;
  metrics::Counter* checkpoints_ok;
  metrics::Counter* checkpoints_failed;

  static absl::StatusOr<std::unique_ptr<Metrics>> Create(
      metrics::MetricsRegistry& registry) {
    auto m = std::make_unique<Metrics>();
    ASSIGN_OR_RETURN(auto* version,
                     registry.AddGauge("fapo_trainer_policy_version",
                                       "Weights version the trainer serves "
                                       "(= the last applied step).",
                                       {}));
    m->policy_version = &version->WithLabels({});
    ASSIGN_OR_RETURN(auto* steps,
                     registry.AddCounter("fapo_trainer_steps_total",
                                         "TrainStep calls that trained (ok) "
                                         "or failed.",
                                         {"outcome"}));
    m->steps_ok = &steps->WithLabels({{"outcome", "ok"}});
    m->steps_failed = &steps->WithLabels({{"outcome", "failed"}});
    ASSIGN_OR_RETURN(
        auto* seconds,
        registry.AddHistogram("fapo_trainer_step_seconds",
                              "Wall time of a training step.",
                              metrics::ExponentialBuckets(0.01, 2, 16), {}));
    m->step_seconds = &seconds->WithLabels({});
    ASSIGN_OR_RETURN(auto* tokens,
                     registry.AddCounter("fapo_trainer_tokens_total",
                                         "Response tokens trained on.", {}));
    m->tokens = &tokens->WithLabels({});
    ASSIGN_OR_RETURN(auto* loss,
                     registry.AddGauge("fapo_trainer_loss",
                                       "Policy loss of the last step.", {}));
    m->loss = &loss->WithLabels({});
    ASSIGN_OR_RETURN(auto* norm,
                     registry.AddGauge("fapo_trainer_grad_norm",
                                       "Gradient norm (before clipping) of "
                                       "the last step.",
                                       {}));
    m->grad_norm = &norm->WithLabels({});
    ASSIGN_OR_RETURN(auto* lr,
                     registry.AddGauge("fapo_trainer_learning_rate",
                                       "Learning rate of the last step.", {}));
    m->learning_rate = &lr->WithLabels({});
    ASSIGN_OR_RETURN(
        auto* checkpoints,
        registry.AddCounter("fapo_trainer_checkpoints_total",
                            "SaveCheckpoint calls by outcome.", {"outcome"}));
    m->checkpoints_ok = &checkpoints->WithLabels({{"outcome", "ok"}});
    m->checkpoints_failed = &checkpoints->WithLabels({{"outcome", "failed"}});
    return m;
  }
};

absl::StatusOr<std::unique_ptr<TrainerService>> TrainerService::Create(
    std::unique_ptr<Trainer> trainer, metrics::MetricsRegistry* registry,
    RankGroupLeader* rank_group) {
  if (trainer == nullptr) return absl::InvalidArgumentError("null trainer");
  std::unique_ptr<Metrics> metrics;
  if (registry != nullptr) {
    ASSIGN_OR_RETURN(metrics, Metrics::Create(*registry));
  }
  ASSIGN_OR_RETURN(
      std::shared_ptr<const engine::WeightsSnapshot> snapshot,
      engine::SnapshotWeights(trainer->policy(), trainer->policy_version()));
  std::unique_ptr<TrainerService> service(
      new TrainerService(std::move(trainer)));
  service->policy_version_ = snapshot->version;
  service->metrics_ = std::move(metrics);
  service->rank_group_ = rank_group;
  if (service->metrics_ != nullptr) {
    service->metrics_->policy_version->Set(snapshot->version);
  }
  {
    absl::MutexLock lock(&service->state_->mutex);
    service->state_->snapshot = std::move(snapshot);
  }
  return service;
}

TrainerService::TrainerService(std::unique_ptr<Trainer> trainer)
    : state_(std::make_unique<State>()),
      thread_(std::make_unique<TrainerThread>()) {
  state_->resume_info = trainer->resume_info();
  state_->trainer = std::move(trainer);
}

TrainerService::~TrainerService() { thread_.reset(); }

grpc::ServerUnaryReactor* TrainerService::TrainStep(
    grpc::CallbackServerContext* context, const v1::TrainStepRequest* request,
    v1::TrainStepResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The request and response live until Finish; the reactor is finished
  // from the trainer thread.
  thread_->Post([this, reactor, request, response] {
    Trainer& trainer = *state_->trainer;
    absl::StatusOr<TrainStepResult> result =
        rank_group_ != nullptr
            ? rank_group_->TrainStep(trainer, request->step(),
                                     request->trajectories())
            : trainer.TrainStep(request->step(), request->trajectories());
    absl::Status status = result.status();
    if (result.ok()) {
      bool stale;
      {
        absl::MutexLock lock(&state_->mutex);
        stale = state_->snapshot->version != result->policy_version;
      }
      if (stale) {
        absl::StatusOr<std::shared_ptr<const engine::WeightsSnapshot>>
            snapshot = engine::SnapshotWeights(trainer.policy(),
                                               result->policy_version);
        if (snapshot.ok()) {
          absl::MutexLock lock(&state_->mutex);
          state_->snapshot = *std::move(snapshot);
          policy_version_ = result->policy_version;
        } else {
          status = absl::InternalError(
              absl::StrCat("step ", result->step,
                           " trained but its weights could not be "
                           "snapshotted for GetWeights: ",
                           snapshot.status().message()));
        }
      }
      response->set_step(result->step);
      response->set_policy_version(result->policy_version);
      *response->mutable_metrics() = result->metrics;
      if (metrics_ != nullptr && stale) {  // a step that trained
        const v1::TrainMetrics& m = result->metrics;
        metrics_->steps_ok->Increment();
        metrics_->policy_version->Set(result->policy_version);
        metrics_->step_seconds->Observe(m.step_time().seconds() +
                                        m.step_time().nanos() * 1e-9);
        metrics_->tokens->Increment(m.num_tokens());
        metrics_->loss->Set(m.loss());
        metrics_->grad_norm->Set(m.grad_norm());
        metrics_->learning_rate->Set(m.learning_rate());
      }
    }
    if (!status.ok()) {
      FAPO_LOG(WARNING) << status.message();
      if (metrics_ != nullptr) metrics_->steps_failed->Increment();
    }
    reactor->Finish(rpc::ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* TrainerService::SaveCheckpoint(
    grpc::CallbackServerContext* context,
    const v1::SaveCheckpointRequest* request,
    v1::SaveCheckpointResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  thread_->Post([this, reactor, request, response] {
    absl::StatusOr<std::string> path = state_->trainer->SaveCheckpoint(
        request->step(), request->scheduler_snapshot());
    if (metrics_ != nullptr) {
      (path.ok() ? metrics_->checkpoints_ok : metrics_->checkpoints_failed)
          ->Increment();
    }
    if (path.ok()) {
      response->set_path(*path);
      FAPO_LOG(INFO) << "checkpoint of step " << request->step() << " at "
                     << *path;
    }
    reactor->Finish(rpc::ToGrpcStatus(path.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* TrainerService::GetResumeState(
    grpc::CallbackServerContext* context,
    const v1::GetResumeStateRequest* request, v1::ResumeState* response) {
  const ResumeInfo& info = state_->resume_info;
  response->set_step(info.step);
  response->set_policy_version(info.policy_version);
  response->set_scheduler_snapshot(info.scheduler_snapshot);
  response->set_checkpoint_path(info.checkpoint_path);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainerService::GetWeights(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  absl::StatusOr<v1::GetWeightsRequest> request =
      engine::ParseGetWeightsRequest(*raw_request);
  if (!request.ok()) return engine::NewRawWeightsErrorReactor(request.status());
  std::shared_ptr<const engine::WeightsSnapshot> snapshot;
  {
    absl::MutexLock lock(&state_->mutex);
    snapshot = state_->snapshot;
  }
  if (request->min_version() > snapshot->version) {
    // NOTE [GetWeights min_version] in the header.
    return engine::NewRawWeightsErrorReactor(absl::FailedPreconditionError(
        absl::StrCat("GetWeights: min_version ", request->min_version(),
                     " is newer than the trainer's weights (version ",
                     snapshot->version, ")")));
  }
  return engine::NewRawWeightsStreamReactor(std::move(snapshot),
                                            request->max_chunk_bytes());
}

}  // namespace fapo::trainer
