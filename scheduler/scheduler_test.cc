// Scheduler logic with a fake GenRM client and a fake clock (no gRPC).
#include "scheduler/scheduler.h"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/clients/fake_genrm_client.h"
#include "scheduler/options_from_spec.h"
#include "scheduler/samples_writer.h"
#include "services/clock/fake_clock.h"
#include "services/files/files.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_testing.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::DoubleNear;
using ::testing::HasSubstr;
using ::testing::SizeIs;

config::JobSpec ArithSpec() {
  config::JobSpec spec;
  spec.data.task = config::Task::kArith;
  spec.job.seed = 7;
  return spec;
}

// Kinds of responses the tests write for an arith prompt.
enum class Kind { kSound, kFlawed, kWrong };

// The verifier only reads the last line; the GenRM verdict for a correct
// answer comes from the fake (tests decide flawed or sound).
std::string Response(const v1::Prompt& prompt, Kind kind) {
  if (kind == Kind::kWrong) return "1+1=2\n#x";
  return absl::StrCat(kind == Kind::kFlawed ? "0+0=9" : "0+0=0", "\n#",
                      prompt.ground_truth());
}

v1::Verdict VerdictFor(const v1::ScoreRequest& request) {
  v1::Verdict verdict;
  verdict.set_trajectory_id(request.trajectory_id());
  verdict.set_answer_correct(true);
  verdict.set_status(v1::VERDICT_STATUS_OK);
  verdict.set_num_steps(2);
  // Flawed responses start with the wrong step "0+0=9".
  verdict.set_first_error_step(
      absl::StartsWith(request.solution(), "0+0=9") ? 0 : -1);
  return verdict;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void Start(SchedulerOptions options,
             const v1::SchedulerSnapshot* resume = nullptr) {
    options.clock = &clock_;
    config::JobSpec spec = ArithSpec();
    int64_t position = resume ? resume->prompt_source_position() : 0;
    scheduler_ =
        *Scheduler::Create(options, *tasks::MakePromptSource(spec, position),
                           *tasks::MakeAnswerVerifier(spec), &client_, resume);
  }

  static SchedulerOptions Small() {
    SchedulerOptions options = DefaultSchedulerOptions();
    options.group_size = 4;
    options.groups_per_step = 2;
    options.total_steps = 3;
    options.max_staleness = 1;
    options.genrm.request_timeout = absl::Seconds(10);
    options.genrm.max_retries = 1;
    options.workers.heartbeat_interval = absl::Seconds(1);
    options.workers.worker_timeout = absl::Seconds(5);
    return options;
  }

  void AddGenrm(const std::string& id, int capacity = 8) {
    v1::WorkerInfo info;
    info.set_worker_id(id);
    info.set_role(v1::WORKER_ROLE_GENRM);
    info.set_address(absl::StrCat(id, ":1"));
    info.set_capacity(capacity);
    ASSERT_THAT(scheduler_->RegisterWorker(info).status(), IsOk());
  }

  // Admits a group and streams its members with the given kinds.
  PromptGroup Generate(const std::vector<Kind>& kinds, int64_t version = 0) {
    auto next = scheduler_->NextPromptGroup();
    EXPECT_THAT(next.status(), IsOk());
    EXPECT_TRUE(next->has_value());
    PromptGroup group = **next;
    for (size_t i = 0; i < kinds.size(); ++i) {
      EXPECT_THAT(scheduler_->AddTrajectory(Trajectory(
                      group, static_cast<int>(i), kinds[i], version)),
                  IsOk());
    }
    return group;
  }

  static v1::Trajectory Trajectory(const PromptGroup& group, int index,
                                   Kind kind, int64_t version) {
    v1::Trajectory t;
    t.set_trajectory_id(absl::StrCat(group.group_id, "/", index));
    t.set_group_id(group.group_id);
    t.set_sample_index(index);
    t.set_prompt_id(group.prompt.prompt_id());
    t.set_response_text(Response(group.prompt, kind));
    t.set_policy_version(version);
    t.add_response_token_ids(1);
    return t;
  }

  void AnswerAllOpenCalls() {
    for (int index : client_.open_calls()) {
      client_.Complete(index, VerdictFor(client_.call(index).request));
    }
  }

  FakeClock clock_;
  FakeGenrmClient client_;
  // Before scheduler_: a scheduler given it reports to it until destroyed.
  std::unique_ptr<metrics::MetricsRegistry> registry_ =
      metrics::NewMetricsRegistry();
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, WrongAnswersSkipTheGenrmAndCorrectOnesGoAtOnce) {
  Start(Small());
  AddGenrm("genrm-a");
  Generate({Kind::kSound, Kind::kWrong, Kind::kFlawed, Kind::kWrong});
  // Two correct answers, two calls, before any verdict arrives.
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(client_.call(0).request.trajectory_id(), "g0/0");
  EXPECT_EQ(client_.call(1).request.trajectory_id(), "g0/2");
  EXPECT_EQ(client_.call(0).request.task(), "arith");
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.trajectories_by_state().at("scored"), 2);
  EXPECT_EQ(status.trajectories_by_state().at("scoring"), 2);
  EXPECT_EQ(status.counters().at("scheduler.verdicts.skipped"), 2);
}

