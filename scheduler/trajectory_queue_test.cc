#include "scheduler/trajectory_queue.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/clock/fake_clock.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_testing.h"
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

using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

v1::Trajectory MakeTrajectory(const std::string& id,
                              const std::string& group_id, int sample_index) {
  v1::Trajectory trajectory;
  trajectory.set_trajectory_id(id);
  trajectory.set_group_id(group_id);
  trajectory.set_sample_index(sample_index);
  trajectory.set_response_text("response of " + id);
  return trajectory;
}

v1::Verdict CorrectVerdict(int first_error_step = -1) {
  v1::Verdict verdict;
  verdict.set_answer_correct(true);
  verdict.set_first_error_step(first_error_step);
  verdict.set_status(v1::VERDICT_STATUS_OK);
  return verdict;
}

v1::Verdict WrongAnswerVerdict() {
  v1::Verdict verdict;
  verdict.set_answer_correct(false);
  verdict.set_status(v1::VERDICT_STATUS_SKIPPED);
  return verdict;
}

std::unique_ptr<TrajectoryQueue> NewQueue(
    TrajectoryQueueOptions options = TestQueueOptions()) {
  auto queue = TrajectoryQueue::Create(std::move(options));
  EXPECT_THAT(queue, IsOk());
  return std::move(*queue);
}

v1::TrajectoryState StateOf(const TrajectoryQueue& queue,
                            const std::string& id) {
  auto record = queue.Get(id);
  return record.ok() ? record->state() : v1::TRAJECTORY_STATE_UNSPECIFIED;
}

// Adds a group of `size` trajectories "<group>-<i>".
void AddGroup(TrajectoryQueue& queue, const std::string& group, int size) {
  for (int i = 0; i < size; ++i) {
    ASSERT_OK(queue.Add(MakeTrajectory(absl::StrCat(group, "-", i), group, i),
                        v1::Prompt(), size));
  }
}

void ScoreCorrect(TrajectoryQueue& queue, const std::string& id) {
  ASSERT_OK(queue.StartScoring(id));
  ASSERT_OK(queue.RecordVerdict(id, CorrectVerdict()));
}

TEST(TrajectoryQueueTest, CreateRejectsBadCapacity) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 0;
  EXPECT_THAT(TrajectoryQueue::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("scheduler.queue_capacity")));
}

TEST(TrajectoryQueueTest, AddKeepsTrajectoryPromptAndArrivalOrder) {
  auto queue = NewQueue();
  v1::Prompt prompt;
  prompt.set_prompt_id("p0");
  ASSERT_OK(queue->Add(MakeTrajectory("a", "g", 0), prompt, 2));
  ASSERT_OK(queue->Add(MakeTrajectory("b", "g", 1), prompt, 2));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord a, queue->Get("a"));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord b, queue->Get("b"));
  EXPECT_EQ(a.state(), v1::TRAJECTORY_STATE_GENERATED);
  EXPECT_EQ(a.trajectory().response_text(), "response of a");
  EXPECT_EQ(a.prompt().prompt_id(), "p0");
  EXPECT_EQ(a.sequence(), 0);
  EXPECT_EQ(b.sequence(), 1);
  EXPECT_EQ(queue->Counts().generated, 2);
}

TEST(TrajectoryQueueTest, FullLifecycleCountsAndReleases) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 2);
  ASSERT_OK(queue->StartScoring("g-0"));
  EXPECT_EQ(queue->Counts().scoring, 1);
  ASSERT_OK(queue->RecordVerdict("g-0", CorrectVerdict(2)));
  ASSERT_OK(queue->RecordVerdict("g-1", WrongAnswerVerdict()));  // skip
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord scored, queue->Get("g-0"));
  EXPECT_EQ(scored.state(), v1::TRAJECTORY_STATE_SCORED);
  EXPECT_EQ(scored.genrm_attempts(), 1);
  EXPECT_EQ(scored.verdict().first_error_step(), 2);
  EXPECT_EQ(queue->Counts().scored, 2);

  std::vector<CompleteGroup> groups = queue->TakeCompleteGroups(10);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(queue->Counts().batched, 2);
  ASSERT_OK(queue->SetOutcome("g-0", true, 0.5, 0.7));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord batched, queue->Get("g-0"));
  EXPECT_TRUE(batched.flawed());
  EXPECT_EQ(batched.reward(), 0.5);
  EXPECT_EQ(batched.advantage(), 0.7);

  ASSERT_OK(queue->MarkTrained("g-0"));
  ASSERT_OK(queue->MarkTrained("g-1"));
  TrajectoryCounts counts = queue->Counts();
  EXPECT_EQ(counts.live(), 0);
  EXPECT_EQ(counts.trained_total, 2);
  // Trained records are released.
  EXPECT_THAT(queue->Get("g-0"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(TrajectoryQueueTest, CorrectAnswerCannotSkipTheGenRM) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 1);
  EXPECT_THAT(queue->RecordVerdict("g-0", CorrectVerdict()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("g-0"), HasSubstr("generated"),
                             HasSubstr("scored"))));
}

