// `fapo launch` as a user runs it: the real binary starting the real
// services on loopback for a few steps of the embedded tiny policy. Checks
// the run directory, that every process is gone afterwards, and the two
// ways a run ends early: Ctrl-C (exit 130 with a checkpoint, then the same
// command resumes to the end) and a process killed mid-run (exit 1 naming
// it).
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/config/job_spec.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::BinaryPath;
using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::ReadFileOrEmpty;
using ::fapo::testing::SourcePath;
using ::fapo::testing::Subprocess;
using ::testing::HasSubstr;

class LaunchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(dir_.status(), IsOk());
    model_dir_ = dir_.path() + "/tiny-policy";
    run_dir_ = dir_.path() + "/run";
    auto made = testing::RunCommand(
        {BinaryPath("fapo"), "init-model", "--out", model_dir_, "--seed", "1"},
        absl::Seconds(60));
    ASSERT_THAT(made, IsOk());
    ASSERT_EQ(made->exit_code, 0) << made->stderr_text;
  }

  std::vector<std::string> Command(int steps) {
    return {BinaryPath("fapo"),
            "launch",
            SourcePath("configs/quickstart.yaml"),
            "--set",
            "policy.model_dir=" + model_dir_,
            "--set",
            "job.output_dir=" + run_dir_,
            "--set",
            absl::StrCat("job.steps=", steps),
            "--set",
            "rollout.group_size=4",
            "--set",
            "rollout.prompts_per_step=4",
            "--set",
            "rollout.max_new_tokens=16",
            "--set",
            "trainer.micro_batch_size=8",
            "--set",
            "trainer.checkpoint_every=1000",
            "--set",
            "scheduler.heartbeat_interval_ms=200",
            "--set",
            "scheduler.worker_timeout_ms=3000",
            "--progress",
            "line",
            "--progress-every-s",
            "1",
            "--stop-timeout-s",
            "30"};
  }

  std::vector<nlohmann::json> MetricsLines() {
    return MetricsLinesOf(run_dir_);
  }
  std::vector<nlohmann::json> MetricsLinesOf(const std::string& run_dir) {
    std::ifstream in(run_dir + "/metrics.jsonl");
    std::vector<nlohmann::json> lines;
    // A line still being written is not one yet.
    for (std::string line; std::getline(in, line) && !in.eof();) {
      nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
      EXPECT_FALSE(parsed.is_discarded()) << "metrics.jsonl: '" << line << "'";
      if (!parsed.is_discarded()) lines.push_back(std::move(parsed));
    }
    return lines;
  }

  // The processes launch.json names, none of which may be running.
  void ExpectEveryProcessGone() {
    const std::string text = ReadFileOrEmpty(run_dir_ + "/launch.json");
    nlohmann::json launch = nlohmann::json::parse(text, nullptr, false);
    ASSERT_TRUE(launch.is_object() && launch["processes"].is_array())
        << "launch.json: " << text;
    for (const nlohmann::json& process : launch["processes"]) {
      const pid_t pid = process["pid"].get<int>();
      // Reaped by the launcher: the pid no longer exists (or is reused by
      // an unrelated process, which a zombie check cannot tell apart; the
      // launcher's exit means it reaped them).
      const std::string stat =
          ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/cmdline"));
      EXPECT_THAT(stat, ::testing::Not(HasSubstr(run_dir_)))
          << process["name"] << " (pid " << pid << ") is still running";
    }
  }

  // Waits until metrics.jsonl has `steps` lines.
  bool WaitForSteps(size_t steps, Subprocess& launcher) {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline && launcher.Running()) {
      if (MetricsLines().size() >= steps) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  testing::TempDir dir_{"fapo-launch-"};
  std::string model_dir_;
  std::string run_dir_;
};

