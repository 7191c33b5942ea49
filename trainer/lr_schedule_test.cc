#include "trainer/lr_schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace fapo::trainer {
namespace {

TEST(LrScheduleTest, WarmupThenConstant) {
  LrScheduleOptions options;
  options.peak = 1.0;
  options.warmup_steps = 4;
  options.total_steps = 10;
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 1), 0.25);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 2), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 4), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 5), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 0), 0.25);  // treated as step 1
}

TEST(LrScheduleTest, CosineFromPeakToFloor) {
  LrScheduleOptions options;
  options.peak = 2.0;
  options.warmup_steps = 2;
  options.total_steps = 6;
  options.decay = LrDecay::kCosine;
  options.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 1), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 2), 2.0);
  // Progress (s - 2) / 4: 1/4, 1/2, 3/4, 1.
  auto expected = [](double progress) {
    return 2.0 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * progress)));
  };
  EXPECT_NEAR(LearningRateAt(options, 3), expected(0.25), 1e-12);
  EXPECT_NEAR(LearningRateAt(options, 4), 1.1, 1e-12);  // half-way: mean
  EXPECT_NEAR(LearningRateAt(options, 5), expected(0.75), 1e-12);
  EXPECT_NEAR(LearningRateAt(options, 6), 0.2, 1e-12);  // the floor
  EXPECT_NEAR(LearningRateAt(options, 60), 0.2, 1e-12);
}

TEST(LrScheduleTest, CosineWithoutWarmupStartsBelowPeak) {
  LrScheduleOptions options;
  options.peak = 1.0;
  options.total_steps = 2;
  options.decay = LrDecay::kCosine;
  options.min_lr_ratio = 0.0;
  EXPECT_NEAR(LearningRateAt(options, 1), 0.5, 1e-12);
  EXPECT_NEAR(LearningRateAt(options, 2), 0.0, 1e-12);
}

}  // namespace
}  // namespace fapo::trainer
