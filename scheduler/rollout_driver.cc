#include "scheduler/rollout_driver.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/logging/log.h"

namespace fapo::scheduler {

uint64_t GroupSamplingSeed(uint64_t job_seed, absl::string_view prompt_id) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (const char c : prompt_id) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  }
  uint64_t z = job_seed + 0x9e3779b97f4a7c15ull * (hash | 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

absl::StatusOr<std::unique_ptr<RolloutDriver>> RolloutDriver::Create(
    RolloutDriverOptions options, Scheduler* scheduler, RolloutClient* client) {
  if (scheduler == nullptr || client == nullptr) {
    return absl::InvalidArgumentError(
        "RolloutDriver: scheduler and client must not be null");
  }
  if (options.generate_timeout <= absl::ZeroDuration() ||
      options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "RolloutDriver: generate_timeout and poll_interval must be > 0");
  }
  return std::unique_ptr<RolloutDriver>(
      new RolloutDriver(std::move(options), scheduler, client));
}

RolloutDriver::~RolloutDriver() { Shutdown(); }

void RolloutDriver::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void RolloutDriver::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return wake_ || stopping_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
      if (stopping_) return;
      wake_ = false;
    }
    Pump();
  }
}

void RolloutDriver::Pump() {
  absl::MutexLock pump_lock(&pump_mu_);
  // Sync the workers with the registry's live rollout workers.
  std::vector<v1::WorkerInfo> alive =
      scheduler_->workers().Alive(v1::WORKER_ROLE_ROLLOUT);
  // A worker holding weights older than a new group allows would refuse it
  // (FAILED_PRECONDITION, an aborted group): it gets no new group until the
  // TrainerDriver has brought it up to date.
  const int64_t min_version = scheduler_->min_policy_version();
  std::vector<std::shared_ptr<RolloutStream>> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    absl::flat_hash_map<std::string, Worker> next;
    for (const v1::WorkerInfo& info : alive) {
      Worker& worker = next[info.worker_id()];
      worker.info = {info.worker_id(), info.address(),
                     std::max(1, info.capacity())};
      worker.fresh_enough = info.policy_version() >= min_version;
      auto old = workers_.find(info.worker_id());
      if (old != workers_.end() && old->second.info.address == info.address()) {
        worker.active = old->second.active;
      }
    }
    // Streams on workers that died or moved are cancelled; their on_done
    // aborts the groups.
    for (auto& [id, stream] : streams_) {
      auto worker = next.find(stream.worker_id);
      auto old = workers_.find(stream.worker_id);
      const bool moved =
          worker != next.end() && old != workers_.end() &&
          old->second.info.address != worker->second.info.address;
      if ((worker == next.end() || moved) && !stream.failed) {
        stream.failed = true;
        stream.failure =
            absl::StrCat("rollout worker ", stream.worker_id, " is gone");
        // Without a handle yet, StartStream cancels it once stored.
        if (stream.handle != nullptr) to_cancel.push_back(stream.handle);
      }
    }
    workers_ = std::move(next);
    // Free the slots of cancelled streams' workers only on on_done.
  }
  for (const auto& stream : to_cancel) stream->Cancel();

  while (true) {
    std::string worker_id;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      int best_free = 0;
      for (const auto& [id, worker] : workers_) {
        if (!worker.fresh_enough) continue;
        const int free = worker.info.capacity - worker.active;
        if (free > best_free ||
            (free == best_free && free > 0 && id < worker_id)) {
          best_free = free;
          worker_id = id;
        }
      }
      if (best_free <= 0) return;
      ++workers_[worker_id].active;  // reserved
    }
    absl::StatusOr<std::optional<PromptGroup>> group =
        scheduler_->NextPromptGroup();
    if (!group.ok() || !group->has_value()) {
      absl::MutexLock lock(&mu_);
      auto it = workers_.find(worker_id);
      if (it != workers_.end()) --it->second.active;
      if (!group.ok()) {
        FAPO_LOG(ERROR) << "cannot draw the next prompt: " << group.status();
        scheduler_->Fail(absl::StrCat("cannot draw the next prompt: ",
                                      group.status().ToString()));
      }
      return;
    }
    StartStream(worker_id, **group);
  }
}

