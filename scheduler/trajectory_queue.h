// scheduler/: the single controller of a FAPO job (docs/architecture.md).
//
//   clock.h             Clock seam (RealClock); fake_clock.h: FakeClock
//   trajectory_queue.h  every trajectory the scheduler holds, its state,
//                       its group, backpressure, snapshot/restore (this)
//   trajectory_outcome_sink.h, samples_writer.h
//                       each trained or dropped trajectory, to
//                       <job.output_dir>/samples.jsonl
//
// TrajectoryQueue: the trajectory state machine
//
//   generated ──StartScoring──► scoring ──RecordVerdict──► scored
//       │  ▲                       │                          │
//       │  └──────Requeue──────────┘          TakeCompleteGroups
//       └──RecordVerdict (wrong answer, GenRM skipped)──►     ▼
//                                       trained ◄─MarkTrained─ batched
//   any non-terminal state ──Drop(reason) / DropGroup──► dropped
//
// trained and dropped are terminal. Errors: an unknown id is NotFound, a
// second Add of an id is AlreadyExists, a transition the diagram does not
// allow is FailedPrecondition naming the id and both states; the other
// errors name the id (and the state it is in, where it has one).
//
// Memory: `capacity` bounds the live (non-terminal) trajectories. Trained
// records are released at once. A dropped record is kept only while its
// group is still open (so a snapshot restores the group exactly) and is
// released with the group; afterwards only counters remain. An open group
// whose missing members never arrive (their worker died) stays until the
// scheduler calls DropGroup: that is its job, not the queue's.
//
// Groups: the G samples of one prompt share a group_id and have distinct
// sample_index in [0, G). G is fixed by RegisterGroup or by the group's
// first Add. A group is complete when all G members have arrived and each
// is scored or dropped; complete groups wait in order of completion until
// TakeCompleteGroups moves their scored members to batched (the group then
// closes, releasing its dropped members). A complete group with no scored
// member closes at once and is never handed out. Group ids must not be
// reused within a job: after DropGroup or TakeCompleteGroups a later Add
// with the same group_id opens a new group.
//
// Thread-safety: every method is thread-safe (one absl::Mutex). Nothing
// calls out of the queue under the lock except metric updates (lock-free
// adds; the first drop for a new reason also looks its counter up once).
#ifndef FAPO_SCHEDULER_TRAJECTORY_QUEUE_H_
#define FAPO_SCHEDULER_TRAJECTORY_QUEUE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/scheduler_state.pb.h"
#include "services/clock/clock.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::scheduler {

// What Add does when the queue holds `capacity` live trajectories.
enum class Backpressure {
  // Fail at once with RESOURCE_EXHAUSTED.
  kReject,
  // Block until a live trajectory leaves (trained or dropped), the deadline
  // passes (DEADLINE_EXCEEDED) or the queue is closed (CANCELLED).
  kWait,
};

struct TrajectoryQueueOptions {
  // From the job spec, with no default here (NOTE [one default]:
  // SchedulerOptionsFromSpec fills them).
  //
  // scheduler.queue_capacity: live (non-terminal) trajectories held at
  // most; > 0.
  int64_t capacity = 0;
  // scheduler.backpressure.
  Backpressure backpressure = Backpressure::kReject;
  // kWait only: how long Add (without an explicit deadline) waits for room.
  // Default 30 s.
  absl::Duration max_wait = absl::Seconds(30);
  // true: Add refuses (NotFound) a trajectory whose group is not open, i.e.
  // was never registered with RegisterGroup, was dropped or was taken; the
  // scheduler uses this so a late sample of a dropped group cannot reopen
  // it. false: the first Add opens the group. Default false.
  bool require_registered_groups = false;
  // NOTE [batched hand-over]: true: TakeCompleteGroups moves each record
  // out to the caller and keeps only a skeleton (trajectory_id, group_id,
  // sample_index, policy_version, state, sequence), so a batch is not
  // copied; Snapshot then writes the skeletons and the caller, which holds
  // the bodies, fills them in. false: TakeCompleteGroups copies and the
  // queue's snapshot is complete on its own. Default false.
  bool hand_over_batched = false;
  // Not owned; null = RealClock(). Must outlive the queue.
  Clock* clock = nullptr;
  // Not owned; null = no metrics. Must outlive the queue. Exports
  // fapo_queue_trajectories{state} (live states), fapo_queue_capacity and
  // fapo_queue_dropped_total{reason}.
  metrics::MetricsRegistry* metrics = nullptr;
};

