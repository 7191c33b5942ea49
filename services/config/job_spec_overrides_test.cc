// --set a.b.c=value overrides: applied to the document before it is read,
// checked like any other key, and blamed on "--set a.b.c" when wrong.
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/config/job_spec.h"
#include "services/config/test_util.h"
#include "services/status/status_matchers.h"

namespace fapo::config {
namespace {

using ::fapo::config::testing::ErrorLines;
using ::fapo::config::testing::SourceDir;
using ::fapo::config::testing::Testdata;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;

constexpr char kMinimal[] = "job:\n  name: demo\ndata:\n  task: arith\n";

absl::StatusOr<JobSpec> Parse(const std::string& text,
                              const std::vector<std::string>& overrides) {
  return ParseJobSpec(text, "job.yaml", overrides);
}

std::vector<std::string> Problems(const std::string& text,
                                  const std::vector<std::string>& overrides) {
  absl::StatusOr<JobSpec> spec = Parse(text, overrides);
  EXPECT_THAT(spec, StatusIs(absl::StatusCode::kInvalidArgument));
  return spec.ok() ? std::vector<std::string>{} : ErrorLines(spec.status());
}

TEST(OverridesTest, SetNumbersBoolsStringsAndEnums) {
  ASSERT_OK_AND_ASSIGN(
      JobSpec spec,
      Parse(kMinimal,
            {"rollout.workers=4", "rollout.temperature=0.5",
             "trainer.learning_rate=1e-4", "data.shuffle=false",
             "job.name=renamed", "policy.model_dir=/models/my model",
             "data.math.prompt_field='123'", "algorithm.advantage=dr_grpo"}));
  EXPECT_EQ(spec.rollout.workers, 4);
  EXPECT_EQ(spec.rollout.temperature, 0.5);
  EXPECT_EQ(spec.trainer.learning_rate, 1e-4);
  EXPECT_FALSE(spec.data.shuffle);
  EXPECT_EQ(spec.job.name, "renamed");
  EXPECT_EQ(spec.job.output_dir, "runs/renamed");  // derived after --set
  EXPECT_EQ(spec.policy.model_dir, "/models/my model");
  EXPECT_EQ(spec.policy.tokenizer_path, "/models/my model/tokenizer.json");
  EXPECT_EQ(spec.data.math.prompt_field, "123");
  EXPECT_EQ(spec.algorithm.advantage, AdvantageEstimator::kDrGrpo);
}

TEST(OverridesTest, CreatesMissingSectionsAndRequiredKeys) {
  // The file has no job.name and no genrm section: --set supplies both.
  ASSERT_OK_AND_ASSIGN(
      JobSpec spec,
      Parse("data:\n  task: arith\n",
            {"job.name=from-cli", "genrm.backend=model",
             "genrm.model.model_dir=models/genrm", "genrm.model.samples=5",
             "algorithm.overlong_penalty.enabled=true",
             "algorithm.overlong_penalty.max_response_tokens=32"}));
  EXPECT_EQ(spec.job.name, "from-cli");
  EXPECT_EQ(spec.genrm.backend, GenrmBackend::kModel);
  EXPECT_EQ(spec.genrm.model.model_dir, "models/genrm");
  EXPECT_EQ(spec.genrm.model.samples, 5);
  EXPECT_TRUE(spec.algorithm.overlong_penalty.enabled);
  EXPECT_EQ(spec.algorithm.overlong_penalty.max_response_tokens, 32);
}

TEST(OverridesTest, FillsAnEmptySection) {
  ASSERT_OK_AND_ASSIGN(JobSpec spec, Parse(std::string(kMinimal) + "metrics:\n",
                                           {"metrics.port=9100"}));
  EXPECT_EQ(spec.metrics.port, 9100);
}

TEST(OverridesTest, LaterOverridesWin) {
  ASSERT_OK_AND_ASSIGN(JobSpec spec,
                       Parse(std::string(kMinimal) + "rollout:\n  workers: 2\n",
                             {"rollout.workers=3", "rollout.workers=5"}));
  EXPECT_EQ(spec.rollout.workers, 5);
}

TEST(OverridesTest, FlowMapReplacesAWholeSection) {
  ASSERT_OK_AND_ASSIGN(
      JobSpec spec,
      Parse(std::string(kMinimal) + "rollout:\n  workers: 2\n  top_k: 5\n",
            {"rollout={group_size: 4, temperature: 0}"}));
  EXPECT_EQ(spec.rollout.group_size, 4);
  EXPECT_EQ(spec.rollout.temperature, 0.0);
  EXPECT_EQ(spec.rollout.workers, 1);  // the file's rollout map is gone
  EXPECT_EQ(spec.rollout.top_k, 0);
}

TEST(OverridesTest, ReadingTheTestdataFileWithOverrides) {
  std::filesystem::current_path(SourceDir());
  ASSERT_OK_AND_ASSIGN(
      JobSpec spec,
      LoadJobSpecFile(Testdata("minimal.yaml"),
                      {"job.steps=10", "scheduler.deterministic=true",
                       "scheduler.max_staleness=0"}));
  EXPECT_EQ(spec.job.name, "minimal");
  EXPECT_EQ(spec.job.steps, 10);
  EXPECT_TRUE(spec.scheduler.deterministic);
}

TEST(OverridesTest, UnknownKeyIsAnError) {
  EXPECT_THAT(
      Problems(kMinimal,
               {"rollout.wokers=4", "rolout.workers=4", "trainer.lr=0.1"}),
      ElementsAre("--set rollout.wokers: rollout.wokers: unknown key (did "
                  "you mean workers?)",
                  "--set rolout.workers: rolout: unknown key (did you mean "
                  "rollout?)",
                  "--set trainer.lr: trainer.lr: unknown key (known keys "
                  "here: ranks, backend, collective_timeout_ms, "
                  "learning_rate, weight_decay, "
                  "adam_beta1, adam_beta2, adam_eps, warmup_steps, "
                  "lr_schedule, min_lr_ratio, grad_clip, "
                  "minibatches_per_step, micro_batch_size, checkpoint_every, "
                  "keep_checkpoints, resume)"));
}

TEST(OverridesTest, BadValuesNameTheOverride) {
  EXPECT_THAT(
      Problems(kMinimal, {"rollout.temperature=hot", "rollout.top_p=1.5",
                          "rollout.workers=[1, 2]", "data.shuffle=yes",
                          "trainer.ranks=99999999999999999999",
                          "job.name=", "policy.device=gpu"}),
      ElementsAre(
          "--set rollout.temperature: rollout.temperature: expected a "
          "number, got the string \"hot\"",
          "--set rollout.top_p: rollout.top_p: must be in (0, 1], got 1.5",
          "--set rollout.workers: rollout.workers: expected an integer, got "
          "a list",
          "--set data.shuffle: data.shuffle: expected true or false, got the "
          "string \"yes\" (only true and false are booleans here)",
          "--set trainer.ranks: trainer.ranks: must be in [1, 4096], got "
          "99999999999999999999",
          "--set job.name: job.name: expected a string, got an empty value",
          "--set policy.device: policy.device: must be one of cpu, cuda, got "
          "\"gpu\" (did you mean cpu?)"));
}

TEST(OverridesTest, CrossFieldProblemsPointAtTheOverride) {
  EXPECT_THAT(Problems(kMinimal, {"trainer.backend=nccl",
                                  "scheduler.worker_timeout_ms=500"}),
              ElementsAre("--set trainer.backend: trainer.backend: nccl needs "
                          "policy.device cuda, got cpu (use gloo on CPU)",
                          "--set scheduler.worker_timeout_ms: "
                          "scheduler.worker_timeout_ms: must be > "
                          "scheduler.heartbeat_interval_ms (1000), got 500"));
  // A required key missing under a section the override created.
  EXPECT_THAT(
      Problems(kMinimal, {"genrm.openai.model=m", "genrm.backend=openai"}),
      ElementsAre("--set genrm.openai.model: genrm.openai.base_url: "
                  "required when genrm.backend is openai"));
}

TEST(OverridesTest, FileProblemsKeepTheirLinesAlongsideOverrideProblems) {
  EXPECT_THAT(
      Problems(std::string(kMinimal) + "rollout:\n  top_k: -1\n",
               {"rollout.workers=0"}),
      ElementsAre("job.yaml:6:10: rollout.top_k: must be in [0, 1000000], got "
                  "-1",
                  "--set rollout.workers: rollout.workers: must be in [1, "
                  "4096], got 0"));
}

TEST(OverridesTest, MalformedOverridesAreClearErrors) {
  EXPECT_THAT(
      Problems(kMinimal,
               {"rollout.top_k", "=4", "rollout..workers=4", ".workers=4",
                "rollout.workers=[1,", "job.name.first=x"}),
      ElementsAre(
          "--set rollout.top_k: malformed override \"rollout.top_k\": no "
          "'='; expected KEY.PATH=VALUE, e.g. rollout.workers=4",
          "--set =4: malformed override \"=4\": the key is empty; expected "
          "KEY.PATH=VALUE, e.g. rollout.workers=4",
          "--set rollout..workers=4: malformed override "
          "\"rollout..workers=4\": a key segment is empty; expected "
          "KEY.PATH=VALUE, e.g. rollout.workers=4",
          "--set .workers=4: malformed override \".workers=4\": a key segment "
          "is empty; expected KEY.PATH=VALUE, e.g. rollout.workers=4",
          "--set rollout.workers: rollout.workers: invalid YAML value "
          "\"[1,\": end of sequence flow not found",
          "--set job.name.first: job.name.first: cannot set a key under "
          "job.name: it holds the string \"demo\", not a map"));
}

TEST(OverridesTest, OverridesDoNotRescueAnEmptyFile) {
  EXPECT_THAT(Problems("", {"job.name=x", "data.task=arith"}),
              ElementsAre("job.yaml: is empty (a job spec needs at least "
                          "job.name and data.task)"));
}

}  // namespace
}  // namespace fapo::config