TEST_F(SchedulerTest, CompleteGroupsMakeBatchesWithFapoRewardsAndAdvantages) {
  Start(Small());
  AddGenrm("genrm-a");
  Generate({Kind::kSound, Kind::kFlawed, Kind::kWrong, Kind::kSound});
  EXPECT_EQ(scheduler_->TakeTrainBatch(), nullptr);  // not scored yet
  AnswerAllOpenCalls();
  // One complete group is not a batch of two.
  EXPECT_EQ(scheduler_->TakeTrainBatch(), nullptr);
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  AnswerAllOpenCalls();
  std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->step, 1);
  EXPECT_EQ(batch->policy_version, 0);
  ASSERT_THAT(batch->trajectories, SizeIs(8));
  EXPECT_EQ(batch->group_sizes, (std::vector<int>{4, 4}));
  // lambda = 1: sound 1, flawed 1 - 1 = 0, wrong -1.
  const std::vector<double> rewards = {1, 0, -1, 1, -1, -1, -1, 1};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(batch->trajectories[i].reward(), rewards[i]) << i;
    EXPECT_EQ(batch->trajectories[i].trajectory().sample_index(), i % 4);
  }
  EXPECT_TRUE(batch->trajectories[1].flawed());
  EXPECT_FALSE(batch->trajectories[0].flawed());
  // GRPO: (r - mean) / (unbiased std + eps); group 1 mean 0.25.
  const double std1 =
      std::sqrt(((0.75 * 0.75) * 2 + 0.25 * 0.25 + 1.25 * 1.25) / 3.0);
  EXPECT_THAT(batch->trajectories[0].advantage(),
              DoubleNear(0.75 / (std1 + 1e-6), 1e-9));
  EXPECT_EQ(batch->counts.sound, 3);
  EXPECT_EQ(batch->counts.flawed_positive, 1);
  EXPECT_EQ(batch->counts.wrong, 4);
  EXPECT_DOUBLE_EQ(batch->counts.flawed_positive_ratio(), 0.25);
  EXPECT_DOUBLE_EQ(batch->reward_mean, -1.0 / 8);
  // RLVR ignores the verdict: the flawed answer would have earned 1.
}

TEST_F(SchedulerTest, RlvrIgnoresTheVerdict) {
  SchedulerOptions options = Small();
  options.rewards.kind = algorithm::RewardKind::kRlvr;
  options.groups_per_step = 1;
  Start(options);
  AddGenrm("genrm-a");
  Generate({Kind::kFlawed, Kind::kWrong, Kind::kSound, Kind::kSound});
  AnswerAllOpenCalls();
  std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->trajectories[0].reward(), 1);
  EXPECT_TRUE(batch->trajectories[0].flawed());  // still reported
}