// Counts of trajectories, maintained incrementally (reading is O(1)).
struct TrajectoryCounts {
  int64_t generated = 0;
  int64_t scoring = 0;
  int64_t scored = 0;
  int64_t batched = 0;
  // Since the job started (survive snapshot/restore).
  int64_t trained_total = 0;
  int64_t dropped_total = 0;
  // generated + scoring + scored + batched: what `capacity` bounds.
  int64_t live() const { return generated + scoring + scored + batched; }
};

// One complete group handed out for batching: its scored members (now
// batched), ordered by sample_index, and how many members were dropped.
struct CompleteGroup {
  std::string group_id;
  int32_t group_size = 0;
  std::vector<v1::TrajectoryRecord> records;
  int32_t num_dropped = 0;
};

class TrajectoryQueue {
 public:
  // Snapshot format version this class writes and reads.
  static constexpr int32_t kSnapshotVersion = 1;
  // Drop reason used by DropGroup.
  static constexpr absl::string_view kGroupDroppedReason = "group_dropped";

  // InvalidArgument for bad options; metric registration errors as is.
  static absl::StatusOr<std::unique_ptr<TrajectoryQueue>> Create(
      TrajectoryQueueOptions options);

  // A queue holding what `snapshot` holds. Records that were scoring go
  // back to generated (their GenRM calls died with the old process),
  // counted in counters["queue.requeued_on_restore"]. A live count above
  // `options.capacity` is accepted (Add then backs off until it drains).
  // InvalidArgument: unknown version, duplicate ids or sequences,
  // inconsistent groups (missing or bad size, sample_index out of range or
  // repeated, more members than the size), unknown "queue." counters.
  static absl::StatusOr<std::unique_ptr<TrajectoryQueue>> Restore(
      const v1::SchedulerSnapshot& snapshot, TrajectoryQueueOptions options);

  TrajectoryQueue(const TrajectoryQueue&) = delete;
  TrajectoryQueue& operator=(const TrajectoryQueue&) = delete;
  ~TrajectoryQueue();

  // Declares a group of `group_size` samples before its first member
  // arrives. Registering again with the same size is a no-op;
  // InvalidArgument for another size or group_size <= 0.
  absl::Status RegisterGroup(absl::string_view group_id, int32_t group_size);

  // Adds a trajectory in state generated. `group_size` must match the
  // group's (InvalidArgument otherwise, also for an empty trajectory_id or
  // group_id, or sample_index outside [0, group_size)); AlreadyExists for a
  // known id or a taken sample_index. When full: see Backpressure; Add
  // waits at most options.max_wait, AddWithDeadline until `deadline`.
  // After Close: FailedPrecondition.
  absl::Status Add(v1::Trajectory trajectory, v1::Prompt prompt,
                   int32_t group_size);
  absl::Status AddWithDeadline(v1::Trajectory trajectory, v1::Prompt prompt,
                               int32_t group_size, absl::Time deadline);
  // A record without a prompt (the scheduler keeps one per group), the
  // body taken from `trajectory` with no copy or move of the message (the
  // hot path: each by-value hop of a message is a construct, a swap and a
  // destruction); `trajectory` is left empty unless an error comes back.
  absl::Status Add(v1::Trajectory&& trajectory, int32_t group_size);

