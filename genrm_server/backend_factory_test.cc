// The genrm section of a job spec -> backend and batcher options.
#include "genrm_server/backend_factory.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/config/job_spec.h"
#include "services/status/status_matchers.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

TEST(BackendFactoryTest, RuleBackendUsesTheSpecsArithOptions) {
  config::JobSpec spec;
  spec.data.arith.value_modulus = 0;
  spec.data.arith.answer_modulus = 0;
  const RuleBackendOptions options = RuleOptionsFromSpec(spec);
  EXPECT_EQ(options.arith.value_modulus, 0);
  EXPECT_EQ(options.arith.answer_modulus, 0);
  EXPECT_EQ(options.arith.max_ops, spec.data.arith.max_ops);
  auto backend = MakeGenrmBackend(spec);
  ASSERT_THAT(backend, IsOk());
  EXPECT_EQ((*backend)->name(), "rule");
  // Exact arithmetic, left to right: 3+7=10, 10*4=40, 40-2=38.
  fapo::v1::ScoreRequest request;
  request.set_trajectory_id("t");
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_solution("3+7=10\n10*4=41\n41-2=39\n#38");
  auto* rule = static_cast<RuleBackend*>(backend->get());
  auto verdict = rule->ScoreOne(request);
  ASSERT_THAT(verdict, IsOk());
  EXPECT_TRUE(verdict->answer_correct());
  EXPECT_EQ(verdict->first_error_step(), 1);
}

TEST(BackendFactoryTest, LatencyWrapsItsInner) {
  config::JobSpec spec;
  spec.genrm.backend = config::GenrmBackend::kLatency;
  spec.genrm.latency.inner = config::GenrmBackend::kRule;
  spec.genrm.latency.distribution = config::LatencyDistribution::kUniform;
  spec.genrm.latency.mean_ms = 7;
  spec.genrm.latency.stddev_ms = 2;
  spec.job.seed = 42;
  auto options = LatencyOptionsFromSpec(spec);
  ASSERT_THAT(options, IsOk());
  EXPECT_EQ(options->distribution.kind, LatencyKind::kUniform);
  EXPECT_EQ(options->distribution.mean_ms, 7);
  EXPECT_EQ(options->distribution.stddev_ms, 2);
  EXPECT_EQ(options->seed, 42u);
  auto backend = MakeGenrmBackend(spec);
  ASSERT_THAT(backend, IsOk());
  EXPECT_EQ((*backend)->name(), "latency(rule)");
}

TEST(BackendFactoryTest, LatencyCannotWrapLatency) {
  config::JobSpec spec;
  spec.genrm.backend = config::GenrmBackend::kLatency;
  spec.genrm.latency.inner = config::GenrmBackend::kLatency;
  EXPECT_THAT(MakeGenrmBackend(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("genrm.latency.inner")));
}

TEST(BackendFactoryTest, BadLatencyDistributionNamesTheSection) {
  config::JobSpec spec;
  spec.genrm.backend = config::GenrmBackend::kLatency;
  spec.genrm.latency.mean_ms = -1;
  EXPECT_THAT(
      MakeGenrmBackend(spec),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("genrm.latency")));
}

TEST(BackendFactoryTest, OpenAiOptionsMapEveryField) {
  config::JobSpec spec;
  spec.genrm.backend = config::GenrmBackend::kOpenai;
  spec.genrm.openai.base_url = "http://127.0.0.1:1/v1";
  spec.genrm.openai.model = "genrm-4b";
  spec.genrm.openai.max_concurrency = 3;
  spec.genrm.openai.timeout_ms = 1234;
  spec.genrm.openai.max_retries = 5;
  spec.genrm.openai.temperature = 0.3;
  spec.genrm.openai.max_tokens = 77;
  spec.genrm.model.samples = 3;
  const OpenAiBackendOptions options = OpenAiOptionsFromSpec(spec);
  EXPECT_EQ(options.base_url, "http://127.0.0.1:1/v1");
  EXPECT_EQ(options.model, "genrm-4b");
  EXPECT_EQ(options.api_key_file, "");
  EXPECT_EQ(options.max_concurrency, 3);
  EXPECT_EQ(options.timeout_ms, 1234);
  EXPECT_EQ(options.max_retries, 5);
  EXPECT_DOUBLE_EQ(options.temperature, 0.3);
  EXPECT_EQ(options.max_tokens, 77);
  EXPECT_EQ(options.samples, 3);
  auto backend = MakeGenrmBackend(spec);
  ASSERT_THAT(backend, IsOk());
  EXPECT_EQ((*backend)->name(), "openai(genrm-4b)");

  spec.genrm.openai.base_url = "ftp://nope";
  EXPECT_THAT(
      MakeGenrmBackend(spec),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("openai")));
}

TEST(BackendFactoryTest, ModelBackendNeedsAModelDirOrLibTorch) {
  config::JobSpec spec;
  spec.genrm.backend = config::GenrmBackend::kModel;
  if (ModelBackendAvailable()) {
    EXPECT_THAT(MakeGenrmBackend(spec),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("genrm.model.model_dir")));
    spec.genrm.model.model_dir = "/nonexistent/genrm";
    EXPECT_THAT(MakeGenrmBackend(spec), ::testing::Not(IsOk()));
  } else {
    EXPECT_THAT(MakeGenrmBackend(spec),
                StatusIs(absl::StatusCode::kUnimplemented));
  }
}

TEST(BackendFactoryTest, BatcherOptionsFromSpec) {
  config::JobSpec spec;
  spec.genrm.max_batch_size = 16;
  spec.genrm.max_batch_delay_ms = 9;
  spec.genrm.max_in_flight_per_server = 20;  // two batches of 16 cover it
  const DynamicBatcherOptions options = BatcherOptionsFromSpec(spec, "g-1");
  EXPECT_EQ(options.max_batch_size, 16);
  EXPECT_EQ(options.max_batch_delay_ms, 9);
  EXPECT_EQ(options.max_in_flight_batches, 2);
  EXPECT_EQ(options.genrm_server_id, "g-1");
  EXPECT_THAT(ValidateDynamicBatcherOptions(options), IsOk());
  spec.genrm.max_in_flight_per_server = 1000;
  EXPECT_EQ(BatcherOptionsFromSpec(spec, "").max_in_flight_batches,
            DynamicBatcherOptions().max_in_flight_batches);
}

}  // namespace
}  // namespace fapo::genrm
