#include "scheduler/scheduler.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "algorithm/verdict.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {
namespace {

constexpr absl::string_view kCounterPrefix = "scheduler.";
constexpr int kRecentFailuresKept = 3;
// The next group's number (survives a resume).
constexpr absl::string_view kNextGroupCounter = "scheduler.next_group";

algorithm::VerdictStatus ToAlgorithmStatus(v1::VerdictStatus status) {
  switch (status) {
    case v1::VERDICT_STATUS_UNPARSABLE:
      return algorithm::VerdictStatus::kUnparsable;
    case v1::VERDICT_STATUS_TIMEOUT:
      return algorithm::VerdictStatus::kTimeout;
    case v1::VERDICT_STATUS_SKIPPED:
      return algorithm::VerdictStatus::kSkipped;
    case v1::VERDICT_STATUS_INVALID:
      return algorithm::VerdictStatus::kInvalid;
    default:
      return algorithm::VerdictStatus::kOk;
  }
}

// A correct answer with a usable flagged step. Unparsable, invalid and
// timed-out verdicts count as not flawed (DESIGN.md; proto VerdictStatus).
bool IsFlawed(const v1::Verdict& verdict) {
  return verdict.answer_correct() &&
         verdict.status() == v1::VERDICT_STATUS_OK &&
         verdict.first_error_step() >= 0;
}

// Outcomes of fapo_genrm_verdicts_total and the "scheduler.verdicts.*"
// counters, indexed by Scheduler::Outcome.
constexpr const char* kOutcomeNames[] = {"flawed",  "sound",   "unparsable",
                                         "invalid", "timeout", "skipped"};

int VerdictOutcome(const v1::Verdict& verdict) {
  switch (verdict.status()) {
    case v1::VERDICT_STATUS_OK:
      return IsFlawed(verdict) ? 0 : 1;
    case v1::VERDICT_STATUS_UNPARSABLE:
      return 2;
    case v1::VERDICT_STATUS_INVALID:
      return 3;
    case v1::VERDICT_STATUS_TIMEOUT:
      return 4;
    case v1::VERDICT_STATUS_SKIPPED:
      return 5;
    default:
      return 2;  // an unknown status is unusable: counted as unparsable
  }
}

std::string OutcomeCounter(int outcome) {
  return absl::StrCat(kCounterPrefix, "verdicts.", kOutcomeNames[outcome]);
}

const char* JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_STARTING:
      return "starting";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_STOPPING:
      return "stopping";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    default:
      return "unspecified";
  }
}

}  // namespace

// Metrics the scheduler itself owns (the queue, registry and dispatcher
// export theirs). Hot-path children are looked up once.
struct Scheduler::Metrics {
  metrics::CounterFamily* verdicts = nullptr;
  std::array<metrics::Counter*, kNumOutcomes> verdict_children = {};
  metrics::Gauge* policy_version = nullptr;
  metrics::Counter* train_steps = nullptr;
  metrics::Histogram* staleness = nullptr;
  metrics::Gauge* alpha = nullptr;
  metrics::Gauge* beta = nullptr;
  metrics::Gauge* gamma = nullptr;
  metrics::Gauge* flawed_ratio = nullptr;
  metrics::Gauge* reward_mean = nullptr;
  metrics::Counter* trajectories = nullptr;
  metrics::Counter* tokens = nullptr;
  metrics::CounterFamily* regenerated = nullptr;
  metrics::Gauge* failures = nullptr;
  metrics::GaugeFamily* job_state = nullptr;
};


