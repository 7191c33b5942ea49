#include "scheduler/trajectory_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {
namespace {

using v1::TrajectoryState;

constexpr absl::string_view kCounterPrefix = "queue.";
constexpr absl::string_view kAddedCounter = "queue.added";
constexpr absl::string_view kTrainedCounter = "queue.trained";
constexpr absl::string_view kRequeuedCounter = "queue.requeued_on_restore";
constexpr absl::string_view kDroppedPrefix = "queue.dropped.";

constexpr TrajectoryState kLiveStates[] = {
    v1::TRAJECTORY_STATE_GENERATED, v1::TRAJECTORY_STATE_SCORING,
    v1::TRAJECTORY_STATE_SCORED, v1::TRAJECTORY_STATE_BATCHED};

absl::string_view StateName(TrajectoryState state) {
  switch (state) {
    case v1::TRAJECTORY_STATE_GENERATED:
      return "generated";
    case v1::TRAJECTORY_STATE_SCORING:
      return "scoring";
    case v1::TRAJECTORY_STATE_SCORED:
      return "scored";
    case v1::TRAJECTORY_STATE_BATCHED:
      return "batched";
    case v1::TRAJECTORY_STATE_TRAINED:
      return "trained";
    case v1::TRAJECTORY_STATE_DROPPED:
      return "dropped";
    default:
      return "unspecified";
  }
}

bool IsLive(TrajectoryState state) {
  return state == v1::TRAJECTORY_STATE_GENERATED ||
         state == v1::TRAJECTORY_STATE_SCORING ||
         state == v1::TRAJECTORY_STATE_SCORED ||
         state == v1::TRAJECTORY_STATE_BATCHED;
}

}  // namespace

// NOTE [queue-snapshot]: the queue's counters are stored under "queue."
// ("queue.added", "queue.trained", "queue.dropped.<reason>",
// "queue.requeued_on_restore"); keys outside "queue." belong to the
// scheduler: Restore ignores them and Snapshot does not write them. Open
// groups' sizes go in open_group_sizes. The order in which complete groups
// completed is not stored; Restore queues them by their newest member's
// arrival, which is deterministic.

TrajectoryQueue::TrajectoryQueue(TrajectoryQueueOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock()) {}

TrajectoryQueue::~TrajectoryQueue() {
  // Gauges may be shared with a successor queue (Restore after a restart in
  // the same process): take this queue's share back out.
  absl::MutexLock lock(&mu_);
  for (TrajectoryState state : kLiveStates) {
    if (state_gauges_[state] != nullptr) {
      state_gauges_[state]->Decrement(static_cast<double>(counts_[state]));
    }
  }
}

absl::StatusOr<std::unique_ptr<TrajectoryQueue>> TrajectoryQueue::Create(
    TrajectoryQueueOptions options) {
  if (options.capacity <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler.queue_capacity must be > 0, got ", options.capacity));
  }
  if (options.max_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("trajectory queue max_wait must be >= 0");
  }
  std::unique_ptr<TrajectoryQueue> queue(
      new TrajectoryQueue(std::move(options)));
  RETURN_IF_ERROR(queue->InitMetrics());
  return queue;
}

