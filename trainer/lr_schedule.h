// The trainer's learning-rate schedule: linear warm-up, then constant or
// cosine decay to min_lr_ratio x the peak by the last step.
#ifndef FAPO_TRAINER_LR_SCHEDULE_H_
#define FAPO_TRAINER_LR_SCHEDULE_H_

#include <cstdint>

namespace fapo::trainer {

enum class LrDecay { kConstant, kCosine };

// Every field comes from the job spec, through the trainer's settings
// (LrScheduleOptionsFromSettings in trainer.h); no defaults here (NOTE [one
// default] in services/config/job_spec.h).
struct LrScheduleOptions {
  // trainer.learning_rate: the peak; > 0.
  double peak = 0;
  // trainer.warmup_steps: linear warm-up length in steps; >= 0.
  int64_t warmup_steps = 0;
  // trainer.lr_schedule.
  LrDecay decay = LrDecay::kConstant;
  // trainer.min_lr_ratio: the cosine floor as a fraction of the peak,
  // [0, 1].
  double min_lr_ratio = 0;
  // job.steps: the schedule's horizon, the last step; >= 1.
  int64_t total_steps = 0;
};

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
