#include "scheduler/scheduler.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "algorithm/verdict.h"
#include "scheduler/scheduler_internal.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

using internal::JobStateName;
using internal::kCounterPrefix;
using internal::kNextGroupCounter;
using internal::OutcomeCounter;
using internal::VerdictOutcome;

absl::Status ValidateSchedulerOptions(const SchedulerOptions& options) {
  auto bad = [](absl::string_view field, auto value, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler option ", field, " = ", value, ": must be ", rule));
  };
  if (options.total_steps <= 0)
    return bad("total_steps", options.total_steps, "> 0");
  if (options.group_size < 1)
    return bad("group_size", options.group_size, ">= 1");
  if (options.groups_per_step < 1) {
    return bad("groups_per_step", options.groups_per_step, ">= 1");
  }
  if (options.max_staleness < 0) {
    return bad("max_staleness", options.max_staleness, ">= 0");
  }
  if (options.max_consecutive_failures < 1) {
    return bad("max_consecutive_failures", options.max_consecutive_failures,
               ">= 1");
  }
  RETURN_IF_ERROR(algorithm::ValidateRewardOptions(options.rewards));
  RETURN_IF_ERROR(algorithm::ValidateAdvantageOptions(options.advantages));
  return absl::OkStatus();
}

Scheduler::Scheduler(SchedulerOptions options,
                     std::unique_ptr<tasks::PromptSource> prompts,
                     std::unique_ptr<tasks::AnswerVerifier> verifier)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock()),
      verifier_(std::move(verifier)),
      prompts_(std::move(prompts)) {}

Scheduler::~Scheduler() {
  // The dispatcher's sink calls back into this object: stop it first.
  if (dispatcher_ != nullptr) dispatcher_->Shutdown();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    SchedulerOptions options, std::unique_ptr<tasks::PromptSource> prompts,
    std::unique_ptr<tasks::AnswerVerifier> verifier, GenrmClient* client,
    const v1::SchedulerSnapshot* resume) {
  RETURN_IF_ERROR(ValidateSchedulerOptions(options));
  if (prompts == nullptr || verifier == nullptr || client == nullptr) {
    return absl::InvalidArgumentError(
        "Scheduler::Create: prompts, verifier and client must not be null");
  }
  std::unique_ptr<Scheduler> scheduler(new Scheduler(
      std::move(options), std::move(prompts), std::move(verifier)));
  RETURN_IF_ERROR(scheduler->Init(client, resume));
  return scheduler;
}

absl::Status Scheduler::Init(GenrmClient* client,
                             const v1::SchedulerSnapshot* resume) {
  ASSIGN_OR_RETURN(metrics_, NewMetrics(options_.metrics));

  TrajectoryQueueOptions queue_options = options_.queue;
  // A late sample of a dropped group must not reopen it.
  queue_options.require_registered_groups = true;
  // Batches are handed over, not copied; Snapshot fills the bodies back in
  // (NOTE [batched hand-over] in trajectory_queue.h).
  queue_options.hand_over_batched = true;
  queue_options.clock = clock_;
  queue_options.metrics = options_.metrics;
  WorkerRegistryOptions registry_options = options_.workers;
  registry_options.clock = clock_;
  registry_options.metrics = options_.metrics;
  GenrmDispatcherOptions dispatcher_options = options_.genrm;
  dispatcher_options.clock = clock_;
  dispatcher_options.metrics = options_.metrics;

  if (resume != nullptr) {
    ASSIGN_OR_RETURN(queue_, TrajectoryQueue::Restore(*resume, queue_options));
  } else {
    ASSIGN_OR_RETURN(queue_, TrajectoryQueue::Create(queue_options));
  }
  ASSIGN_OR_RETURN(registry_, WorkerRegistry::Create(registry_options));
  ASSIGN_OR_RETURN(dispatcher_,
                   GenrmDispatcher::Create(
                       dispatcher_options, client,
                       [this](const std::string& id, v1::Verdict&& verdict) {
                         OnVerdict(id, std::move(verdict));
                       }));
  registry_->SetListener(
      [this](const v1::WorkerInfo& info, v1::WorkerState state) {
        OnWorkerChange(info, state);
      });

  std::vector<std::string> interrupted;
  {
    absl::MutexLock lock(&mu_);
    if (resume != nullptr)
      RETURN_IF_ERROR(RestoreLocked(*resume, &interrupted));
    if (steps_done_ >= options_.total_steps) {
      // Resumed from the last step's checkpoint: nothing is left to train
      // (workers that register learn it from their first heartbeat).
      FAPO_LOG(INFO) << "job " << options_.job_name << ": all "
                     << options_.total_steps
                     << " steps were done before this resume";
      state_ = v1::JOB_STATE_SUCCEEDED;
    }
    if (metrics_->policy_version != nullptr) {
      metrics_->policy_version->Set(static_cast<double>(policy_version_));
    }
    if (metrics_->job_state != nullptr) {
      // The first state is set, not changed (SetStateLocked).
      metrics_->job_state->WithLabels({{"state", JobStateName(state_)}}).Set(1);
    }
  }
  for (const std::string& group_id : interrupted) {
    // NOTE [scheduler restore]: their samples' streams died with the old
    // process; the prompts were queued for regeneration by RestoreLocked.
    std::vector<v1::TrajectoryRecord> dropped;
    absl::StatusOr<std::vector<std::string>> scoring =
        queue_->DropGroup(group_id, "interrupted",
                          options_.outcomes != nullptr ? &dropped : nullptr);
    (void)scoring;  // nothing was dispatched in this process
    if (!dropped.empty()) {
      auto prompt = resume->group_prompts().find(group_id);
      options_.outcomes->Dropped(DroppedFromRecords(
          std::move(dropped),
          prompt != resume->group_prompts().end()
              ? std::make_shared<const v1::Prompt>(prompt->second)
              : nullptr,
          "interrupted"));
    }
  }
  return absl::OkStatus();
}