absl::Status TrajectoryQueue::InitMetrics() {
  metrics::MetricsRegistry* registry = options_.metrics;
  if (registry == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(
      metrics::GaugeFamily * trajectories,
      registry->AddGauge("fapo_queue_trajectories",
                         "Trajectories held by the scheduler's queue, by "
                         "live state.",
                         {"state"}));
  for (TrajectoryState state : kLiveStates) {
    state_gauges_[state] =
        &trajectories->WithLabels({{"state", std::string(StateName(state))}});
  }
  ASSIGN_OR_RETURN(metrics::GaugeFamily * capacity,
                   registry->AddGauge("fapo_queue_capacity",
                                      "Live trajectories the scheduler's "
                                      "queue holds at most.",
                                      {}));
  capacity->WithLabels({}).Set(static_cast<double>(options_.capacity));
  ASSIGN_OR_RETURN(
      dropped_family_,
      registry->AddCounter("fapo_queue_dropped_total",
                           "Trajectories dropped, by reason.", {"reason"}));
  return absl::OkStatus();
}

// --- internals --------------------------------------------------------------

bool TrajectoryQueue::HasRoomLocked() const {
  return live_ < options_.capacity;
}

absl::Status TrajectoryQueue::CheckTransition(absl::string_view id,
                                              TrajectoryState from,
                                              TrajectoryState to) {
  bool legal = false;
  switch (from) {
    case v1::TRAJECTORY_STATE_GENERATED:
      legal = to == v1::TRAJECTORY_STATE_SCORING ||
              to == v1::TRAJECTORY_STATE_SCORED ||
              to == v1::TRAJECTORY_STATE_DROPPED;
      break;
    case v1::TRAJECTORY_STATE_SCORING:
      legal = to == v1::TRAJECTORY_STATE_SCORED ||
              to == v1::TRAJECTORY_STATE_GENERATED ||
              to == v1::TRAJECTORY_STATE_DROPPED;
      break;
    case v1::TRAJECTORY_STATE_SCORED:
      legal = to == v1::TRAJECTORY_STATE_BATCHED ||
              to == v1::TRAJECTORY_STATE_DROPPED;
      break;
    case v1::TRAJECTORY_STATE_BATCHED:
      legal = to == v1::TRAJECTORY_STATE_TRAINED ||
              to == v1::TRAJECTORY_STATE_DROPPED;
      break;
    default:
      break;
  }
  if (legal) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("trajectory '", id, "' cannot go from ", StateName(from),
                   " to ", StateName(to)));
}

absl::StatusOr<TrajectoryQueue::Entry*> TrajectoryQueue::FindLocked(
    absl::string_view id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return absl::NotFoundError(
        absl::StrCat("trajectory '", id,
                     "' is not in the queue (never added, or trained or "
                     "dropped and released)"));
  }
  return &it->second;
}

TrajectoryQueue::Entry* TrajectoryQueue::InsertLocked(
    v1::TrajectoryRecord&& record, Group* group) {
  Entry* entry = NewEntryLocked(record.trajectory().trajectory_id());
  entry->record = std::move(record);
  LinkLocked(entry, group);
  return entry;
}

TrajectoryQueue::Entry* TrajectoryQueue::NewEntryLocked(
    const std::string& id) {
  auto [it, inserted] = entries_.try_emplace(id);
  Entry& entry = it->second;
  entry.id = &it->first;
  return &entry;
}

void TrajectoryQueue::LinkLocked(Entry* entry_ptr, Group* group) {
  Entry& entry = *entry_ptr;
  entry.group = group;
  TrajectoryState state = entry.record.state();
  if (group != nullptr) {
    group->members[entry.record.trajectory().sample_index()] = &entry;
    ++group->arrived;
    if (state == v1::TRAJECTORY_STATE_SCORED) ++group->scored;
    if (state == v1::TRAJECTORY_STATE_DROPPED) ++group->dropped;
  }
  if (IsLive(state)) {
    StateList& list = lists_[state];
    entry.prev = list.tail;
    entry.next = nullptr;
    (list.tail != nullptr ? list.tail->next : list.head) = &entry;
    list.tail = &entry;
    ++counts_[state];
    ++live_;
    if (state_gauges_[state] != nullptr) state_gauges_[state]->Increment();
  }
}

// Only lists, counts and gauges: group bookkeeping is the caller's, since
// it differs per transition.
void TrajectoryQueue::MoveLocked(Entry* entry, TrajectoryState to) {
  TrajectoryState from = entry->record.state();
  if (IsLive(from)) {
    StateList& list = lists_[from];
    (entry->prev != nullptr ? entry->prev->next : list.head) = entry->next;
    (entry->next != nullptr ? entry->next->prev : list.tail) = entry->prev;
    entry->prev = entry->next = nullptr;
    --counts_[from];
    --live_;
    if (state_gauges_[from] != nullptr) state_gauges_[from]->Decrement();
  }
  entry->record.set_state(to);
  if (IsLive(to)) {
    StateList& list = lists_[to];
    entry->prev = list.tail;
    (list.tail != nullptr ? list.tail->next : list.head) = entry;
    list.tail = entry;
    ++counts_[to];
    ++live_;
    if (state_gauges_[to] != nullptr) state_gauges_[to]->Increment();
  }
}

