// Every class of bad job spec produces a message naming the key path and
// where it is: SOURCE:LINE:COL: KEY.PATH: what is wrong.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
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
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kHeader[] = "job:\n  name: demo\ndata:\n  task: arith\n";

class JobSpecErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::current_path(SourceDir()); }

  // The problem lines of parsing `text` as "job.yaml"; fails the test when
  // it parses.
  static std::vector<std::string> Problems(
      const std::string& text, const std::vector<std::string>& overrides = {}) {
    absl::StatusOr<JobSpec> spec = ParseJobSpec(text, "job.yaml", overrides);
    EXPECT_THAT(spec, StatusIs(absl::StatusCode::kInvalidArgument));
    return spec.ok() ? std::vector<std::string>{} : ErrorLines(spec.status());
  }

  static std::vector<std::string> FileProblems(const std::string& name) {
    absl::StatusOr<JobSpec> spec = LoadJobSpecFile(Testdata(name));
    EXPECT_THAT(spec, StatusIs(absl::StatusCode::kInvalidArgument));
    return spec.ok() ? std::vector<std::string>{} : ErrorLines(spec.status());
  }
};

TEST_F(JobSpecErrorsTest, MalformedYamlGivesTheParserLineAndColumn) {
  EXPECT_THAT(FileProblems("malformed.yaml"),
              ElementsAre("services/config/testdata/malformed.yaml:5:13: "
                          "invalid YAML: end of sequence flow not found"));
  EXPECT_THAT(Problems("job:\n  name: [demo\n"),
              ElementsAre(HasSubstr("job.yaml:3:1: invalid YAML")));
  EXPECT_THAT(Problems("job:\n\tname: demo\n"),
              ElementsAre("job.yaml:2:6: invalid YAML: illegal map value"));
}

TEST_F(JobSpecErrorsTest, EmptyFileIsAnError) {
  EXPECT_THAT(FileProblems("empty.yaml"),
              ElementsAre("services/config/testdata/empty.yaml: is empty (a "
                          "job spec needs at least job.name and data.task)"));
  EXPECT_THAT(Problems(""), ElementsAre(HasSubstr("job.yaml: is empty")));
  EXPECT_THAT(Problems("~\n"), ElementsAre(HasSubstr("job.yaml: is empty")));
}