SchedulerOptions SchedulerOptionsFromSpec(const config::JobSpec& spec) {
  SchedulerOptions options;
  options.job_name = spec.job.name;
  options.total_steps = spec.job.steps;
  options.group_size = spec.rollout.group_size;
  options.groups_per_step = spec.rollout.prompts_per_step;
  options.max_staleness = spec.scheduler.max_staleness;
  const config::AlgorithmOptions& algo = spec.algorithm;
  options.rewards.kind = algo.reward == config::RewardKind::kFapo
                             ? algorithm::RewardKind::kFapo
                             : algorithm::RewardKind::kRlvr;
  options.rewards.flawed_penalty = algo.flawed_penalty;
  options.rewards.overlong.enabled = algo.overlong_penalty.enabled;
  options.rewards.overlong.max_response_tokens =
      algo.overlong_penalty.max_response_tokens;
  options.rewards.overlong.buffer_tokens = algo.overlong_penalty.buffer_tokens;
  options.rewards.overlong.penalty = algo.overlong_penalty.penalty;
  options.advantages.scale_by_std =
      algo.advantage == config::AdvantageEstimator::kGrpo;
  options.advantages.eps = algo.advantage_eps;
  options.dynamic_sampling = algo.dynamic_sampling;
  options.deterministic = spec.scheduler.deterministic;
  options.max_consecutive_failures = spec.scheduler.max_consecutive_failures;
  options.queue.capacity = spec.scheduler.queue_capacity;
  options.queue.backpressure =
      spec.scheduler.backpressure == config::Backpressure::kWait
          ? Backpressure::kWait
          : Backpressure::kReject;
  options.workers.heartbeat_interval =
      absl::Milliseconds(spec.scheduler.heartbeat_interval_ms);
  options.workers.worker_timeout =
      absl::Milliseconds(spec.scheduler.worker_timeout_ms);
  options.genrm.max_in_flight_per_server = spec.genrm.max_in_flight_per_server;
  options.genrm.request_timeout =
      absl::Milliseconds(spec.genrm.request_timeout_ms);
  options.genrm.max_retries = spec.genrm.max_retries;
  return options;
}

absl::Status ValidateSchedulerOptions(const SchedulerOptions& options) {
  auto bad = [](absl::string_view field, auto value, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler option ", field, " = ", value, ": must be ", rule));
  };
  if (options.total_steps <= 0) return bad("total_steps", options.total_steps, "> 0");
  if (options.group_size < 1) return bad("group_size", options.group_size, ">= 1");
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
                     std::unique_ptr<PromptSource> prompts,
                     std::unique_ptr<AnswerVerifier> verifier)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock()),
      verifier_(std::move(verifier)),
      prompts_(std::move(prompts)) {}

Scheduler::~Scheduler() {
  // The dispatcher's sink calls back into this object: stop it first.
  if (dispatcher_ != nullptr) dispatcher_->Shutdown();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    SchedulerOptions options, std::unique_ptr<PromptSource> prompts,
    std::unique_ptr<AnswerVerifier> verifier, GenrmClient* client,
    const v1::SchedulerSnapshot* resume) {
  RETURN_IF_ERROR(ValidateSchedulerOptions(options));
  if (prompts == nullptr || verifier == nullptr || client == nullptr) {
    return absl::InvalidArgumentError(
        "Scheduler::Create: prompts, verifier and client must not be null");
  }
  std::unique_ptr<Scheduler> scheduler(
      new Scheduler(std::move(options), std::move(prompts),
                    std::move(verifier)));
  RETURN_IF_ERROR(scheduler->Init(client, resume));
  return scheduler;
}