void TrajectoryQueue::EraseEntryLocked(Entry* entry) {
  entries_.erase(entries_.find(*entry->id));
}

v1::TrajectoryRecord TrajectoryQueue::RecordOf(const Entry& entry) {
  if (!entry.handed_over) return entry.record;
  v1::TrajectoryRecord skeleton = entry.record;  // state and sequence
  v1::Trajectory* kept = skeleton.mutable_trajectory();
  kept->set_trajectory_id(*entry.id);
  kept->set_group_id(entry.kept_group_id);
  kept->set_sample_index(entry.kept_sample_index);
  kept->set_policy_version(entry.kept_policy_version);
  return skeleton;
}

void TrajectoryQueue::CountDropLocked(absl::string_view reason) {
  ++dropped_total_;
  auto it = dropped_by_reason_.find(reason);
  if (it == dropped_by_reason_.end()) {
    it = dropped_by_reason_.emplace(std::string(reason), 0).first;
  }
  ++it->second;
  if (dropped_family_ != nullptr) {
    // One family lookup per reason, then the kept child (a lock-free add).
    metrics::Counter*& counter = dropped_counters_[reason];
    if (counter == nullptr) {
      counter = &dropped_family_->WithLabels({{"reason", std::string(reason)}});
    }
    counter->Increment();
  }
}

void TrajectoryQueue::DropLocked(Entry* entry, absl::string_view reason) {
  TrajectoryState from = entry->record.state();
  MoveLocked(entry, v1::TRAJECTORY_STATE_DROPPED);
  entry->record.set_drop_reason(std::string(reason));
  CountDropLocked(reason);
  Group* group = entry->group;
  if (group == nullptr) {
    EraseEntryLocked(entry);
    return;
  }
  if (from == v1::TRAJECTORY_STATE_SCORED) --group->scored;
  ++group->dropped;
  MaybeCompleteLocked(group);
}

void TrajectoryQueue::MaybeCompleteLocked(Group* group) {
  if (group->closing) return;
  if (group->arrived < group->size ||
      group->scored + group->dropped < group->size) {
    return;
  }
  if (group->scored == 0) {
    // Nothing left to train on: close now rather than hand out an empty
    // group (and so a snapshot never holds a complete, all-dropped group).
    CloseGroupLocked(group);
    return;
  }
  if (!group->complete_queued) {
    group->complete_queued = true;
    complete_groups_.push_back(group->group_id);
  }
}

void TrajectoryQueue::CloseGroupLocked(Group* group) {
  for (Entry* member : group->members) {
    if (member == nullptr) continue;
    if (member->record.state() == v1::TRAJECTORY_STATE_DROPPED) {
      EraseEntryLocked(member);
    } else {
      member->group = nullptr;
    }
  }
  if (group->complete_queued) {
    complete_groups_.erase(std::find(complete_groups_.begin(),
                                     complete_groups_.end(), group->group_id));
  }
  std::string group_id = group->group_id;
  groups_.erase(group_id);
}

absl::Status TrajectoryQueue::CheckAddLocked(const v1::Trajectory& trajectory,
                                             int32_t group_size,
                                             Group** found) {
  *found = nullptr;
  const std::string& id = trajectory.trajectory_id();
  if (id.empty()) {
    return absl::InvalidArgumentError("trajectory has no trajectory_id");
  }
  if (trajectory.group_id().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trajectory '", id, "' has no group_id"));
  }
  if (group_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trajectory '", id, "': group_size must be > 0, got ", group_size));
  }
  auto existing = entries_.find(id);
  if (existing != entries_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("trajectory '", id, "' is already in the queue (state ",
                     StateName(existing->second.record.state()), ")"));
  }
  int32_t index = trajectory.sample_index();
  if (index < 0 || index >= group_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trajectory '", id, "': sample_index ", index, " outside [0, ",
        group_size, ") of group '", trajectory.group_id(), "'"));
  }
  auto group = groups_.find(trajectory.group_id());
  if (group == groups_.end()) {
    if (!options_.require_registered_groups) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat(
        "trajectory '", id, "': group '", trajectory.group_id(),
        "' is not open (never registered, dropped or already taken)"));
  }
  if (group->second.size != group_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("trajectory '", id, "': group '", trajectory.group_id(),
                     "' has size ", group->second.size, ", not ", group_size));
  }
  const Entry* taken = group->second.members[index];
  if (taken != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("trajectory '", id, "': sample ", index, " of group '",
                     trajectory.group_id(), "' is already trajectory '",
                     *taken->id, "'"));
  }
  *found = &group->second;
  return absl::OkStatus();
}