TEST_F(JobSpecErrorsTest, MissingFileIsNotFoundAndNamesThePath) {
  EXPECT_THAT(
      LoadJobSpecFile("no/such/job.yaml"),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no/such/job.yaml")));
  EXPECT_THAT(LoadJobSpecFile(Testdata("")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is a directory")));
}

TEST_F(JobSpecErrorsTest, TopLevelMustBeAMap) {
  EXPECT_THAT(FileProblems("not_a_map.yaml"),
              ElementsAre("services/config/testdata/not_a_map.yaml:1:1: the "
                          "top level must be a map of sections (job, data, "
                          "...), got a list"));
  EXPECT_THAT(Problems("just text\n"),
              ElementsAre(HasSubstr("got the string \"just text\"")));
}

TEST_F(JobSpecErrorsTest, UnknownAndDuplicateKeys) {
  EXPECT_THAT(
      FileProblems("broken_keys.yaml"),
      ElementsAre("services/config/testdata/broken_keys.yaml:4:3: job.seed: "
                  "duplicate key (first defined at line 3, column 3)",
                  "services/config/testdata/broken_keys.yaml:8:3: "
                  "rollout.temprature: unknown key (did you mean "
                  "temperature?)",
                  "services/config/testdata/broken_keys.yaml:9:3: "
                  "rollout.learning_rate: unknown key (did you mean "
                  "trainer.learning_rate?)",
                  "services/config/testdata/broken_keys.yaml:11:3: "
                  "rollout.group_size: duplicate key (first defined at line "
                  "10, column 3)",
                  "services/config/testdata/broken_keys.yaml:12:1: colour: "
                  "unknown key (known keys here: job, data, policy, rollout, "
                  "genrm, algorithm, trainer, scheduler, metrics, security)"));
}

TEST_F(JobSpecErrorsTest, DidYouMeanSuggestions) {
  EXPECT_THAT(
      Problems(std::string(kHeader) +
               "trainer:\n  learning_rte: 0.1\n  lr_shedule: cosine\n"
               "  adam_beta_1: 0.9\n"
               "genrm:\n  model:\n    temprature: 0.5\n"
               "secuirty: {}\n"),
      ElementsAre("job.yaml:6:3: trainer.learning_rte: unknown key (did you "
                  "mean learning_rate?)",
                  "job.yaml:7:3: trainer.lr_shedule: unknown key (did you "
                  "mean lr_schedule?)",
                  "job.yaml:8:3: trainer.adam_beta_1: unknown key (did you "
                  "mean adam_beta1?)",
                  "job.yaml:11:5: genrm.model.temprature: unknown key (did "
                  "you mean temperature?)",
                  "job.yaml:12:1: secuirty: unknown key (did you mean "
                  "security?)"));
  // A key that belongs to several other sections lists them all.
  EXPECT_THAT(Problems(std::string(kHeader) + "policy:\n  max_retries: 3\n"),
              ElementsAre("job.yaml:6:3: policy.max_retries: unknown key "
                          "(did you mean genrm.max_retries or "
                          "genrm.openai.max_retries?)"));
  // Dotted keys are not paths in YAML.
  EXPECT_THAT(Problems(std::string(kHeader) + "rollout.workers: 4\n"
                                              "genrm:\n  model.samples: 3\n"),
              ElementsAre("job.yaml:5:1: rollout.workers: unknown key (keys "
                          "do not nest by dots; write rollout: {workers: "
                          "...})",
                          "job.yaml:7:3: genrm.model.samples: unknown key "
                          "(keys do not nest by dots; write model: {samples: "
                          "...})"));
  // Enum values get suggestions too.
  EXPECT_THAT(Problems("job: {name: demo}\ndata: {task: Arith}\n"),
              ElementsAre("job.yaml:2:14: data.task: must be one of arith, "
                          "math, got \"Arith\" (did you mean arith?)"));
}

TEST_F(JobSpecErrorsTest, WrongTypes) {
  EXPECT_THAT(
      FileProblems("broken_types.yaml"),
      ElementsAre(
          "services/config/testdata/broken_types.yaml:3:10: job.steps: "
          "expected an integer, got the float 300.0",
          "services/config/testdata/broken_types.yaml:6:12: data.shuffle: "
          "expected true or false, got the string \"yes\" (only true and "
          "false are booleans here)",
          "services/config/testdata/broken_types.yaml:7:14: data.eval_size: "
          "expected an integer, got the string \"1024\" (remove the quotes)",
          "services/config/testdata/broken_types.yaml:9:16: "
          "rollout.temperature: expected a number, got the string \"hot\"",
          "services/config/testdata/broken_types.yaml:11:5: rollout.workers: "
          "expected an integer, got a map",
          "services/config/testdata/broken_types.yaml:12:10: rollout.top_k: "
          "expected an integer, got a list",
          "services/config/testdata/broken_types.yaml:14:12: genrm.backend: "
          "must be one of rule, model, openai, latency, got \"vllm\"",
          "services/config/testdata/broken_types.yaml:15:10: trainer: "
          "expected a map, got the integer 5",
          "services/config/testdata/broken_types.yaml:18:5: metrics.host: "
          "expected a string, got a map",
          "services/config/testdata/broken_types.yaml:19:12: "
          "metrics.enabled: expected true or false, got the string \"True\" "
          "(only true and false are booleans here)"));
}

TEST_F(JobSpecErrorsTest, FloatForAnInt) {
  for (const char* value : {"4.0", "4.5", "1e3", ".5"}) {
    EXPECT_THAT(
        Problems(std::string(kHeader) + "rollout:\n  workers: " + value + "\n"),
        ElementsAre(absl::StrCat("job.yaml:6:12: rollout.workers: expected an "
                                 "integer, got the float ",
                                 value)));
  }
}

TEST_F(JobSpecErrorsTest, MapOrListForAScalar) {
  EXPECT_THAT(
      Problems(std::string(kHeader) +
               "policy:\n  model_dir: {path: x}\n  dtype: [float32]\n"
               "algorithm:\n  kl_coef:\n    value: 0.1\n"),
      ElementsAre(
          "job.yaml:6:14: policy.model_dir: expected a string, got a map",
          "job.yaml:7:10: policy.dtype: expected one of float32, bfloat16, "
          "float16, got a list",
          "job.yaml:10:5: algorithm.kl_coef: expected a number, got a map"));
  // And a scalar where a section belongs.
  EXPECT_THAT(Problems(std::string(kHeader) + "rollout: fast\n"),
              ElementsAre("job.yaml:5:10: rollout: expected a map, got the "
                          "string \"fast\""));
}

TEST_F(JobSpecErrorsTest, OnlyTrueAndFalseAreBooleans) {
  for (const char* value : {"yes", "no", "on", "off", "y", "True", "FALSE"}) {
    EXPECT_THAT(
        Problems(std::string(kHeader) + "trainer:\n  resume: " + value + "\n"),
        ElementsAre(absl::StrCat(
            "job.yaml:6:11: trainer.resume: expected true or false, got the "
            "string \"",
            value, "\" (only true and false are booleans here)")));
  }
  EXPECT_THAT(Problems(std::string(kHeader) + "trainer:\n  resume: 1\n"),
              ElementsAre("job.yaml:6:11: trainer.resume: expected true or "
                          "false, got the integer 1"));
  EXPECT_THAT(
      Problems(std::string(kHeader) + "trainer:\n  resume: \"true\"\n"),
      ElementsAre("job.yaml:6:11: trainer.resume: expected true or "
                  "false, got the string \"true\" (remove the quotes)"));
}

TEST_F(JobSpecErrorsTest, EmptyValueIsLocatedAtItsKey) {
  // yaml-cpp would place this empty value at the next line's token.
  EXPECT_THAT(
      Problems(std::string(kHeader) + "job2: {}\n" +
               "rollout:\n  workers:\n  group_size: 4\n"),
      Contains("job.yaml:7:3: rollout.workers: expected an integer, got an "
               "empty value"));
}

TEST_F(JobSpecErrorsTest, OutOfRangeAndHugeNumbers) {
  EXPECT_THAT(
      FileProblems("broken_ranges.yaml"),
      ElementsAre(
          "services/config/testdata/broken_ranges.yaml:3:10: job.steps: must "
          "be in [1, 1000000000], got 99999999999999999999",
          "services/config/testdata/broken_ranges.yaml:4:9: job.seed: must "
          "be >= 0, got -1",
          "services/config/testdata/broken_ranges.yaml:8:16: "
          "rollout.temperature: must be in [0, 10], got 12.5",
          "services/config/testdata/broken_ranges.yaml:9:10: rollout.top_p: "
          "must be in (0, 1], got 0",
          "services/config/testdata/broken_ranges.yaml:10:19: "
          "rollout.max_new_tokens: must be in [1, 1000000], got 5000000000",
          "services/config/testdata/broken_ranges.yaml:12:28: "
          "algorithm.importance_sampling_cap: must be 0 (off) or in [1, "
          "1000000], got 0.5",
          "services/config/testdata/broken_ranges.yaml:13:13: "
          "algorithm.clip_low: must be in [0, 1), got 1",
          "services/config/testdata/broken_ranges.yaml:14:18: "
          "algorithm.advantage_eps: must be in (0, 1], got 1e-400 (beyond "
          "the range of a double)",
          "services/config/testdata/broken_ranges.yaml:16:9: metrics.port: "
          "must be in [0, 65535], got 70000"));
}

TEST_F(JobSpecErrorsTest, HugeNumbersNeverWrapAround) {
  // Each would wrap to an in-range value if parsed carelessly: 2^64 + 4 is 4
  // as a uint64, 2^32 + 4 is 4 as an int32.
  EXPECT_THAT(
      Problems(std::string(kHeader) +
               "rollout:\n  workers: 18446744073709551620\n"
               "  group_size: 4294967300\n  temperature: 1e999\n"
               "  top_k: -99999999999999999999\n"
               "job2: 0\n"),
      ElementsAre("job.yaml:6:12: rollout.workers: must be in [1, 4096], got "
                  "18446744073709551620",
                  "job.yaml:7:15: rollout.group_size: must be in [2, 1024], "
                  "got 4294967300",
                  "job.yaml:8:16: rollout.temperature: must be in [0, 10], "
                  "got 1e999 (beyond the range of a double)",
                  "job.yaml:9:10: rollout.top_k: must be in [0, 1000000], "
                  "got -99999999999999999999",
                  "job.yaml:10:1: job2: unknown key (did you mean job?)"));
  EXPECT_THAT(
      Problems(std::string(kHeader) + "rollout: {temperature: .inf, top_p: "
                                      ".nan}\n"),
      ElementsAre("job.yaml:5:24: rollout.temperature: must be in [0, 10], "
                  "got .inf",
                  "job.yaml:5:37: rollout.top_p: must be in (0, 1], got .nan"));
}

TEST_F(JobSpecErrorsTest, SampleFractionIsAFractionOfGroups) {
  EXPECT_THAT(
      Problems("job:\n  name: demo\n  sample_fraction: 1.5\ndata:\n"
               "  task: arith\n"),
      ElementsAre("job.yaml:3:20: job.sample_fraction: must be in [0, 1], "
                  "got 1.5"));
  EXPECT_THAT(
      Problems("job:\n  name: demo\n  sample_fraction: -0.1\ndata:\n"
               "  task: arith\n"),
      ElementsAre("job.yaml:3:20: job.sample_fraction: must be in [0, 1], "
                  "got -0.1"));
}

TEST_F(JobSpecErrorsTest, MissingRequiredKeysPointAtTheParentMap) {
  EXPECT_THAT(FileProblems("broken_missing.yaml"),
              ElementsAre("services/config/testdata/broken_missing.yaml:1:1: "
                          "job.name: required key is missing",
                          "services/config/testdata/broken_missing.yaml:1:1: "
                          "data.task: required key is missing"));
  EXPECT_THAT(Problems("# comment\n\ndata:\n  task: arith\njob:\n  seed: 1\n"),
              ElementsAre("job.yaml:5:1: job.name: required key is missing"));
  // A section that is present but empty counts as present.
  EXPECT_THAT(Problems("data:\n  task: math\njob:\n"),
              ElementsAre("job.yaml:1:1: data.math.path: required when "
                          "data.task is math",
                          "job.yaml:3:1: job.name: required key is missing"));
}

TEST_F(JobSpecErrorsTest, CrossFieldRules) {
  EXPECT_THAT(
      FileProblems("broken_cross_field.yaml"),
      ElementsAre(
          "services/config/testdata/broken_cross_field.yaml:3:1: "
          "data.math.path: required when data.task is math",
          "services/config/testdata/broken_cross_field.yaml:7:14: "
          "data.arith.max_ops: must be >= data.arith.min_ops (5), got 3",
          "services/config/testdata/broken_cross_field.yaml:9:10: "
          "policy.dtype: float16 needs policy.device cuda, got cpu (CPU runs "
          "float32)",
          "services/config/testdata/broken_cross_field.yaml:11:12: "
          "trainer.backend: nccl needs policy.device cuda, got cpu (use gloo "
          "on CPU)",
          "services/config/testdata/broken_cross_field.yaml:14:21: "
          "rollout.prompts_per_step: must be >= trainer.minibatches_per_step "
          "(8), got 4: every minibatch needs at least one prompt group",
          "services/config/testdata/broken_cross_field.yaml:17:22: "
          "scheduler.worker_timeout_ms: must be > "
          "scheduler.heartbeat_interval_ms (2000), got 2000",
          "services/config/testdata/broken_cross_field.yaml:18:1: "
          "genrm.model.model_dir: required when genrm.backend is latency "
          "wrapping model"));
}

TEST_F(JobSpecErrorsTest, DeterministicModeNeedsLockstep) {
  EXPECT_THAT(Problems("job:\n  name: t\n"
                       "scheduler:\n  deterministic: true\n"
                       "  max_staleness: 1\ndata:\n  task: arith\n"),
              ElementsAre("job.yaml:4:18: scheduler.deterministic: needs "
                          "scheduler.max_staleness: 0 (each step's samples "
                          "drawn with the previous step's weights), got "
                          "max_staleness 1"));
  EXPECT_THAT(ParseJobSpec("job:\n  name: t\nscheduler:\n"
                           "  deterministic: true\n  max_staleness: 0\n"
                           "data:\n  task: arith\n",
                           "job.yaml"),
              IsOk());
}

TEST_F(JobSpecErrorsTest, ArithModuliOfOneAndTinyOperandsAreRefused) {
  EXPECT_THAT(Problems("job:\n  name: t\n"
                       "data:\n  task: arith\n  arith:\n"
                       "    value_modulus: 1\n    answer_modulus: 1\n"
                       "    operand_max: 1\n"),
              ElementsAre("job.yaml:6:20: data.arith.value_modulus: must be 0 "
                          "(off) or >= 2, got 1",
                          "job.yaml:7:21: data.arith.answer_modulus: must be 0 "
                          "(off) or >= 2, got 1",
                          "job.yaml:8:18: data.arith.operand_max: must be in "
                          "[2, 1000000], got 1"));
  EXPECT_THAT(ParseJobSpec("job:\n  name: t\n"
                           "data:\n  task: arith\n  arith:\n"
                           "    value_modulus: 0\n    answer_modulus: 0\n",
                           "job.yaml"),
              fapo::testing::IsOk());
}

TEST_F(JobSpecErrorsTest, GenrmBackendRequirements) {
  EXPECT_THAT(Problems(std::string(kHeader) + "genrm:\n  backend: model\n"),
              ElementsAre("job.yaml:5:1: genrm.model.model_dir: required "
                          "when genrm.backend is model"));
  EXPECT_THAT(Problems(std::string(kHeader) + "genrm:\n  backend: openai\n"),
              ElementsAre("job.yaml:5:1: genrm.openai.base_url: required "
                          "when genrm.backend is openai"));
  EXPECT_THAT(
      Problems(std::string(kHeader) +
               "genrm:\n  openai:\n    base_url: localhost:8000\n"),
      ElementsAre("job.yaml:6:3: genrm.openai.model: required when "
                  "genrm.openai.base_url is set",
                  "job.yaml:7:15: genrm.openai.base_url: must start with "
                  "http:// or https://, got \"localhost:8000\""));
  EXPECT_THAT(
      Problems(std::string(kHeader) +
               "genrm:\n  backend: latency\n  latency:\n    inner: latency\n"),
      ElementsAre("job.yaml:8:12: genrm.latency.inner: must be one of rule, "
                  "model, openai (latency cannot wrap itself), got latency"));
}

TEST_F(JobSpecErrorsTest, OverlongPenaltyRules) {
  const std::string prefix = std::string(kHeader) +
                             "rollout:\n  max_new_tokens: 100\n"
                             "algorithm:\n  overlong_penalty:\n"
                             "    enabled: true\n";
  EXPECT_THAT(Problems(prefix),
              ElementsAre("job.yaml:8:3: "
                          "algorithm.overlong_penalty.max_response_tokens: "
                          "must be > 0 when "
                          "algorithm.overlong_penalty.enabled is true, got 0"));
  EXPECT_THAT(
      Problems(prefix + "    max_response_tokens: 200\n"
                        "    buffer_tokens: 200\n"),
      ElementsAre("job.yaml:10:26: "
                  "algorithm.overlong_penalty.max_response_tokens: must be "
                  "<= rollout.max_new_tokens (100), got 200",
                  "job.yaml:11:20: algorithm.overlong_penalty.buffer_tokens: "
                  "must be < algorithm.overlong_penalty.max_response_tokens "
                  "(200), got 200"));
  EXPECT_OK(ParseJobSpec(prefix + "    max_response_tokens: 100\n"
                                  "    buffer_tokens: 20\n",
                         "job.yaml"));
}

TEST_F(JobSpecErrorsTest, JobNameRules) {
  for (const char* name : {"'my run'", "'a/b'", "''", "\"\\u00e9\""}) {
    EXPECT_THAT(Problems(std::string("job: {name: ") + name +
                         "}\ndata: {task: arith}\n"),
                ElementsAre(HasSubstr("job.name: must be 1-64 characters of "
                                      "[A-Za-z0-9._-], got")))
        << name;
  }
  EXPECT_OK(ParseJobSpec(
      "job: {name: " + std::string(64, 'a') + "}\ndata: {task: arith}\n",
      "job.yaml"));
  EXPECT_THAT(Problems("job: {name: " + std::string(65, 'a') +
                       "}\ndata: {task: arith}\n"),
              ElementsAre(HasSubstr("job.yaml:1:13: job.name: must be 1-64")));
}

TEST_F(JobSpecErrorsTest, EveryProblemIsReportedInPositionOrder) {
  std::vector<std::string> problems = Problems(
      "rollout:\n  workers: 0\n  temperature: warm\n"
      "data:\n  task: code\n  shuffle: maybe\n"
      "trainer:\n  backend: nccl\n  ranks: 1.5\n"
      "extra: 1\n");
  EXPECT_THAT(
      problems,
      ElementsAre(
          "job.yaml:1:1: job.name: required key is missing",
          "job.yaml:2:12: rollout.workers: must be in [1, 4096], got 0",
          "job.yaml:3:16: rollout.temperature: expected a number, got the "
          "string \"warm\"",
          "job.yaml:5:9: data.task: must be one of arith, math, got \"code\"",
          "job.yaml:6:12: data.shuffle: expected true or false, got the "
          "string \"maybe\"",
          "job.yaml:8:12: trainer.backend: nccl needs policy.device cuda, "
          "got cpu (use gloo on CPU)",
          "job.yaml:9:10: trainer.ranks: expected an integer, got the float "
          "1.5",
          "job.yaml:10:1: extra: unknown key (known keys here: job, data, "
          "policy, rollout, genrm, algorithm, trainer, scheduler, metrics, "
          "security)"));
}

TEST_F(JobSpecErrorsTest, RulesOnKeysThatFailedToParseAreNotReported) {
  // worker_timeout_ms would be compared with the default heartbeat (1000),
  // not with what the user wrote: only the type error is reported.
  EXPECT_THAT(Problems(std::string(kHeader) +
                       "scheduler:\n  heartbeat_interval_ms: fast\n"
                       "  worker_timeout_ms: 800\n"),
              ElementsAre("job.yaml:6:26: scheduler.heartbeat_interval_ms: "
                          "expected an integer, got the string \"fast\""));
  // Nor rules under a section that is not a map.
  EXPECT_THAT(Problems("job: {name: demo}\ndata: math\n"),
              ElementsAre("job.yaml:2:7: data: expected a map, got the string "
                          "\"math\""));
}

TEST_F(JobSpecErrorsTest, EmptySectionsAreAllowed) {
  ASSERT_OK_AND_ASSIGN(
      JobSpec spec,
      ParseJobSpec(std::string(kHeader) + "security:\ngenrm:\n  model:\n",
                   "job.yaml"));
  EXPECT_EQ(spec.security, SecurityOptions{});
  EXPECT_EQ(spec.genrm, GenrmOptions{});
}

TEST_F(JobSpecErrorsTest, NonStringKeysAndSecondDocuments) {
  EXPECT_THAT(Problems(std::string(kHeader) + "? [a, b]\n: 1\n"),
              ElementsAre("job.yaml:5:3: map keys must be strings, got a "
                          "list"));
  EXPECT_THAT(Problems(std::string(kHeader) + "---\njob: {name: other}\n"),
              ElementsAre("job.yaml:6:1: a job spec is one YAML document, "
                          "found 2 (remove the extra '---')"));
}

// NOTE [stray flow entry] (yaml_document.cc): yaml-cpp's LoadAll never
// returned on these; the mangled-spec test below found the first.
TEST_F(JobSpecErrorsTest, AStrayCommaIsAnErrorNotAHang) {
  EXPECT_THAT(Problems(",job:\n  name: demo\n"),
              ElementsAre("job.yaml:1:1: invalid YAML: unexpected ',' where a "
                          "key or value should start"));
  EXPECT_THAT(Problems("# a comment\n\n, job: {name: demo}\n"),
              ElementsAre("job.yaml:3:1: invalid YAML: unexpected ',' where a "
                          "key or value should start"));
  EXPECT_THAT(Problems("- a\n,\n"),
              ElementsAre("job.yaml:2:1: invalid YAML: unexpected ',' where a "
                          "key or value should start"));
  EXPECT_THAT(Problems(std::string(kHeader) + "---\n,\n"),
              ElementsAre("job.yaml:6:1: invalid YAML: unexpected ',' where a "
                          "key or value should start"));
}

// Random edits of a valid spec: each result parses, and then round-trips, or
// fails with one InvalidArgumentError whose every line names the source.
TEST_F(JobSpecErrorsTest, MangledSpecsNeverCrash) {
  std::ifstream stream(Testdata("full.yaml"));
  const std::string full((std::istreambuf_iterator<char>(stream)),
                         std::istreambuf_iterator<char>());
  ASSERT_FALSE(full.empty());
  const std::string alphabet = ":-[]{}'\"#&*!|>%@`\t\n ,.0123456789eE+~a";
  std::mt19937 rng(20251126);
  int parsed = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string text = full;
    for (int edit = 1 + static_cast<int>(rng() % 4); edit > 0; --edit) {
      size_t pos = rng() % text.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          text[pos] = c;
          break;
        case 1:
          text.insert(pos, 1, c);
          break;
        default:
          text.erase(pos, 1);
      }
    }
    absl::StatusOr<JobSpec> spec = ParseJobSpec(text, "fuzz.yaml");
    if (spec.ok()) {
      ++parsed;
      absl::StatusOr<JobSpec> back =
          ParseJobSpec(JobSpecToYaml(*spec), "effective.yaml");
      ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
      EXPECT_EQ(*back, *spec) << text;
      continue;
    }
    ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument)
        << spec.status();
    for (const std::string& line : ErrorLines(spec.status())) {
      EXPECT_THAT(line, StartsWith("fuzz.yaml")) << text;
    }
  }
  // Both outcomes are exercised.
  EXPECT_GT(parsed, 10);
  EXPECT_LT(parsed, 970);
}

