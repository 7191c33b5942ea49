#include "algorithm/rewards.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::algorithm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr RolloutJudgement kSound{true, false, 10};
constexpr RolloutJudgement kFlawed{true, true, 10};
constexpr RolloutJudgement kWrong{false, false, 10};
constexpr RolloutJudgement kWrongFlagged{false, true, 10};

RewardOptions Fapo(double flawed_penalty) {
  RewardOptions options;
  options.kind = RewardKind::kFapo;
  options.flawed_penalty = flawed_penalty;
  return options;
}

RewardOptions Rlvr() {
  RewardOptions options;
  options.kind = RewardKind::kRlvr;
  return options;
}

TEST(RewardOptionsTest, DefaultsAreFapoWithLambdaOneAndNoOverlong) {
  const RewardOptions options;
  EXPECT_EQ(options.kind, RewardKind::kFapo);
  EXPECT_EQ(options.flawed_penalty, 1.0);
  EXPECT_FALSE(options.overlong.enabled);
  EXPECT_THAT(ValidateRewardOptions(options), IsOk());
}

TEST(ComputeRewardTest, FapoWithLambdaOneGivesPlusOneZeroMinusOne) {
  const RewardOptions options = Fapo(1.0);
  EXPECT_EQ(ComputeReward(kSound, options), 1.0);
  EXPECT_EQ(ComputeReward(kFlawed, options), 0.0);
  EXPECT_EQ(ComputeReward(kWrong, options), -1.0);
}

TEST(ComputeRewardTest, FlawedIsIgnoredWhenTheAnswerIsWrong) {
  EXPECT_EQ(ComputeReward(kWrongFlagged, Fapo(1.0)), -1.0);
  EXPECT_EQ(ComputeReward(kWrongFlagged, Fapo(0.5)), -1.0);
}

TEST(ComputeRewardTest, LambdaScalesOnlyTheFlawedPositive) {
  const RewardOptions options = Fapo(0.25);
  EXPECT_EQ(ComputeReward(kSound, options), 1.0);
  EXPECT_EQ(ComputeReward(kFlawed, options), 0.75);
  EXPECT_EQ(ComputeReward(kWrong, options), -1.0);
  EXPECT_EQ(ComputeReward(kFlawed, Fapo(2.0)), -1.0);
  EXPECT_EQ(ComputeReward(kFlawed, Fapo(0.0)), 1.0);
}

TEST(ComputeRewardTest, RlvrIgnoresTheVerdict) {
  const RewardOptions options = Rlvr();
  EXPECT_EQ(ComputeReward(kSound, options), 1.0);
  EXPECT_EQ(ComputeReward(kFlawed, options), 1.0);
  EXPECT_EQ(ComputeReward(kWrong, options), -1.0);
  EXPECT_EQ(ComputeReward(kWrongFlagged, options), -1.0);
}

OverlongPenaltyOptions Overlong(int max_response_tokens, int buffer_tokens,
                                double penalty) {
  OverlongPenaltyOptions options;
  options.enabled = true;
  options.max_response_tokens = max_response_tokens;
  options.buffer_tokens = buffer_tokens;
  options.penalty = penalty;
  return options;
}

TEST(OverlongPenaltyTest, DisabledIsZeroAtAnyLength) {
  OverlongPenaltyOptions options = Overlong(100, 20, 1.0);
  options.enabled = false;
  EXPECT_EQ(OverlongPenalty(0, options), 0.0);
  EXPECT_EQ(OverlongPenalty(90, options), 0.0);
  EXPECT_EQ(OverlongPenalty(1000000, options), 0.0);
}

TEST(OverlongPenaltyTest, BoundariesOfTheRamp) {
  // L = 100, C = 20: the ramp runs over (80, 100].
  const OverlongPenaltyOptions options = Overlong(100, 20, 1.0);
  EXPECT_EQ(OverlongPenalty(0, options), 0.0);
  EXPECT_EQ(OverlongPenalty(80, options), 0.0);              // L - C
  EXPECT_FALSE(std::signbit(OverlongPenalty(80, options)));  // not -0.0
  EXPECT_DOUBLE_EQ(OverlongPenalty(81, options), -0.05);     // L - C + 1
  EXPECT_DOUBLE_EQ(OverlongPenalty(90, options), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(99, options), -0.95);
  EXPECT_EQ(OverlongPenalty(100, options), -1.0);  // L
  EXPECT_EQ(OverlongPenalty(101, options), -1.0);  // L + 1
  EXPECT_EQ(OverlongPenalty(5000, options), -1.0);
}

TEST(OverlongPenaltyTest, PenaltyScalesTheRamp) {
  const OverlongPenaltyOptions options = Overlong(10, 4, 0.5);
  EXPECT_EQ(OverlongPenalty(6, options), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(7, options), -0.125);
  EXPECT_DOUBLE_EQ(OverlongPenalty(10, options), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(11, options), -0.5);
}

