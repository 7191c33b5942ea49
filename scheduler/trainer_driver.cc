#include "scheduler/trainer_driver.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

absl::StatusOr<std::unique_ptr<TrainerDriver>> TrainerDriver::Create(
    TrainerDriverOptions options, Scheduler* scheduler, TrainerClient* trainer,
    WeightSyncClient* weight_sync) {
  if (scheduler == nullptr || trainer == nullptr || weight_sync == nullptr) {
    return absl::InvalidArgumentError(
        "TrainerDriver: scheduler, trainer and weight_sync must not be null");
  }
  if (options.train_step_timeout <= absl::ZeroDuration() ||
      options.checkpoint_timeout <= absl::ZeroDuration() ||
      options.weight_sync_timeout <= absl::ZeroDuration() ||
      options.poll_interval <= absl::ZeroDuration() ||
      options.checkpoint_every < 0) {
    return absl::InvalidArgumentError(
        "TrainerDriver: timeouts and poll_interval must be > 0, "
        "checkpoint_every >= 0");
  }
  std::unique_ptr<TrainerDriver> driver(
      new TrainerDriver(std::move(options), scheduler, trainer, weight_sync));
  RETURN_IF_ERROR(driver->InitMetrics());
  return driver;
}

absl::Status TrainerDriver::InitMetrics() {
  if (options_.metrics == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(
      metrics::HistogramFamily * family,
      options_.metrics->AddHistogram(
          "fapo_step_seconds",
          "Wall time of a train step (part=\"step\", from the end of the "
          "previous one) and its parts: waiting for generation, waiting for "
          "the GenRM, the train step, the weight sync, the checkpoint.",
          metrics::ExponentialBuckets(0.001, 2.0, 18), {"part"}));
  const char* const parts[] = {"step",  "generation_wait", "genrm_wait",
                               "train", "weight_sync",     "checkpoint"};
  for (int i = 0; i < 6; ++i) {
    step_seconds_[i] = &family->WithLabels({{"part", parts[i]}});
  }
  return absl::OkStatus();
}

TrainerDriver::~TrainerDriver() {
  Shutdown();
  if (metrics_file_ != nullptr) std::fclose(metrics_file_);
}

void TrainerDriver::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void TrainerDriver::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

int64_t TrainerDriver::weight_sync_failures() const {
  absl::MutexLock lock(&mu_);
  return weight_sync_failures_;
}

void TrainerDriver::Loop() {
  while (true) {
    absl::StatusOr<bool> worked = RunOnce();
    if (!worked.ok()) {
      FAPO_LOG(WARNING) << "train step failed: " << worked.status();
    }
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_;
    };
    if (worked.ok() && *worked) {
      if (stopping_) return;
      continue;  // maybe another batch is ready already
    }
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping),
                             options_.poll_interval)) {
      return;
    }
  }
}

std::string TrainerDriver::TrainerAddress() const {
  std::vector<v1::WorkerInfo> trainers =
      scheduler_->workers().Alive(v1::WORKER_ROLE_TRAINER);
  return trainers.empty() ? "" : trainers.front().address();
}