TEST_F(SchedulerTest, ATimedOutVerdictCountsAsNotFlawedAndTheRunGoesOn) {
  SchedulerOptions options = Small();
  options.groups_per_step = 1;
  Start(options);
  AddGenrm("genrm-a");
  AddGenrm("genrm-b");
  Generate({Kind::kFlawed, Kind::kWrong, Kind::kWrong, Kind::kWrong});
  ASSERT_EQ(client_.num_calls(), 1);
  const std::string first_server = client_.call(0).server.worker_id;
  client_.Complete(0, absl::DeadlineExceededError("slow"));
  // The retry goes to the other server.
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_NE(client_.call(1).server.worker_id, first_server);
  client_.Complete(1, absl::DeadlineExceededError("slow too"));
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.counters().at("scheduler.verdicts.timeout"), 1);
  EXPECT_EQ(status.state(), v1::JOB_STATE_RUNNING);
  std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->trajectories[0].verdict().status(),
            v1::VERDICT_STATUS_TIMEOUT);
  EXPECT_FALSE(batch->trajectories[0].flawed());
  EXPECT_EQ(batch->trajectories[0].reward(), 1);  // not penalised
}

TEST_F(SchedulerTest, AdmissionFollowsTheStalenessBudget) {
  SchedulerOptions options = Small();
  options.max_staleness = 0;  // on-policy: one batch at a time
  Start(options);
  AddGenrm("genrm-a");
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  EXPECT_FALSE(scheduler_->NextPromptGroup()->has_value());
  AnswerAllOpenCalls();
  std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
  ASSERT_NE(batch, nullptr);
  EXPECT_FALSE(scheduler_->NextPromptGroup()->has_value());  // training
  ASSERT_THAT(scheduler_->CompleteTrainStep(1, 1, {}), IsOk());
  auto next = scheduler_->NextPromptGroup();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->min_policy_version, 1);
  EXPECT_EQ(scheduler_->GetJobStatus().trajectories_by_state().at("trained"),
            8);
}

TEST_F(SchedulerTest, StaleGroupsAreDroppedAndTheirPromptsGeneratedAgain) {
  SchedulerOptions options = Small();
  options.groups_per_step = 1;
  options.total_steps = 5;
  Start(options);
  AddGenrm("genrm-a");
  // Step 1 trains a fresh group.
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  AnswerAllOpenCalls();
  ASSERT_NE(scheduler_->TakeTrainBatch(), nullptr);
  // A group sampled with version 0 arrives; the trainer moves to 2.
  PromptGroup old = Generate(
      {Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kWrong}, /*version=*/0);
  ASSERT_THAT(scheduler_->CompleteTrainStep(1, 2, {}), IsOk());
  // 2 - 0 > 1: dropped when the batch is formed, the prompt comes back.
  EXPECT_EQ(scheduler_->TakeTrainBatch(), nullptr);
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.counters().at("queue.dropped.stale"), 4);
  EXPECT_EQ(status.counters().at("scheduler.groups.regenerated.stale"), 1);
  auto again = scheduler_->NextPromptGroup();
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->prompt.prompt_id(), old.prompt.prompt_id());
  EXPECT_NE((*again)->group_id, old.group_id);
  EXPECT_EQ((*again)->min_policy_version, 1);
}

