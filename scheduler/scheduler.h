// Scheduler: the logic of the single controller of a FAPO job
// (docs/architecture.md), without gRPC (SchedulerService is its adapter).
// It owns:
//
//   - which prompt groups to generate next, under the staleness budget
//     (NOTE [staleness]), and prompts to generate again after a drop;
//   - the trajectory queue (trajectory_queue.h): every streamed trajectory
//     is verified at once; a wrong answer is scored -1 on the spot (verdict
//     SKIPPED), a correct one goes to the GenRM dispatcher at once
//     (genrm_dispatcher.h: least-loaded, capped, deadlines, retries, a
//     timeout counts as not flawed);
//   - train batches: complete groups get their FAPO rewards and GRPO
//     advantages (algorithm/), and `groups_per_step` of them make a batch;
//   - the worker registry (worker_registry.h): GenRM servers that register
//     join the dispatcher, dead ones leave it and their calls go elsewhere;
//   - the job's state, the failure watchdog (NOTE [no progress]), status,
//     metrics and the snapshot that is checkpointed with the trainer.
//
// Who calls what: the rollout driver calls NextPromptGroup, AddTrajectory
// and AbortGroup; the trainer driver calls TakeTrainBatch and
// CompleteTrainStep/FailTrainStep; SchedulerService calls RegisterWorker,
// Heartbeat, GetJobStatus and StopJob; a timer calls Tick.
//
// NOTE [staleness]: a trajectory sampled with policy version v may train at
// trainer version t (the weights the trainer holds when it runs the step,
// which makes t + 1) only if t - v <= max_staleness. Two rules keep it so:
//   1. admission: a new group is admitted only while fewer than
//      (max_staleness + 1) * groups_per_step groups are outstanding
//      (admitted and not yet trained or dropped), and never more than the
//      remaining steps need. With max_staleness 0 generation waits for each
//      step (on-policy); with 1, the next batch generates while the current
//      one trains. A group asks for min_policy_version = t - max_staleness.
//   2. enforcement: when a batch is formed at version t, a group with any
//      member older than allowed is dropped ("stale", counted per
//      trajectory) and its prompt is generated again. Tick also drops open
//      groups that can no longer be fresh enough, so the GenRM does not
//      score them for nothing.
//
// NOTE [deterministic mode]: scheduler.deterministic makes a run repeat
// itself, across a stop and resume too: the same seed gives the same
// metrics, step for step. What it takes:
//   - max_staleness 0 (the config requires it): the groups of step t are
//     admitted once step t-1 has trained and are generated with its
//     weights, whichever worker runs them and whenever;
//   - each group samples with a seed fixed by job.seed and its prompt
//     (NOTE [sampling seeds] in rollout_driver.h), so a group generated
//     again after a restore draws what it drew before;
//   - a batch's groups ordered by prompt id, not by completion (the
//     trainer's minibatches depend on the order; group ids would not do,
//     since a group generated again after a restore gets a new one);
//   - verdicts that repeat: the rule GenRM, or a greedy model (warned
//     about otherwise; an openai endpoint does not promise it).
// Its cost is the overlap: generation of step t+1 no longer runs while
// step t trains, so a step takes generation + train + weight sync instead
// of roughly the larger of generation and train. GenRM scoring still
// overlaps generation.
//
// NOTE [no progress]: failures (a GenRM verdict that timed out after
// retries, an aborted generation group, a failed train step, a stretch of
// worker_timeout with trajectories waiting and no live GenRM server) are
// counted; progress (a usable verdict, a complete group, a train step)
// resets the count. At max_consecutive_failures the job FAILS with a message
// naming the last failures, rather than hanging.
//
// Thread-safety: every method is thread-safe. Callbacks from the dispatcher
// and the registry arrive on their threads and take the scheduler's lock
// after their own locks are released; the scheduler never calls the
// dispatcher or the registry while holding its lock.
#ifndef FAPO_SCHEDULER_SCHEDULER_H_
#define FAPO_SCHEDULER_SCHEDULER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "algorithm/advantages.h"
#include "algorithm/flawed_metrics.h"
#include "algorithm/rewards.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/scheduler.pb.h"
#include "fapo/v1/scheduler_state.pb.h"
#include "scheduler/clients/genrm_client.h"
#include "scheduler/genrm_dispatcher.h"
#include "scheduler/trajectory_outcome_sink.h"
#include "scheduler/trajectory_queue.h"
#include "scheduler/worker_registry.h"
#include "services/clock/clock.h"
#include "services/metrics/metrics_registry.h"
#include "tasks/task_source.h"

