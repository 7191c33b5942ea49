#include "apps/launcher/launcher.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/config/job_spec.h"

namespace fapo::launcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

config::JobSpec Spec(int trainer_ranks, int genrm_servers,
                     int rollout_workers) {
  config::JobSpec spec;
  spec.job.name = "plan";
  spec.trainer.ranks = trainer_ranks;
  spec.genrm.servers = genrm_servers;
  spec.rollout.workers = rollout_workers;
  config::ResolveDerivedDefaults(&spec);
  return spec;
}

// The value after `flag` in `args` ("" when absent).
std::string FlagValue(const std::vector<std::string>& args,
                      const std::string& flag) {
  auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end() || it + 1 == args.end()) return "";
  return *(it + 1);
}

TEST(PlanTopologyTest, TrainersFirstThenTheSchedulerThenTheWorkers) {
  const std::vector<ServicePlan> plans =
      PlanTopology(Spec(2, 2, 3), "/run/config.yaml", {40001, 40002});
  std::vector<std::string> names;
  std::vector<int> phases;
  for (const ServicePlan& plan : plans) {
    names.push_back(plan.name);
    phases.push_back(plan.phase);
  }
  EXPECT_THAT(names,
              ElementsAre("trainer-0", "trainer-1", "scheduler", "genrm-0",
                          "genrm-1", "rollout-0", "rollout-1", "rollout-2"));
  EXPECT_THAT(phases, ElementsAre(0, 0, 1, 2, 2, 2, 2, 2));

  for (const ServicePlan& plan : plans) {
    SCOPED_TRACE(plan.name);
    EXPECT_EQ(FlagValue(plan.args, "--config"), "/run/config.yaml");
    EXPECT_EQ(FlagValue(plan.args, "--worker-id"), plan.name);
    EXPECT_EQ(FlagValue(plan.args, "--metrics-port"), "0");
    EXPECT_EQ(FlagValue(plan.args, "--host"), "127.0.0.1");
    if (plan.name == "scheduler") {
      EXPECT_EQ(plan.binary, "fapo-scheduler");
      // It binds the port every worker was told.
      EXPECT_EQ(FlagValue(plan.args, "--port"), "40001");
      EXPECT_EQ(FlagValue(plan.args, "--scheduler"), "");
    } else {
      EXPECT_EQ(FlagValue(plan.args, "--port"), "0");
      EXPECT_EQ(FlagValue(plan.args, "--scheduler"), "127.0.0.1:40001");
    }
  }
  EXPECT_EQ(plans[0].binary, "fapo-trainer");
  EXPECT_EQ(FlagValue(plans[0].args, "--rank"), "0");
  EXPECT_EQ(FlagValue(plans[1].args, "--rank"), "1");
  EXPECT_EQ(FlagValue(plans[1].args, "--rendezvous"), "127.0.0.1:40002");
  EXPECT_EQ(plans[3].binary, "fapo-genrm-server");
  EXPECT_EQ(plans[5].binary, "fapo-rollout-worker");
}

TEST(PlanTopologyTest, OneTrainerRankNeedsNoRendezvous) {
  const std::vector<ServicePlan> plans =
      PlanTopology(Spec(1, 1, 1), "c.yaml", {5, 6});
  ASSERT_EQ(plans.size(), 4u);
  EXPECT_EQ(FlagValue(plans[0].args, "--rank"), "");
  EXPECT_EQ(FlagValue(plans[0].args, "--rendezvous"), "");
}

TEST(FormatProgressTest, ShowsTheStepMetricsAndEta) {
  nlohmann::json metrics = {{"step", 12},
                            {"reward_mean", 0.4125},
                            {"accuracy", 0.875},
                            {"flawed_positive_ratio", 0.2},
                            {"staleness_mean", 0.5},
                            {"genrm_wait_s", 0.05},
                            {"step_s", 1.0}};
  EXPECT_EQ(FormatProgress(12, 300, metrics, 1.5),
            "step 12/300 | reward 0.412 | acc 0.875 | flawed 0.200 | "
            "stale 0.50 | genrm wait 5% | 1.50 s/step | ETA 7m12s");
}

TEST(FormatProgressTest, BeforeTheFirstStepOnlyTheStep) {
  EXPECT_EQ(FormatProgress(0, 300, nlohmann::json(), 0), "step 0/300");
}

TEST(RunLaunchCommandTest, BadFlagsAndSpecsExit2WithTheReason) {
  std::ostringstream out, err;
  EXPECT_EQ(RunLaunchCommand({}, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("JOB.yaml"));

  err.str("");
  EXPECT_EQ(RunLaunchCommand({"job.yaml", "--progress", "sometimes"}, out, err),
            2);
  EXPECT_THAT(err.str(), HasSubstr("--progress"));

  err.str("");
  EXPECT_EQ(RunLaunchCommand({"/nonexistent/job.yaml"}, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("/nonexistent/job.yaml"));
}

TEST(RunLaunchCommandTest, MissingServiceBinariesAreNamed) {
  const char* source = std::getenv("FAPO_SOURCE_DIR");
  ASSERT_NE(source, nullptr);
  std::ostringstream out, err;
  EXPECT_EQ(RunLaunchCommand({absl::StrCat(source, "/configs/quickstart.yaml"),
                              "--bin-dir", "/nonexistent/bin"},
                             out, err),
            2);
  EXPECT_THAT(err.str(), HasSubstr("/nonexistent/bin/fapo-scheduler is "
                                   "missing"));
}

}  // namespace
}  // namespace fapo::launcher