  // Add (waiting at most options.max_wait) then StartScoring, under one
  // lock: the trajectory never shows as generated. No prompt, as the
  // two-argument Add.
  absl::Status AddForScoring(v1::Trajectory&& trajectory, int32_t group_size);

  // generated -> scoring; counts a GenRM attempt.
  absl::Status StartScoring(absl::string_view id);
  // The oldest (by arrival) up to `max_count` generated trajectories go to
  // scoring; returns their records. For the GenRM dispatcher.
  std::vector<v1::TrajectoryRecord> StartScoringOldest(int max_count);
  // scoring -> generated: the GenRM call failed for good on one server and
  // the trajectory waits for another dispatch.
  absl::Status Requeue(absl::string_view id);
  // scoring -> scored with `verdict`; generated -> scored only for a wrong
  // answer (verdict.answer_correct() false: the GenRM is skipped).
  // Takes the verdict by rvalue reference, as Add takes the body.
  absl::Status RecordVerdict(absl::string_view id, v1::Verdict&& verdict);
  // Stores the FAPO outcome; the trajectory must be scored or batched.
  absl::Status SetOutcome(absl::string_view id, bool flawed, double reward,
                          double advantage);
  // batched -> trained (the record is released).
  absl::Status MarkTrained(absl::string_view id);
  // The same for every id, under one lock; all or nothing (an unknown id or
  // one not batched is an error and nothing moves).
  absl::Status MarkTrainedAll(absl::Span<const absl::string_view> ids);
  // Any non-terminal state -> dropped with `reason` (non-empty).
  absl::Status Drop(absl::string_view id, absl::string_view reason);

  // Drops every non-terminal member of an open group with `reason`
  // (non-empty; default "group_dropped") and closes the group. Returns the
  // ids that were scoring, so the caller can cancel their GenRM calls.
  // With `dropped` set, appends a copy of each record this call dropped
  // (for samples.jsonl: the group's bodies are released here).
  // NotFound for a group that is not open (unknown, taken or already
  // dropped).
  absl::StatusOr<std::vector<std::string>> DropGroup(
      absl::string_view group_id,
      absl::string_view reason = kGroupDroppedReason,
      std::vector<v1::TrajectoryRecord>* dropped = nullptr);

  // Up to `max_groups` complete groups, in order of completion; their
  // scored members go to batched.
  std::vector<CompleteGroup> TakeCompleteGroups(int max_groups);

  // Wakes every Add waiting for room (CANCELLED); later Adds fail with
  // FailedPrecondition. Transitions still work, so the queue can drain.
  void Close();

  TrajectoryCounts Counts() const;
  // Complete groups waiting for TakeCompleteGroups.
  int64_t NumCompleteGroups() const;
  // Whether an open group is complete (waiting to be taken); NotFound when
  // the group is not open.
  absl::StatusOr<bool> IsGroupComplete(absl::string_view group_id) const;
  // Ids of the oldest (by arrival into that state) `max_count` records in
  // `state`; live states only (empty for trained/dropped).
  std::vector<std::string> OldestIds(v1::TrajectoryState state,
                                     int max_count) const;
  // NotFound when unknown or already released.
  absl::StatusOr<v1::TrajectoryRecord> Get(absl::string_view id) const;
  // Counter name -> value, as stored in snapshots ("queue.trained",
  // "queue.dropped.<reason>", ...).
  std::map<std::string, int64_t> Counters() const;

  // Version 1; every record held (live ones and the dropped members of open
  // groups) in arrival order; next_sequence; the queue's counters and the
  // sizes of open groups (NOTE [queue-snapshot] in the .cc). step and
  // policy_version are left 0: the scheduler owns them.
  v1::SchedulerSnapshot Snapshot() const;