absl::Status Scheduler::Init(GenrmClient* client,
                             const v1::SchedulerSnapshot* resume) {
  metrics_ = std::make_unique<Metrics>();
  if (metrics::MetricsRegistry* registry = options_.metrics) {
    Metrics& m = *metrics_;
    ASSIGN_OR_RETURN(m.verdicts,
                     registry->AddCounter(
                         "fapo_genrm_verdicts_total",
                         "Verdicts recorded, by outcome: flawed, sound, "
                         "unparsable, invalid, timeout, skipped (wrong "
                         "answers, not sent to the GenRM).",
                         {"outcome"}));
    for (int i = 0; i < kNumOutcomes; ++i) {
      m.verdict_children[i] =
          &m.verdicts->WithLabels({{"outcome", kOutcomeNames[i]}});
    }
    ASSIGN_OR_RETURN(auto* version,
                     registry->AddGauge("fapo_policy_version",
                                        "The trainer's policy version.", {}));
    m.policy_version = &version->WithLabels({});
    ASSIGN_OR_RETURN(auto* steps,
                     registry->AddCounter("fapo_train_steps_total",
                                          "Train steps completed.", {}));
    m.train_steps = &steps->WithLabels({});
    ASSIGN_OR_RETURN(
        auto* staleness,
        registry->AddHistogram(
            "fapo_trajectory_staleness",
            "Policy versions between a trained trajectory's sampler and the "
            "trainer (t - v; NOTE [staleness]).",
            {0, 1, 2, 3, 4, 8}, {}));
    m.staleness = &staleness->WithLabels({});
    ASSIGN_OR_RETURN(auto* ratios,
                     registry->AddGauge(
                         "fapo_batch_rollout_share",
                         "Share of the last train batch's rollouts by class "
                         "(alpha: sound, beta: wrong, gamma: flawed "
                         "positive).",
                         {"class"}));
    m.alpha = &ratios->WithLabels({{"class", "alpha"}});
    m.beta = &ratios->WithLabels({{"class", "beta"}});
    m.gamma = &ratios->WithLabels({{"class", "gamma"}});
    ASSIGN_OR_RETURN(auto* flawed,
                     registry->AddGauge(
                         "fapo_flawed_positive_ratio",
                         "Flawed positives / correct answers in the last "
                         "train batch.",
                         {}));
    m.flawed_ratio = &flawed->WithLabels({});
    ASSIGN_OR_RETURN(auto* reward,
                     registry->AddGauge("fapo_reward_mean",
                                        "Mean reward of the last train batch.",
                                        {}));
    m.reward_mean = &reward->WithLabels({});
    ASSIGN_OR_RETURN(auto* generated,
                     registry->AddCounter("fapo_trajectories_generated_total",
                                          "Trajectories received from "
                                          "rollout workers.",
                                          {}));
    m.trajectories = &generated->WithLabels({});
    ASSIGN_OR_RETURN(auto* tokens,
                     registry->AddCounter("fapo_tokens_generated_total",
                                          "Response tokens received from "
                                          "rollout workers.",
                                          {}));
    m.tokens = &tokens->WithLabels({});
    ASSIGN_OR_RETURN(m.regenerated,
                     registry->AddCounter("fapo_groups_regenerated_total",
                                          "Prompt groups generated again, by "
                                          "why the first one was dropped.",
                                          {"reason"}));
    ASSIGN_OR_RETURN(auto* failures,
                     registry->AddGauge(
                         "fapo_consecutive_failures",
                         "Failures since the last progress (NOTE [no "
                         "progress]); the job fails at the configured limit.",
                         {}));
    m.failures = &failures->WithLabels({});
    ASSIGN_OR_RETURN(m.job_state,
                     registry->AddGauge("fapo_job_state",
                                        "1 for the job's current state.",
                                        {"state"}));
  }

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
    if (resume != nullptr) RETURN_IF_ERROR(RestoreLocked(*resume, &interrupted));
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
      ReportDropped(std::move(dropped),
                    prompt != resume->group_prompts().end()
                        ? std::make_shared<const v1::Prompt>(prompt->second)
                        : nullptr,
                    "interrupted", /*has_reward=*/false);
    }
  }
  return absl::OkStatus();
}

// NOTE [scheduler restore]: the snapshot is taken between train steps.
//   - complete groups (all members scored) stay and train as if nothing
//     happened;
//   - batched records (taken for a batch that had not trained) become
//     pending groups again, with their rewards and advantages;
//   - incomplete groups are dropped ("interrupted") and their prompts
//     generated again: their generation streams ended with the old process.
// So a resumed job neither loses a prompt nor trains a sample twice.
absl::Status Scheduler::RestoreLocked(const v1::SchedulerSnapshot& snapshot,
                                      std::vector<std::string>* interrupted) {
  steps_done_ = snapshot.step();
  policy_version_ = snapshot.policy_version();
  if (prompts_->position() != snapshot.prompt_source_position()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot: the prompt source is at position ", prompts_->position(),
        " but the snapshot was taken at ", snapshot.prompt_source_position(),
        " (create it with MakePromptSource(spec, position))"));
  }
  for (const auto& [key, value] : snapshot.counters()) {
    if (!absl::StartsWith(key, kCounterPrefix)) continue;
    bool outcome = false;
    for (int i = 0; i < kNumOutcomes; ++i) {
      if (key == OutcomeCounter(i)) {
        verdict_counts_[i].store(value);
        outcome = true;
      }
    }
    if (!outcome) counters_[key] = value;
  }
  next_group_ = counters_[std::string(kNextGroupCounter)];
  for (const v1::Prompt& prompt : snapshot.regenerate()) {
    regenerate_.push_back(prompt);
  }
  std::vector<std::string> open_ids;
  for (const auto& [group_id, size] : snapshot.open_group_sizes()) {
    open_ids.push_back(group_id);
  }
  std::sort(open_ids.begin(), open_ids.end());
  for (const std::string& group_id : open_ids) {
    auto prompt = snapshot.group_prompts().find(group_id);
    if (prompt == snapshot.group_prompts().end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot: open group '", group_id, "' has no prompt"));
    }
    ASSIGN_OR_RETURN(bool complete, queue_->IsGroupComplete(group_id));
    if (complete) {
      GroupInfo& info = open_groups_[group_id];
      info.prompt = std::make_shared<const v1::Prompt>(prompt->second);
      info.verifier = verifier_->ForPrompt(info.prompt);
      ++outstanding_groups_;
    } else {
      regenerate_.push_back(prompt->second);
      interrupted->push_back(group_id);
      CountLocked("scheduler.groups.interrupted");
    }
  }
  // Batched records: group them back (arrival order), scores included.
  absl::flat_hash_map<std::string, size_t> index;
  for (const v1::TrajectoryRecord& record : snapshot.records()) {
    if (record.state() != v1::TRAJECTORY_STATE_BATCHED) continue;
    const std::string& group_id = record.trajectory().group_id();
    auto [it, inserted] = index.emplace(group_id, pending_groups_.size());
    if (inserted) {
      pending_groups_.emplace_back();
      pending_groups_.back().group_id = group_id;
      pending_groups_.back().prompt = record.prompt();
      pending_groups_.back().min_version = INT64_MAX;
      ++outstanding_groups_;
    }
    ScoredGroup& group = pending_groups_[it->second];
    v1::ScoredTrajectory scored;
    *scored.mutable_trajectory() = record.trajectory();
    *scored.mutable_verdict() = record.verdict();
    scored.set_flawed(record.flawed());
    scored.set_reward(record.reward());
    scored.set_advantage(record.advantage());
    group.min_version =
        std::min(group.min_version, record.trajectory().policy_version());
    group.members.push_back(std::move(scored));
  }
  for (ScoredGroup& group : pending_groups_) {
    std::sort(group.members.begin(), group.members.end(),
              [](const v1::ScoredTrajectory& a, const v1::ScoredTrajectory& b) {
                return a.trajectory().sample_index() <
                       b.trajectory().sample_index();
              });
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
  std::shared_ptr<const PromptVerifier> verifier;
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
    NoteFailureLocked(absl::StrCat("generation of group ", group_id,
                                   " failed: ", reason));
  }
  // The free text goes to the log and the failure; counters and metric
  // labels get the fixed reason "aborted".
  DropAndRegenerate(std::string(group_id), "aborted");
  return absl::OkStatus();
}