// ---- Rollout side ----------------------------------------------------------

int64_t Scheduler::AdmissionLimitLocked() const {
  const int64_t per_step = options_.groups_per_step;
  const int64_t window = (options_.max_staleness + 1) * per_step;
  const int64_t remaining = (options_.total_steps - steps_done_) * per_step;
  return std::min(window, remaining);
}

absl::StatusOr<std::optional<PromptGroup>> Scheduler::NextPromptGroup() {
  absl::MutexLock lock(&mu_);
  if (state_ != v1::JOB_STATE_RUNNING) return std::nullopt;
  if (outstanding_groups_ >= AdmissionLimitLocked()) return std::nullopt;
  PromptGroup group;
  if (!regenerate_.empty()) {
    group.prompt = std::move(regenerate_.front());
    regenerate_.pop_front();
  } else {
    ASSIGN_OR_RETURN(group.prompt, prompts_->Next());
  }
  group.group_id = absl::StrCat("g", next_group_++);
  SetCounterLocked(kNextGroupCounter, next_group_);
  group.group_size = options_.group_size;
  group.min_policy_version =
      std::max<int64_t>(0, policy_version_ - options_.max_staleness);
  RETURN_IF_ERROR(queue_->RegisterGroup(group.group_id, group.group_size));
  GroupInfo& info = open_groups_[group.group_id];
  info.prompt = std::make_shared<const v1::Prompt>(group.prompt);
  info.verifier = verifier_->ForPrompt(info.prompt);
  ++outstanding_groups_;
  CountLocked("scheduler.groups.admitted");
  return group;
}

absl::Status Scheduler::AddTrajectory(v1::Trajectory&& trajectory) {
  const std::string group_id = trajectory.group_id();
  std::shared_ptr<const v1::Prompt> prompt;  // shared: no copy per sample
  std::shared_ptr<const tasks::PromptVerifier> verifier;
  {
    absl::MutexLock lock(&mu_);
    auto it = open_groups_.find(group_id);
    if (it == open_groups_.end()) {
      CountLocked("scheduler.trajectories.discarded");
      return absl::NotFoundError(absl::StrCat(
          "trajectory '", trajectory.trajectory_id(), "': group '", group_id,
          "' is not open (never admitted, aborted or already batched)"));
    }
    it->second.has_members = true;
    it->second.min_version =
        std::min(it->second.min_version, trajectory.policy_version());
    prompt = it->second.prompt;
    verifier = it->second.verifier;
  }
  if (metrics_->trajectories != nullptr) {
    metrics_->trajectories->Increment(1);
    metrics_->tokens->Increment(trajectory.response_token_ids_size());
  }
  const bool correct = verifier->IsCorrect(trajectory.response_text());
  const std::string id = trajectory.trajectory_id();
  // Written before the body moves into the queue (which may release it at
  // once, on a concurrent DropGroup), into a recycled message: no
  // allocation (NOTE [recycled requests] in genrm_dispatcher.cc).
  std::unique_ptr<v1::ScoreRequest> request;
  if (correct) {
    request = dispatcher_->NewRequest();
    request->set_request_id(id);
    request->set_trajectory_id(id);
    request->set_task(prompt->task());
    request->set_problem(prompt->text());
    request->set_ground_truth(prompt->ground_truth());
    request->set_solution(trajectory.response_text());
  }
  // Outside mu_: Add may wait for room (backpressure kWait). The queue
  // refuses the sample if the group was dropped meanwhile
  // (require_registered_groups).
  // Records carry no prompt: the scheduler keeps each group's prompt
  // (open_groups_, pending groups) and Snapshot writes it back.
  absl::Status added =
      correct
          ? queue_->AddForScoring(std::move(trajectory), options_.group_size)
          : queue_->Add(std::move(trajectory), options_.group_size);
  if (added.code() == absl::StatusCode::kNotFound) {
    absl::MutexLock lock(&mu_);
    CountLocked("scheduler.trajectories.discarded");
  }
  RETURN_IF_ERROR(added);
  if (!correct) {
    v1::Verdict verdict;
    verdict.set_trajectory_id(id);
    verdict.set_answer_correct(false);
    verdict.set_first_error_step(-1);
    verdict.set_status(v1::VERDICT_STATUS_SKIPPED);
    RETURN_IF_ERROR(queue_->RecordVerdict(id, std::move(verdict)));
    CountOutcome(kSkipped);
    return absl::OkStatus();
  }
  return dispatcher_->Submit(std::move(request));
}

