// Property tests: random operation sequences (seeded, reproducible) against
// brute-force recounts, and snapshot -> restore -> snapshot identity.
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler/trajectory_queue.h"
#include "services/status/status_matchers.h"

namespace fapo::scheduler {
namespace {

// The queue's spec-fed fields have no defaults (NOTE [one default]); these
// tests choose theirs: room enough, and a full queue refuses at once.
TrajectoryQueueOptions TestQueueOptions() {
  TrajectoryQueueOptions options;
  options.capacity = 65536;
  options.backpressure = Backpressure::kReject;
  return options;
}

constexpr int kSeeds = 200;
constexpr int kOperationsPerSeed = 400;
constexpr int kCapacity = 24;

class RandomDriver {
 public:
  explicit RandomDriver(uint32_t seed) : random_(seed) {
    TrajectoryQueueOptions options = TestQueueOptions();
    options.capacity = kCapacity;
    auto queue = TrajectoryQueue::Create(options);
    EXPECT_TRUE(queue.ok()) << queue.status();
    queue_ = std::move(*queue);
  }

  void Step() {
    switch (Uniform(0, 11)) {
      case 0:
      case 1:
      case 2:
        AddOne();
        break;
      case 3:
        (void)queue_->StartScoring(AnyId());
        break;
      case 4:
        queue_->StartScoringOldest(Uniform(0, 3));
        break;
      case 5: {
        v1::Verdict verdict;
        verdict.set_answer_correct(Uniform(0, 1) == 1);
        verdict.set_first_error_step(Uniform(-1, 3));
        (void)queue_->RecordVerdict(AnyId(), v1::Verdict(verdict));
        break;
      }
      case 6:
        (void)queue_->Requeue(AnyId());
        break;
      case 7:
        (void)queue_->Drop(AnyId(), Uniform(0, 1) ? "stale" : "no_signal");
        break;
      case 8:
        if (Uniform(0, 3) == 0) (void)queue_->DropGroup(AnyGroup());
        break;
      case 9:
        queue_->TakeCompleteGroups(Uniform(0, 2));
        break;
      case 10:
        (void)queue_->MarkTrained(AnyId());
        break;
      case 11:
        (void)queue_->SetOutcome(AnyId(), Uniform(0, 1) == 1, Uniform(-1, 1),
                                 0.5 * Uniform(-2, 2));
        break;
    }
  }

  TrajectoryQueue& queue() { return *queue_; }
  void Replace(std::unique_ptr<TrajectoryQueue> queue) {
    queue_ = std::move(queue);
  }

 private:
  int Uniform(int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random_);
  }

  void AddOne() {
    // Mostly fill the newest groups; sometimes a duplicate or a bad index.
    if (groups_.empty() || Uniform(0, 2) == 0) {
      std::string group = absl::StrCat("g", next_group_++);
      groups_.push_back({group, Uniform(1, 4), 0});
      if (Uniform(0, 3) == 0) {
        (void)queue_->RegisterGroup(group, groups_.back().size);
      }
    }
    GroupPlan& plan =
        groups_[Uniform(std::max(0, static_cast<int>(groups_.size()) - 3),
                        static_cast<int>(groups_.size()) - 1)];
    int index = Uniform(0, 9) == 0 ? Uniform(0, plan.size) : plan.next_index;
    std::string id = Uniform(0, 19) == 0 && !ids_.empty()
                         ? AnyId()
                         : absl::StrCat(plan.group_id, "-", index);
    v1::Trajectory trajectory;
    trajectory.set_trajectory_id(id);
    trajectory.set_group_id(plan.group_id);
    trajectory.set_sample_index(index);
    trajectory.set_response_text(std::string(Uniform(0, 32), 'x'));
    if (queue_->Add(trajectory, v1::Prompt(), plan.size).ok()) {
      ids_.push_back(id);
      if (index == plan.next_index) ++plan.next_index;
    }
  }

  std::string AnyId() {
    if (ids_.empty() || Uniform(0, 29) == 0) return "unknown";
    return ids_[Uniform(0, static_cast<int>(ids_.size()) - 1)];
  }
  std::string AnyGroup() {
    if (groups_.empty()) return "none";
    return groups_[Uniform(0, static_cast<int>(groups_.size()) - 1)].group_id;
  }

