#include "scheduler/options_from_spec.h"

#include <cstdint>

#include "absl/time/time.h"
#include "services/files/files.h"

namespace fapo::scheduler {

SchedulerOptions SchedulerOptionsFromSpec(const config::JobSpec& spec) {
  SchedulerOptions options;
  options.job_name = spec.job.name;
  options.total_steps = spec.job.steps;
  options.group_size = spec.rollout.group_size;
  options.groups_per_step = spec.rollout.prompts_per_step;
  options.max_staleness = spec.scheduler.max_staleness;
  const config::AlgorithmOptions& algo = spec.algorithm;
  options.rewards.kind = algo.reward == config::RewardKind::kFapo
                             ? algorithm::RewardKind::kFapo
                             : algorithm::RewardKind::kRlvr;
  options.rewards.flawed_penalty = algo.flawed_penalty;
  options.rewards.overlong.enabled = algo.overlong_penalty.enabled;
  options.rewards.overlong.max_response_tokens =
      algo.overlong_penalty.max_response_tokens;
  options.rewards.overlong.buffer_tokens = algo.overlong_penalty.buffer_tokens;
  options.rewards.overlong.penalty = algo.overlong_penalty.penalty;
  options.advantages.scale_by_std =
      algo.advantage == config::AdvantageEstimator::kGrpo;
  options.advantages.eps = algo.advantage_eps;
  options.dynamic_sampling = algo.dynamic_sampling;
  options.deterministic = spec.scheduler.deterministic;
  options.max_consecutive_failures = spec.scheduler.max_consecutive_failures;
  options.queue.capacity = spec.scheduler.queue_capacity;
  options.queue.backpressure =
      spec.scheduler.backpressure == config::Backpressure::kWait
          ? Backpressure::kWait
          : Backpressure::kReject;
  options.workers.heartbeat_interval =
      absl::Milliseconds(spec.scheduler.heartbeat_interval_ms);
  options.workers.worker_timeout =
      absl::Milliseconds(spec.scheduler.worker_timeout_ms);
  options.genrm.max_in_flight_per_server = spec.genrm.max_in_flight_per_server;
  options.genrm.request_timeout =
      absl::Milliseconds(spec.genrm.request_timeout_ms);
  options.genrm.max_retries = spec.genrm.max_retries;
  return options;
}

RolloutDriverOptions RolloutDriverOptionsFromSpec(const config::JobSpec& spec) {
  RolloutDriverOptions options;
  options.sampling.set_temperature(
      static_cast<float>(spec.rollout.temperature));
  options.sampling.set_top_p(static_cast<float>(spec.rollout.top_p));
  options.sampling.set_top_k(spec.rollout.top_k);
  options.sampling.set_max_new_tokens(spec.rollout.max_new_tokens);
  options.seed = static_cast<uint64_t>(spec.job.seed);
  return options;
}

TrainerDriverOptions TrainerDriverOptionsFromSpec(const config::JobSpec& spec) {
  TrainerDriverOptions options;
  options.checkpoint_every = spec.trainer.checkpoint_every;
  if (!spec.job.output_dir.empty()) {
    options.metrics_path = spec.job.output_dir + "/metrics.jsonl";
  }
  return options;
}

SamplesWriterOptions SamplesWriterOptionsFromSpec(const config::JobSpec& spec) {
  SamplesWriterOptions options;
  if (!spec.job.output_dir.empty()) {
    options.path = files::JoinPath(spec.job.output_dir, "samples.jsonl");
  }
  options.sample_fraction = spec.job.sample_fraction;
  options.seed = static_cast<uint64_t>(spec.job.seed);
  return options;
}

SchedulerOptions DefaultSchedulerOptions() {
  return SchedulerOptionsFromSpec(config::JobSpec());
}

}  // namespace fapo::scheduler