// NOTE [dropping a group]: a group goes stale in three places, and each
// regeneration must reach both the job status counter and
// fapo_groups_regenerated_total (the metric once missed the third).
TEST_F(SchedulerTest, EveryStaleGroupIsCountedInTheCounterAndTheMetric) {
  SchedulerOptions options = Small();
  options.total_steps = 10;
  options.metrics = registry_.get();
  Start(options);
  AddGenrm("genrm-a");
  auto regenerated = [&] {
    return std::make_pair(
        scheduler_->GetJobStatus().counters().at(
            "scheduler.groups.regenerated.stale"),
        metrics::testing::Value(*registry_, "fapo_groups_regenerated_total",
                                {{"reason", "stale"}})
            .value_or(0));
  };
  // Three complete groups at version 0; a batch takes two, the third waits
  // scored in the pending groups.
  for (int g = 0; g < 3; ++g) {
    Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  }
  AnswerAllOpenCalls();
  ASSERT_NE(scheduler_->TakeTrainBatch(), nullptr);
  // 1. Scored and waiting when the policy moves 0 -> 2 (TakeTrainBatch).
  ASSERT_THAT(scheduler_->CompleteTrainStep(1, 2, {}), IsOk());
  EXPECT_EQ(scheduler_->TakeTrainBatch(), nullptr);
  EXPECT_EQ(regenerated(), std::make_pair(int64_t{1}, 1.0));
  // 2. Complete but not yet scored when found stale (FillPendingLocked).
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound},
           /*version=*/0);
  AnswerAllOpenCalls();
  EXPECT_EQ(scheduler_->TakeTrainBatch(), nullptr);
  EXPECT_EQ(regenerated(), std::make_pair(int64_t{2}, 2.0));
  // 3. Still open when the tick finds it can no longer be fresh.
  auto next = scheduler_->NextPromptGroup();
  ASSERT_TRUE(next->has_value());
  ASSERT_THAT(scheduler_->AddTrajectory(Trajectory(**next, 0, Kind::kWrong, 0)),
              IsOk());
  scheduler_->Tick();
  EXPECT_EQ(regenerated(), std::make_pair(int64_t{3}, 3.0));
}

TEST_F(SchedulerTest, TickDropsOpenGroupsThatCanNoLongerBeFresh) {
  SchedulerOptions options = Small();
  options.groups_per_step = 1;
  options.total_steps = 5;
  Start(options);
  AddGenrm("genrm-a");
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  AnswerAllOpenCalls();
  ASSERT_NE(scheduler_->TakeTrainBatch(), nullptr);
  // Two members of a version-0 group arrive, one of them at the GenRM.
  auto next = scheduler_->NextPromptGroup();
  ASSERT_TRUE(next->has_value());
  ASSERT_THAT(scheduler_->AddTrajectory(Trajectory(**next, 0, Kind::kSound, 0)),
              IsOk());
  ASSERT_THAT(scheduler_->AddTrajectory(Trajectory(**next, 1, Kind::kWrong, 0)),
              IsOk());
  ASSERT_EQ(client_.open_calls().size(), 1u);
  ASSERT_THAT(scheduler_->CompleteTrainStep(1, 2, {}), IsOk());
  scheduler_->Tick();
  EXPECT_EQ(client_.cancels(), 1);  // the GenRM stops working on it
  EXPECT_EQ(scheduler_->GetJobStatus().counters().at("queue.dropped.stale"), 2);
  // A late member of the dropped group is refused and counted.
  EXPECT_THAT(scheduler_->AddTrajectory(Trajectory(**next, 2, Kind::kWrong, 0)),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SchedulerTest, ADeadGenrmServersCallsGoToAnotherAndScoreOnce) {
  SchedulerOptions options = Small();
  options.groups_per_step = 1;
  Start(options);
  AddGenrm("genrm-a", 1);
  AddGenrm("genrm-b", 1);
  Generate({Kind::kSound, Kind::kSound, Kind::kWrong, Kind::kWrong});
  ASSERT_EQ(client_.num_calls(), 2);
  const int on_a = client_.call(0).server.worker_id == "genrm-a" ? 0 : 1;
  const int on_b = 1 - on_a;
  // b keeps heartbeating, a falls silent past the timeout.
  clock_.Advance(absl::Seconds(3));
  v1::HeartbeatRequest beat;
  beat.set_worker_id("genrm-b");
  EXPECT_TRUE(scheduler_->Heartbeat(beat).registered());
  clock_.Advance(absl::Seconds(3));
  scheduler_->Tick();
  EXPECT_TRUE(client_.call(on_a).cancelled);
  // a's request waits for b's only slot, then goes there.
  EXPECT_EQ(client_.num_calls(), 2);
  client_.Complete(on_b, VerdictFor(client_.call(on_b).request));
  ASSERT_EQ(client_.num_calls(), 3);
  EXPECT_EQ(client_.call(2).server.worker_id, "genrm-b");
  EXPECT_EQ(client_.call(2).request.trajectory_id(),
            client_.call(on_a).request.trajectory_id());
  // The dead server's late answer (if any) is not a second verdict.
  client_.Complete(on_a, VerdictFor(client_.call(on_a).request));
  client_.Complete(2, VerdictFor(client_.call(2).request));
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.counters().at("scheduler.verdicts.sound"), 2);
  EXPECT_EQ(status.trajectories_by_state().at("scored"), 4);
  bool saw_dead = false;
  for (const v1::WorkerStatus& worker : status.workers()) {
    if (worker.info().worker_id() == "genrm-a") {
      saw_dead = worker.state() == v1::WORKER_STATE_DEAD;
    }
  }
  EXPECT_TRUE(saw_dead);
  // Heartbeats from the dead worker ask it to register again.
  beat.set_worker_id("genrm-a");
  EXPECT_FALSE(scheduler_->Heartbeat(beat).registered());
}

