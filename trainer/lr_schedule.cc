#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace fapo::trainer {

double LearningRateAt(const LrScheduleOptions& options, int64_t step) {
  step = std::max<int64_t>(step, 1);
  if (step <= options.warmup_steps) {
    return options.peak * static_cast<double>(step) /
           static_cast<double>(options.warmup_steps);
  }
  if (options.decay == LrDecay::kConstant) return options.peak;
  const int64_t decay_steps =
      std::max<int64_t>(options.total_steps - options.warmup_steps, 1);
  const double progress = std::clamp(
      static_cast<double>(step - options.warmup_steps) / decay_steps, 0.0, 1.0);
  const double ratio = options.min_lr_ratio;
  return options.peak *
         (ratio + (1.0 - ratio) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace fapo::trainer