// --- public -----------------------------------------------------------------

absl::Status TrajectoryQueue::RegisterGroup(absl::string_view group_id,
                                            int32_t group_size) {
  if (group_id.empty()) {
    return absl::InvalidArgumentError("RegisterGroup: empty group_id");
  }
  if (group_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group '", group_id, "': size must be > 0, got ", group_size));
  }
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group_id);
  if (it != groups_.end()) {
    if (it->second.size == group_size) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("group '", group_id, "' has size ", it->second.size,
                     ", not ", group_size));
  }
  Group& group = groups_[group_id];
  group.group_id = std::string(group_id);
  group.size = group_size;
  group.members.assign(group_size, nullptr);
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::Add(v1::Trajectory trajectory, v1::Prompt prompt,
                                  int32_t group_size) {
  return AddImpl(std::move(trajectory), &prompt, group_size, std::nullopt,
                 /*start_scoring=*/false);
}

absl::Status TrajectoryQueue::AddWithDeadline(v1::Trajectory trajectory,
                                              v1::Prompt prompt,
                                              int32_t group_size,
                                              absl::Time deadline) {
  return AddImpl(std::move(trajectory), &prompt, group_size, deadline,
                 /*start_scoring=*/false);
}

absl::Status TrajectoryQueue::Add(v1::Trajectory&& trajectory,
                                  int32_t group_size) {
  return AddImpl(std::move(trajectory), nullptr, group_size, std::nullopt,
                 /*start_scoring=*/false);
}

absl::Status TrajectoryQueue::AddForScoring(v1::Trajectory&& trajectory,
                                            int32_t group_size) {
  return AddImpl(std::move(trajectory), nullptr, group_size, std::nullopt,
                 /*start_scoring=*/true);
}

absl::Status TrajectoryQueue::AddImpl(v1::Trajectory&& trajectory,
                                      v1::Prompt* prompt, int32_t group_size,
                                      std::optional<absl::Time> deadline,
                                      bool start_scoring) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("trajectory queue is closed; cannot add '",
                     trajectory.trajectory_id(), "'"));
  }
  Group* group = nullptr;
  RETURN_IF_ERROR(CheckAddLocked(trajectory, group_size, &group));
  if (!HasRoomLocked()) {
    if (options_.backpressure == Backpressure::kReject) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "trajectory queue full: ", live_, " live trajectories, capacity ",
          options_.capacity,
          "; raise scheduler.queue_capacity or let training catch up"));
    }
    struct RoomOrClosed {
      static bool Eval(TrajectoryQueue* queue)
          ABSL_NO_THREAD_SAFETY_ANALYSIS {  // evaluated under mu_ by absl
        return queue->closed_ || queue->HasRoomLocked();
      }
    };
    // The clock is read only here: a queue with room (the common case)
    // never needs the deadline.
    clock_->AwaitWithDeadline(
        &mu_, absl::Condition(&RoomOrClosed::Eval, this),
        deadline.has_value() ? *deadline : clock_->Now() + options_.max_wait);
    if (closed_) {
      return absl::CancelledError(
          absl::StrCat("trajectory queue closed while '",
                       trajectory.trajectory_id(), "' waited for room"));
    }
    if (!HasRoomLocked()) {
      return absl::DeadlineExceededError(
          absl::StrCat("trajectory queue still full at the deadline: capacity ",
                       options_.capacity, "; raise scheduler.queue_capacity"));
    }
    // The queue changed while we waited.
    RETURN_IF_ERROR(CheckAddLocked(trajectory, group_size, &group));
  }
  if (group == nullptr) {  // not registered, and the options allow that
    group = &groups_[trajectory.group_id()];
    group->group_id = trajectory.group_id();
    group->size = group_size;
    group->members.assign(group_size, nullptr);
  }
  // Built in place: the body is swapped in, no record moves.
  Entry* entry = NewEntryLocked(trajectory.trajectory_id());
  v1::TrajectoryRecord& record = entry->record;
  record.mutable_trajectory()->Swap(&trajectory);
  // The scheduler passes no prompt (it keeps one per group): an empty one
  // is not worth a message allocation per record.
  if (prompt != nullptr && prompt->ByteSizeLong() != 0) {
    record.mutable_prompt()->Swap(prompt);
  }
  record.set_sequence(next_sequence_++);
  if (start_scoring) {
    record.set_state(v1::TRAJECTORY_STATE_SCORING);
    record.set_genrm_attempts(1);
  } else {
    record.set_state(v1::TRAJECTORY_STATE_GENERATED);
  }
  ++added_total_;
  LinkLocked(entry, group);
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::StartScoring(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(id));
  RETURN_IF_ERROR(
      CheckTransition(id, entry->record.state(), v1::TRAJECTORY_STATE_SCORING));
  entry->record.set_genrm_attempts(entry->record.genrm_attempts() + 1);
  MoveLocked(entry, v1::TRAJECTORY_STATE_SCORING);
  return absl::OkStatus();
}