absl::Status Scheduler::AbortGroup(absl::string_view group_id,
                                   absl::string_view reason) {
  {
    absl::MutexLock lock(&mu_);
    if (!open_groups_.contains(group_id)) {
      return absl::NotFoundError(
          absl::StrCat("group '", group_id, "' is not open"));
    }
    NoteFailureLocked(
        absl::StrCat("generation of group ", group_id, " failed: ", reason));
  }
  // The free text goes to the log and the failure; counters and metric
  // labels get the fixed reason "aborted".
  DropAndRegenerate(std::string(group_id), "aborted");
  return absl::OkStatus();
}

// ---- GenRM verdicts --------------------------------------------------------

void Scheduler::OnVerdict(const std::string& trajectory_id,
                          v1::Verdict&& verdict) {
  const int outcome = VerdictOutcome(verdict);
  absl::Status recorded =
      queue_->RecordVerdict(trajectory_id, std::move(verdict));
  if (!recorded.ok()) {
    // Its group was dropped while the GenRM worked: nothing to score.
    absl::MutexLock lock(&mu_);
    CountLocked("scheduler.verdicts.discarded");
    return;
  }
  CountOutcome(outcome);
  // The hot path takes no scheduler lock: progress is an atomic store.
  if (outcome == kFlawed || outcome == kSound) {
    NoteProgress();
  } else if (outcome == kTimeout) {
    absl::MutexLock lock(&mu_);
    NoteFailureLocked(absl::StrCat("the GenRM verdict for ", trajectory_id,
                                   " timed out after retries"));
  }
}

void Scheduler::CountOutcome(int outcome) {
  verdict_counts_[outcome].fetch_add(1, std::memory_order_relaxed);
  if (metrics_->verdicts != nullptr) {
    metrics_->verdict_children[outcome]->Increment(1);
  }
}

void Scheduler::OnWorkerChange(const v1::WorkerInfo& info,
                               v1::WorkerState state) {
  if (info.role() != v1::WORKER_ROLE_GENRM) return;
  if (state == v1::WORKER_STATE_ALIVE) {
    dispatcher_->AddServer(
        GenrmServer{info.worker_id(), info.address(), info.capacity()});
  } else {
    FAPO_LOG(WARNING) << "GenRM server " << info.worker_id() << " at "
                      << info.address()
                      << " is gone; its requests go to other servers";
    dispatcher_->RemoveServer(info.worker_id());
  }
}

// ---- Workers ---------------------------------------------------------------

absl::StatusOr<v1::RegisterWorkerResponse> Scheduler::RegisterWorker(
    const v1::WorkerInfo& info) {
  RETURN_IF_ERROR(registry_->Register(info));
  v1::RegisterWorkerResponse response;
  const absl::Duration interval = options_.workers.heartbeat_interval;
  const absl::Duration timeout = options_.workers.worker_timeout;
  response.mutable_heartbeat_interval()->set_seconds(
      absl::ToInt64Seconds(interval));
  response.mutable_heartbeat_interval()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(
          interval - absl::Seconds(absl::ToInt64Seconds(interval)))));
  response.mutable_worker_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
  response.mutable_worker_timeout()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(
          timeout - absl::Seconds(absl::ToInt64Seconds(timeout)))));
  response.set_job_name(options_.job_name);
  FAPO_LOG(INFO) << "worker " << info.worker_id() << " registered ("
                 << v1::WorkerRole_Name(info.role()) << ", " << info.address()
                 << ", capacity " << info.capacity() << ")";
  return response;
}

v1::HeartbeatResponse Scheduler::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  response.set_registered(registry_->Heartbeat(
      request.worker_id(), request.in_flight(), request.policy_version()));
  response.set_job_state(state());
  return response;
}

