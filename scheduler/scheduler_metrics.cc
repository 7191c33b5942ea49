// Scheduler (scheduler.h): the metrics it registers itself (the queue,
// the worker registry and the dispatcher register theirs).
#include <memory>

#include "scheduler/scheduler.h"
#include "scheduler/scheduler_internal.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

using internal::kOutcomeNames;

absl::StatusOr<std::unique_ptr<Scheduler::Metrics>> Scheduler::NewMetrics(
    metrics::MetricsRegistry* registry) {
  auto metrics = std::make_unique<Metrics>();
  if (registry == nullptr) return metrics;
  Metrics& m = *metrics;
  ASSIGN_OR_RETURN(
      m.verdicts,
      registry->AddCounter("fapo_genrm_verdicts_total",
                           "Verdicts recorded, by outcome: flawed, sound, "
                           "unparsable, invalid, timeout, skipped (wrong "
                           "answers, not sent to the GenRM).",
                           {"outcome"}));
  for (int i = 0; i < kNumOutcomes; ++i) {
    m.verdict_children[i] =
        &m.verdicts->WithLabels({{"outcome", kOutcomeNames[i]}});
  }
  ASSIGN_OR_RETURN(auto* version,
                   registry->AddGauge("fapo_policy_version",
                                      "The trainer's policy version.", {}));
  m.policy_version = &version->WithLabels({});
  ASSIGN_OR_RETURN(auto* steps,
                   registry->AddCounter("fapo_train_steps_total",
                                        "Train steps completed.", {}));
  m.train_steps = &steps->WithLabels({});
  ASSIGN_OR_RETURN(
      auto* staleness,
      registry->AddHistogram(
          "fapo_trajectory_staleness",
          "Policy versions between a trained trajectory's sampler and the "
          "trainer (t - v; NOTE [staleness]).",
          {0, 1, 2, 3, 4, 8}, {}));
  m.staleness = &staleness->WithLabels({});
  ASSIGN_OR_RETURN(
      auto* ratios,
      registry->AddGauge("fapo_batch_rollout_share",
                         "Share of the last train batch's rollouts by class "
                         "(alpha: sound, beta: wrong, gamma: flawed "
                         "positive).",
                         {"class"}));
  m.alpha = &ratios->WithLabels({{"class", "alpha"}});
  m.beta = &ratios->WithLabels({{"class", "beta"}});
  m.gamma = &ratios->WithLabels({{"class", "gamma"}});
  ASSIGN_OR_RETURN(
      auto* flawed,
      registry->AddGauge("fapo_flawed_positive_ratio",
                         "Flawed positives / correct answers in the last "
                         "train batch.",
                         {}));
  m.flawed_ratio = &flawed->WithLabels({});
  ASSIGN_OR_RETURN(
      auto* reward,
      registry->AddGauge("fapo_reward_mean",
                         "Mean reward of the last train batch.", {}));
  m.reward_mean = &reward->WithLabels({});
  ASSIGN_OR_RETURN(auto* generated,
                   registry->AddCounter("fapo_trajectories_generated_total",
                                        "Trajectories received from "
                                        "rollout workers.",
                                        {}));
  m.trajectories = &generated->WithLabels({});
  ASSIGN_OR_RETURN(auto* tokens,
                   registry->AddCounter("fapo_tokens_generated_total",
                                        "Response tokens received from "
                                        "rollout workers.",
                                        {}));
  m.tokens = &tokens->WithLabels({});
  ASSIGN_OR_RETURN(m.regenerated,
                   registry->AddCounter("fapo_groups_regenerated_total",
                                        "Prompt groups generated again, by "
                                        "why the first one was dropped.",
                                        {"reason"}));
  ASSIGN_OR_RETURN(
      auto* failures,
      registry->AddGauge("fapo_consecutive_failures",
                         "Failures since the last progress (NOTE [no "
                         "progress]); the job fails at the configured limit.",
                         {}));
  m.failures = &failures->WithLabels({});
  ASSIGN_OR_RETURN(
      m.job_state,
      registry->AddGauge("fapo_job_state", "1 for the job's current state.",
                         {"state"}));
  return metrics;
}

}  // namespace fapo::scheduler