TEST(TrajectoryQueueTest, RequeueReturnsScoringToGenerated) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 2);
  ASSERT_OK(queue->StartScoring("g-0"));
  ASSERT_OK(queue->Requeue("g-0"));
  EXPECT_EQ(StateOf(*queue, "g-0"), v1::TRAJECTORY_STATE_GENERATED);
  // Back at the end of the generated FIFO.
  EXPECT_THAT(queue->OldestIds(v1::TRAJECTORY_STATE_GENERATED, 10),
              ElementsAre("g-1", "g-0"));
  ASSERT_OK(queue->StartScoring("g-0"));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord record, queue->Get("g-0"));
  EXPECT_EQ(record.genrm_attempts(), 2);
}

// Puts trajectory "t", the only member of group "g" (size 1), into `state`.
// A terminal transition then closes the group and releases "t".
std::unique_ptr<TrajectoryQueue> QueueWithTrajectoryIn(
    v1::TrajectoryState state) {
  auto queue = NewQueue();
  EXPECT_OK(queue->Add(MakeTrajectory("t", "g", 0), v1::Prompt(), 1));
  switch (state) {
    case v1::TRAJECTORY_STATE_GENERATED:
      break;
    case v1::TRAJECTORY_STATE_SCORING:
      EXPECT_OK(queue->StartScoring("t"));
      break;
    case v1::TRAJECTORY_STATE_SCORED:
      EXPECT_OK(queue->StartScoring("t"));
      EXPECT_OK(queue->RecordVerdict("t", CorrectVerdict()));
      break;
    case v1::TRAJECTORY_STATE_BATCHED:
      EXPECT_OK(queue->StartScoring("t"));
      EXPECT_OK(queue->RecordVerdict("t", CorrectVerdict()));
      EXPECT_EQ(queue->TakeCompleteGroups(1).size(), 1u);
      break;
    default:
      ADD_FAILURE() << "no such setup";
  }
  EXPECT_EQ(StateOf(*queue, "t"), state);
  return queue;
}

struct Operation {
  const char* name;
  v1::TrajectoryState to;
  absl::Status (*run)(TrajectoryQueue&);
};

const Operation kOperations[] = {
    {"StartScoring", v1::TRAJECTORY_STATE_SCORING,
     [](TrajectoryQueue& q) { return q.StartScoring("t"); }},
    {"RecordVerdict", v1::TRAJECTORY_STATE_SCORED,
     [](TrajectoryQueue& q) { return q.RecordVerdict("t", CorrectVerdict()); }},
    {"Requeue", v1::TRAJECTORY_STATE_GENERATED,
     [](TrajectoryQueue& q) { return q.Requeue("t"); }},
    {"MarkTrained", v1::TRAJECTORY_STATE_TRAINED,
     [](TrajectoryQueue& q) { return q.MarkTrained("t"); }},
    {"Drop", v1::TRAJECTORY_STATE_DROPPED,
     [](TrajectoryQueue& q) { return q.Drop("t", "stale"); }},
};

TEST(TrajectoryQueueTest, EveryTransitionLegalOrIllegal) {
  struct Case {
    v1::TrajectoryState from;
    std::vector<std::string> legal;
  };
  const Case cases[] = {
      {v1::TRAJECTORY_STATE_GENERATED, {"StartScoring", "Drop"}},
      {v1::TRAJECTORY_STATE_SCORING, {"RecordVerdict", "Requeue", "Drop"}},
      {v1::TRAJECTORY_STATE_SCORED, {"Drop"}},
      {v1::TRAJECTORY_STATE_BATCHED, {"MarkTrained", "Drop"}},
  };
  const char* state_names[] = {"",        "generated", "scoring", "scored",
                               "batched", "trained",   "dropped"};
  for (const Case& c : cases) {
    for (const Operation& op : kOperations) {
      SCOPED_TRACE(absl::StrCat(state_names[c.from], " ", op.name));
      auto queue = QueueWithTrajectoryIn(c.from);
      absl::Status status = op.run(*queue);
      bool legal =
          std::find(c.legal.begin(), c.legal.end(), op.name) != c.legal.end();
      if (legal) {
        EXPECT_OK(status);
        if (op.to == v1::TRAJECTORY_STATE_TRAINED ||
            op.to == v1::TRAJECTORY_STATE_DROPPED) {
          // Terminal: released (the group of one closed or was taken).
          EXPECT_THAT(queue->Get("t"), StatusIs(absl::StatusCode::kNotFound));
        } else {
          EXPECT_EQ(StateOf(*queue, "t"), op.to);
        }
      } else {
        EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                                     AllOf(HasSubstr("'t'"),
                                           HasSubstr(state_names[c.from]),
                                           HasSubstr(state_names[op.to]))));
        EXPECT_EQ(StateOf(*queue, "t"), c.from);  // unchanged
      }
    }
  }
}