void Scheduler::DropAndRegenerate(const std::string& group_id,
                                  absl::string_view reason) {
  std::vector<std::string> scoring;
  {
    absl::MutexLock lock(&mu_);
    auto it = open_groups_.find(group_id);
    if (it == open_groups_.end()) return;  // raced with another drop
    std::shared_ptr<const v1::Prompt> prompt = std::move(it->second.prompt);
    regenerate_.push_back(*prompt);
    open_groups_.erase(it);
    --outstanding_groups_;
    std::vector<v1::TrajectoryRecord> records;
    absl::StatusOr<std::vector<std::string>> dropped = queue_->DropGroup(
        group_id, reason, options_.outcomes != nullptr ? &records : nullptr);
    if (dropped.ok()) scoring = *std::move(dropped);
    if (!records.empty()) {
      ReportDropped(std::move(records), std::move(prompt), reason,
                    /*has_reward=*/false);
    }
    CountLocked(absl::StrCat("scheduler.groups.regenerated.", reason));
    if (metrics_->regenerated != nullptr) {
      metrics_->regenerated->WithLabels({{"reason", std::string(reason)}})
          .Increment(1);
    }
  }
  for (const std::string& id : scoring) dispatcher_->Cancel(id);
}

void Scheduler::ReportDropped(std::vector<v1::TrajectoryRecord> records,
                              std::shared_ptr<const v1::Prompt> prompt,
                              absl::string_view reason, bool has_reward) {
  std::vector<DroppedTrajectory> dropped(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    v1::TrajectoryRecord& record = records[i];
    DroppedTrajectory& out = dropped[i];
    out.trajectory.set_allocated_trajectory(record.release_trajectory());
    out.has_verdict = record.has_verdict();
    if (out.has_verdict) {
      out.trajectory.set_allocated_verdict(record.release_verdict());
    }
    out.has_reward = has_reward;
    if (has_reward) {
      out.trajectory.set_flawed(record.flawed());
      out.trajectory.set_reward(record.reward());
    }
    out.prompt = prompt;
    out.reason = std::string(reason);
  }
  options_.outcomes->Dropped(std::move(dropped));
}

// ---- GenRM verdicts --------------------------------------------------------