void Scheduler::RemoveWorker(absl::string_view worker_id) {
  registry_->Remove(worker_id);
}

void Scheduler::Tick() {
  registry_->Sweep();
  std::vector<std::string> stale;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [group_id, info] : open_groups_) {
      if (info.has_members && IsStaleLocked(info.min_version)) {
        stale.push_back(group_id);
      }
    }
  }
  std::sort(stale.begin(), stale.end());
  for (const std::string& group_id : stale) {
    DropAndRegenerate(group_id, "stale");
  }
  // Read outside mu_: the dispatcher and the registry lock on their own.
  GenrmWaiting genrm;
  genrm.waiting = dispatcher_->waiting();
  genrm.no_server = registry_->Alive(v1::WORKER_ROLE_GENRM).empty();
  genrm.oldest = dispatcher_->oldest_waiting_since();
  // With a trainer, its driver finishes a stop after the last checkpoint.
  const bool has_trainer = registry_->AliveCount(v1::WORKER_ROLE_TRAINER) > 0;
  absl::MutexLock lock(&mu_);
  CheckGenrmStallLocked(genrm, clock_->Now());
  if (state_ == v1::JOB_STATE_STOPPING && in_flight_ == nullptr &&
      !has_trainer) {
    SetStateLocked(v1::JOB_STATE_SUCCEEDED);
  }
}

// ---- The job ---------------------------------------------------------------

v1::JobStatus Scheduler::GetJobStatus() const {
  v1::JobStatus status;
  const TrajectoryCounts counts = queue_->Counts();
  auto& by_state = *status.mutable_trajectories_by_state();
  by_state["generated"] = counts.generated;
  by_state["scoring"] = counts.scoring;
  by_state["scored"] = counts.scored;
  by_state["batched"] = counts.batched;
  by_state["trained"] = counts.trained_total;
  by_state["dropped"] = counts.dropped_total;
  for (v1::WorkerStatus& worker : registry_->Statuses()) {
    if (worker.info().role() == v1::WORKER_ROLE_GENRM) {
      worker.set_in_flight(dispatcher_->in_flight(worker.info().worker_id()));
    }
    *status.add_workers() = std::move(worker);
  }
  auto& counters = *status.mutable_counters();
  for (const auto& [key, value] : queue_->Counters()) counters[key] = value;
  absl::MutexLock lock(&mu_);
  status.set_job_name(options_.job_name);
  status.set_state(state_);
  status.set_step(steps_done_);
  status.set_total_steps(options_.total_steps);
  status.set_policy_version(policy_version_);
  status.set_error(error_);
  *status.mutable_last_train_metrics() = last_train_metrics_;
  for (const auto& [key, value] : counters_) counters[key] = value;
  for (int i = 0; i < kNumOutcomes; ++i) {
    counters[OutcomeCounter(i)] = verdict_counts_[i].load();
  }
  return status;
}

v1::JobState Scheduler::StopJob(absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  if (state_ == v1::JOB_STATE_RUNNING || state_ == v1::JOB_STATE_STARTING) {
    FAPO_LOG(INFO) << "job " << options_.job_name << " stopping: " << reason;
    SetStateLocked(v1::JOB_STATE_STOPPING);
  }
  return state_;
}

void Scheduler::FinishStop() {
  absl::MutexLock lock(&mu_);
  if (state_ != v1::JOB_STATE_STOPPING) return;
  SetStateLocked(v1::JOB_STATE_SUCCEEDED);
}

void Scheduler::Fail(absl::string_view error) {
  absl::MutexLock lock(&mu_);
  FailLocked(error);
}

v1::JobState Scheduler::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

int64_t Scheduler::policy_version() const {
  absl::MutexLock lock(&mu_);
  return policy_version_;
}

int64_t Scheduler::min_policy_version() const {
  absl::MutexLock lock(&mu_);
  return std::max<int64_t>(0, policy_version_ - options_.max_staleness);
}

int64_t Scheduler::steps_done() const {
  absl::MutexLock lock(&mu_);
  return steps_done_;
}

// ---- Failures and counters -------------------------------------------------

void Scheduler::CountLocked(absl::string_view counter, int64_t delta) {
  // Looked up by view: no string is built for a counter that exists.
  auto it = counters_.find(counter);
  if (it == counters_.end()) it = counters_.emplace(counter, 0).first;
  it->second += delta;
}

void Scheduler::SetCounterLocked(absl::string_view counter, int64_t value) {
  auto it = counters_.find(counter);
  if (it == counters_.end()) it = counters_.emplace(counter, 0).first;
  it->second = value;
}

}  // namespace fapo::scheduler