namespace fapo::scheduler {

// Every field the job spec feeds has no default here (NOTE [one default]
// in services/config/job_spec.h): SchedulerOptionsFromSpec
// (scheduler/options_from_spec.h) fills them, and tests start from it.
struct SchedulerOptions {
  // job.name: for status and logs.
  std::string job_name;
  // job.steps: train steps the job runs; > 0.
  int64_t total_steps = 0;
  // rollout.group_size: samples per prompt (G); >= 1.
  int group_size = 0;
  // rollout.prompts_per_step: groups per train batch; >= 1.
  int groups_per_step = 0;
  // scheduler.max_staleness (NOTE [staleness]); >= 0.
  int max_staleness = 0;
  // algorithm.reward, flawed_penalty, overlong_penalty.
  algorithm::RewardOptions rewards;
  // algorithm.advantage, advantage_eps.
  algorithm::AdvantageOptions advantages;
  // algorithm.dynamic_sampling: DAPO's, drop (reason "no_signal") groups
  // whose rewards are all equal and generate new prompts instead.
  bool dynamic_sampling = false;
  // scheduler.deterministic (NOTE [deterministic mode]).
  bool deterministic = false;
  // scheduler.max_consecutive_failures (NOTE [no progress]); >= 1.
  int max_consecutive_failures = 0;
  // The parts' options; clock and metrics there are overridden by the two
  // below.
  TrajectoryQueueOptions queue;
  WorkerRegistryOptions workers;
  GenrmDispatcherOptions genrm;
  // Not owned; null = RealClock(). Must outlive the scheduler.
  Clock* clock = nullptr;
  // Not owned; null = no metrics. Must outlive the scheduler.
  metrics::MetricsRegistry* metrics = nullptr;
  // Not owned; null = none (no cost). Told of every trajectory that is
  // trained or dropped (samples.jsonl). Must outlive the scheduler.
  TrajectoryOutcomeSink* outcomes = nullptr;
};

// InvalidArgument naming the first bad field.
absl::Status ValidateSchedulerOptions(const SchedulerOptions& options);

// One prompt to sample group_size responses for.
struct PromptGroup {
  std::string group_id;
  v1::Prompt prompt;
  int32_t group_size = 0;
  // The oldest weights worth sampling with (NOTE [staleness]).
  int64_t min_policy_version = 0;
};

// One optimizer step's worth of groups, rewards and advantages included.
struct TrainBatch {
  // The step this batch is for (steps done so far + 1) and the trainer
  // version it trains at.
  int64_t step = 0;
  int64_t policy_version = 0;
  // Group after group, each ordered by sample_index.
  std::vector<v1::ScoredTrajectory> trajectories;
  std::vector<int> group_sizes;
  // The prompt of each group (for snapshots and regeneration).
  std::vector<v1::Prompt> group_prompts;
  // alpha/beta/gamma over the batch, with verdict counts.
  algorithm::FlawedCounts counts;
  double reward_mean = 0.0;
};

class Scheduler {
 public:
  // `client` (not owned) must outlive the scheduler. With `resume`, the
  // scheduler continues from a snapshot (NOTE [scheduler restore] in the
  // .cc): complete groups stay, incomplete ones are generated again.
  // InvalidArgument for bad options or a bad snapshot.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(
      SchedulerOptions options, std::unique_ptr<tasks::PromptSource> prompts,
      std::unique_ptr<tasks::AnswerVerifier> verifier, GenrmClient* client,
      const v1::SchedulerSnapshot* resume = nullptr);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Shuts the dispatcher down (in-flight GenRM calls are cancelled).
  ~Scheduler();

  // ---- Rollout side.

  // The next group to generate, or nullopt when the staleness budget is
  // used up, the job is not running, or every remaining step is covered.
  // Prompts to regenerate come before new ones. The group is admitted:
  // AddTrajectory accepts its members until it completes or is aborted.
  absl::StatusOr<std::optional<PromptGroup>> NextPromptGroup();