void Scheduler::OnVerdict(const std::string& trajectory_id,
                          v1::Verdict&& verdict) {
  const int outcome = VerdictOutcome(verdict);
  absl::Status recorded = queue_->RecordVerdict(trajectory_id, std::move(verdict));
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

// ---- Trainer side ----------------------------------------------------------

bool Scheduler::IsStaleLocked(int64_t version) const {
  return policy_version_ - version > options_.max_staleness;
}

void Scheduler::FillPendingLocked() {
  const size_t want = static_cast<size_t>(options_.groups_per_step);
  while (pending_groups_.size() < want) {
    std::vector<CompleteGroup> taken = queue_->TakeCompleteGroups(
        static_cast<int>(want - pending_groups_.size()));
    if (taken.empty()) return;
    for (CompleteGroup& group : taken) {
      auto info = open_groups_.find(group.group_id);
      v1::Prompt prompt;
      std::shared_ptr<const v1::Prompt> shared_prompt;  // for drop reports
      if (info != open_groups_.end()) {
        prompt = *info->second.prompt;
        shared_prompt = std::move(info->second.prompt);
        open_groups_.erase(info);
      } else if (!group.records.empty()) {
        prompt = group.records.front().prompt();
      }
      NoteProgress();
      int64_t min_version = INT64_MAX;
      for (const v1::TrajectoryRecord& record : group.records) {
        min_version =
            std::min(min_version, record.trajectory().policy_version());
      }
      // `rewards`: the group's, when it was scored before the drop.
      auto drop_all = [&](absl::string_view reason,
                          const std::vector<double>* rewards) {
        for (const v1::TrajectoryRecord& record : group.records) {
          (void)queue_->Drop(record.trajectory().trajectory_id(), reason);
        }
        --outstanding_groups_;
        if (options_.outcomes == nullptr) return;
        if (rewards != nullptr) {
          for (size_t i = 0; i < group.records.size(); ++i) {
            group.records[i].set_flawed(IsFlawed(group.records[i].verdict()));
            group.records[i].set_reward((*rewards)[i]);
          }
        }
        if (shared_prompt == nullptr) {
          shared_prompt = std::make_shared<const v1::Prompt>(prompt);
        }
        ReportDropped(std::move(group.records), shared_prompt, reason,
                      rewards != nullptr);
      };
      if (IsStaleLocked(min_version)) {
        drop_all("stale", nullptr);
        regenerate_.push_back(std::move(prompt));
        CountLocked("scheduler.groups.regenerated.stale");
        if (metrics_->regenerated != nullptr) {
          metrics_->regenerated->WithLabels({{"reason", "stale"}}).Increment(1);
        }
        continue;
      }
      // FAPO rewards, then GRPO advantages over the group's scored members.
      const size_t n = group.records.size();
      std::vector<double> rewards(n);
      std::vector<algorithm::RolloutJudgement> judgements(n);
      for (size_t i = 0; i < n; ++i) {
        const v1::TrajectoryRecord& record = group.records[i];
        judgements[i].answer_correct = record.verdict().answer_correct();
        judgements[i].flawed = IsFlawed(record.verdict());
        judgements[i].response_tokens =
            record.trajectory().response_token_ids_size();
        rewards[i] = algorithm::ComputeReward(judgements[i], options_.rewards);
      }
      if (options_.dynamic_sampling && !algorithm::HasLearningSignal(rewards)) {
        // DAPO draws a new prompt rather than this one again.
        drop_all("no_signal", &rewards);
        CountLocked("scheduler.groups.no_signal");
        continue;
      }
      std::vector<double> advantages =
          algorithm::ComputeGroupAdvantages(rewards, options_.advantages);
      ScoredGroup scored;
      scored.group_id = group.group_id;
      scored.prompt = std::move(prompt);
      scored.min_version = min_version;
      scored.members.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        v1::TrajectoryRecord& record = group.records[i];
        v1::ScoredTrajectory& member = scored.members.emplace_back();
        // The bodies change hands by pointer: no allocation, no copy.
        member.set_allocated_trajectory(record.release_trajectory());
        member.set_allocated_verdict(record.release_verdict());
        member.set_flawed(judgements[i].flawed);
        member.set_reward(rewards[i]);
        member.set_advantage(advantages[i]);
      }
      pending_groups_.push_back(std::move(scored));
    }
  }
}