TEST_F(SchedulerTest, ConsecutiveFailuresFailTheJobWithAClearMessage) {
  SchedulerOptions options = Small();
  options.max_consecutive_failures = 3;
  Start(options);
  AddGenrm("genrm-a");
  for (int i = 0; i < 2; ++i) {
    auto group = scheduler_->NextPromptGroup();
    ASSERT_THAT(scheduler_->AbortGroup((*group)->group_id, "worker died"),
                IsOk());
  }
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_RUNNING);
  // Progress resets the count.
  Generate({Kind::kSound, Kind::kWrong, Kind::kWrong, Kind::kWrong});
  AnswerAllOpenCalls();
  for (int i = 0; i < 2; ++i) {
    auto group = scheduler_->NextPromptGroup();
    ASSERT_TRUE(group->has_value());
    ASSERT_THAT(scheduler_->AbortGroup((*group)->group_id, "worker died"),
                IsOk());
  }
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_RUNNING);
  auto group = scheduler_->NextPromptGroup();
  ASSERT_THAT(scheduler_->AbortGroup((*group)->group_id, "stream reset"),
              IsOk());
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(status.error(), HasSubstr("3 consecutive failures"));
  EXPECT_THAT(status.error(), HasSubstr("stream reset"));
  EXPECT_FALSE(scheduler_->NextPromptGroup()->has_value());
}

TEST_F(SchedulerTest, NoLiveGenrmServerIsAFailureNotAHang) {
  SchedulerOptions options = Small();
  options.max_consecutive_failures = 2;
  Start(options);
  Generate({Kind::kSound, Kind::kWrong, Kind::kWrong, Kind::kWrong});
  EXPECT_EQ(scheduler_->dispatcher().waiting(), 1);
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Seconds(6));
    scheduler_->Tick();
  }
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(status.error(), HasSubstr("none is alive"));
}

TEST_F(SchedulerTest, TheJobSucceedsAfterItsSteps) {
  SchedulerOptions options = Small();
  options.groups_per_step = 1;
  options.total_steps = 2;
  Start(options);
  AddGenrm("genrm-a");
  for (int step = 1; step <= 2; ++step) {
    Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound},
             step - 1);
    AnswerAllOpenCalls();
    std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
    ASSERT_NE(batch, nullptr);
    EXPECT_THAT(scheduler_->CompleteTrainStep(step, step - 1, {}),
                StatusIs(absl::StatusCode::kInvalidArgument));  // not forward
    ASSERT_THAT(scheduler_->CompleteTrainStep(step, step, {}), IsOk());
  }
  // NOTE [job end]: STOPPING until the driver's final checkpoint is done.
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_STOPPING);
  EXPECT_FALSE(scheduler_->NextPromptGroup()->has_value());
  scheduler_->FinishStop();
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_SUCCEEDED);
}