  // A sampled trajectory of an admitted group (trajectory_id, group_id,
  // sample_index, response_text and policy_version set). Verified at once:
  // wrong answers are scored (SKIPPED), correct ones sent to the GenRM.
  // NotFound for a group not admitted (or already aborted: the sample is
  // discarded and counted); the queue's errors (AlreadyExists for a
  // duplicate id, RESOURCE_EXHAUSTED or a wait under backpressure).
  // Takes the body without copying the message (see TrajectoryQueue::Add).
  absl::Status AddTrajectory(v1::Trajectory&& trajectory);

  // The group's generation failed (stream broken, worker dead): its members
  // are dropped (reason "aborted"), their GenRM calls cancelled, the prompt
  // is generated again, and a failure is counted with `reason` (NOTE [no
  // progress]).
  // NotFound when the group is not open.
  absl::Status AbortGroup(absl::string_view group_id, absl::string_view reason);

  // ---- Trainer side.

  // The batch for the next step, or null while fewer than
  // groups_per_step usable groups are complete. Stale groups are dropped
  // and regenerated here (NOTE [staleness]). While a step is in flight the
  // same batch is returned again only after FailTrainStep; otherwise
  // nullopt. Shared: the scheduler keeps the batch until the step is done
  // (the trainer driver and a retry read the same one, uncopied).
  std::shared_ptr<const TrainBatch> TakeTrainBatch();

  // The step trained: its trajectories become trained, the policy version
  // becomes `new_policy_version` (must be greater: versions only move
  // forward). FailedPrecondition for a step that is not in flight.
  absl::Status CompleteTrainStep(int64_t step, int64_t new_policy_version,
                                 const v1::TrainMetrics& metrics);
  // The step failed: counted (NOTE [no progress]); the same batch is handed
  // out again by the next TakeTrainBatch.
  absl::Status FailTrainStep(int64_t step, absl::string_view error);