std::shared_ptr<const TrainBatch> Scheduler::TakeTrainBatch() {
  absl::MutexLock lock(&mu_);
  if (state_ != v1::JOB_STATE_RUNNING) return nullptr;
  if (in_flight_ != nullptr) {
    if (!in_flight_failed_) return nullptr;
    in_flight_failed_ = false;
    return in_flight_;
  }
  if (steps_done_ >= options_.total_steps) return nullptr;
  // Groups scored before the last step may have gone stale since.
  for (auto it = pending_groups_.begin(); it != pending_groups_.end();) {
    if (!IsStaleLocked(it->min_version)) {
      ++it;
      continue;
    }
    for (const v1::ScoredTrajectory& member : it->members) {
      (void)queue_->Drop(member.trajectory().trajectory_id(), "stale");
    }
    --outstanding_groups_;
    if (options_.outcomes != nullptr) {
      // Scored, rewarded and with advantages: all of it goes.
      auto prompt = std::make_shared<const v1::Prompt>(it->prompt);
      std::vector<DroppedTrajectory> dropped(it->members.size());
      for (size_t i = 0; i < dropped.size(); ++i) {
        dropped[i].trajectory = std::move(it->members[i]);
        dropped[i].has_verdict = true;
        dropped[i].has_reward = true;
        dropped[i].has_advantage = true;
        dropped[i].prompt = prompt;
        dropped[i].reason = "stale";
      }
      options_.outcomes->Dropped(std::move(dropped));
    }
    regenerate_.push_back(std::move(it->prompt));
    CountLocked("scheduler.groups.regenerated.stale");
    it = pending_groups_.erase(it);
  }
  FillPendingLocked();
  if (pending_groups_.size() < static_cast<size_t>(options_.groups_per_step)) {
    return nullptr;
  }
  if (options_.deterministic) {
    // NOTE [deterministic mode]: the batch's groups in the order of their
    // prompt ids, not in the order their last verdicts happened to arrive.
    // Not by group id: a group generated again after a restore gets a new
    // one, and the resumed run would order its batch differently.
    std::sort(pending_groups_.begin(),
              pending_groups_.begin() + options_.groups_per_step,
              [](const ScoredGroup& a, const ScoredGroup& b) {
                return a.prompt.prompt_id() < b.prompt.prompt_id();
              });
  }
  auto made = std::make_shared<TrainBatch>();
  TrainBatch& batch = *made;
  batch.step = steps_done_ + 1;
  batch.policy_version = policy_version_;
  size_t batch_size = 0;
  for (int g = 0; g < options_.groups_per_step; ++g) {
    batch_size += pending_groups_[g].members.size();
  }
  batch.trajectories.reserve(batch_size);
  batch.group_sizes.reserve(options_.groups_per_step);
  batch.group_prompts.reserve(options_.groups_per_step);
  double reward_sum = 0;
  for (int g = 0; g < options_.groups_per_step; ++g) {
    ScoredGroup& group = pending_groups_.front();
    batch.group_sizes.push_back(static_cast<int>(group.members.size()));
    batch.group_prompts.push_back(std::move(group.prompt));
    for (v1::ScoredTrajectory& member : group.members) {
      algorithm::RolloutJudgement judgement;
      judgement.answer_correct = member.verdict().answer_correct();
      judgement.flawed = member.flawed();
      batch.counts.AddRollout(judgement,
                              ToAlgorithmStatus(member.verdict().status()));
      reward_sum += member.reward();
      if (metrics_->staleness != nullptr) {
        metrics_->staleness->Observe(static_cast<double>(
            policy_version_ - member.trajectory().policy_version()));
      }
      batch.trajectories.push_back(std::move(member));
    }
    pending_groups_.pop_front();
  }
  if (!batch.trajectories.empty()) {
    batch.reward_mean =
        reward_sum / static_cast<double>(batch.trajectories.size());
  }
  run_counts_ += batch.counts;
  if (metrics_->alpha != nullptr) {
    metrics_->alpha->Set(batch.counts.alpha());
    metrics_->beta->Set(batch.counts.beta());
    metrics_->gamma->Set(batch.counts.gamma());
    metrics_->flawed_ratio->Set(batch.counts.flawed_positive_ratio());
    metrics_->reward_mean->Set(batch.reward_mean);
  }
  in_flight_ = std::move(made);
  in_flight_failed_ = false;
  return in_flight_;
}

