// TrainerDriver over a real Scheduler (fake GenRM), a fake trainer and a
// fake rollout driver (the test streams samples itself).
#include "scheduler/trainer_driver.h"

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/clients/fake_genrm_client.h"
#include "scheduler/clients/fake_trainer_client.h"
#include "scheduler/options_from_spec.h"
#include "services/clock/fake_clock.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_testing.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::SizeIs;

class TrainerDriverTest : public ::testing::Test {
 protected:
  void Start(int total_steps, int checkpoint_every) {
    config::JobSpec spec;
    spec.data.task = config::Task::kArith;
    spec.rollout.group_size = 2;
    spec.rollout.prompts_per_step = 1;
    spec.job.steps = total_steps;
    spec.trainer.checkpoint_every = checkpoint_every;
    spec.job.output_dir = dir_.path();
    SchedulerOptions options = SchedulerOptionsFromSpec(spec);
    options.clock = &clock_;
    scheduler_ = *Scheduler::Create(options, *tasks::MakePromptSource(spec),
                                    *tasks::MakeAnswerVerifier(spec), &genrm_);
    TrainerDriverOptions driver_options = TrainerDriverOptionsFromSpec(spec);
    driver_options.metrics = registry_.get();
    driver_ = *TrainerDriver::Create(std::move(driver_options),
                                     scheduler_.get(), &trainer_, &trainer_);
    Register("trainer-0", v1::WORKER_ROLE_TRAINER, "trainer:1");
    Register("rollout-a", v1::WORKER_ROLE_ROLLOUT, "rollout-a:1");
    Register("rollout-b", v1::WORKER_ROLE_ROLLOUT, "rollout-b:1");
  }

  void Register(const std::string& id, v1::WorkerRole role,
                const std::string& address) {
    v1::WorkerInfo info;
    info.set_worker_id(id);
    info.set_role(role);
    info.set_address(address);
    info.set_capacity(1);
    ASSERT_THAT(scheduler_->RegisterWorker(info).status(), IsOk());
  }

  // One group of two wrong answers (no GenRM needed) at the current version.
  void GenerateGroup(absl::Time generated = absl::UnixEpoch()) {
    auto group = scheduler_->NextPromptGroup();
    ASSERT_THAT(group.status(), IsOk());
    ASSERT_TRUE(group->has_value());
    for (int i = 0; i < 2; ++i) {
      v1::Trajectory t;
      t.set_trajectory_id(absl::StrCat((*group)->group_id, "/", i));
      t.set_group_id((*group)->group_id);
      t.set_sample_index(i);
      t.set_response_text("#x");
      t.set_policy_version(scheduler_->policy_version());
      if (generated != absl::UnixEpoch()) {
        t.mutable_generation_finished()->set_seconds(
            absl::ToUnixSeconds(generated));
      }
      ASSERT_THAT(scheduler_->AddTrajectory(v1::Trajectory(t)), IsOk());
    }
  }