absl::StatusOr<bool> TrainerDriver::RunOnce() {
  const std::string address = TrainerAddress();
  if (scheduler_->state() == v1::JOB_STATE_STOPPING) {
    // No step is in flight here (the driver runs them synchronously).
    if (!address.empty() && last_checkpoint_step_ != scheduler_->steps_done()) {
      absl::Status saved = Checkpoint(address, scheduler_->steps_done());
      if (!saved.ok()) {
        FAPO_LOG(ERROR) << "final checkpoint failed: " << saved;
      }
    }
    scheduler_->FinishStop();
    return true;
  }
  if (address.empty()) return false;
  std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
  if (batch == nullptr) {
    CatchUpWorkers(address);
    return false;
  }

  const absl::Time taken = absl::Now();
  v1::TrainStepRequest request;
  request.set_step(batch->step);
  for (const v1::ScoredTrajectory& trajectory : batch->trajectories) {
    *request.add_trajectories() = trajectory;
  }
  absl::StatusOr<v1::TrainStepResponse> response = trainer_->TrainStep(
      address, request, absl::Now() + options_.train_step_timeout);
  if (!response.ok()) {
    RETURN_IF_ERROR(
        scheduler_->FailTrainStep(batch->step, response.status().ToString()));
    return response.status();
  }
  const absl::Time trained = absl::Now();
  RETURN_IF_ERROR(scheduler_->CompleteTrainStep(
      batch->step, response->policy_version(), response->metrics()));

  // After the last step the workers are leaving: nothing to sync.
  const int failures =
      scheduler_->state() == v1::JOB_STATE_RUNNING
          ? SyncWeights(address, response->policy_version(),
                        scheduler_->workers().Alive(v1::WORKER_ROLE_ROLLOUT))
          : 0;
  const absl::Time synced = absl::Now();

  absl::Time checkpointed = synced;
  const bool last = batch->step >= scheduler_->GetJobStatus().total_steps();
  if (last || (options_.checkpoint_every > 0 &&
               batch->step % options_.checkpoint_every == 0)) {
    absl::Status saved = Checkpoint(address, batch->step);
    if (!saved.ok()) FAPO_LOG(ERROR) << "checkpoint failed: " << saved;
    checkpointed = absl::Now();
  }

  // NOTE [step time breakdown]: the trainer's wait for this batch
  // (wait_for_batch_s, from the end of the previous step) splits at the
  // moment the batch's last trajectory was generated: before it, the
  // trainer waited for generation; after it, for the GenRM verdicts that
  // completed the batch (and the scheduler's bookkeeping, microseconds).
  // The generation clock is the rollout worker's (generation_finished):
  // across machines the split is as good as their clock sync.
  absl::Time last_generated = absl::InfinitePast();
  int64_t generated_tokens = 0;
  for (const v1::ScoredTrajectory& t : batch->trajectories) {
    const auto& finished = t.trajectory().generation_finished();
    if (finished.seconds() > 0) {
      last_generated =
          std::max(last_generated, absl::FromUnixSeconds(finished.seconds()) +
                                       absl::Nanoseconds(finished.nanos()));
    }
    generated_tokens += t.trajectory().response_token_ids_size();
  }
  const absl::Duration waited = taken - last_step_end_;
  const bool split = last_generated != absl::InfinitePast();
  const absl::Duration genrm_wait =
      split ? std::clamp(taken - std::max(last_generated, last_step_end_),
                         absl::ZeroDuration(),
                         std::max(waited, absl::ZeroDuration()))
            : absl::ZeroDuration();
  if (step_seconds_[0] != nullptr) {
    const absl::Duration parts[] = {checkpointed - last_step_end_,
                                    waited - genrm_wait,
                                    genrm_wait,
                                    trained - taken,
                                    synced - trained,
                                    checkpointed - synced};
    for (int i = 0; i < 6; ++i) {
      // Without the generation clock the wait cannot be split: the
      // generation and GenRM parts are left out rather than guessed.
      if (!split && (i == 1 || i == 2)) continue;
      step_seconds_[i]->Observe(absl::ToDoubleSeconds(parts[i]));
    }
  }

  if (!options_.metrics_path.empty()) {
    const v1::TrainMetrics& m = response->metrics();
    double staleness = 0;
    for (const v1::ScoredTrajectory& t : batch->trajectories) {
      staleness += static_cast<double>(batch->policy_version -
                                       t.trajectory().policy_version());
    }
    const double n = static_cast<double>(batch->trajectories.size());
    nlohmann::json line = {
        {"step", batch->step},
        {"policy_version", response->policy_version()},
        {"loss", m.loss()},
        {"clip_fraction", m.clip_fraction()},
        {"approx_kl", m.approx_kl()},
        {"grad_norm", m.grad_norm()},
        {"entropy", m.entropy()},
        {"learning_rate", m.learning_rate()},
        {"num_trajectories", batch->trajectories.size()},
        {"num_tokens", m.num_tokens()},
        {"reward_mean", batch->reward_mean},
        {"accuracy", batch->counts.total() == 0
                         ? 0.0
                         : static_cast<double>(batch->counts.correct()) /
                               static_cast<double>(batch->counts.total())},
        {"alpha", batch->counts.alpha()},
        {"beta", batch->counts.beta()},
        {"gamma", batch->counts.gamma()},
        {"flawed_positive_ratio", batch->counts.flawed_positive_ratio()},
        {"staleness_mean", n > 0 ? staleness / n : 0.0},
        // Where the step's wall time went (seconds): waiting for the batch
        // (generation and GenRM scoring not hidden behind the last step),
        // the train step, the weight sync and the checkpoint.
        {"wait_for_batch_s", absl::ToDoubleSeconds(taken - last_step_end_)},
        {"train_s", absl::ToDoubleSeconds(trained - taken)},
        {"weight_sync_s", absl::ToDoubleSeconds(synced - trained)},
        {"checkpoint_s", absl::ToDoubleSeconds(checkpointed - synced)},
        {"step_s", absl::ToDoubleSeconds(checkpointed - last_step_end_)},
        {"generated_tokens", generated_tokens},
        {"weight_sync_failures", failures},
    };
    if (split) {
      line["generation_wait_s"] = absl::ToDoubleSeconds(waited - genrm_wait);
      line["genrm_wait_s"] = absl::ToDoubleSeconds(genrm_wait);
    }
    absl::Status written = AppendMetricsLine(batch->step, line.dump() + "\n");
    if (!written.ok()) FAPO_LOG(ERROR) << "metrics.jsonl: " << written;
  }
  last_step_end_ = absl::Now();
  // NOTE [job end] (scheduler_batches.cc): the last step's checkpoint and metrics
  // line are written; now the job may succeed.
  if (last) scheduler_->FinishStop();
  return true;
}