absl::Status Scheduler::CompleteTrainStep(int64_t step,
                                          int64_t new_policy_version,
                                          const v1::TrainMetrics& metrics) {
  absl::MutexLock lock(&mu_);
  if (in_flight_ == nullptr || in_flight_->step != step) {
    return absl::FailedPreconditionError(
        absl::StrCat("train step ", step, " is not in flight",
                     in_flight_ != nullptr
                         ? absl::StrCat(" (step ", in_flight_->step, " is)")
                         : std::string(" (none is)")));
  }
  if (new_policy_version <= policy_version_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train step ", step, ": policy version ", new_policy_version,
        " does not move forward from ", policy_version_));
  }
  std::vector<absl::string_view> ids;
  ids.reserve(in_flight_->trajectories.size());
  for (const v1::ScoredTrajectory& member : in_flight_->trajectories) {
    ids.push_back(member.trajectory().trajectory_id());
  }
  RETURN_IF_ERROR(queue_->MarkTrainedAll(ids));
  // The shared batch itself: nothing is copied here (samples.jsonl is
  // written from it on the sink's own thread).
  if (options_.outcomes != nullptr) options_.outcomes->Trained(in_flight_);
  outstanding_groups_ -= static_cast<int64_t>(in_flight_->group_sizes.size());
  in_flight_ = nullptr;
  steps_done_ = step;
  policy_version_ = new_policy_version;
  last_train_metrics_ = metrics;
  NoteProgress();
  CountLocked("scheduler.steps");
  if (metrics_->train_steps != nullptr) {
    metrics_->train_steps->Increment(1);
    metrics_->policy_version->Set(static_cast<double>(policy_version_));
  }
  if (steps_done_ >= options_.total_steps && state_ == v1::JOB_STATE_RUNNING) {
    // NOTE [job end]: the last step ends the job the way StopJob does:
    // STOPPING until the trainer driver has written the final checkpoint
    // and metrics line (FinishStop), so that SUCCEEDED, which sends every
    // worker home, comes when the run directory is complete.
    FAPO_LOG(INFO) << "job " << options_.job_name << ": all "
                   << options_.total_steps
                   << " steps done; the final checkpoint, then the end";
    if (metrics_->job_state != nullptr) {
      metrics_->job_state->WithLabels({{"state", JobStateName(state_)}}).Set(0);
      metrics_->job_state->WithLabels({{"state", "stopping"}}).Set(1);
    }
    state_ = v1::JOB_STATE_STOPPING;
  }
  return absl::OkStatus();
}

absl::Status Scheduler::FailTrainStep(int64_t step, absl::string_view error) {
  absl::MutexLock lock(&mu_);
  if (in_flight_ == nullptr || in_flight_->step != step) {
    return absl::FailedPreconditionError(
        absl::StrCat("train step ", step, " is not in flight"));
  }
  in_flight_failed_ = true;
  CountLocked("scheduler.steps.failed");
  NoteFailureLocked(absl::StrCat("train step ", step, " failed: ", error));
  return absl::OkStatus();
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
  response.mutable_heartbeat_interval()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(interval - absl::Seconds(absl::ToInt64Seconds(
                                              interval)))));
  response.mutable_worker_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
  response.mutable_worker_timeout()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(timeout - absl::Seconds(absl::ToInt64Seconds(
                                             timeout)))));
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
  // A GenRM-less stall: trajectories wait and no server is alive.
  const int64_t waiting = dispatcher_->waiting();
  const bool no_server = registry_->Alive(v1::WORKER_ROLE_GENRM).empty();
  const absl::Time oldest = dispatcher_->oldest_waiting_since();
  const absl::Time now = clock_->Now();
  // With a trainer, its driver finishes a stop after the last checkpoint.
  const bool has_trainer = registry_->AliveCount(v1::WORKER_ROLE_TRAINER) > 0;
  absl::MutexLock lock(&mu_);
  const absl::Duration patience = options_.workers.worker_timeout;
  if (waiting > 0 && no_server && now - oldest > patience &&
      now - genrm_stall_noted_ > patience) {
    genrm_stall_noted_ = now;
    NoteFailureLocked(absl::StrCat(
        waiting, " trajectories have waited ",
        absl::FormatDuration(now - oldest),
        " for a GenRM server and none is alive (start fapo-genrm-server "
        "with --scheduler pointing here)"));
  }
  if (state_ == v1::JOB_STATE_STOPPING && in_flight_ == nullptr &&
      !has_trainer) {
    state_ = v1::JOB_STATE_SUCCEEDED;
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
    if (metrics_->job_state != nullptr) {
      metrics_->job_state->WithLabels({{"state", JobStateName(state_)}}).Set(0);
      metrics_->job_state->WithLabels({{"state", "stopping"}}).Set(1);
    }
    state_ = v1::JOB_STATE_STOPPING;
  }
  return state_;
}