  std::vector<nlohmann::json> MetricsLines() {
    std::ifstream in(dir_.path() + "/metrics.jsonl");
    std::vector<nlohmann::json> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  // fapo_step_seconds{part=`part`}: {count, sum}; {-1, -1} when absent.
  std::pair<double, double> StepSeconds(const std::string& part) {
    return {
        metrics::testing::Read(*registry_, "fapo_step_seconds", {part})
            .value_or(-1),
        metrics::testing::HistogramSum(*registry_, "fapo_step_seconds", {part})
            .value_or(-1)};
  }

  testing::TempDir dir_{"fapo-trainer-driver-"};
  std::unique_ptr<metrics::MetricsRegistry> registry_ =
      metrics::NewMetricsRegistry();
  FakeClock clock_;
  FakeGenrmClient genrm_;
  FakeTrainerClient trainer_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<TrainerDriver> driver_;
};

TEST_F(TrainerDriverTest, RunsEachStepEndToEnd) {
  Start(/*total_steps=*/3, /*checkpoint_every=*/2);
  EXPECT_THAT(driver_->RunOnce(), IsOkAndHolds(false));  // no batch yet
  for (int step = 1; step <= 3; ++step) {
    GenerateGroup();
    ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true)) << step;
    EXPECT_EQ(scheduler_->policy_version(), step);
  }
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_SUCCEEDED);
  std::vector<v1::TrainStepRequest> steps = trainer_.steps();
  ASSERT_THAT(steps, SizeIs(3));
  EXPECT_EQ(steps[0].step(), 1);
  EXPECT_THAT(steps[0].trajectories(), SizeIs(2));
  EXPECT_EQ(steps[0].trajectories(0).reward(), -1);
  // Both rollout workers pulled versions 1 and 2 from the trainer; after
  // the last step the job is over and nobody needs version 3.
  std::vector<std::pair<std::string, int64_t>> updates = trainer_.updates();
  ASSERT_THAT(updates, SizeIs(4));
  EXPECT_EQ(updates.back().second, 2);
  // Checkpoints at step 2 (every 2) and 3 (the last), snapshots inside.
  std::vector<v1::SaveCheckpointRequest> checkpoints = trainer_.checkpoints();
  ASSERT_THAT(checkpoints, SizeIs(2));
  EXPECT_EQ(checkpoints[0].step(), 2);
  EXPECT_EQ(checkpoints[1].step(), 3);
  v1::SchedulerSnapshot snapshot;
  ASSERT_TRUE(snapshot.ParseFromString(checkpoints[0].scheduler_snapshot()));
  EXPECT_EQ(snapshot.step(), 2);
  EXPECT_EQ(snapshot.policy_version(), 2);
  // One metrics line per step.
  std::vector<nlohmann::json> lines = MetricsLines();
  ASSERT_THAT(lines, SizeIs(3));
  EXPECT_EQ(lines[2]["step"], 3);
  EXPECT_EQ(lines[2]["policy_version"], 3);
  EXPECT_DOUBLE_EQ(lines[0]["reward_mean"].get<double>(), -1.0);
  EXPECT_DOUBLE_EQ(lines[0]["accuracy"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(lines[0]["beta"].get<double>(), 1.0);
  EXPECT_TRUE(lines[0].contains("train_s"));
  EXPECT_TRUE(lines[0].contains("weight_sync_s"));
}

TEST_F(TrainerDriverTest, LinesFromAfterTheResumedCheckpointAreDropped) {
  // NOTE [metrics after a resume]: a previous process got to step 3 but the
  // job restarts at step 0 (no checkpoint): its lines describe steps that
  // are trained again.
  {
    std::ofstream old(dir_.path() + "/metrics.jsonl");
    for (int step = 1; step <= 3; ++step) {
      old << nlohmann::json({{"step", step}, {"stale", true}}).dump() << "\n";
    }
  }
  Start(/*total_steps=*/3, /*checkpoint_every=*/0);
  GenerateGroup();
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  std::vector<nlohmann::json> lines = MetricsLines();
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_FALSE(lines[0].contains("stale"));
  GenerateGroup();
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  EXPECT_THAT(MetricsLines(), SizeIs(2));
}

TEST_F(TrainerDriverTest, TheWaitForABatchSplitsIntoGenerationAndGenrm) {
  Start(/*total_steps=*/3, /*checkpoint_every=*/0);
  // NOTE [step time breakdown]: a batch generated before the wait began
  // (long ago) kept the trainer waiting for the GenRM alone.
  absl::SleepFor(absl::Milliseconds(20));
  GenerateGroup(absl::Now() - absl::Hours(1));
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  // A batch whose last sample came a second after the wait began (a
  // worker clock ahead): the split is clamped to the wait.
  GenerateGroup(absl::Now() + absl::Seconds(1));
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  // Without generation timestamps there is no split.
  GenerateGroup();
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));

  std::vector<nlohmann::json> lines = MetricsLines();
  ASSERT_THAT(lines, SizeIs(3));
  const double wait0 = lines[0]["wait_for_batch_s"].get<double>();
  EXPECT_GE(wait0, 0.02);
  EXPECT_DOUBLE_EQ(lines[0]["genrm_wait_s"].get<double>(), wait0);
  EXPECT_DOUBLE_EQ(lines[0]["generation_wait_s"].get<double>(), 0.0);
  const double wait1 = lines[1]["wait_for_batch_s"].get<double>();
  EXPECT_DOUBLE_EQ(lines[1]["genrm_wait_s"].get<double>(), 0.0);
  EXPECT_NEAR(lines[1]["generation_wait_s"].get<double>(), wait1, 1e-9);
  EXPECT_FALSE(lines[2].contains("genrm_wait_s"));
  for (const nlohmann::json& line : lines) {
    EXPECT_GE(line["step_s"].get<double>(),
              line["wait_for_batch_s"].get<double>() +
                  line["train_s"].get<double>() - 1e-9);
  }

  // The same split on /metrics: every step has a whole and a train time;
  // only the two with generation timestamps have the wait's parts.
  double step_sum = 0;
  double train_sum = 0;
  for (const nlohmann::json& line : lines) {
    step_sum += line["step_s"].get<double>();
    train_sum += line["train_s"].get<double>();
  }
  EXPECT_EQ(StepSeconds("step").first, 3);
  EXPECT_NEAR(StepSeconds("step").second, step_sum, 1e-6);
  EXPECT_EQ(StepSeconds("train").first, 3);
  EXPECT_NEAR(StepSeconds("train").second, train_sum, 1e-6);
  EXPECT_EQ(StepSeconds("weight_sync").first, 3);
  EXPECT_EQ(StepSeconds("checkpoint").first, 3);
  EXPECT_EQ(StepSeconds("genrm_wait").first, 2);
  EXPECT_NEAR(StepSeconds("genrm_wait").second, wait0, 1e-6);
  EXPECT_EQ(StepSeconds("generation_wait").first, 2);
  EXPECT_NEAR(StepSeconds("generation_wait").second, wait1, 1e-6);
}