  // ---- Workers (SchedulerService).

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::WorkerInfo& info);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
  // Deregistration (a worker that stops cleanly).
  void RemoveWorker(absl::string_view worker_id);

  // Periodic work (every heartbeat interval): declares silent workers dead,
  // drops open groups that cannot be fresh enough any more, checks for a
  // GenRM-less stall, and finishes a stop when no trainer is registered
  // (with one, the TrainerDriver checkpoints first, then calls FinishStop).
  void Tick();

  // ---- The job.

  v1::JobStatus GetJobStatus() const;
  // RUNNING -> STOPPING (no new groups; the trainer driver finishes the
  // step in flight, checkpoints, then calls FinishStop). No-op once
  // stopping or finished. Returns the state after the call.
  v1::JobState StopJob(absl::string_view reason);
  // STOPPING -> SUCCEEDED.
  void FinishStop();
  // Any state -> FAILED with `error` (the first error is kept).
  void Fail(absl::string_view error);
  v1::JobState state() const;
  int64_t policy_version() const;
  // The oldest weights a new group may be sampled with (NOTE [staleness]):
  // max(0, policy_version - max_staleness).
  int64_t min_policy_version() const;
  int64_t steps_done() const;

  // What SaveCheckpoint stores (scheduler_state.proto).
  v1::SchedulerSnapshot Snapshot() const;

  // For tests and benchmarks.
  TrajectoryQueue& queue() { return *queue_; }
  GenrmDispatcher& dispatcher() { return *dispatcher_; }
  WorkerRegistry& workers() { return *registry_; }

 private:
  // Verdict outcomes (kOutcomeNames in the .cc): counted lock-free.
  enum Outcome { kFlawed, kSound, kUnparsable, kInvalid, kTimeout, kSkipped };
  static constexpr int kNumOutcomes = 6;

  struct GroupInfo {
    std::shared_ptr<const v1::Prompt> prompt;
    // verifier_->ForPrompt(prompt): the answer check, prepared per group.
    std::shared_ptr<const tasks::PromptVerifier> verifier;
    int64_t min_version = INT64_MAX;  // oldest member's policy_version
    bool has_members = false;
  };
  struct Metrics;  // scheduler_internal.h
  static absl::StatusOr<std::unique_ptr<Metrics>> NewMetrics(
      metrics::MetricsRegistry* registry);

  Scheduler(SchedulerOptions options,
            std::unique_ptr<tasks::PromptSource> prompts,
            std::unique_ptr<tasks::AnswerVerifier> verifier);
  absl::Status Init(GenrmClient* client, const v1::SchedulerSnapshot* resume);
  absl::Status RestoreLocked(const v1::SchedulerSnapshot& snapshot,
                             std::vector<std::string>* interrupted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void OnVerdict(const std::string& trajectory_id, v1::Verdict&& verdict);
  void OnWorkerChange(const v1::WorkerInfo& info, v1::WorkerState state);

  // Drops an open group (queue + dispatcher) and queues its prompt for
  // regeneration (NOTE [dropping a group] in scheduler_batches.cc).
  void DropAndRegenerate(const std::string& group_id, absl::string_view reason);
  // What every group drop does once its trajectories left the queue: frees
  // the admission slot, reports `dropped` to options_.outcomes and, when
  // `regenerate`, queues `prompt` again and counts it (counter and metric).
  void FinishGroupDropLocked(const v1::Prompt& prompt,
                             std::vector<DroppedTrajectory> dropped,
                             absl::string_view reason, bool regenerate)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `records` (members of the group of `prompt`) as options_.outcomes takes
  // them; empty without outcomes. With `rewards` (the group was scored)
  // their flawed and reward fields are set.
  std::vector<DroppedTrajectory> DroppedFromRecords(
      std::vector<v1::TrajectoryRecord> records,
      const std::shared_ptr<const v1::Prompt>& prompt, absl::string_view reason,
      const std::vector<double>* rewards = nullptr) const;
  // Scores complete groups into pending_groups_ until a batch is full.
  void FillPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsStaleLocked(int64_t version) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  int64_t AdmissionLimitLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  void NoteProgress();
  void CountOutcome(int outcome);
  void NoteFailureLocked(absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailLocked(absl::string_view error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What Tick reads of the GenRM side for CheckGenrmStallLocked.
  struct GenrmWaiting {
    int64_t waiting = 0;     // trajectories waiting for a server
    bool no_server = false;  // no GenRM server alive
    absl::Time oldest;       // when the oldest of them started waiting
  };
  void CheckGenrmStallLocked(const GenrmWaiting& genrm, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The one place state_ changes after Init (and fapo_job_state with it).
  void SetStateLocked(v1::JobState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountLocked(absl::string_view counter, int64_t delta = 1)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetCounterLocked(absl::string_view counter, int64_t value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerOptions options_;
  Clock* const clock_;
  const std::unique_ptr<tasks::AnswerVerifier> verifier_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<TrajectoryQueue> queue_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<GenrmDispatcher> dispatcher_;

  mutable absl::Mutex mu_;
  std::unique_ptr<tasks::PromptSource> prompts_ ABSL_GUARDED_BY(mu_);
  v1::JobState state_ ABSL_GUARDED_BY(mu_) = v1::JOB_STATE_RUNNING;
  std::string error_ ABSL_GUARDED_BY(mu_);
  int64_t steps_done_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t policy_version_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_group_ ABSL_GUARDED_BY(mu_) = 0;
  // Admitted groups not yet taken into a batch or dropped.
  absl::flat_hash_map<std::string, GroupInfo> open_groups_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::Prompt> regenerate_ ABSL_GUARDED_BY(mu_);
  // Groups admitted and not yet trained or dropped (NOTE [staleness]).
  int64_t outstanding_groups_ ABSL_GUARDED_BY(mu_) = 0;
  // Scored complete groups waiting for a batch to fill.
  struct ScoredGroup {
    std::vector<v1::ScoredTrajectory> members;
    int64_t min_version = 0;
    std::string group_id;
    v1::Prompt prompt;
  };
  std::deque<ScoredGroup> pending_groups_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const TrainBatch> in_flight_ ABSL_GUARDED_BY(mu_);
  bool in_flight_failed_ ABSL_GUARDED_BY(mu_) = false;
  v1::TrainMetrics last_train_metrics_ ABSL_GUARDED_BY(mu_);
  // Reset lock-free by progress; incremented under mu_.
  std::atomic<int> consecutive_failures_{0};
  std::array<std::atomic<int64_t>, kNumOutcomes> verdict_counts_{};
  std::deque<std::string> recent_failures_ ABSL_GUARDED_BY(mu_);
  absl::Time genrm_stall_noted_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<std::string, int64_t, std::less<>> counters_ ABSL_GUARDED_BY(mu_);
  algorithm::FlawedCounts run_counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_SCHEDULER_H_
