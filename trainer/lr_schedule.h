// The trainer's learning-rate schedule: linear warm-up, then constant or
// cosine decay to min_lr_ratio x the peak by the last step.
#ifndef FAPO_TRAINER_LR_SCHEDULE_H_
#define FAPO_TRAINER_LR_SCHEDULE_H_

#include <cstdint>

#include "services/config/job_spec.h"

namespace fapo::trainer {

struct LrScheduleOptions {
  // Peak learning rate (trainer.learning_rate). > 0.
  double peak = 2e-5;
  // Linear warm-up length in steps (trainer.warmup_steps). >= 0.
  int64_t warmup_steps = 0;
  config::LrSchedule schedule = config::LrSchedule::kConstant;
  // Cosine floor as a fraction of the peak (trainer.min_lr_ratio), [0, 1].
  double min_lr_ratio = 0.1;
  // The schedule's horizon: the last step (job.steps). >= 1.
  int64_t total_steps = 1;
};

LrScheduleOptions LrScheduleOptionsFromSpec(const config::JobSpec& spec);

// The learning rate of 1-based step `step` (every optimizer step of a
// training step uses it):
//   step <= warmup_steps:  peak * step / warmup_steps   (the first step is
//                          already > 0, unlike schedules counting from 0)
//   constant:              peak
//   cosine:                peak * (r + (1 - r) * (1 + cos(pi * p)) / 2)
//                          with p = (step - warmup) / (total - warmup)
//                          clamped to [0, 1], so the last step gets r * peak
//                          and steps past the horizon stay there.
// Steps < 1 are treated as 1.
double LearningRateAt(const LrScheduleOptions& options, int64_t step);

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_LR_SCHEDULE_H_