// samples.jsonl over a small run: every trajectory that was trained or
// dropped is written exactly once, with the right outcome and reason, and
// the file agrees with the queue's own counts.
TEST_F(SchedulerTest, EveryFinishedTrajectoryIsWrittenToSamplesOnce) {
  testing::TempDir dir;
  SamplesWriterOptions samples_options =
      SamplesWriterOptionsFromSpec(config::JobSpec());
  samples_options.path = dir.path() + "/samples.jsonl";
  std::unique_ptr<SamplesWriter> samples =
      *SamplesWriter::Create(samples_options);
  SchedulerOptions options = Small();
  options.dynamic_sampling = true;  // an all-wrong group is dropped
  options.outcomes = samples.get();
  Start(options);
  AddGenrm("genrm-a");
  std::set<std::string> trained;
  std::set<std::string> aborted;
  std::set<std::string> all_wrong;
  int groups = 0;
  int idle_rounds = 0;
  while (scheduler_->state() == v1::JOB_STATE_RUNNING && idle_rounds < 3) {
    absl::StatusOr<std::optional<PromptGroup>> next =
        scheduler_->NextPromptGroup();
    ASSERT_THAT(next.status(), IsOk());
    if (next->has_value()) {
      idle_rounds = 0;
      const PromptGroup group = **next;
      const int64_t version = scheduler_->policy_version();
      auto add = [&](int index, Kind kind) {
        ASSERT_THAT(
            scheduler_->AddTrajectory(Trajectory(group, index, kind, version)),
            IsOk());
      };
      const int n = groups++;
      if (n == 1) {
        for (int i = 0; i < 4; ++i) add(i, Kind::kWrong);
        for (int i = 0; i < 4; ++i) {
          all_wrong.insert(absl::StrCat(group.group_id, "/", i));
        }
      } else if (n == 2) {
        // One member is with the GenRM, one scored, when the stream breaks.
        add(0, Kind::kSound);
        add(1, Kind::kWrong);
        ASSERT_THAT(scheduler_->AbortGroup(group.group_id, "stream broken"),
                    IsOk());
        aborted = {absl::StrCat(group.group_id, "/0"),
                   absl::StrCat(group.group_id, "/1")};
      } else {
        add(0, Kind::kSound);
        add(1, Kind::kWrong);
        add(2, Kind::kFlawed);
        add(3, Kind::kWrong);
      }
      AnswerAllOpenCalls();
      continue;
    }
    std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
    if (batch == nullptr) {
      ++idle_rounds;
      continue;
    }
    idle_rounds = 0;
    for (const v1::ScoredTrajectory& member : batch->trajectories) {
      trained.insert(member.trajectory().trajectory_id());
    }
    ASSERT_THAT(scheduler_->CompleteTrainStep(batch->step, batch->step, {}),
                IsOk());
  }
  ASSERT_EQ(scheduler_->state(), v1::JOB_STATE_STOPPING);  // NOTE [job end]
  ASSERT_THAT(trained, SizeIs(3 * 2 * 4));
  ASSERT_THAT(samples->Flush(), IsOk());

  absl::StatusOr<std::string> text = files::ReadFile(samples_options.path);
  ASSERT_THAT(text.status(), IsOk());
  std::map<std::string, nlohmann::json> lines;
  for (absl::string_view line :
       absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    nlohmann::json json = nlohmann::json::parse(line);
    const std::string id = json["trajectory_id"];
    EXPECT_TRUE(lines.emplace(id, json).second) << id << " written twice";
  }
  int64_t dropped_lines = 0;
  for (const auto& [id, json] : lines) {
    if (trained.count(id) > 0) {
      EXPECT_EQ(json["outcome"], "trained") << id;
      EXPECT_FALSE(json["reward"].is_null()) << id;
      EXPECT_FALSE(json["advantage"].is_null()) << id;
      continue;
    }
    ++dropped_lines;
    EXPECT_EQ(json["outcome"], "dropped") << id;
    if (aborted.count(id) > 0) {
      EXPECT_EQ(json["drop_reason"], "aborted") << id;
    } else {
      EXPECT_EQ(json["drop_reason"], "no_signal") << id;
      EXPECT_EQ(all_wrong.count(id), 1u) << id;
      EXPECT_EQ(json["reward"], -1.0) << id;
      EXPECT_EQ(json["verdict_status"], "skipped") << id;
    }
  }
  for (const std::string& id : trained) EXPECT_EQ(lines.count(id), 1u) << id;
  for (const std::string& id : aborted) EXPECT_EQ(lines.count(id), 1u) << id;
  EXPECT_EQ(lines.at(*aborted.begin())["verdict_status"], nullptr);
  // The file agrees with the queue: nothing finished went unwritten.
  const TrajectoryCounts counts = scheduler_->queue().Counts();
  EXPECT_EQ(counts.trained_total, static_cast<int64_t>(trained.size()));
  EXPECT_EQ(counts.dropped_total, dropped_lines);
  EXPECT_GE(dropped_lines, 2 + 4);  // the aborted pair and one all-wrong group
}

