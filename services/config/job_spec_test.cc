// Parsing valid specs: defaults, every key, round trips, equality, enums.
#include "services/config/job_spec.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/config/test_util.h"
#include "services/status/status_matchers.h"
#include "yaml-cpp/yaml.h"

namespace fapo::config {
namespace {

using ::fapo::config::testing::ErrorLines;
using ::fapo::config::testing::SourceDir;
using ::fapo::config::testing::Testdata;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class JobSpecTest : public ::testing::Test {
 protected:
  // full.yaml names security files relative to the repository root.
  void SetUp() override { std::filesystem::current_path(SourceDir()); }
};

TEST_F(JobSpecTest, MinimalSpecGetsAllDefaults) {
  ASSERT_OK_AND_ASSIGN(JobSpec spec, LoadJobSpecFile(Testdata("minimal.yaml")));
  JobSpec expected;
  expected.job.name = "minimal";
  expected.job.output_dir = "runs/minimal";
  expected.data.task = Task::kArith;
  EXPECT_EQ(spec, expected);
}

// The defaults as the schema document states them, key by key, so that a
// typo in an initializer cannot pass unnoticed.
TEST_F(JobSpecTest, DefaultsAreTheDocumentedOnes) {
  const JobSpec spec;
  EXPECT_EQ(spec.job.name, "");
  EXPECT_EQ(spec.job.seed, 0);
  EXPECT_EQ(spec.job.steps, 300);
  EXPECT_EQ(spec.job.output_dir, "");

  EXPECT_EQ(spec.data.task, Task::kArith);
  EXPECT_TRUE(spec.data.shuffle);
  EXPECT_EQ(spec.data.eval_size, 1024);
  EXPECT_EQ(spec.data.arith.min_ops, 2);
  EXPECT_EQ(spec.data.arith.max_ops, 6);
  EXPECT_EQ(spec.data.arith.operand_max, 9);
  EXPECT_EQ(spec.data.arith.value_modulus, 10);
  EXPECT_EQ(spec.data.arith.answer_modulus, 5);
  EXPECT_EQ(spec.data.math.path, "");
  EXPECT_EQ(spec.data.math.eval_path, "");
  EXPECT_EQ(spec.data.math.prompt_field, "prompt");
  EXPECT_EQ(spec.data.math.answer_field, "reward_model.ground_truth");

  EXPECT_EQ(spec.policy.model_dir, "");
  EXPECT_EQ(spec.policy.tokenizer_path, "");
  EXPECT_EQ(spec.policy.dtype, Dtype::kFloat32);
  EXPECT_EQ(spec.policy.device, Device::kCpu);
  EXPECT_EQ(spec.policy.chat_format, ChatFormat::kRaw);

  EXPECT_EQ(spec.rollout.workers, 1);
  EXPECT_EQ(spec.rollout.group_size, 8);
  EXPECT_EQ(spec.rollout.prompts_per_step, 16);
  EXPECT_EQ(spec.rollout.temperature, 1.0);
  EXPECT_EQ(spec.rollout.top_p, 1.0);
  EXPECT_EQ(spec.rollout.top_k, 0);
  EXPECT_EQ(spec.rollout.max_new_tokens, 64);
  EXPECT_EQ(spec.rollout.threads_per_worker, 1);

  EXPECT_EQ(spec.genrm.backend, GenrmBackend::kRule);
  EXPECT_EQ(spec.genrm.servers, 1);
  EXPECT_EQ(spec.genrm.max_batch_size, 8);
  EXPECT_EQ(spec.genrm.max_batch_delay_ms, 5);
  EXPECT_EQ(spec.genrm.request_timeout_ms, 30000);
  EXPECT_EQ(spec.genrm.max_retries, 2);
  EXPECT_EQ(spec.genrm.max_in_flight_per_server, 64);
  EXPECT_EQ(spec.genrm.model.model_dir, "");
  EXPECT_EQ(spec.genrm.model.samples, 1);
  EXPECT_EQ(spec.genrm.model.temperature, 0.0);
  EXPECT_EQ(spec.genrm.model.max_new_tokens, 1024);
  EXPECT_EQ(spec.genrm.openai.base_url, "");
  EXPECT_EQ(spec.genrm.openai.model, "");
  EXPECT_EQ(spec.genrm.openai.api_key_file, "");
  EXPECT_EQ(spec.genrm.openai.max_concurrency, 16);
  EXPECT_EQ(spec.genrm.openai.timeout_ms, 60000);
  EXPECT_EQ(spec.genrm.openai.max_retries, 3);
  EXPECT_EQ(spec.genrm.openai.temperature, 0.6);
  EXPECT_EQ(spec.genrm.openai.max_tokens, 8192);
  EXPECT_EQ(spec.genrm.latency.inner, GenrmBackend::kRule);
  EXPECT_EQ(spec.genrm.latency.distribution, LatencyDistribution::kLognormal);
  EXPECT_EQ(spec.genrm.latency.mean_ms, 100.0);
  EXPECT_EQ(spec.genrm.latency.stddev_ms, 20.0);

  EXPECT_EQ(spec.algorithm.reward, RewardKind::kFapo);
  EXPECT_EQ(spec.algorithm.flawed_penalty, 1.0);
  EXPECT_EQ(spec.algorithm.advantage, AdvantageEstimator::kGrpo);
  EXPECT_EQ(spec.algorithm.advantage_eps, 1e-6);
  EXPECT_FALSE(spec.algorithm.dynamic_sampling);
  EXPECT_EQ(spec.algorithm.clip_low, 0.2);
  EXPECT_EQ(spec.algorithm.clip_high, 0.28);
  EXPECT_EQ(spec.algorithm.loss_aggregation, LossAggregation::kTokenMean);
  EXPECT_EQ(spec.algorithm.kl_coef, 0.0);
  EXPECT_EQ(spec.algorithm.importance_sampling_cap, 2.0);
  EXPECT_FALSE(spec.algorithm.overlong_penalty.enabled);
  EXPECT_EQ(spec.algorithm.overlong_penalty.max_response_tokens, 0);
  EXPECT_EQ(spec.algorithm.overlong_penalty.buffer_tokens, 0);
  EXPECT_EQ(spec.algorithm.overlong_penalty.penalty, 1.0);

  EXPECT_EQ(spec.trainer.ranks, 1);
  EXPECT_EQ(spec.trainer.backend, CollectiveBackend::kGloo);
  EXPECT_EQ(spec.trainer.learning_rate, 2e-5);
  EXPECT_EQ(spec.trainer.weight_decay, 0.01);
  EXPECT_EQ(spec.trainer.adam_beta1, 0.9);
  EXPECT_EQ(spec.trainer.adam_beta2, 0.999);
  EXPECT_EQ(spec.trainer.adam_eps, 1e-8);
  EXPECT_EQ(spec.trainer.warmup_steps, 0);
  EXPECT_EQ(spec.trainer.lr_schedule, LrSchedule::kConstant);
  EXPECT_EQ(spec.trainer.min_lr_ratio, 0.1);
  EXPECT_EQ(spec.trainer.grad_clip, 1.0);
  EXPECT_EQ(spec.trainer.minibatches_per_step, 2);
  EXPECT_EQ(spec.trainer.micro_batch_size, 32);
  EXPECT_EQ(spec.trainer.checkpoint_every, 50);
  EXPECT_EQ(spec.trainer.keep_checkpoints, 3);
  EXPECT_TRUE(spec.trainer.resume);

  EXPECT_EQ(spec.scheduler.max_staleness, 1);
  EXPECT_EQ(spec.scheduler.queue_capacity, 4096);
  EXPECT_EQ(spec.scheduler.backpressure, Backpressure::kWait);
  EXPECT_EQ(spec.scheduler.heartbeat_interval_ms, 1000);
  EXPECT_EQ(spec.scheduler.worker_timeout_ms, 5000);
  EXPECT_EQ(spec.scheduler.max_consecutive_failures, 5);
  EXPECT_FALSE(spec.scheduler.deterministic);

  EXPECT_TRUE(spec.metrics.enabled);
  EXPECT_EQ(spec.metrics.host, "127.0.0.1");
  EXPECT_EQ(spec.metrics.port, 0);

  EXPECT_EQ(spec.security.token_file, "");
  EXPECT_FALSE(spec.security.tls.enabled);
  EXPECT_EQ(spec.security.tls.cert_file, "");
  EXPECT_EQ(spec.security.tls.key_file, "");
  EXPECT_EQ(spec.security.tls.ca_file, "");
  EXPECT_FALSE(spec.security.tls.require_client_cert);
}

JobSpec ExpectedFullSpec() {
  JobSpec s;
  s.job = {"full-spec_v1.0", 1234, 500, "/tmp/fapo-runs/full", 0.25};
  s.data.task = Task::kMath;
  s.data.shuffle = false;
  s.data.eval_size = 256;
  s.data.arith = {3, 5, 99, 0, 0};
  s.data.math = {"data/dapo-math-17k.jsonl", "data/aime-2024.jsonl", "question",
                 "answer.value"};
  s.policy = {"models/qwen3-0.6b", "models/qwen3-0.6b/custom_tokenizer.json",
              Dtype::kBfloat16, Device::kCuda, ChatFormat::kChatml};
  s.rollout = {4, 16, 32, 0.7, 0.95, 50, 2048, 2};
  s.genrm.backend = GenrmBackend::kLatency;
  s.genrm.servers = 2;
  s.genrm.max_batch_size = 16;
  s.genrm.max_batch_delay_ms = 10;
  s.genrm.request_timeout_ms = 45000;
  s.genrm.max_retries = 4;
  s.genrm.max_in_flight_per_server = 128;
  s.genrm.model = {"models/fapo-genrm-4b", 3, 0.2, 2048};
  s.genrm.openai = {"http://127.0.0.1:8000/v1",
                    "FAPO-GenRM-4B",
                    "secrets/openai.key",
                    32,
                    90000,
                    5,
                    0.5,
                    4096};
  s.genrm.latency = {GenrmBackend::kOpenai, LatencyDistribution::kNormal, 250.5,
                     40.0};
  s.algorithm.reward = RewardKind::kRlvr;
  s.algorithm.flawed_penalty = 0.5;
  s.algorithm.advantage = AdvantageEstimator::kDrGrpo;
  s.algorithm.advantage_eps = 1e-5;
  s.algorithm.dynamic_sampling = true;
  s.algorithm.clip_low = 0.1;
  s.algorithm.clip_high = 0.3;
  s.algorithm.loss_aggregation = LossAggregation::kSequenceMean;
  s.algorithm.kl_coef = 0.001;
  s.algorithm.importance_sampling_cap = 5.0;
  s.algorithm.overlong_penalty = {true, 1024, 256, 0.5};
  s.trainer = {2,
               CollectiveBackend::kNccl,
               60'000,
               1e-4,
               0.1,
               0.8,
               0.99,
               1e-6,
               20,
               LrSchedule::kCosine,
               0.05,
               0.5,
               4,
               8,
               25,
               5,
               false};
  s.scheduler = {0, 1024, Backpressure::kReject, 500, 3000, 3, true};
  s.metrics = {false, "0.0.0.0", 9100};
  s.security.token_file = "services/config/testdata/security/token.txt";
  s.security.tls = {true, "services/config/testdata/security/server.crt",
                    "services/config/testdata/security/server.key",
                    "services/config/testdata/security/ca.crt", true};
  return s;
}

TEST_F(JobSpecTest, FullSpecParsesExactly) {
  ASSERT_OK_AND_ASSIGN(JobSpec spec, LoadJobSpecFile(Testdata("full.yaml")));
  EXPECT_EQ(spec, ExpectedFullSpec());
  // A few spot checks that do not go through operator==.
  EXPECT_EQ(spec.rollout.temperature, 0.7);
  EXPECT_EQ(spec.genrm.latency.inner, GenrmBackend::kOpenai);
  EXPECT_EQ(spec.trainer.learning_rate, 1e-4);
  EXPECT_EQ(spec.security.tls.ca_file,
            "services/config/testdata/security/ca.crt");
}

// Leaf key paths of a YAML map, with their scalar text.
void CollectLeaves(const YAML::Node& node, const std::string& prefix,
                   std::map<std::string, std::string>* leaves) {
  for (const auto& pair : node) {
    std::string path = prefix.empty() ? pair.first.Scalar()
                                      : prefix + "." + pair.first.Scalar();
    if (pair.second.IsMap()) {
      CollectLeaves(pair.second, path, leaves);
    } else {
      (*leaves)[path] = pair.second.Scalar();
    }
  }
}

// full.yaml must name every key and give each a non-default value; else a
// key the reader ignores could hide behind its default.
TEST_F(JobSpecTest, FullSpecSetsEveryKeyToANonDefault) {
  std::map<std::string, std::string> written;
  CollectLeaves(YAML::LoadFile(Testdata("full.yaml")), "", &written);
  std::map<std::string, std::string> defaults;
  CollectLeaves(YAML::Load(JobSpecToYaml(JobSpec{})), "", &defaults);
  std::map<std::string, std::string> effective;
  ASSERT_OK_AND_ASSIGN(JobSpec full, LoadJobSpecFile(Testdata("full.yaml")));
  CollectLeaves(YAML::Load(JobSpecToYaml(full)), "", &effective);

  std::set<std::string> written_keys, all_keys;
  for (const auto& [key, value] : written) written_keys.insert(key);
  for (const auto& [key, value] : defaults) all_keys.insert(key);
  EXPECT_EQ(written_keys, all_keys);
  for (const auto& [key, value] : defaults) {
    EXPECT_NE(effective[key], value) << key << " still has its default";
  }
}

TEST_F(JobSpecTest, RoundTripsThroughYaml) {
  std::vector<JobSpec> specs;
  ASSERT_OK_AND_ASSIGN(specs.emplace_back(),
                       LoadJobSpecFile(Testdata("minimal.yaml")));
  ASSERT_OK_AND_ASSIGN(specs.emplace_back(),
                       LoadJobSpecFile(Testdata("full.yaml")));
  // Strings that YAML would read as something else, and doubles that need
  // all 17 digits.
  JobSpec tricky;
  tricky.job.name = "123";
  tricky.job.output_dir = "runs/a: b # not a comment";
  tricky.data.math.prompt_field = "true";
  tricky.data.math.answer_field = "null";
  tricky.data.math.eval_path = " leading and trailing ";
  tricky.data.math.path = "ünïcödé/\"quoted\"\t'tab'\\";
  tricky.data.task = Task::kMath;
  tricky.policy.model_dir = "~";
  tricky.metrics.host = "";
  tricky.rollout.temperature = 1.0 / 3.0;
  tricky.rollout.top_p = 0.1 + 0.2;
  tricky.algorithm.advantage_eps = 1e-300;
  tricky.trainer.learning_rate = 2.0 / 3.0 * 1e-5;
  tricky.genrm.latency.mean_ms = 3.6e6;
  ResolveDerivedDefaults(&tricky);
  ASSERT_OK(ValidateJobSpec(tricky));
  specs.push_back(tricky);

  for (const JobSpec& spec : specs) {
    std::string yaml = JobSpecToYaml(spec);
    ASSERT_OK_AND_ASSIGN(JobSpec back, ParseJobSpec(yaml, "effective.yaml"));
    EXPECT_EQ(back, spec) << yaml;
    EXPECT_EQ(JobSpecToYaml(back), yaml);
  }
}

TEST_F(JobSpecTest, EffectiveYamlShowsResolvedValues) {
  ASSERT_OK_AND_ASSIGN(JobSpec spec,
                       ParseJobSpec("job: {name: demo}\ndata: {task: arith}\n"
                                    "policy: {model_dir: models/m/}\n",
                                    "job.yaml"));
  std::string yaml = JobSpecToYaml(spec);
  EXPECT_THAT(yaml, StartsWith("# fapo job spec"));
  EXPECT_THAT(yaml, HasSubstr("  output_dir: \"runs/demo\"\n"));
  EXPECT_THAT(yaml,
              HasSubstr("  tokenizer_path: \"models/m/tokenizer.json\"\n"));
  EXPECT_THAT(yaml, HasSubstr("  temperature: 1.0\n"));
  EXPECT_THAT(yaml, HasSubstr("  learning_rate: 2.0e-05\n"));
  EXPECT_THAT(yaml, HasSubstr("  advantage: grpo\n"));
  EXPECT_THAT(yaml, HasSubstr("  dynamic_sampling: false\n"));
  std::ostringstream streamed;
  streamed << spec;
  EXPECT_EQ(streamed.str(), yaml);
}

TEST_F(JobSpecTest, ResolveDerivedDefaults) {
  JobSpec spec;
  ResolveDerivedDefaults(&spec);  // no name, no model: nothing to derive
  EXPECT_EQ(spec.job.output_dir, "");
  EXPECT_EQ(spec.policy.tokenizer_path, "");

  spec.job.name = "demo";
  spec.policy.model_dir = "/models/qwen";
  ResolveDerivedDefaults(&spec);
  EXPECT_EQ(spec.job.output_dir, "runs/demo");
  EXPECT_EQ(spec.policy.tokenizer_path, "/models/qwen/tokenizer.json");

  spec.job.name = "other";  // already resolved: left alone
  ResolveDerivedDefaults(&spec);
  EXPECT_EQ(spec.job.output_dir, "runs/demo");

  JobSpec explicit_paths;
  explicit_paths.job = {"demo", 0, 1, "/scratch/demo"};
  explicit_paths.policy.model_dir = "m";
  explicit_paths.policy.tokenizer_path = "t.json";
  ResolveDerivedDefaults(&explicit_paths);
  EXPECT_EQ(explicit_paths.job.output_dir, "/scratch/demo");
  EXPECT_EQ(explicit_paths.policy.tokenizer_path, "t.json");
}

TEST_F(JobSpecTest, EqualityComparesEveryLevel) {
  const JobSpec base = ExpectedFullSpec();
  EXPECT_EQ(base, ExpectedFullSpec());
  JobSpec changed = base;
  changed.genrm.latency.stddev_ms += 1;
  EXPECT_NE(changed, base);
  EXPECT_NE(changed.genrm, base.genrm);
  EXPECT_NE(changed.genrm.latency, base.genrm.latency);
  EXPECT_EQ(changed.genrm.openai, base.genrm.openai);
  changed = base;
  changed.security.tls.require_client_cert = false;
  EXPECT_NE(changed, base);
  EXPECT_NE(changed.security.tls, base.security.tls);
  changed = base;
  changed.data.math.answer_field = "x";
  EXPECT_NE(changed.data, base.data);
  changed = base;
  changed.algorithm.loss_aggregation = LossAggregation::kTokenMean;
  EXPECT_NE(changed.algorithm, base.algorithm);
}

TEST_F(JobSpecTest, ValidateJobSpecAcceptsGoodSpecsBuiltInCode) {
  JobSpec spec;
  spec.job.name = "in-code";
  EXPECT_OK(ValidateJobSpec(spec));
  EXPECT_OK(ValidateJobSpec(ExpectedFullSpec()));
}

TEST_F(JobSpecTest, ValidateJobSpecListsProblemsWithoutLocations) {
  JobSpec spec;  // no name
  spec.rollout.top_p = 0.0;
  spec.trainer.adam_beta2 = 1.0;
  spec.policy.device = static_cast<Device>(7);
  absl::Status status = ValidateJobSpec(spec);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      ErrorLines(status),
      ElementsAre(
          "job.name: must be 1-64 characters of [A-Za-z0-9._-], got \"\"",
          "policy.device: must be one of cpu, cuda, got the unnamed value 7",
          "rollout.top_p: must be in (0, 1], got 0",
          "trainer.adam_beta2: must be in [0, 1), got 1"));
}

TEST_F(JobSpecTest, ValidateJobSpecRejectsStringsThatAreNotUtf8) {
  // JobSpecToYaml could not write them back: the emitter writes U+FFFD.
  JobSpec spec;
  spec.job.name = "demo";
  spec.data.math.path = "data/\xff.jsonl";
  EXPECT_THAT(ErrorLines(ValidateJobSpec(spec)),
              ElementsAre("data.math.path: is not valid UTF-8"));
}

TEST(EnumTest, EverySpellingRoundTrips) {
  auto check = [](auto tag) {
    using E = decltype(tag);
    for (const EnumSpelling<E>& spelling : EnumSpellings(E{})) {
      E parsed{};
      ASSERT_TRUE(ParseEnum(spelling.name, &parsed)) << spelling.name;
      EXPECT_EQ(parsed, spelling.value);
      EXPECT_EQ(EnumName(spelling.value), spelling.name);
    }
  };
  check(Task{});
  check(Dtype{});
  check(Device{});
  check(ChatFormat{});
  check(GenrmBackend{});
  check(LatencyDistribution{});
  check(RewardKind{});
  check(AdvantageEstimator{});
  check(LossAggregation{});
  check(CollectiveBackend{});
  check(LrSchedule{});
  check(Backpressure{});
}

TEST(EnumTest, SpellingsAreSnakeCase) {
  EXPECT_EQ(EnumName(AdvantageEstimator::kDrGrpo), "dr_grpo");
  EXPECT_EQ(EnumName(LossAggregation::kSequenceMean), "sequence_mean");
  EXPECT_EQ(EnumName(Dtype::kBfloat16), "bfloat16");
  EXPECT_EQ(EnumName(static_cast<Task>(42)), "");
  Task task = Task::kMath;
  EXPECT_FALSE(ParseEnum("Arith", &task));
  EXPECT_FALSE(ParseEnum("drgrpo", &task));
  EXPECT_EQ(task, Task::kMath);
}

}  // namespace
}  // namespace fapo::config