 private:
  struct Group;
  // A held record in an intrusive list per state (O(1) unlink, FIFO order).
  struct Entry {
    v1::TrajectoryRecord record;
    const std::string* id = nullptr;  // the key in entries_
    Group* group = nullptr;           // null once the group closed (batched)
    Entry* prev = nullptr;
    Entry* next = nullptr;
    // NOTE [batched hand-over]: once the body went to the caller, `record`
    // keeps only state and sequence, and these the rest of the skeleton
    // (plain fields: no message or string allocation per trajectory).
    bool handed_over = false;
    bool marked = false;  // MarkTrainedAll's duplicate check
    int32_t kept_sample_index = 0;
    int64_t kept_policy_version = 0;
    std::string kept_group_id;
  };
  // The record as Get and Snapshot show it: the skeleton, for a handed-over
  // one.
  static v1::TrajectoryRecord RecordOf(const Entry& entry);
  struct StateList {
    Entry* head = nullptr;
    Entry* tail = nullptr;
  };
  struct Group {
    std::string group_id;
    int32_t size = 0;
    int32_t arrived = 0;
    int32_t scored = 0;
    int32_t dropped = 0;
    bool complete_queued = false;
    bool closing = false;         // DropGroup in progress: no completion
    std::vector<Entry*> members;  // by sample_index; null = not arrived
  };

  explicit TrajectoryQueue(TrajectoryQueueOptions options);
  absl::Status InitMetrics();

  // `deadline` nullopt: clock.Now() + max_wait, read only if Add waits.
  // By rvalue reference: each by-value hop of a message is a
  // construct-and-swap.
  // `prompt`: null for none.
  absl::Status AddImpl(v1::Trajectory&& trajectory, v1::Prompt* prompt,
                       int32_t group_size, std::optional<absl::Time> deadline,
                       bool start_scoring);
  // `found`: the trajectory's open group, or null when it has none yet
  // (only without require_registered_groups).
  absl::Status CheckAddLocked(const v1::Trajectory& trajectory,
                              int32_t group_size, Group** found)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts without checks (Restore): NewEntryLocked, the record moved in,
  // LinkLocked.
  Entry* InsertLocked(v1::TrajectoryRecord&& record, Group* group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A new, empty entry under `id` (which must be new).
  Entry* NewEntryLocked(const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Enters a filled-in entry into its group, and its state's list and
  // counts.
  void LinkLocked(Entry* entry, Group* group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Entry*> FindLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks `from -> to` against the diagram; the error names everything.
  static absl::Status CheckTransition(absl::string_view id,
                                      v1::TrajectoryState from,
                                      v1::TrajectoryState to);
  // Moves `entry` to `to` (legality checked by the caller), keeps counts,
  // lists, metrics and group completion up to date, releases terminal
  // records that nothing needs any more. `entry` may be freed.
  void MoveLocked(Entry* entry, v1::TrajectoryState to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked(Entry* entry, absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeCompleteLocked(Group* group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees the group and its dropped members; live members are detached.
  void CloseGroupLocked(Group* group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseEntryLocked(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountDropLocked(absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasRoomLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::map<std::string, int64_t> CountersLocked() const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const TrajectoryQueueOptions options_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::node_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::node_hash_map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
  // Group ids in order of completion (each with complete_queued set).
  std::deque<std::string> complete_groups_ ABSL_GUARDED_BY(mu_);
  // Indexed by v1::TrajectoryState value.
  std::array<StateList, 7> lists_ ABSL_GUARDED_BY(mu_);
  std::array<int64_t, 7> counts_ ABSL_GUARDED_BY(mu_) = {};
  int64_t live_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t trained_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t added_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t requeued_on_restore_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t, std::less<>> dropped_by_reason_
      ABSL_GUARDED_BY(mu_);

  // Metrics (null when options.metrics is null). Children are looked up
  // once; updates are lock-free atomics.
  std::array<metrics::Gauge*, 7> state_gauges_ = {};
  metrics::CounterFamily* dropped_family_ = nullptr;
  absl::flat_hash_map<std::string, metrics::Counter*> dropped_counters_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_TRAJECTORY_QUEUE_H_