// Security files are checked on disk; these tests make real ones.
class SecurityTest : public JobSpecErrorsTest {
 protected:
  void SetUp() override {
    JobSpecErrorsTest::SetUp();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("job_spec_security_", getpid());
    std::filesystem::create_directories(dir_);
    for (const char* name : {"token", "cert.pem", "key.pem", "ca.pem"}) {
      std::ofstream(dir_ / name) << "test material\n";
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string File(const std::string& name) const {
    return (dir_ / name).string();
  }

  std::string Spec(const std::string& security) const {
    return std::string(kHeader) + "security:\n" + security;
  }

  std::filesystem::path dir_;
};

TEST_F(SecurityTest, TlsWithRealFilesIsAccepted) {
  ASSERT_OK_AND_ASSIGN(
      JobSpec spec,
      ParseJobSpec(Spec("  token_file: " + File("token") +
                        "\n  tls:\n    enabled: true\n    cert_file: " +
                        File("cert.pem") + "\n    key_file: " +
                        File("key.pem") + "\n    ca_file: " + File("ca.pem") +
                        "\n    require_client_cert: true\n"),
                   "job.yaml"));
  EXPECT_EQ(spec.security.token_file, File("token"));
  EXPECT_TRUE(spec.security.tls.require_client_cert);
}

TEST_F(SecurityTest, TokenOverPlaintextIsRefused) {
  EXPECT_THAT(Problems(Spec("  token_file: " + File("token") + "\n")),
              ElementsAre("job.yaml:6:15: security.token_file: needs "
                          "security.tls.enabled: true; a bearer token sent "
                          "over plaintext could be read off the network"));
}

TEST_F(SecurityTest, TlsNeedsCertAndKey) {
  EXPECT_THAT(Problems(Spec("  tls:\n    enabled: true\n")),
              ElementsAre("job.yaml:6:3: security.tls.cert_file: required "
                          "when security.tls.enabled is true",
                          "job.yaml:6:3: security.tls.key_file: required when "
                          "security.tls.enabled is true"));
}

TEST_F(SecurityTest, MutualTlsNeedsCaFileAndTls) {
  EXPECT_THAT(
      Problems(Spec("  tls:\n    require_client_cert: true\n")),
      ElementsAre("job.yaml:6:3: security.tls.ca_file: required when "
                  "security.tls.require_client_cert is true (servers verify "
                  "client certificates against it)",
                  "job.yaml:7:26: security.tls.require_client_cert: needs "
                  "security.tls.enabled: true"));
}

TEST_F(SecurityTest, NamedFilesMustExistAndBeFiles) {
  std::vector<std::string> problems =
      Problems(Spec("  token_file: " + File("missing-token") +
                    "\n  tls:\n    enabled: true\n    cert_file: " + File("") +
                    "\n    key_file: " + File("key.pem") +
                    "\n    ca_file: " + File("nope/ca.pem") + "\n"));
  EXPECT_THAT(
      problems,
      ElementsAre(absl::StrCat("job.yaml:6:15: security.token_file: file \"",
                               File("missing-token"), "\" does not exist"),
                  absl::StrCat("job.yaml:9:16: security.tls.cert_file: \"",
                               File(""), "\" is a directory, not a file"),
                  absl::StrCat("job.yaml:11:14: security.tls.ca_file: file \"",
                               File("nope/ca.pem"), "\" does not exist")));
}

TEST_F(SecurityTest, UnreadableFileIsReported) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  std::filesystem::permissions(dir_ / "key.pem", std::filesystem::perms::none);
  EXPECT_THAT(
      Problems(
          Spec("  tls:\n    enabled: true\n    cert_file: " + File("cert.pem") +
               "\n    key_file: " + File("key.pem") + "\n")),
      ElementsAre(absl::StrCat("job.yaml:9:15: security.tls.key_file: file \"",
                               File("key.pem"), "\" is not readable")));
}

}  // namespace
}  // namespace fapo::config