TEST_F(LaunchTest, RunsTheJobAndWritesTheRunDirectory) {
  constexpr int kSteps = 3;
  std::vector<std::string> command = Command(kSteps);
  command.insert(command.end(), {"--set", "trainer.ranks=2"});
  auto result = testing::RunCommand(command, absl::Seconds(240));
  ASSERT_THAT(result, IsOk());
  ASSERT_EQ(result->exit_code, 0) << result->stdout_text << result->stderr_text;
  EXPECT_THAT(result->stdout_text, HasSubstr("step 3/3"));
  EXPECT_THAT(result->stdout_text, HasSubstr("run directory: " + run_dir_));

  // The config snapshot is what every service read: a valid spec with the
  // overrides in it.
  absl::StatusOr<config::JobSpec> snapshot =
      config::LoadJobSpecFile(run_dir_ + "/config.yaml");
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(snapshot->policy.model_dir, model_dir_);
  EXPECT_EQ(snapshot->job.steps, kSteps);

  std::vector<nlohmann::json> lines = MetricsLines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kSteps));
  EXPECT_EQ(lines.back()["step"], kSteps);
  EXPECT_TRUE(
      testing::WaitForFile(run_dir_ + "/checkpoints/step-3/policy/config.json",
                           absl::Seconds(1))
          .ok());

  nlohmann::json launch =
      nlohmann::json::parse(ReadFileOrEmpty(run_dir_ + "/launch.json"));
  std::vector<std::string> names;
  for (const nlohmann::json& process : launch["processes"]) {
    names.push_back(process["name"]);
    EXPECT_THAT(ReadFileOrEmpty(process["log"].get<std::string>()),
                HasSubstr("stopped cleanly"))
        << process["name"];
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("trainer-0", "trainer-1",
                                                     "scheduler", "genrm-0",
                                                     "rollout-0", "rollout-1"));
  nlohmann::json targets = nlohmann::json::parse(
      ReadFileOrEmpty(run_dir_ + "/prometheus_targets.json"));
  EXPECT_EQ(targets.size(), 6u);
  // The run as one page (`fapo report`), written as the job ended.
  const std::string report = ReadFileOrEmpty(run_dir_ + "/report.md");
  EXPECT_THAT(report, HasSubstr(absl::StrCat("Step ", kSteps, " of ", kSteps,
                                             " (finished)")));
  EXPECT_THAT(report, HasSubstr("## Trajectories (samples.jsonl)"));
  // And as a web page beside it, with this run's curves.
  const std::string page = ReadFileOrEmpty(run_dir_ + "/report.html");
  EXPECT_THAT(page, HasSubstr("data-chart=\"accuracy\""));
  ExpectEveryProcessGone();
}

TEST_F(LaunchTest, CtrlCStopsWithACheckpointAndTheSameCommandResumes) {
  constexpr int kSteps = 12;
  const std::string log = dir_.path() + "/launch-1.log";
  auto launcher = Subprocess::Start(Command(kSteps), log);
  ASSERT_THAT(launcher, IsOk());
  ASSERT_TRUE(WaitForSteps(2, **launcher)) << ReadFileOrEmpty(log);
  (*launcher)->Signal(SIGINT);
  EXPECT_THAT((*launcher)->Wait(absl::Seconds(90)), IsOkAndHolds(130))
      << ReadFileOrEmpty(log);
  EXPECT_THAT(ReadFileOrEmpty(log), HasSubstr("interrupted"));
  ExpectEveryProcessGone();
  const size_t stopped_at = MetricsLines().size();
  ASSERT_GE(stopped_at, 2u);
  ASSERT_LT(stopped_at, static_cast<size_t>(kSteps)) << "too late to test";
  EXPECT_TRUE(
      testing::WaitForFile(absl::StrCat(run_dir_, "/checkpoints/step-",
                                        stopped_at, "/policy/config.json"),
                           absl::Seconds(1))
          .ok())
      << "no checkpoint of step " << stopped_at;

  auto resumed = testing::RunCommand(Command(kSteps), absl::Seconds(240));
  ASSERT_THAT(resumed, IsOk());
  ASSERT_EQ(resumed->exit_code, 0)
      << resumed->stdout_text << resumed->stderr_text;
  // One line per step, no step twice, none missing.
  std::vector<nlohmann::json> lines = MetricsLines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kSteps));
  for (int i = 0; i < kSteps; ++i) EXPECT_EQ(lines[i]["step"], i + 1);
  EXPECT_THAT(ReadFileOrEmpty(run_dir_ + "/logs/scheduler.log"),
              HasSubstr(absl::StrCat("resuming at step ", stopped_at)));
}