TEST_F(TrainerDriverTest, AFailedStepIsRetriedWithTheSameBatch) {
  Start(3, 0);
  GenerateGroup();
  trainer_.FailNextSteps(1);
  EXPECT_THAT(driver_->RunOnce(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(scheduler_->policy_version(), 0);
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  std::vector<v1::TrainStepRequest> steps = trainer_.steps();
  ASSERT_THAT(steps, SizeIs(2));
  EXPECT_EQ(steps[0].step(), 1);
  EXPECT_EQ(steps[1].step(), 1);
  EXPECT_EQ(steps[1].trajectories(0).trajectory().trajectory_id(),
            steps[0].trajectories(0).trajectory().trajectory_id());
  EXPECT_EQ(scheduler_->GetJobStatus().counters().at("scheduler.steps.failed"),
            1);
}

TEST_F(TrainerDriverTest, ABrokenRolloutWorkerIsCountedNotFatal) {
  Start(3, 0);
  trainer_.BreakWorker("rollout-b:1");
  GenerateGroup();
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  EXPECT_EQ(driver_->weight_sync_failures(), 1);
  EXPECT_EQ(MetricsLines().at(0)["weight_sync_failures"], 1);
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_RUNNING);
}

TEST_F(TrainerDriverTest, StopCheckpointsThenSucceeds) {
  Start(5, 0);
  GenerateGroup();
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  EXPECT_THAT(trainer_.checkpoints(), SizeIs(0));
  scheduler_->StopJob("user asked");
  scheduler_->Tick();  // a trainer is there: Tick leaves the stop to it
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_STOPPING);
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_THAT(trainer_.checkpoints(), SizeIs(1));
  EXPECT_EQ(trainer_.checkpoints()[0].step(), 1);
}

TEST_F(TrainerDriverTest, AWorkerBehindIsBroughtUpToDateBetweenSteps) {
  Start(5, 0);
  GenerateGroup();
  ASSERT_THAT(driver_->RunOnce(), IsOkAndHolds(true));
  // A worker joins at version 0 after step 1.
  Register("rollout-late", v1::WORKER_ROLE_ROLLOUT, "rollout-late:1");
  EXPECT_THAT(driver_->RunOnce(), IsOkAndHolds(false));  // no batch: catch up
  std::vector<std::pair<std::string, int64_t>> updates = trainer_.updates();
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back(),
            std::make_pair(std::string("rollout-late:1"), int64_t{1}));
  // The registry knows at once (the rollout driver places groups by it).
  for (const v1::WorkerInfo& worker :
       scheduler_->workers().Alive(v1::WORKER_ROLE_ROLLOUT)) {
    EXPECT_EQ(worker.policy_version(), 1) << worker.worker_id();
  }
  // Up to date: no second update.
  const size_t before = trainer_.updates().size();
  EXPECT_THAT(driver_->RunOnce(), IsOkAndHolds(false));
  EXPECT_EQ(trainer_.updates().size(), before);
}

TEST_F(TrainerDriverTest, WithoutATrainerNothingIsTaken) {
  Start(3, 0);
  scheduler_->RemoveWorker("trainer-0");
  GenerateGroup();
  EXPECT_THAT(driver_->RunOnce(), IsOkAndHolds(false));
  EXPECT_THAT(trainer_.steps(), SizeIs(0));
}

TEST_F(TrainerDriverTest, TheThreadTrainsAsBatchesArrive) {
  Start(2, 0);
  driver_->Start();
  GenerateGroup();
  for (int i = 0; i < 500 && scheduler_->policy_version() < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(scheduler_->policy_version(), 1);
  GenerateGroup();
  for (int i = 0; i < 500 && scheduler_->state() != v1::JOB_STATE_SUCCEEDED;
       ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(scheduler_->state(), v1::JOB_STATE_SUCCEEDED);
  driver_->Shutdown();
}

}  // namespace
}  // namespace fapo::scheduler