std::vector<v1::TrajectoryRecord> TrajectoryQueue::StartScoringOldest(
    int max_count) {
  std::vector<v1::TrajectoryRecord> started;
  absl::MutexLock lock(&mu_);
  while (static_cast<int>(started.size()) < max_count &&
         lists_[v1::TRAJECTORY_STATE_GENERATED].head != nullptr) {
    Entry* entry = lists_[v1::TRAJECTORY_STATE_GENERATED].head;
    entry->record.set_genrm_attempts(entry->record.genrm_attempts() + 1);
    MoveLocked(entry, v1::TRAJECTORY_STATE_SCORING);
    started.push_back(entry->record);
  }
  return started;
}

absl::Status TrajectoryQueue::Requeue(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(id));
  if (entry->record.state() != v1::TRAJECTORY_STATE_SCORING) {
    // Only scoring -> generated is a requeue (generated -> generated is not
    // a transition at all).
    return absl::FailedPreconditionError(absl::StrCat(
        "trajectory '", id, "' cannot go from ",
        StateName(entry->record.state()), " to generated (only scoring can)"));
  }
  MoveLocked(entry, v1::TRAJECTORY_STATE_GENERATED);
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::RecordVerdict(absl::string_view id,
                                            v1::Verdict&& verdict) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(id));
  TrajectoryState from = entry->record.state();
  RETURN_IF_ERROR(CheckTransition(id, from, v1::TRAJECTORY_STATE_SCORED));
  if (from == v1::TRAJECTORY_STATE_GENERATED && verdict.answer_correct()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trajectory '", id,
        "' cannot go from generated to scored with a correct answer: only "
        "wrong answers skip the GenRM (StartScoring first)"));
  }
  if (!verdict.trajectory_id().empty() && verdict.trajectory_id() != id) {
    return absl::InvalidArgumentError(
        absl::StrCat("verdict for '", verdict.trajectory_id(),
                     "' recorded on trajectory '", id, "'"));
  }
  *entry->record.mutable_verdict() = std::move(verdict);
  MoveLocked(entry, v1::TRAJECTORY_STATE_SCORED);
  if (entry->group != nullptr) {
    ++entry->group->scored;
    MaybeCompleteLocked(entry->group);
  }
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::SetOutcome(absl::string_view id, bool flawed,
                                         double reward, double advantage) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(id));
  TrajectoryState state = entry->record.state();
  if (state != v1::TRAJECTORY_STATE_SCORED &&
      state != v1::TRAJECTORY_STATE_BATCHED) {
    return absl::FailedPreconditionError(
        absl::StrCat("trajectory '", id, "' is ", StateName(state),
                     "; an outcome needs scored or batched"));
  }
  entry->record.set_flawed(flawed);
  entry->record.set_reward(reward);
  entry->record.set_advantage(advantage);
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::MarkTrained(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(id));
  RETURN_IF_ERROR(
      CheckTransition(id, entry->record.state(), v1::TRAJECTORY_STATE_TRAINED));
  MoveLocked(entry, v1::TRAJECTORY_STATE_TRAINED);
  ++trained_total_;
  EraseEntryLocked(entry);  // batched entries belong to no group
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::MarkTrainedAll(
    absl::Span<const absl::string_view> ids) {
  absl::MutexLock lock(&mu_);
  // One lookup per id: the checks keep the entries they found (marked, to
  // catch an id listed twice; the marks go before any return).
  // Iterators, so the erase needs no second lookup (erasing one element
  // leaves the others' iterators valid).
  std::vector<decltype(entries_)::iterator> found;
  found.reserve(ids.size());
  absl::Status checked = absl::OkStatus();
  for (absl::string_view id : ids) {
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      checked = FindLocked(id).status();  // the NotFound error
      break;
    }
    Entry& entry = it->second;
    checked =
        CheckTransition(id, entry.record.state(), v1::TRAJECTORY_STATE_TRAINED);
    if (!checked.ok()) break;
    if (entry.marked) {
      checked = absl::InvalidArgumentError(
          absl::StrCat("MarkTrainedAll: '", id, "' is listed twice"));
      break;
    }
    entry.marked = true;
    found.push_back(it);
  }
  for (auto it : found) it->second.marked = false;
  RETURN_IF_ERROR(checked);
  for (auto it : found) {
    MoveLocked(&it->second, v1::TRAJECTORY_STATE_TRAINED);
    ++trained_total_;
    entries_.erase(it);  // batched entries belong to no group
  }
  return absl::OkStatus();
}