// Issue #6's resume test: stopped after step k and resumed, a
// deterministic job logs the same metrics as an uninterrupted one with the
// same seed (NOTE [deterministic mode] in scheduler/scheduler.h).
TEST_F(LaunchTest, ADeterministicJobResumedRepeatsTheUninterruptedRun) {
  constexpr int kSteps = 8;
  // A policy that gets some answers right, so rewards vary and every step
  // moves the weights (the untrained one earns -1 everywhere: no gradient).
  const std::string warm = dir_.path() + "/warm";
  auto sft = testing::RunCommand({BinaryPath("fapo"), "sft", "--out", warm,
                                  "--steps", "300", "--warmup-steps", "30"},
                                 absl::Seconds(300));
  ASSERT_THAT(sft, IsOk());
  ASSERT_EQ(sft->exit_code, 0) << sft->stderr_text;
  auto deterministic = [&](const std::string& run_dir) {
    std::vector<std::string> command = Command(kSteps);
    command.insert(
        command.end(),
        {"--set", "scheduler.deterministic=true", "--set",
         "scheduler.max_staleness=0", "--set", "policy.model_dir=" + warm,
         "--set", "trainer.learning_rate=1e-3", "--set",
         "rollout.max_new_tokens=40", "--set", "data.arith.max_ops=3", "--set",
         "job.output_dir=" + run_dir});
    return command;
  };
  const std::string straight = dir_.path() + "/straight";
  auto uninterrupted =
      testing::RunCommand(deterministic(straight), absl::Seconds(300));
  ASSERT_THAT(uninterrupted, IsOk());
  ASSERT_EQ(uninterrupted->exit_code, 0) << uninterrupted->stderr_text;

  const std::string log = dir_.path() + "/launch-interrupted.log";
  auto launcher = Subprocess::Start(deterministic(run_dir_), log);
  ASSERT_THAT(launcher, IsOk());
  ASSERT_TRUE(WaitForSteps(3, **launcher)) << ReadFileOrEmpty(log);
  (*launcher)->Signal(SIGINT);
  EXPECT_THAT((*launcher)->Wait(absl::Seconds(90)), IsOkAndHolds(130))
      << ReadFileOrEmpty(log);
  const size_t stopped_at = MetricsLines().size();
  ASSERT_LT(stopped_at, static_cast<size_t>(kSteps)) << "too late to test";
  auto resumed =
      testing::RunCommand(deterministic(run_dir_), absl::Seconds(300));
  ASSERT_THAT(resumed, IsOk());
  ASSERT_EQ(resumed->exit_code, 0) << resumed->stderr_text;

  const std::vector<nlohmann::json> expected = MetricsLinesOf(straight);
  const std::vector<nlohmann::json> actual = MetricsLines();
  ASSERT_EQ(expected.size(), static_cast<size_t>(kSteps));
  // The comparison means something only when the run learns.
  EXPECT_GT(expected.back()["grad_norm"].get<double>(), 0.0);
  EXPECT_GT(expected.back()["accuracy"].get<double>(), 0.0);
  ASSERT_EQ(actual.size(), static_cast<size_t>(kSteps));
  // Everything the run computed; not the wall-clock timings.
  for (int i = 0; i < kSteps; ++i) {
    SCOPED_TRACE(
        absl::StrCat("step ", i + 1, " (stopped after step ", stopped_at, ")"));
    for (const char* key :
         {"step", "policy_version", "num_trajectories", "num_tokens",
          "generated_tokens", "reward_mean", "accuracy", "alpha", "beta",
          "gamma", "flawed_positive_ratio", "staleness_mean", "loss",
          "clip_fraction", "approx_kl", "grad_norm", "entropy",
          "learning_rate"}) {
      EXPECT_EQ(actual[i][key], expected[i][key]) << key;
    }
  }
}

TEST_F(LaunchTest, AProcessKilledMidRunFailsTheLaunchNamingIt) {
  const std::string log = dir_.path() + "/launch.log";
  auto launcher = Subprocess::Start(Command(200), log);
  ASSERT_THAT(launcher, IsOk());
  ASSERT_TRUE(WaitForSteps(1, **launcher)) << ReadFileOrEmpty(log);
  // launch.json grows phase by phase; training may start before the
  // launcher has seen the last worker serve.
  int victim = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (victim == 0 && absl::Now() < deadline) {
    nlohmann::json launch = nlohmann::json::parse(
        ReadFileOrEmpty(run_dir_ + "/launch.json"), nullptr, false);
    if (launch.is_object() && launch["processes"].is_array()) {
      for (const nlohmann::json& process : launch["processes"]) {
        if (process["name"] == "rollout-1" &&
            !process["grpc_address"].get<std::string>().empty()) {
          victim = process["pid"].get<int>();
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_GT(victim, 0) << ReadFileOrEmpty(log);
  kill(victim, SIGKILL);
  EXPECT_THAT((*launcher)->Wait(absl::Seconds(60)), IsOkAndHolds(1))
      << ReadFileOrEmpty(log);
  EXPECT_THAT(ReadFileOrEmpty(log),
              HasSubstr("failed: rollout-1 was killed by SIGKILL"));
  ExpectEveryProcessGone();
}

}  // namespace
}  // namespace fapo