TEST_F(SchedulerTest, AFailedStepHandsOutTheSameBatchAgain) {
  SchedulerOptions options = Small();
  options.groups_per_step = 1;
  Start(options);
  AddGenrm("genrm-a");
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kSound});
  AnswerAllOpenCalls();
  std::shared_ptr<const TrainBatch> first = scheduler_->TakeTrainBatch();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(scheduler_->TakeTrainBatch(), nullptr);
  ASSERT_THAT(scheduler_->FailTrainStep(1, "rank 1 died"), IsOk());
  std::shared_ptr<const TrainBatch> again = scheduler_->TakeTrainBatch();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->step, 1);
  EXPECT_EQ(again->trajectories[3].trajectory().trajectory_id(),
            first->trajectories[3].trajectory().trajectory_id());
}

TEST_F(SchedulerTest, BackpressureRejectsPastTheCapacity) {
  SchedulerOptions options = Small();
  options.queue.capacity = 3;
  options.queue.backpressure = Backpressure::kReject;
  Start(options);
  AddGenrm("genrm-a");
  auto group = scheduler_->NextPromptGroup();
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(
        scheduler_->AddTrajectory(Trajectory(**group, i, Kind::kWrong, 0)),
        IsOk());
  }
  EXPECT_THAT(
      scheduler_->AddTrajectory(Trajectory(**group, 3, Kind::kWrong, 0)),
      StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(SchedulerTest, SnapshotAndRestoreContinueTheSameJob) {
  SchedulerOptions options = Small();
  options.groups_per_step = 2;
  options.total_steps = 4;
  Start(options);
  AddGenrm("genrm-a");
  // Step 1 trains; then one complete group, one incomplete group.
  PromptGroup g0 =
      Generate({Kind::kWrong, Kind::kSound, Kind::kWrong, Kind::kWrong});
  Generate({Kind::kWrong, Kind::kWrong, Kind::kFlawed, Kind::kWrong});
  AnswerAllOpenCalls();
  ASSERT_NE(scheduler_->TakeTrainBatch(), nullptr);
  ASSERT_THAT(scheduler_->CompleteTrainStep(1, 1, {}), IsOk());
  PromptGroup complete =
      Generate({Kind::kSound, Kind::kFlawed, Kind::kWrong, Kind::kWrong}, 1);
  AnswerAllOpenCalls();
  PromptGroup partial = Generate({Kind::kSound, Kind::kWrong}, 1);
  const v1::SchedulerSnapshot snapshot = scheduler_->Snapshot();
  EXPECT_EQ(snapshot.step(), 1);
  EXPECT_EQ(snapshot.prompt_source_position(), 4);

  scheduler_.reset();
  Start(options, &snapshot);
  AddGenrm("genrm-a");
  EXPECT_EQ(scheduler_->steps_done(), 1);
  EXPECT_EQ(scheduler_->policy_version(), 1);
  v1::JobStatus status = scheduler_->GetJobStatus();
  EXPECT_EQ(status.counters().at("scheduler.groups.interrupted"), 1);
  EXPECT_EQ(status.trajectories_by_state().at("scored"), 4);  // `complete`
  // The interrupted group's prompt comes back first, then fresh prompts
  // continue where the old process stopped.
  auto next = scheduler_->NextPromptGroup();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->prompt.prompt_id(), partial.prompt.prompt_id());
  EXPECT_NE((*next)->group_id, partial.group_id);  // group ids never reused
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(
        scheduler_->AddTrajectory(Trajectory(**next, i, Kind::kWrong, 1)),
        IsOk());
  }
  std::shared_ptr<const TrainBatch> batch = scheduler_->TakeTrainBatch();
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->step, 2);
  EXPECT_EQ(batch->trajectories[0].trajectory().group_id(), complete.group_id);
  EXPECT_TRUE(batch->trajectories[1].flawed());
  auto fresh = scheduler_->NextPromptGroup();
  ASSERT_TRUE(fresh->has_value());
  EXPECT_EQ((*fresh)->prompt.prompt_id(), "arith-4");
  (void)g0;
}