TEST(TrajectoryQueueTest, DroppedMemberOfOpenGroupRefusesEveryTransition) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 2);
  ASSERT_OK(queue->Drop("g-0", "stale"));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord dropped, queue->Get("g-0"));
  EXPECT_EQ(dropped.state(), v1::TRAJECTORY_STATE_DROPPED);
  EXPECT_EQ(dropped.drop_reason(), "stale");
  EXPECT_THAT(queue->StartScoring("g-0"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("g-0"), HasSubstr("dropped"),
                             HasSubstr("scoring"))));
  EXPECT_THAT(queue->Drop("g-0", "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(queue->MarkTrained("g-0"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(queue->RecordVerdict("g-0", WrongAnswerVerdict()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(queue->SetOutcome("g-0", false, 0, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(TrajectoryQueueTest, UnknownIdsAreNotFound) {
  auto queue = NewQueue();
  for (const Operation& op : kOperations) {
    EXPECT_THAT(op.run(*queue),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("'t'")))
        << op.name;
  }
  EXPECT_THAT(queue->SetOutcome("t", false, 0, 0),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->Get("t"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->DropGroup("nope"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->IsGroupComplete("nope"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(TrajectoryQueueTest, AddValidates) {
  auto queue = NewQueue();
  ASSERT_OK(queue->Add(MakeTrajectory("a", "g", 0), v1::Prompt(), 2));
  EXPECT_THAT(queue->Add(MakeTrajectory("a", "g", 1), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("'a'"), HasSubstr("generated"))));
  EXPECT_THAT(queue->Add(MakeTrajectory("b", "g", 0), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("'a'")));
  EXPECT_THAT(
      queue->Add(MakeTrajectory("b", "g", 1), v1::Prompt(), 3),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has size 2")));
  EXPECT_THAT(queue->Add(MakeTrajectory("b", "g", 2), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample_index 2")));
  EXPECT_THAT(queue->Add(MakeTrajectory("", "g", 1), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->Add(MakeTrajectory("b", "", 1), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->Add(MakeTrajectory("b", "h", 0), v1::Prompt(), 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(queue->Counts().generated, 1);
}

TEST(TrajectoryQueueTest, RegisterGroupFixesTheSize) {
  auto queue = NewQueue();
  ASSERT_OK(queue->RegisterGroup("g", 2));
  ASSERT_OK(queue->RegisterGroup("g", 2));
  EXPECT_THAT(queue->RegisterGroup("g", 3),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->RegisterGroup("h", 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->Add(MakeTrajectory("a", "g", 0), v1::Prompt(), 4),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->IsGroupComplete("g"), IsOkAndHolds(false));
}

TEST(TrajectoryQueueTest, RequireRegisteredGroupsRefusesClosedGroups) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.require_registered_groups = true;
  auto queue = NewQueue(options);
  EXPECT_THAT(queue->Add(MakeTrajectory("a", "never", 0), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(queue->RegisterGroup("g", 2));
  ASSERT_OK(queue->Add(MakeTrajectory("g-0", "g", 0), v1::Prompt(), 2));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> scoring,
                       queue->DropGroup("g", "aborted"));
  EXPECT_THAT(scoring, IsEmpty());
  // A late sample of the dropped group does not reopen it.
  EXPECT_THAT(queue->Add(MakeTrajectory("g-1", "g", 1), v1::Prompt(), 2),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->IsGroupComplete("g"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(queue->Counters().at("queue.dropped.aborted"), 1);
  EXPECT_THAT(queue->DropGroup("g", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(TrajectoryQueueTest, HandOverMovesBatchedBodiesOutAndKeepsSkeletons) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.hand_over_batched = true;
  auto queue = NewQueue(options);
  AddGroup(*queue, "g", 2);
  ScoreCorrect(*queue, "g-0");
  ScoreCorrect(*queue, "g-1");
  std::vector<CompleteGroup> taken = queue->TakeCompleteGroups(1);
  ASSERT_THAT(taken, SizeIs(1));
  ASSERT_THAT(taken[0].records, SizeIs(2));
  EXPECT_EQ(taken[0].records[0].trajectory().response_text(),
            "response of g-0");
  EXPECT_TRUE(taken[0].records[0].verdict().answer_correct());
  // The queue keeps what identifies the record, not its body.
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord kept, queue->Get("g-1"));
  EXPECT_EQ(kept.state(), v1::TRAJECTORY_STATE_BATCHED);
  EXPECT_EQ(kept.trajectory().group_id(), "g");
  EXPECT_EQ(kept.trajectory().sample_index(), 1);
  EXPECT_EQ(kept.trajectory().response_text(), "");
  EXPECT_EQ(kept.sequence(), taken[0].records[1].sequence());
  EXPECT_EQ(queue->Counts().batched, 2);
  // Trained all at once; a bad id moves nothing.
  EXPECT_THAT(queue->MarkTrainedAll({"g-0", "nope"}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->MarkTrainedAll({"g-0", "g-0"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(queue->Counts().batched, 2);
  ASSERT_OK(queue->MarkTrainedAll({"g-0", "g-1"}));
  EXPECT_EQ(queue->Counts().batched, 0);
  EXPECT_EQ(queue->Counts().trained_total, 2);
}

TEST(TrajectoryQueueTest, AddForScoringStartsScoringAtOnce) {
  auto queue = NewQueue();
  ASSERT_OK(queue->AddForScoring(MakeTrajectory("a", "g", 0), 2));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord a, queue->Get("a"));
  EXPECT_EQ(a.state(), v1::TRAJECTORY_STATE_SCORING);
  EXPECT_EQ(a.genrm_attempts(), 1);
  EXPECT_EQ(queue->Counts().generated, 0);
  EXPECT_EQ(queue->Counts().scoring, 1);
  ASSERT_OK(queue->RecordVerdict("a", CorrectVerdict()));
  EXPECT_THAT(queue->AddForScoring(MakeTrajectory("a", "g", 1), 2),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(TrajectoryQueueTest, DropFromEveryLiveStateCountsReasons) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 4);
  ASSERT_OK(queue->StartScoring("g-1"));
  ASSERT_OK(queue->StartScoring("g-2"));
  ASSERT_OK(queue->RecordVerdict("g-2", CorrectVerdict()));
  ASSERT_OK(queue->Drop("g-0", "stale"));
  ASSERT_OK(queue->Drop("g-1", "stale"));
  ASSERT_OK(queue->Drop("g-2", "no_signal"));
  EXPECT_THAT(queue->Drop("g-3", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  TrajectoryCounts counts = queue->Counts();
  EXPECT_EQ(counts.live(), 1);
  EXPECT_EQ(counts.dropped_total, 3);
  auto counters = queue->Counters();
  EXPECT_EQ(counters["queue.dropped.stale"], 2);
  EXPECT_EQ(counters["queue.dropped.no_signal"], 1);
  // Batched -> dropped too.
  auto single = QueueWithTrajectoryIn(v1::TRAJECTORY_STATE_BATCHED);
  ASSERT_OK(single->Drop("t", "trainer_failed"));
  EXPECT_EQ(single->Counts().live(), 0);
}

TEST(TrajectoryQueueTest, RejectModeSaysCapacityAndHowToRaiseIt) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 2;
  auto queue = NewQueue(options);
  AddGroup(*queue, "g", 2);
  EXPECT_THAT(queue->Add(MakeTrajectory("x", "h", 0), v1::Prompt(), 1),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("capacity 2"),
                             HasSubstr("scheduler.queue_capacity"))));
  // Scored and batched still count as live.
  ScoreCorrect(*queue, "g-0");
  ScoreCorrect(*queue, "g-1");
  ASSERT_EQ(queue->TakeCompleteGroups(1).size(), 1u);
  EXPECT_THAT(queue->Add(MakeTrajectory("x", "h", 0), v1::Prompt(), 1),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_OK(queue->MarkTrained("g-0"));
  EXPECT_OK(queue->Add(MakeTrajectory("x", "h", 0), v1::Prompt(), 1));
  ASSERT_OK(queue->Drop("x", "stale"));
  EXPECT_OK(queue->Add(MakeTrajectory("y", "i", 0), v1::Prompt(), 1));
}

TEST(TrajectoryQueueTest, WaitModeTimesOutOnTheFakeClock) {
  FakeClock clock;
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 1;
  options.backpressure = Backpressure::kWait;
  options.max_wait = absl::Seconds(10);
  options.clock = &clock;
  auto queue = NewQueue(options);
  AddGroup(*queue, "g", 1);
  absl::Status status;
  std::thread producer([&] {
    status = queue->Add(MakeTrajectory("x", "h", 0), v1::Prompt(), 1);
  });
  clock.WaitForWaiters(1);
  clock.Advance(absl::Seconds(9));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(clock.NumWaiters(), 1);
  clock.Advance(absl::Seconds(1));
  producer.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded,
                               HasSubstr("scheduler.queue_capacity")));
  EXPECT_EQ(queue->Counts().live(), 1);
}

TEST(TrajectoryQueueTest, WaitModeAddsOnceAnotherThreadMakesRoom) {
  FakeClock clock;
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 1;
  options.backpressure = Backpressure::kWait;
  options.clock = &clock;
  auto queue = NewQueue(options);
  AddGroup(*queue, "g", 1);
  absl::Status status = absl::UnknownError("not run");
  std::thread producer([&] {
    status = queue->Add(MakeTrajectory("x", "h", 0), v1::Prompt(), 1);
  });
  clock.WaitForWaiters(1);
  ASSERT_OK(queue->Drop("g-0", "stale"));  // room: wakes the producer
  producer.join();
  EXPECT_OK(status);
  EXPECT_EQ(StateOf(*queue, "x"), v1::TRAJECTORY_STATE_GENERATED);
}

TEST(TrajectoryQueueTest, WaitModeWithRealClockAndShortDeadline) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 1;
  options.backpressure = Backpressure::kWait;
  auto queue = NewQueue(options);
  AddGroup(*queue, "g", 1);
  EXPECT_THAT(queue->AddWithDeadline(MakeTrajectory("x", "h", 0), v1::Prompt(),
                                     1, absl::Now() + absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  std::thread consumer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_OK(queue->Drop("g-0", "stale"));
  });
  EXPECT_OK(queue->AddWithDeadline(MakeTrajectory("x", "h", 0), v1::Prompt(), 1,
                                   absl::Now() + absl::Seconds(30)));
  consumer.join();
}

TEST(TrajectoryQueueTest, CloseWakesWaitersAndRefusesAdds) {
  FakeClock clock;
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 1;
  options.backpressure = Backpressure::kWait;
  options.clock = &clock;
  auto queue = NewQueue(options);
  AddGroup(*queue, "g", 1);
  absl::Status status;
  std::thread producer([&] {
    status = queue->Add(MakeTrajectory("x", "h", 0), v1::Prompt(), 1);
  });
  clock.WaitForWaiters(1);
  queue->Close();
  producer.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(
      queue->Add(MakeTrajectory("y", "h", 0), v1::Prompt(), 1),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("closed")));
  // Still drains.
  EXPECT_OK(queue->StartScoring("g-0"));
}

TEST(TrajectoryQueueTest, GroupCompletesWhenAllMembersScoredOrDropped) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 3);
  ScoreCorrect(*queue, "g-0");
  ASSERT_OK(queue->RecordVerdict("g-1", WrongAnswerVerdict()));
  EXPECT_THAT(queue->IsGroupComplete("g"), IsOkAndHolds(false));
  ASSERT_OK(queue->StartScoring("g-2"));
  EXPECT_THAT(queue->IsGroupComplete("g"), IsOkAndHolds(false));
  ASSERT_OK(queue->Drop("g-2", "genrm_cancelled"));
  EXPECT_THAT(queue->IsGroupComplete("g"), IsOkAndHolds(true));
  EXPECT_EQ(queue->NumCompleteGroups(), 1);
  std::vector<CompleteGroup> groups = queue->TakeCompleteGroups(5);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].group_id, "g");
  EXPECT_EQ(groups[0].group_size, 3);
  EXPECT_EQ(groups[0].num_dropped, 1);
  ASSERT_EQ(groups[0].records.size(), 2u);
  EXPECT_EQ(groups[0].records[0].trajectory().trajectory_id(), "g-0");
  EXPECT_EQ(groups[0].records[1].trajectory().trajectory_id(), "g-1");
  EXPECT_EQ(groups[0].records[0].state(), v1::TRAJECTORY_STATE_BATCHED);
  // Taking closed the group and released its dropped member.
  EXPECT_THAT(queue->IsGroupComplete("g"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->Get("g-2"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(queue->NumCompleteGroups(), 0);
}

TEST(TrajectoryQueueTest, GroupIsNotCompleteUntilAllMembersArrived) {
  auto queue = NewQueue();
  ASSERT_OK(queue->Add(MakeTrajectory("g-0", "g", 0), v1::Prompt(), 2));
  ScoreCorrect(*queue, "g-0");
  EXPECT_THAT(queue->IsGroupComplete("g"), IsOkAndHolds(false));
  ASSERT_OK(queue->Add(MakeTrajectory("g-1", "g", 1), v1::Prompt(), 2));
  ScoreCorrect(*queue, "g-1");
  EXPECT_THAT(queue->IsGroupComplete("g"), IsOkAndHolds(true));
}

TEST(TrajectoryQueueTest, AllDroppedGroupClosesWithoutBeingHandedOut) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 2);
  ScoreCorrect(*queue, "g-0");
  ASSERT_OK(queue->Drop("g-1", "stale"));
  EXPECT_EQ(queue->NumCompleteGroups(), 1);
  // Its last scored member goes too: nothing left to train on.
  ASSERT_OK(queue->Drop("g-0", "stale"));
  EXPECT_EQ(queue->NumCompleteGroups(), 0);
  EXPECT_THAT(queue->TakeCompleteGroups(5), IsEmpty());
  EXPECT_THAT(queue->Get("g-0"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(queue->Counts().dropped_total, 2);
}

TEST(TrajectoryQueueTest, DropGroupReturnsInFlightIds) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 4);
  ASSERT_OK(queue->StartScoring("g-0"));
  ASSERT_OK(queue->StartScoring("g-2"));
  ASSERT_OK(queue->RecordVerdict("g-3", WrongAnswerVerdict()));
  ASSERT_OK(queue->Drop("g-1", "stale"));  // already dropped: not again
  EXPECT_THAT(queue->DropGroup("g"),
              IsOkAndHolds(UnorderedElementsAre("g-0", "g-2")));
  TrajectoryCounts counts = queue->Counts();
  EXPECT_EQ(counts.live(), 0);
  EXPECT_EQ(counts.dropped_total, 4);
  auto counters = queue->Counters();
  EXPECT_EQ(counters["queue.dropped.group_dropped"], 3);
  EXPECT_EQ(counters["queue.dropped.stale"], 1);
  for (const char* id : {"g-0", "g-1", "g-2", "g-3"}) {
    EXPECT_THAT(queue->Get(id), StatusIs(absl::StatusCode::kNotFound)) << id;
  }
  EXPECT_THAT(queue->DropGroup("g"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(TrajectoryQueueTest, DropGroupOfACompleteGroupUnqueuesIt) {
  auto queue = NewQueue();
  AddGroup(*queue, "a", 1);
  AddGroup(*queue, "b", 1);
  ScoreCorrect(*queue, "a-0");
  ScoreCorrect(*queue, "b-0");
  EXPECT_THAT(queue->DropGroup("a"), IsOkAndHolds(IsEmpty()));
  std::vector<CompleteGroup> groups = queue->TakeCompleteGroups(5);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].group_id, "b");
}

TEST(TrajectoryQueueTest, TakeCompleteGroupsInOrderOfCompletion) {
  auto queue = NewQueue();
  AddGroup(*queue, "first", 2);
  AddGroup(*queue, "second", 2);
  AddGroup(*queue, "third", 1);
  ScoreCorrect(*queue, "second-0");
  ScoreCorrect(*queue, "second-1");  // "second" completes first
  ScoreCorrect(*queue, "first-0");
  ScoreCorrect(*queue, "third-0");
  ScoreCorrect(*queue, "first-1");
  std::vector<CompleteGroup> groups = queue->TakeCompleteGroups(2);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group_id, "second");
  EXPECT_EQ(groups[1].group_id, "third");
  groups = queue->TakeCompleteGroups(2);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].group_id, "first");
  EXPECT_THAT(queue->TakeCompleteGroups(2), IsEmpty());
  EXPECT_EQ(queue->Counts().batched, 5);
}

TEST(TrajectoryQueueTest, OldestIdsAndStartScoringOldestAreFifo) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 5);
  EXPECT_THAT(queue->OldestIds(v1::TRAJECTORY_STATE_GENERATED, 3),
              ElementsAre("g-0", "g-1", "g-2"));
  ASSERT_OK(queue->StartScoring("g-1"));
  std::vector<v1::TrajectoryRecord> started = queue->StartScoringOldest(2);
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(started[0].trajectory().trajectory_id(), "g-0");
  EXPECT_EQ(started[1].trajectory().trajectory_id(), "g-2");
  EXPECT_EQ(started[0].state(), v1::TRAJECTORY_STATE_SCORING);
  EXPECT_EQ(started[0].genrm_attempts(), 1);
  EXPECT_THAT(queue->OldestIds(v1::TRAJECTORY_STATE_SCORING, 10),
              ElementsAre("g-1", "g-0", "g-2"));
  EXPECT_THAT(queue->OldestIds(v1::TRAJECTORY_STATE_DROPPED, 10), IsEmpty());
  EXPECT_EQ(queue->StartScoringOldest(10).size(), 2u);
  EXPECT_THAT(queue->StartScoringOldest(10), IsEmpty());
}

double FindValue(const metrics::MetricsRegistry& registry,
                 const std::string& name,
                 const std::vector<std::string>& label_values) {
  return metrics::testing::Read(registry, name, label_values).value_or(-1);
}

TEST(TrajectoryQueueTest, ExportsMetrics) {
  auto registry = metrics::NewMetricsRegistry();
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 100;
  options.metrics = registry.get();
  {
    auto queue = NewQueue(options);
    AddGroup(*queue, "g", 3);
    ASSERT_OK(queue->StartScoring("g-0"));
    ASSERT_OK(queue->Drop("g-1", "stale"));
    const metrics::MetricsRegistry& families = *registry;
    EXPECT_EQ(FindValue(families, "fapo_queue_capacity", {}), 100);
    EXPECT_EQ(FindValue(families, "fapo_queue_trajectories", {"generated"}), 1);
    EXPECT_EQ(FindValue(families, "fapo_queue_trajectories", {"scoring"}), 1);
    EXPECT_EQ(FindValue(families, "fapo_queue_dropped_total", {"stale"}), 1);
  }
  // A destroyed queue takes its share out of the gauges.
  EXPECT_EQ(FindValue(*registry, "fapo_queue_trajectories", {"generated"}), 0);
}

TEST(TrajectoryQueueTest, ConcurrentProducersAndConsumersEndExact) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = 64;
  options.backpressure = Backpressure::kWait;
  auto queue = NewQueue(options);
  constexpr int kProducers = 3;
  constexpr int kGroupsPerProducer = 200;
  constexpr int kGroupSize = 4;
  constexpr int kTotal = kProducers * kGroupsPerProducer * kGroupSize;
  std::atomic<int> produced_done{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int g = 0; g < kGroupsPerProducer; ++g) {
        std::string group = absl::StrCat("p", p, "g", g);
        for (int i = 0; i < kGroupSize; ++i) {
          EXPECT_OK(
              queue->Add(MakeTrajectory(absl::StrCat(group, "-", i), group, i),
                         v1::Prompt(), kGroupSize));
        }
      }
      produced_done.fetch_add(1);
    });
  }
  // Scorers: every trajectory through the GenRM, except sample 0 of every
  // 10th group, dropped as stale.
  std::atomic<int> scorers_done{0};
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([&] {
      while (true) {
        std::vector<v1::TrajectoryRecord> batch = queue->StartScoringOldest(8);
        if (batch.empty()) {
          if (produced_done.load() == kProducers &&
              queue->Counts().generated == 0) {
            break;
          }
          std::this_thread::yield();
          continue;
        }
        for (const auto& record : batch) {
          const std::string& id = record.trajectory().trajectory_id();
          const std::string& group = record.trajectory().group_id();
          if (record.trajectory().sample_index() == 0 &&
              group.back() == '0') {  // every 10th group
            EXPECT_OK(queue->Drop(id, "stale"));
          } else {
            EXPECT_OK(queue->RecordVerdict(id, CorrectVerdict()));
          }
        }
      }
      scorers_done.fetch_add(1);
    });
  }
  std::atomic<int> trained{0};
  threads.emplace_back([&] {
    while (true) {
      std::vector<CompleteGroup> groups = queue->TakeCompleteGroups(4);
      if (groups.empty()) {
        if (scorers_done.load() == 2 && queue->NumCompleteGroups() == 0) {
          break;
        }
        std::this_thread::yield();
        continue;
      }
      for (const CompleteGroup& group : groups) {
        for (const auto& record : group.records) {
          EXPECT_OK(queue->MarkTrained(record.trajectory().trajectory_id()));
          trained.fetch_add(1);
        }
      }
    }
  });
  for (auto& thread : threads) thread.join();
  TrajectoryCounts counts = queue->Counts();
  EXPECT_EQ(counts.live(), 0);
  EXPECT_EQ(counts.trained_total, trained.load());
  EXPECT_EQ(counts.trained_total + counts.dropped_total, kTotal);
  EXPECT_EQ(queue->Counters()["queue.added"], kTotal);
}

TEST(TrajectoryQueueSnapshotTest, RestoreRequeuesScoringAndKeepsTheRest) {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 3);
  AddGroup(*queue, "h", 1);
  ASSERT_OK(queue->RegisterGroup("empty", 8));
  ASSERT_OK(queue->StartScoring("g-0"));
  ASSERT_OK(queue->RecordVerdict("g-1", WrongAnswerVerdict()));
  ASSERT_OK(queue->Drop("g-2", "stale"));
  ScoreCorrect(*queue, "h-0");
  ASSERT_EQ(queue->TakeCompleteGroups(1).size(), 1u);  // h-0 batched
  ASSERT_OK(queue->SetOutcome("h-0", false, 1.0, 0.25));
  v1::SchedulerSnapshot snapshot = queue->Snapshot();
  EXPECT_EQ(snapshot.version(), 1);
  EXPECT_EQ(snapshot.next_sequence(), 4);
  ASSERT_EQ(snapshot.records_size(), 4);  // g-0, g-1, g-2 (dropped), h-0
  EXPECT_EQ(snapshot.records(0).trajectory().trajectory_id(), "g-0");
  EXPECT_EQ(snapshot.records(3).trajectory().trajectory_id(), "h-0");
  EXPECT_EQ(snapshot.open_group_sizes().at("g"), 3);
  EXPECT_EQ(snapshot.open_group_sizes().at("empty"), 8);
  EXPECT_EQ(snapshot.open_group_sizes().count("h"), 0u);

  ASSERT_OK_AND_ASSIGN(auto restored,
                       TrajectoryQueue::Restore(snapshot, TestQueueOptions()));
  EXPECT_EQ(StateOf(*restored, "g-0"), v1::TRAJECTORY_STATE_GENERATED);
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord g0, restored->Get("g-0"));
  EXPECT_EQ(g0.genrm_attempts(), 1);
  EXPECT_EQ(restored->Counters()["queue.requeued_on_restore"], 1);
  EXPECT_EQ(restored->Counters()["queue.dropped.stale"], 1);
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord h0, restored->Get("h-0"));
  EXPECT_EQ(h0.advantage(), 0.25);
  TrajectoryCounts counts = restored->Counts();
  EXPECT_EQ(counts.generated, 1);
  EXPECT_EQ(counts.scored, 1);
  EXPECT_EQ(counts.batched, 1);
  EXPECT_EQ(counts.dropped_total, 1);
  // It carries on: the group completes and the sequence continues.
  ScoreCorrect(*restored, "g-0");
  EXPECT_THAT(restored->IsGroupComplete("g"), IsOkAndHolds(true));
  ASSERT_OK(restored->Add(MakeTrajectory("n-0", "n", 0), v1::Prompt(), 1));
  ASSERT_OK_AND_ASSIGN(v1::TrajectoryRecord added, restored->Get("n-0"));
  EXPECT_EQ(added.sequence(), 4);
  EXPECT_OK(restored->MarkTrained("h-0"));
}