absl::Status TrajectoryQueue::Drop(absl::string_view id,
                                   absl::string_view reason) {
  if (reason.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Drop('", id, "'): the reason must not be empty"));
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Entry * entry, FindLocked(id));
  RETURN_IF_ERROR(
      CheckTransition(id, entry->record.state(), v1::TRAJECTORY_STATE_DROPPED));
  DropLocked(entry, reason);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> TrajectoryQueue::DropGroup(
    absl::string_view group_id, absl::string_view reason,
    std::vector<v1::TrajectoryRecord>* dropped) {
  if (reason.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DropGroup '", group_id, "': empty reason"));
  }
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "group '", group_id,
        "' is not open (never registered, already taken or dropped)"));
  }
  Group* group = &it->second;
  group->closing = true;  // no completion while we drop its members
  std::vector<std::string> in_flight;
  for (Entry* member : group->members) {
    if (member == nullptr) continue;
    TrajectoryState state = member->record.state();
    if (state == v1::TRAJECTORY_STATE_DROPPED) continue;
    if (state == v1::TRAJECTORY_STATE_SCORING) {
      in_flight.push_back(member->record.trajectory().trajectory_id());
    }
    DropLocked(member, reason);
    if (dropped != nullptr) dropped->push_back(member->record);
  }
  CloseGroupLocked(group);
  return in_flight;
}

std::vector<CompleteGroup> TrajectoryQueue::TakeCompleteGroups(int max_groups) {
  std::vector<CompleteGroup> taken;
  absl::MutexLock lock(&mu_);
  while (static_cast<int>(taken.size()) < max_groups &&
         !complete_groups_.empty()) {
    Group* group = &groups_.find(complete_groups_.front())->second;
    complete_groups_.pop_front();
    group->complete_queued = false;
    CompleteGroup& out = taken.emplace_back();
    out.group_id = group->group_id;
    out.group_size = group->size;
    out.records.reserve(group->scored);
    for (Entry* member : group->members) {
      if (member->record.state() == v1::TRAJECTORY_STATE_DROPPED) {
        ++out.num_dropped;
        continue;
      }
      MoveLocked(member, v1::TRAJECTORY_STATE_BATCHED);
      if (!options_.hand_over_batched) {
        out.records.push_back(member->record);
        continue;
      }
      // NOTE [batched hand-over]: the caller keeps the body; the queue
      // keeps what identifies the record and its place in the order, in
      // plain fields (RecordOf makes the skeleton message when asked).
      const v1::Trajectory& body = member->record.trajectory();
      member->handed_over = true;
      member->kept_sample_index = body.sample_index();
      member->kept_policy_version = body.policy_version();
      member->kept_group_id = body.group_id();
      const int64_t sequence = member->record.sequence();
      out.records.push_back(std::move(member->record));
      member->record.Clear();
      member->record.set_state(v1::TRAJECTORY_STATE_BATCHED);
      member->record.set_sequence(sequence);
    }
    CloseGroupLocked(group);
  }
  return taken;
}

void TrajectoryQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;  // waiters' condition re-evaluates on unlock
}

absl::StatusOr<bool> TrajectoryQueue::IsGroupComplete(
    absl::string_view group_id) const {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "group '", group_id,
        "' is not open (never registered, already taken or dropped)"));
  }
  return it->second.complete_queued;
}

TrajectoryCounts TrajectoryQueue::Counts() const {
  absl::MutexLock lock(&mu_);
  TrajectoryCounts counts;
  counts.generated = counts_[v1::TRAJECTORY_STATE_GENERATED];
  counts.scoring = counts_[v1::TRAJECTORY_STATE_SCORING];
  counts.scored = counts_[v1::TRAJECTORY_STATE_SCORED];
  counts.batched = counts_[v1::TRAJECTORY_STATE_BATCHED];
  counts.trained_total = trained_total_;
  counts.dropped_total = dropped_total_;
  return counts;
}

int64_t TrajectoryQueue::NumCompleteGroups() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(complete_groups_.size());
}

std::vector<std::string> TrajectoryQueue::OldestIds(TrajectoryState state,
                                                    int max_count) const {
  std::vector<std::string> ids;
  if (!IsLive(state)) return ids;
  absl::MutexLock lock(&mu_);
  for (const Entry* entry = lists_[state].head;
       entry != nullptr && static_cast<int>(ids.size()) < max_count;
       entry = entry->next) {
    ids.push_back(*entry->id);
  }
  return ids;
}

absl::StatusOr<v1::TrajectoryRecord> TrajectoryQueue::Get(
    absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return absl::NotFoundError(
        absl::StrCat("trajectory '", id,
                     "' is not in the queue (never added, or trained or "
                     "dropped and released)"));
  }
  return RecordOf(it->second);
}

std::map<std::string, int64_t> TrajectoryQueue::Counters() const {
  absl::MutexLock lock(&mu_);
  return CountersLocked();
}

std::map<std::string, int64_t> TrajectoryQueue::CountersLocked() const {
  std::map<std::string, int64_t> counters;
  counters[std::string(kAddedCounter)] = added_total_;
  counters[std::string(kTrainedCounter)] = trained_total_;
  counters[std::string(kRequeuedCounter)] = requeued_on_restore_;
  for (const auto& [reason, count] : dropped_by_reason_) {
    counters[absl::StrCat(kDroppedPrefix, reason)] = count;
  }
  return counters;
}

v1::SchedulerSnapshot TrajectoryQueue::Snapshot() const {
  v1::SchedulerSnapshot snapshot;
  snapshot.set_version(kSnapshotVersion);
  absl::MutexLock lock(&mu_);  // one lock: records and counters agree
  std::map<std::string, int64_t> counters = CountersLocked();
  std::vector<const Entry*> held;
  held.reserve(entries_.size());
  for (const auto& [id, entry] : entries_) held.push_back(&entry);
  std::sort(held.begin(), held.end(), [](const Entry* a, const Entry* b) {
    return a->record.sequence() < b->record.sequence();
  });
  for (const Entry* entry : held) *snapshot.add_records() = RecordOf(*entry);
  snapshot.set_next_sequence(next_sequence_);
  for (const auto& [group_id, group] : groups_) {
    (*snapshot.mutable_open_group_sizes())[group_id] = group.size;
  }
  snapshot.mutable_counters()->insert(counters.begin(), counters.end());
  return snapshot;
}