TEST_F(SchedulerTest, RestoringASnapshotGivesTheSameSnapshot) {
  SchedulerOptions options = Small();
  options.groups_per_step = 2;
  options.total_steps = 4;
  Start(options);
  AddGenrm("genrm-a");
  Generate({Kind::kWrong, Kind::kSound, Kind::kFlawed, Kind::kWrong});
  Generate({Kind::kSound, Kind::kSound, Kind::kWrong, Kind::kWrong});
  AnswerAllOpenCalls();
  ASSERT_NE(scheduler_->TakeTrainBatch(), nullptr);
  ASSERT_THAT(scheduler_->CompleteTrainStep(1, 1, {}), IsOk());
  // One complete group waiting, one scored and batched pending, a prompt
  // queued for regeneration, counters of every kind.
  Generate({Kind::kFlawed, Kind::kWrong, Kind::kWrong, Kind::kSound}, 1);
  AnswerAllOpenCalls();
  ASSERT_EQ(scheduler_->TakeTrainBatch(), nullptr);  // 1 of 2 groups
  Generate({Kind::kSound, Kind::kWrong, Kind::kWrong, Kind::kWrong}, 1);
  AnswerAllOpenCalls();
  auto aborted = scheduler_->NextPromptGroup();
  ASSERT_THAT(scheduler_->AbortGroup((*aborted)->group_id, "test"), IsOk());
  const v1::SchedulerSnapshot before = scheduler_->Snapshot();
  ASSERT_GT(before.regenerate_size(), 0);

  scheduler_.reset();
  Start(options, &before);
  const v1::SchedulerSnapshot after = scheduler_->Snapshot();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
      << "before:\n"
      << before.DebugString() << "after:\n"
      << after.DebugString();
}

TEST_F(SchedulerTest, RestoreRefusesAPromptSourceAtAnotherPosition) {
  Start(Small());
  AddGenrm("genrm-a");
  Generate({Kind::kWrong, Kind::kWrong, Kind::kWrong, Kind::kWrong});
  v1::SchedulerSnapshot snapshot = scheduler_->Snapshot();
  config::JobSpec spec = ArithSpec();
  SchedulerOptions options = Small();
  options.clock = &clock_;
  auto restored =
      Scheduler::Create(options, *tasks::MakePromptSource(spec, 0),
                        *tasks::MakeAnswerVerifier(spec), &client_, &snapshot);
  EXPECT_THAT(restored.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("prompt source")));
}

TEST(SchedulerOptionsTest, FromSpecMapsTheKnobs) {
  config::JobSpec spec = ArithSpec();
  spec.rollout.group_size = 5;
  spec.rollout.prompts_per_step = 3;
  spec.scheduler.max_staleness = 2;
  spec.algorithm.flawed_penalty = 0.5;
  spec.algorithm.advantage = config::AdvantageEstimator::kDrGrpo;
  spec.genrm.request_timeout_ms = 1500;
  spec.scheduler.backpressure = config::Backpressure::kReject;
  SchedulerOptions options = SchedulerOptionsFromSpec(spec);
  EXPECT_EQ(options.group_size, 5);
  EXPECT_EQ(options.groups_per_step, 3);
  EXPECT_EQ(options.max_staleness, 2);
  EXPECT_EQ(options.rewards.flawed_penalty, 0.5);
  EXPECT_FALSE(options.advantages.scale_by_std);
  EXPECT_EQ(options.genrm.request_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options.queue.backpressure, Backpressure::kReject);
  options.group_size = 0;
  EXPECT_THAT(
      ValidateSchedulerOptions(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("group_size")));
}

}  // namespace
}  // namespace fapo::scheduler