void RolloutDriver::StartStream(const std::string& worker_id,
                                const PromptGroup& group) {
  v1::GenerateRequest request;
  request.set_request_id(group.group_id);
  *request.mutable_prompt() = group.prompt;
  request.set_group_id(group.group_id);
  request.set_num_samples(group.group_size);
  *request.mutable_sampling() = options_.sampling;
  request.mutable_sampling()->set_seed(
      GroupSamplingSeed(options_.seed, group.prompt.prompt_id()));
  request.set_min_policy_version(group.min_policy_version);
  RolloutWorker worker;
  int64_t stream_id;
  {
    absl::MutexLock lock(&mu_);
    stream_id = next_stream_++;
    Stream& stream = streams_[stream_id];
    stream.worker_id = worker_id;
    stream.group_id = group.group_id;
    stream.group_size = group.group_size;
    worker = workers_[worker_id].info;
  }
  std::shared_ptr<RolloutStream> handle = client_->Generate(
      worker, request, absl::Now() + options_.generate_timeout,
      [this, stream_id](v1::Trajectory trajectory) {
        OnTrajectory(stream_id, std::move(trajectory));
      },
      [this, stream_id](absl::Status status) {
        OnDone(stream_id, std::move(status));
      });
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(stream_id);
    if (it != streams_.end()) {  // else on_done already ran
      it->second.handle = handle;
      // It failed (or the driver stopped) before the handle was stored.
      cancel = it->second.failed || stopping_;
    }
  }
  if (cancel) handle->Cancel();
}

void RolloutDriver::OnTrajectory(int64_t stream_id, v1::Trajectory trajectory) {
  std::string group_id;
  int32_t group_size = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(stream_id);
    if (it == streams_.end() || it->second.failed) return;
    group_id = it->second.group_id;
    group_size = it->second.group_size;
  }
  // The worker must answer for the group it was asked (rollout.proto).
  std::string problem;
  const int32_t index = trajectory.sample_index();
  if (trajectory.group_id() != group_id) {
    problem = absl::StrCat("trajectory for group '", trajectory.group_id(),
                           "' on the stream of group '", group_id, "'");
  } else if (index < 0 || index >= group_size) {
    problem =
        absl::StrCat("sample_index ", index, " outside [0, ", group_size, ")");
  } else if (trajectory.trajectory_id() != absl::StrCat(group_id, "/", index)) {
    problem = absl::StrCat("trajectory_id '", trajectory.trajectory_id(),
                           "' is not '", group_id, "/", index, "'");
  }
  absl::Status added = problem.empty()
                           ? scheduler_->AddTrajectory(std::move(trajectory))
                           : absl::InvalidArgumentError(problem);
  std::shared_ptr<RolloutStream> cancel;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return;
    if (added.ok()) {
      ++it->second.received;
      return;
    }
    if (!it->second.failed) {
      it->second.failed = true;
      it->second.failure = added.ToString();
      cancel = it->second.handle;
    }
  }
  FAPO_LOG(WARNING) << "group " << group_id << ": " << added
                    << "; cancelling its stream";
  if (cancel != nullptr) cancel->Cancel();
}

void RolloutDriver::OnDone(int64_t stream_id, absl::Status status) {
  Stream stream;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return;
    stream = std::move(it->second);
    streams_.erase(it);
    auto worker = workers_.find(stream.worker_id);
    if (worker != workers_.end()) --worker->second.active;
    wake_ = true;
  }
  // Shutting down: the groups stay open; a snapshot marks them incomplete
  // and a resumed job generates them again (NOTE [scheduler restore]).
  if (stopping) return;
  std::string reason;
  if (stream.failed) {
    reason = stream.failure;
  } else if (!status.ok()) {
    reason = absl::StrCat("rollout worker ", stream.worker_id, ": ",
                          status.ToString());
  } else if (stream.received < stream.group_size) {
    reason = absl::StrCat("rollout worker ", stream.worker_id,
                          " ended the stream after ", stream.received, " of ",
                          stream.group_size, " samples");
  }
  if (!reason.empty()) {
    absl::Status aborted = scheduler_->AbortGroup(stream.group_id, reason);
    if (aborted.ok()) {
      FAPO_LOG(WARNING) << "group " << stream.group_id
                        << " aborted and queued again: " << reason;
    }
  }
}

int RolloutDriver::active_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

void RolloutDriver::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // No Pump runs past this point (they see stopping_), so no new stream.
  absl::MutexLock pump_lock(&pump_mu_);
  std::vector<std::shared_ptr<RolloutStream>> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, stream] : streams_) {
      if (stream.handle != nullptr) to_cancel.push_back(stream.handle);
    }
  }
  for (const auto& stream : to_cancel) stream->Cancel();
  absl::MutexLock lock(&mu_);
  auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return streams_.empty();
  };
  mu_.Await(absl::Condition(&drained));
}

}  // namespace fapo::scheduler