void Scheduler::FinishStop() {
  absl::MutexLock lock(&mu_);
  if (state_ != v1::JOB_STATE_STOPPING) return;
  if (metrics_->job_state != nullptr) {
    metrics_->job_state->WithLabels({{"state", "stopping"}}).Set(0);
    metrics_->job_state->WithLabels({{"state", "succeeded"}}).Set(1);
  }
  state_ = v1::JOB_STATE_SUCCEEDED;
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

v1::SchedulerSnapshot Scheduler::Snapshot() const {
  absl::MutexLock lock(&mu_);
  // Under mu_, so no batch is taken or trained between the two halves.
  v1::SchedulerSnapshot snapshot = queue_->Snapshot();
  // The queue holds batched records as skeletons (NOTE [batched
  // hand-over]); their bodies, scores and prompts are here.
  absl::flat_hash_map<absl::string_view,
                      std::pair<const v1::ScoredTrajectory*, const v1::Prompt*>>
      bodies;
  for (const ScoredGroup& group : pending_groups_) {
    for (const v1::ScoredTrajectory& member : group.members) {
      bodies[member.trajectory().trajectory_id()] = {&member, &group.prompt};
    }
  }
  if (in_flight_ != nullptr) {
    size_t next = 0;
    for (size_t g = 0; g < in_flight_->group_sizes.size(); ++g) {
      for (int i = 0; i < in_flight_->group_sizes[g]; ++i, ++next) {
        const v1::ScoredTrajectory& member = in_flight_->trajectories[next];
        bodies[member.trajectory().trajectory_id()] = {
            &member, &in_flight_->group_prompts[g]};
      }
    }
  }
  for (v1::TrajectoryRecord& record : *snapshot.mutable_records()) {
    if (record.state() != v1::TRAJECTORY_STATE_BATCHED) continue;
    auto it = bodies.find(record.trajectory().trajectory_id());
    if (it == bodies.end()) continue;  // cannot happen: every batch is here
    const v1::ScoredTrajectory& member = *it->second.first;
    *record.mutable_trajectory() = member.trajectory();
    *record.mutable_verdict() = member.verdict();
    record.set_flawed(member.flawed());
    record.set_reward(member.reward());
    record.set_advantage(member.advantage());
    *record.mutable_prompt() = *it->second.second;
  }
  snapshot.set_step(steps_done_);
  snapshot.set_policy_version(policy_version_);
  snapshot.set_prompt_source_position(prompts_->position());
  for (const auto& [key, value] : counters_) {
    (*snapshot.mutable_counters())[key] = value;
  }
  for (int i = 0; i < kNumOutcomes; ++i) {
    (*snapshot.mutable_counters())[OutcomeCounter(i)] =
        verdict_counts_[i].load();
  }
  for (const auto& [group_id, info] : open_groups_) {
    (*snapshot.mutable_group_prompts())[group_id] = *info.prompt;
  }
  for (const v1::Prompt& prompt : regenerate_) {
    *snapshot.add_regenerate() = prompt;
  }
  return snapshot;
}

// ---- Failures and counters -------------------------------------------------

void Scheduler::NoteProgress() {
  if (consecutive_failures_.load(std::memory_order_relaxed) == 0) return;
  consecutive_failures_.store(0, std::memory_order_relaxed);
  if (metrics_->failures != nullptr) metrics_->failures->Set(0);
}

void Scheduler::NoteFailureLocked(absl::string_view what) {
  const int failures =
      consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  CountLocked("scheduler.failures");
  recent_failures_.push_back(std::string(what));
  while (recent_failures_.size() > kRecentFailuresKept) {
    recent_failures_.pop_front();
  }
  if (metrics_->failures != nullptr) metrics_->failures->Set(failures);
  FAPO_LOG(WARNING) << "failure " << failures << "/"
                    << options_.max_consecutive_failures
                    << " without progress: " << what;
  if (failures >= options_.max_consecutive_failures) {
    FailLocked(absl::StrCat(
        failures,
        " consecutive failures with no progress (scheduler."
        "max_consecutive_failures); the last: ",
        absl::StrJoin(recent_failures_, "; ")));
  }
}

void Scheduler::FailLocked(absl::string_view error) {
  if (state_ == v1::JOB_STATE_FAILED || state_ == v1::JOB_STATE_SUCCEEDED) {
    return;
  }
  FAPO_LOG(ERROR) << "job " << options_.job_name << " FAILED: " << error;
  if (metrics_->job_state != nullptr) {
    metrics_->job_state->WithLabels({{"state", JobStateName(state_)}}).Set(0);
    metrics_->job_state->WithLabels({{"state", "failed"}}).Set(1);
  }
  state_ = v1::JOB_STATE_FAILED;
  error_ = std::string(error);
}

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
