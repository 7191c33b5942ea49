// The scheduler's options come from the job spec, whose defaults are the
// only ones (NOTE [one default] in services/config/job_spec.h); and the
// library types whose defaults define the algorithm and the arith task
// (rewards, advantages, arith problems) agree with the spec's, so a default
// spec runs what the libraries define.
#include "scheduler/options_from_spec.h"

#include "algorithm/advantages.h"
#include "algorithm/rewards.h"
#include "gtest/gtest.h"
#include "services/config/job_spec.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/problem.h"
#include "tasks/task_source.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;

TEST(SchedulerOptionsFromSpecTest, EverySpecFedFieldComesFromTheSpec) {
  absl::StatusOr<config::JobSpec> spec = config::ParseJobSpec(
      R"(job: {name: mapped, steps: 7, seed: 3, sample_fraction: 0.25,
              output_dir: /tmp/mapped}
data: {task: arith}
rollout: {group_size: 5, prompts_per_step: 3, temperature: 0.5, top_k: 4,
          max_new_tokens: 33}
algorithm: {reward: rlvr, flawed_penalty: 0.5, dynamic_sampling: true}
trainer: {checkpoint_every: 9}
scheduler: {max_staleness: 2, queue_capacity: 123, backpressure: reject,
            heartbeat_interval_ms: 250, worker_timeout_ms: 900,
            max_consecutive_failures: 4}
genrm: {max_in_flight_per_server: 11, request_timeout_ms: 1500,
        max_retries: 6}
)",
      "mapped.yaml");
  ASSERT_THAT(spec, IsOk());
  const SchedulerOptions options = SchedulerOptionsFromSpec(*spec);
  EXPECT_EQ(options.job_name, "mapped");
  EXPECT_EQ(options.total_steps, 7);
  EXPECT_EQ(options.group_size, 5);
  EXPECT_EQ(options.groups_per_step, 3);
  EXPECT_EQ(options.max_staleness, 2);
  EXPECT_EQ(options.rewards.kind, algorithm::RewardKind::kRlvr);
  EXPECT_EQ(options.rewards.flawed_penalty, 0.5);
  EXPECT_TRUE(options.dynamic_sampling);
  EXPECT_EQ(options.max_consecutive_failures, 4);
  EXPECT_EQ(options.queue.capacity, 123);
  EXPECT_EQ(options.queue.backpressure, Backpressure::kReject);
  EXPECT_EQ(options.workers.heartbeat_interval, absl::Milliseconds(250));
  EXPECT_EQ(options.workers.worker_timeout, absl::Milliseconds(900));
  EXPECT_EQ(options.genrm.max_in_flight_per_server, 11);
  EXPECT_EQ(options.genrm.request_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options.genrm.max_retries, 6);
  EXPECT_THAT(ValidateSchedulerOptions(options), IsOk());

  const RolloutDriverOptions rollout = RolloutDriverOptionsFromSpec(*spec);
  EXPECT_FLOAT_EQ(rollout.sampling.temperature(), 0.5f);
  EXPECT_EQ(rollout.sampling.top_k(), 4);
  EXPECT_EQ(rollout.sampling.max_new_tokens(), 33);
  EXPECT_EQ(rollout.seed, 3u);
  const TrainerDriverOptions trainer = TrainerDriverOptionsFromSpec(*spec);
  EXPECT_EQ(trainer.checkpoint_every, 9);
  EXPECT_EQ(trainer.metrics_path, "/tmp/mapped/metrics.jsonl");
  const SamplesWriterOptions samples = SamplesWriterOptionsFromSpec(*spec);
  EXPECT_EQ(samples.path, "/tmp/mapped/samples.jsonl");
  EXPECT_EQ(samples.sample_fraction, 0.25);
  EXPECT_EQ(samples.seed, 3u);
}

TEST(SchedulerOptionsFromSpecTest, ADefaultSpecGivesValidOptions) {
  // What tests start from: a default JobSpec maps to options every part
  // accepts (the structs themselves hold no defaults for these fields).
  const SchedulerOptions options = SchedulerOptionsFromSpec(config::JobSpec());
  EXPECT_THAT(ValidateSchedulerOptions(options), IsOk());
  EXPECT_GT(options.queue.capacity, 0);
  EXPECT_GT(options.workers.worker_timeout, options.workers.heartbeat_interval);
  EXPECT_GT(options.genrm.max_in_flight_per_server, 0);
  EXPECT_GT(options.genrm.request_timeout, absl::ZeroDuration());
}

TEST(OneDefaultTest, TheLibrariesDefinitionsAgreeWithTheSpecsDefaults) {
  const config::JobSpec spec;
  const SchedulerOptions mapped = SchedulerOptionsFromSpec(spec);
  const algorithm::RewardOptions rewards;
  EXPECT_EQ(mapped.rewards.kind, rewards.kind);
  EXPECT_EQ(mapped.rewards.flawed_penalty, rewards.flawed_penalty);
  EXPECT_EQ(mapped.rewards.overlong.enabled, rewards.overlong.enabled);
  const algorithm::AdvantageOptions advantages;
  EXPECT_EQ(mapped.advantages.scale_by_std, advantages.scale_by_std);
  EXPECT_EQ(mapped.advantages.eps, advantages.eps);
  const tasks::arith::ArithOptions arith;
  const tasks::arith::ArithOptions from_spec =
      tasks::ArithOptionsFromSpec(spec.data.arith);
  EXPECT_EQ(from_spec.min_ops, arith.min_ops);
  EXPECT_EQ(from_spec.max_ops, arith.max_ops);
  EXPECT_EQ(from_spec.operand_max, arith.operand_max);
  EXPECT_EQ(from_spec.value_modulus, arith.value_modulus);
  EXPECT_EQ(from_spec.answer_modulus, arith.answer_modulus);
}

}  // namespace
}  // namespace fapo::scheduler