  struct GroupPlan {
    std::string group_id;
    int size;
    int next_index;
  };
  std::mt19937 random_;
  std::unique_ptr<TrajectoryQueue> queue_;
  std::vector<std::string> ids_;
  std::vector<GroupPlan> groups_;
  int next_group_ = 0;
};

// Recounts everything from the snapshot and compares with the queue's
// incrementally maintained counts and FIFOs.
void CheckCountsAgainstRecount(const TrajectoryQueue& queue) {
  v1::SchedulerSnapshot snapshot = queue.Snapshot();
  std::map<v1::TrajectoryState, int64_t> recount;
  std::map<std::string, std::vector<const v1::TrajectoryRecord*>> by_group;
  for (const auto& record : snapshot.records()) {
    ++recount[record.state()];
    if (record.state() != v1::TRAJECTORY_STATE_BATCHED) {
      by_group[record.trajectory().group_id()].push_back(&record);
    }
    ASSERT_TRUE(queue.Get(record.trajectory().trajectory_id()).ok());
  }
  TrajectoryCounts counts = queue.Counts();
  EXPECT_EQ(counts.generated, recount[v1::TRAJECTORY_STATE_GENERATED]);
  EXPECT_EQ(counts.scoring, recount[v1::TRAJECTORY_STATE_SCORING]);
  EXPECT_EQ(counts.scored, recount[v1::TRAJECTORY_STATE_SCORED]);
  EXPECT_EQ(counts.batched, recount[v1::TRAJECTORY_STATE_BATCHED]);
  EXPECT_LE(counts.live(), kCapacity);
  for (auto state :
       {v1::TRAJECTORY_STATE_GENERATED, v1::TRAJECTORY_STATE_SCORING,
        v1::TRAJECTORY_STATE_SCORED, v1::TRAJECTORY_STATE_BATCHED}) {
    EXPECT_EQ(static_cast<int64_t>(queue.OldestIds(state, 1 << 20).size()),
              recount[state]);
  }
  // Every trajectory ever added is live, trained or dropped.
  auto counters = queue.Counters();
  EXPECT_EQ(counters["queue.added"],
            counts.live() + counts.trained_total + counts.dropped_total);
  int64_t dropped_by_reason = 0;
  for (const auto& [key, value] : counters) {
    if (absl::StartsWith(key, "queue.dropped.")) dropped_by_reason += value;
  }
  EXPECT_EQ(dropped_by_reason, counts.dropped_total);
  // Complete groups: every member arrived, each scored or dropped, at least
  // one scored. Dropped records are held only in open groups.
  int64_t complete = 0;
  for (const auto& [group_id, size] : snapshot.open_group_sizes()) {
    const auto& members = by_group[group_id];
    int scored = 0, done = 0;
    for (const auto* record : members) {
      if (record->state() == v1::TRAJECTORY_STATE_SCORED) ++scored;
      if (record->state() == v1::TRAJECTORY_STATE_SCORED ||
          record->state() == v1::TRAJECTORY_STATE_DROPPED) {
        ++done;
      }
    }
    EXPECT_LE(static_cast<int64_t>(members.size()), size);
    bool is_complete = static_cast<int64_t>(members.size()) == size &&
                       done == size && scored > 0;
    complete += is_complete;
    auto reported = queue.IsGroupComplete(group_id);
    ASSERT_TRUE(reported.ok()) << reported.status();
    EXPECT_EQ(*reported, is_complete) << group_id;
    by_group.erase(group_id);
  }
  EXPECT_TRUE(by_group.empty()) << "records of groups without a size";
  EXPECT_EQ(queue.NumCompleteGroups(), complete);
}

// snapshot -> restore -> snapshot equals the first snapshot after the
// scoring -> generated rule.
std::unique_ptr<TrajectoryQueue> CheckSnapshotRestoreIdentity(
    const TrajectoryQueue& queue) {
  v1::SchedulerSnapshot first = queue.Snapshot();
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = kCapacity;
  auto restored = TrajectoryQueue::Restore(first, options);
  EXPECT_TRUE(restored.ok()) << restored.status();
  if (!restored.ok()) return nullptr;
  v1::SchedulerSnapshot expected = first;
  int64_t requeued = 0;
  for (auto& record : *expected.mutable_records()) {
    if (record.state() == v1::TRAJECTORY_STATE_SCORING) {
      record.set_state(v1::TRAJECTORY_STATE_GENERATED);
      ++requeued;
    }
  }
  (*expected.mutable_counters())["queue.requeued_on_restore"] += requeued;
  v1::SchedulerSnapshot second = (*restored)->Snapshot();
  std::string report;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&report);
  EXPECT_TRUE(differencer.Compare(expected, second)) << report;
  // And once more: a restored queue restores to itself exactly.
  if (requeued == 0) {
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(first, second));
  }
  return std::move(*restored);
}

TEST(TrajectoryQueuePropertyTest, CountsMatchBruteForceRecount) {
  for (uint32_t seed = 0; seed < kSeeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    RandomDriver driver(seed);
    for (int step = 0; step < kOperationsPerSeed; ++step) {
      driver.Step();
      if (step % 7 == 0) {
        CheckCountsAgainstRecount(driver.queue());
        if (::testing::Test::HasFailure()) return;
      }
    }
    CheckCountsAgainstRecount(driver.queue());
  }
}

TEST(TrajectoryQueuePropertyTest, SnapshotRestoreSnapshotIsIdentity) {
  // What the random sequences reached, summed over seeds: guards against a
  // generator that never gets past "generated".
  std::map<std::string, int64_t> reached;
  for (uint32_t seed = 0; seed < kSeeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    RandomDriver driver(1000 + seed);
    for (int step = 0; step < kOperationsPerSeed; ++step) {
      driver.Step();
      if (step % 50 == 49) {
        // Carry on with the restored queue: restore must give a queue that
        // keeps working, not just one that snapshots the same.
        std::unique_ptr<TrajectoryQueue> restored =
            CheckSnapshotRestoreIdentity(driver.queue());
        if (::testing::Test::HasFailure()) return;
        driver.Replace(std::move(restored));
        CheckCountsAgainstRecount(driver.queue());
      }
    }
    for (const auto& [key, value] : driver.queue().Counters()) {
      reached[key] += value;
    }
    reached["complete_groups"] += driver.queue().NumCompleteGroups();
  }
  for (const char* key :
       {"queue.trained", "queue.requeued_on_restore", "queue.dropped.stale",
        "queue.dropped.group_dropped", "complete_groups"}) {
    EXPECT_GT(reached[key], 0) << key;
  }
}

}  // namespace
}  // namespace fapo::scheduler