TEST(OverlongPenaltyTest, ZeroBufferIsAHardStepAtL) {
  const OverlongPenaltyOptions options = Overlong(10, 0, 1.0);
  EXPECT_EQ(OverlongPenalty(10, options), 0.0);
  EXPECT_EQ(OverlongPenalty(11, options), -1.0);
}

TEST(OverlongPenaltyTest, FullBufferRampsFromTheFirstToken) {
  // C = L - 1: the ramp starts after one token.
  const OverlongPenaltyOptions options = Overlong(5, 4, 1.0);
  EXPECT_EQ(OverlongPenalty(1, options), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(2, options), -0.25);
  EXPECT_DOUBLE_EQ(OverlongPenalty(5, options), -1.0);
}

TEST(ComputeRewardTest, OverlongPenaltyAddsToEveryKind) {
  RewardOptions options = Fapo(1.0);
  options.overlong = Overlong(100, 20, 1.0);
  EXPECT_DOUBLE_EQ(ComputeReward({true, false, 90}, options), 0.5);
  EXPECT_DOUBLE_EQ(ComputeReward({true, true, 90}, options), -0.5);
  EXPECT_DOUBLE_EQ(ComputeReward({false, false, 90}, options), -1.5);
  EXPECT_DOUBLE_EQ(ComputeReward({false, false, 101}, options), -2.0);
  EXPECT_DOUBLE_EQ(ComputeReward({true, false, 80}, options), 1.0);
  options.kind = RewardKind::kRlvr;
  EXPECT_DOUBLE_EQ(ComputeReward({true, true, 90}, options), 0.5);
}

TEST(ComputeRewardsTest, FillsTheSpanElementwise) {
  const std::vector<RolloutJudgement> judgements = {kSound, kFlawed, kWrong,
                                                    kWrongFlagged};
  std::vector<double> rewards(4, 99.0);
  ASSERT_THAT(ComputeRewards(judgements, Fapo(1.0), absl::MakeSpan(rewards)),
              IsOk());
  EXPECT_THAT(rewards, ElementsAre(1.0, 0.0, -1.0, -1.0));
}

TEST(ComputeRewardsTest, EmptyIsFine) {
  EXPECT_THAT(ComputeRewards({}, Fapo(1.0), absl::Span<double>()), IsOk());
}

TEST(ComputeRewardsTest, SizeMismatchIsAnErrorAndWritesNothing) {
  const std::vector<RolloutJudgement> judgements = {kSound, kWrong};
  std::vector<double> rewards(3, 7.0);
  EXPECT_THAT(
      ComputeRewards(judgements, Fapo(1.0), absl::MakeSpan(rewards)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2 judgements")));
  EXPECT_THAT(rewards, ElementsAre(7.0, 7.0, 7.0));
}

TEST(ValidateRewardOptionsTest, RejectsBadFlawedPenalty) {
  for (double bad : {-0.1, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    EXPECT_THAT(ValidateRewardOptions(Fapo(bad)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("flawed_penalty")))
        << bad;
  }
  EXPECT_THAT(ValidateRewardOptions(Fapo(0.0)), IsOk());
  EXPECT_THAT(ValidateRewardOptions(Fapo(2.0)), IsOk());
}

TEST(ValidateRewardOptionsTest, RejectsAnUnknownKind) {
  RewardOptions options;
  options.kind = static_cast<RewardKind>(7);
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind")));
}

TEST(ValidateRewardOptionsTest, ChecksOverlongOnlyWhenEnabled) {
  RewardOptions options;
  options.overlong = Overlong(0, -5, -1.0);
  options.overlong.enabled = false;
  EXPECT_THAT(ValidateRewardOptions(options), IsOk());
  options.overlong.enabled = true;
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("overlong.max_response_tokens")));
}

TEST(ValidateRewardOptionsTest, RejectsBadOverlongFields) {
  RewardOptions options;
  options.overlong = Overlong(100, 20, 1.0);
  EXPECT_THAT(ValidateRewardOptions(options), IsOk());

  options.overlong = Overlong(-1, 0, 1.0);
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("overlong.max_response_tokens")));
  options.overlong = Overlong(100, 100, 1.0);
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("overlong.buffer_tokens")));
  options.overlong = Overlong(100, -1, 1.0);
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("overlong.buffer_tokens")));
  options.overlong = Overlong(100, 99, 1.0);
  EXPECT_THAT(ValidateRewardOptions(options), IsOk());
  options.overlong = Overlong(100, 0, -0.5);
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("overlong.penalty")));
  options.overlong = Overlong(100, 0, std::numeric_limits<double>::infinity());
  EXPECT_THAT(ValidateRewardOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("overlong.penalty")));
}

}  // namespace
}  // namespace fapo::algorithm