TEST(TrajectoryQueueSnapshotTest, RestoreRequeuesCompleteGroups) {
  auto queue = NewQueue();
  AddGroup(*queue, "a", 1);
  AddGroup(*queue, "b", 1);
  ScoreCorrect(*queue, "a-0");
  ScoreCorrect(*queue, "b-0");
  ASSERT_OK_AND_ASSIGN(
      auto restored,
      TrajectoryQueue::Restore(queue->Snapshot(), TestQueueOptions()));
  EXPECT_EQ(restored->NumCompleteGroups(), 2);
  std::vector<CompleteGroup> groups = restored->TakeCompleteGroups(5);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group_id, "a");
}

v1::SchedulerSnapshot ValidSnapshot() {
  auto queue = NewQueue();
  AddGroup(*queue, "g", 2);
  return queue->Snapshot();
}

TEST(TrajectoryQueueSnapshotTest, RestoreRejectsBadSnapshots) {
  auto expect_invalid = [](const v1::SchedulerSnapshot& snapshot,
                           const std::string& message) {
    EXPECT_THAT(
        TrajectoryQueue::Restore(snapshot, TestQueueOptions()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)));
  };
  ASSERT_OK(
      TrajectoryQueue::Restore(ValidSnapshot(), TestQueueOptions()).status());

  v1::SchedulerSnapshot snapshot = ValidSnapshot();
  snapshot.set_version(2);
  expect_invalid(snapshot, "version 2");

  snapshot = ValidSnapshot();
  snapshot.mutable_records(1)->mutable_trajectory()->set_trajectory_id("g-0");
  expect_invalid(snapshot, "duplicate id");

  snapshot = ValidSnapshot();
  snapshot.mutable_records(1)->mutable_trajectory()->set_sample_index(0);
  expect_invalid(snapshot, "appears twice");

  snapshot = ValidSnapshot();
  snapshot.mutable_records(1)->mutable_trajectory()->set_sample_index(5);
  expect_invalid(snapshot, "sample_index 5");

  snapshot = ValidSnapshot();
  snapshot.mutable_open_group_sizes()->erase("g");
  expect_invalid(snapshot, "has no size");

  snapshot = ValidSnapshot();
  (*snapshot.mutable_open_group_sizes())["g"] = 0;
  expect_invalid(snapshot, "bad size");

  snapshot = ValidSnapshot();
  snapshot.mutable_records(0)->set_state(v1::TRAJECTORY_STATE_BATCHED);
  expect_invalid(snapshot, "still open");

  snapshot = ValidSnapshot();
  snapshot.mutable_records(0)->set_state(v1::TRAJECTORY_STATE_TRAINED);
  expect_invalid(snapshot, "never snapshotted");

  snapshot = ValidSnapshot();
  snapshot.mutable_records(1)->set_sequence(0);
  expect_invalid(snapshot, "repeats");

  snapshot = ValidSnapshot();
  snapshot.set_next_sequence(1);
  expect_invalid(snapshot, "next_sequence");

  snapshot = ValidSnapshot();
  (*snapshot.mutable_counters())["queue.bogus"] = 1;
  expect_invalid(snapshot, "unknown");

  // Counters outside "queue." belong to the scheduler: ignored.
  snapshot = ValidSnapshot();
  (*snapshot.mutable_counters())["scheduler.retries"] = 3;
  EXPECT_OK(TrajectoryQueue::Restore(snapshot, TestQueueOptions()).status());
}

}  // namespace
}  // namespace fapo::scheduler