absl::StatusOr<std::unique_ptr<TrajectoryQueue>> TrajectoryQueue::Restore(
    const v1::SchedulerSnapshot& snapshot, TrajectoryQueueOptions options) {
  if (snapshot.version() != kSnapshotVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler snapshot version ", snapshot.version(),
                     " is not one this build reads (", kSnapshotVersion, ")"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<TrajectoryQueue> queue,
                   Create(std::move(options)));
  TrajectoryQueue& q = *queue;
  absl::MutexLock lock(&q.mu_);

  // Open groups, then counters (NOTE [queue-snapshot]).
  for (const auto& [group_id, size] : snapshot.open_group_sizes()) {
    if (group_id.empty() || size <= 0 || size > (1 << 20)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot open group '", group_id, "': bad size ", size));
    }
    Group& group = q.groups_[group_id];
    group.group_id = group_id;
    group.size = size;
    group.members.assign(group.size, nullptr);
  }
  for (const auto& [key, value] : snapshot.counters()) {
    if (!absl::StartsWith(key, kCounterPrefix)) continue;  // the scheduler's
    if (value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot counter '", key, "' is negative: ", value));
    } else if (key == kAddedCounter) {
      q.added_total_ = value;
    } else if (key == kTrainedCounter) {
      q.trained_total_ = value;
    } else if (key == kRequeuedCounter) {
      q.requeued_on_restore_ = value;
    } else if (absl::StartsWith(key, kDroppedPrefix) &&
               key.size() > kDroppedPrefix.size()) {
      q.dropped_by_reason_[key.substr(kDroppedPrefix.size())] = value;
      q.dropped_total_ += value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot counter '", key, "' is unknown"));
    }
  }

  std::vector<const v1::TrajectoryRecord*> records;
  records.reserve(snapshot.records_size());
  for (const v1::TrajectoryRecord& record : snapshot.records()) {
    records.push_back(&record);
  }
  std::stable_sort(
      records.begin(), records.end(),
      [](const v1::TrajectoryRecord* a, const v1::TrajectoryRecord* b) {
        return a->sequence() < b->sequence();
      });
  int64_t previous_sequence = -1;
  for (const v1::TrajectoryRecord* source : records) {
    const v1::Trajectory& trajectory = source->trajectory();
    const std::string& id = trajectory.trajectory_id();
    auto invalid = [&id](auto&&... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot record '", id, "': ", parts...));
    };
    if (id.empty()) return invalid("no trajectory_id");
    if (source->sequence() <= previous_sequence) {
      return invalid("sequence ", source->sequence(), " repeats");
    }
    previous_sequence = source->sequence();
    if (source->sequence() >= snapshot.next_sequence()) {
      return invalid("sequence ", source->sequence(), " >= next_sequence ",
                     snapshot.next_sequence());
    }
    if (q.entries_.contains(id)) return invalid("duplicate id");
    TrajectoryState state = source->state();
    if (!IsLive(state) && state != v1::TRAJECTORY_STATE_DROPPED) {
      return invalid("state ", StateName(state), " is never snapshotted");
    }
    Group* group = nullptr;
    auto group_it = q.groups_.find(trajectory.group_id());
    if (state == v1::TRAJECTORY_STATE_BATCHED) {
      if (group_it != q.groups_.end()) {
        return invalid("batched, but its group '", trajectory.group_id(),
                       "' is still open");
      }
    } else {
      if (group_it == q.groups_.end()) {
        return invalid("group '", trajectory.group_id(),
                       "' has no size in the snapshot");
      }
      group = &group_it->second;
      int32_t index = trajectory.sample_index();
      if (index < 0 || index >= group->size) {
        return invalid("sample_index ", index, " outside [0, ", group->size,
                       ")");
      }
      if (group->members[index] != nullptr) {
        return invalid("sample ", index, " of group '", trajectory.group_id(),
                       "' appears twice");
      }
    }
    v1::TrajectoryRecord record = *source;
    if (state == v1::TRAJECTORY_STATE_SCORING) {
      // Their GenRM calls died with the old process: dispatch again.
      record.set_state(v1::TRAJECTORY_STATE_GENERATED);
      ++q.requeued_on_restore_;
    }
    q.InsertLocked(std::move(record), group);
  }
  q.next_sequence_ = snapshot.next_sequence();

  // Re-queue complete groups by their newest member's arrival.
  std::vector<std::pair<int64_t, Group*>> groups;
  for (auto& [group_id, group] : q.groups_) {
    int64_t newest = -1;
    for (const Entry* member : group.members) {
      if (member != nullptr) {
        newest = std::max(newest, member->record.sequence());
      }
    }
    groups.emplace_back(newest, &group);
  }
  std::sort(groups.begin(), groups.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [newest, group] : groups) q.MaybeCompleteLocked(group);
  return queue;
}

}  // namespace fapo::scheduler