void TrainerDriver::CatchUpWorkers(const std::string& trainer_address) {
  const int64_t version = scheduler_->policy_version();
  if (version == 0 || scheduler_->state() != v1::JOB_STATE_RUNNING) return;
  // A worker that joined late, restarted, or missed an update: bring it to
  // the current version (at most once a second each).
  const absl::Time now = absl::Now();
  std::vector<v1::WorkerInfo> behind;
  for (v1::WorkerInfo& worker :
       scheduler_->workers().Alive(v1::WORKER_ROLE_ROLLOUT)) {
    if (worker.policy_version() >= version) continue;
    absl::Time& last = last_catch_up_[worker.worker_id()];
    if (now - last < absl::Seconds(1)) continue;
    last = now;
    behind.push_back(std::move(worker));
  }
  if (behind.empty()) return;
  FAPO_LOG(INFO) << behind.size() << " rollout worker(s) behind version "
                 << version << "; updating them";
  SyncWeights(trainer_address, version, std::move(behind));
}

int TrainerDriver::SyncWeights(const std::string& trainer_address,
                               int64_t version,
                               std::vector<v1::WorkerInfo> workers) {
  std::vector<absl::Status> results(workers.size());
  std::vector<std::thread> threads;
  v1::UpdateWeightsRequest request;
  request.set_version(version);
  request.set_source_address(trainer_address);
  const absl::Time deadline = absl::Now() + options_.weight_sync_timeout;
  for (size_t i = 0; i < workers.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<v1::UpdateWeightsResponse> response =
          weight_sync_->UpdateWeights(workers[i].address(), request, deadline);
      if (!response.ok()) {
        results[i] = response.status();
      } else if (response->policy_version() < version) {
        results[i] = absl::InternalError(absl::StrCat(
            "holds version ", response->policy_version(), " after the update"));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  int failures = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (results[i].ok()) {
      scheduler_->workers().NotePolicyVersion(workers[i].worker_id(), version);
      continue;
    }
    ++failures;
    FAPO_LOG(WARNING) << "rollout worker " << workers[i].worker_id()
                      << " did not take weights v" << version << ": "
                      << results[i];
  }
  absl::MutexLock lock(&mu_);
  weight_sync_failures_ += failures;
  return failures;
}

// NOTE [metrics after a resume]
// A job resumes from its newest checkpoint, which may be older than its
// last step (a crash, a kill, checkpoint_every > 1): the steps after the
// checkpoint are trained again, and their old metrics lines describe a
// history that no longer exists. So metrics.jsonl keeps one line per step
// of the run as it stands: at the first line this process writes (for step
// s), every line of step s or later is dropped (the file is rewritten
// atomically), then lines are appended.
absl::Status TrainerDriver::AppendMetricsLine(int64_t step,
                                              const std::string& text) {
  if (metrics_file_ == nullptr) {
    // Opened at the first step (not at start-up, so a scheduler that never
    // trains writes nothing), appending: a resumed job continues the file.
    RETURN_IF_ERROR(
        files::MakeDirectories(files::ParentDirectory(options_.metrics_path)));
    absl::StatusOr<std::string> old = files::ReadFile(options_.metrics_path);
    if (old.ok()) {
      std::string kept;
      size_t dropped = 0;
      for (absl::string_view line : absl::StrSplit(*old, '\n')) {
        if (line.empty()) continue;
        nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
        if (parsed.is_object() && parsed.value("step", int64_t{0}) >= step) {
          ++dropped;
          continue;
        }
        absl::StrAppend(&kept, line, "\n");
      }
      if (dropped > 0) {
        FAPO_LOG(WARNING) << "metrics.jsonl: dropping " << dropped
                          << " lines of step " << step
                          << " or later: the job resumed from an older "
                             "checkpoint and trains those steps again";
        RETURN_IF_ERROR(
            files::WriteFileAtomically(options_.metrics_path, kept));
      }
    }
    metrics_file_ = std::fopen(options_.metrics_path.c_str(), "a");
    if (metrics_file_ == nullptr) {
      return files::ErrnoError(
          errno, absl::StrCat("cannot open '", options_.metrics_path,
                              "' for appending"));
    }
  }
  if (std::fwrite(text.data(), 1, text.size(), metrics_file_) != text.size() ||
      std::fflush(metrics_file_) != 0) {
    return files::ErrnoError(
        errno, absl::StrCat("cannot write '", options_.metrics_path, "'"));
  }
  return absl::OkStatus();
}

absl::Status TrainerDriver::Checkpoint(const std::string& trainer_address,
                                       int64_t step) {
  v1::SaveCheckpointRequest request;
  request.set_step(step);
  request.set_scheduler_snapshot(scheduler_->Snapshot().SerializeAsString());
  ASSIGN_OR_RETURN(
      v1::SaveCheckpointResponse response,
      trainer_->SaveCheckpoint(trainer_address, request,
                               absl::Now() + options_.checkpoint_timeout));
  last_checkpoint_step_ = step;
  FAPO_LOG(INFO) << "checkpoint of step " << step << ": " << response.path();
  return absl::OkStatus();
}

}  // namespace fapo::scheduler
