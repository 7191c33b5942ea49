#include "algorithm/flawed_metrics.h"

#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::algorithm {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::DoubleEq;
using ::testing::HasSubstr;

constexpr RolloutJudgement kSound{true, false, 1};
constexpr RolloutJudgement kFlawed{true, true, 1};
constexpr RolloutJudgement kWrong{false, false, 1};
constexpr RolloutJudgement kWrongFlagged{false, true, 1};

TEST(ClassifyRolloutTest, AllFourInputs) {
  EXPECT_EQ(ClassifyRollout(kSound), RolloutClass::kSound);
  EXPECT_EQ(ClassifyRollout(kFlawed), RolloutClass::kFlawedPositive);
  EXPECT_EQ(ClassifyRollout(kWrong), RolloutClass::kWrong);
  EXPECT_EQ(ClassifyRollout(kWrongFlagged), RolloutClass::kWrong);
}

TEST(FlawedCountsTest, EmptyHasZeroSharesAndRatio) {
  const FlawedCounts counts = CountRollouts({});
  EXPECT_EQ(counts.total(), 0);
  EXPECT_EQ(counts.correct(), 0);
  EXPECT_EQ(counts.alpha(), 0.0);
  EXPECT_EQ(counts.beta(), 0.0);
  EXPECT_EQ(counts.gamma(), 0.0);
  EXPECT_EQ(counts.flawed_positive_ratio(), 0.0);
  for (VerdictStatus status : kAllVerdictStatuses) {
    EXPECT_EQ(counts.verdicts(status), 0);
  }
}

TEST(FlawedCountsTest, GroupCountsSharesAndRatio) {
  // 3 sound, 1 flawed, 4 wrong (one of them flagged).
  const std::vector<RolloutJudgement> group = {
      kSound, kWrong, kFlawed, kSound, kWrongFlagged, kWrong, kSound, kWrong};
  const FlawedCounts counts = CountRollouts(group);
  EXPECT_EQ(counts.sound, 3);
  EXPECT_EQ(counts.flawed_positive, 1);
  EXPECT_EQ(counts.wrong, 4);
  EXPECT_EQ(counts.total(), 8);
  EXPECT_EQ(counts.correct(), 4);
  EXPECT_DOUBLE_EQ(counts.alpha(), 3.0 / 8);
  EXPECT_DOUBLE_EQ(counts.beta(), 4.0 / 8);
  EXPECT_DOUBLE_EQ(counts.gamma(), 1.0 / 8);
  EXPECT_DOUBLE_EQ(counts.flawed_positive_ratio(), 1.0 / 4);
}

TEST(FlawedCountsTest, RatioIsZeroWithNoCorrectRollout) {
  const FlawedCounts counts =
      CountRollouts(std::vector<RolloutJudgement>{kWrong, kWrongFlagged});
  EXPECT_EQ(counts.flawed_positive_ratio(), 0.0);
  EXPECT_EQ(counts.beta(), 1.0);
}

TEST(FlawedCountsTest, AllFlawedHasRatioOne) {
  const FlawedCounts counts =
      CountRollouts(std::vector<RolloutJudgement>{kFlawed, kFlawed, kWrong});
  EXPECT_EQ(counts.flawed_positive_ratio(), 1.0);
}

TEST(FlawedCountsTest, SharesAddUpToOneOnRandomGroups) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> kind(0, 3);
  std::uniform_int_distribution<int> size(1, 64);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<RolloutJudgement> group(size(rng));
    for (RolloutJudgement& rollout : group) {
      const int k = kind(rng);
      rollout = k == 0   ? kSound
                : k == 1 ? kFlawed
                : k == 2 ? kWrong
                         : kWrongFlagged;
    }
    const FlawedCounts counts = CountRollouts(group);
    ASSERT_NEAR(counts.alpha() + counts.beta() + counts.gamma(), 1.0, 1e-12);
    ASSERT_EQ(counts.total(), static_cast<int64_t>(group.size()));
  }
}

TEST(FlawedCountsTest, CountsVerdictsByStatus) {
  const std::vector<RolloutJudgement> group = {kSound, kFlawed, kSound,
                                               kWrong, kWrong,  kSound};
  const std::vector<VerdictStatus> verdicts = {
      VerdictStatus::kOk,      VerdictStatus::kOk,
      VerdictStatus::kTimeout, VerdictStatus::kSkipped,
      VerdictStatus::kSkipped, VerdictStatus::kUnparsable};
  ASSERT_OK_AND_ASSIGN(const FlawedCounts counts,
                       CountRollouts(group, verdicts));
  EXPECT_EQ(counts.sound, 3);
  EXPECT_EQ(counts.flawed_positive, 1);
  EXPECT_EQ(counts.wrong, 2);
  EXPECT_EQ(counts.verdicts(VerdictStatus::kOk), 2);
  EXPECT_EQ(counts.verdicts(VerdictStatus::kUnparsable), 1);
  EXPECT_EQ(counts.verdicts(VerdictStatus::kInvalid), 0);
  EXPECT_EQ(counts.verdicts(VerdictStatus::kTimeout), 1);
  EXPECT_EQ(counts.verdicts(VerdictStatus::kSkipped), 2);
}

TEST(FlawedCountsTest, VerdictSizeMismatchIsAnError) {
  EXPECT_THAT(
      CountRollouts(std::vector<RolloutJudgement>{kSound, kWrong},
                    std::vector<VerdictStatus>{VerdictStatus::kOk}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2 judgements")));
}

TEST(FlawedCountsTest, AccumulatesOverGroups) {
  FlawedCounts batch;
  ASSERT_OK_AND_ASSIGN(
      FlawedCounts group_a,
      CountRollouts(
          std::vector<RolloutJudgement>{kSound, kFlawed, kWrong},
          std::vector<VerdictStatus>{VerdictStatus::kOk, VerdictStatus::kOk,
                                     VerdictStatus::kSkipped}));
  ASSERT_OK_AND_ASSIGN(
      FlawedCounts group_b,
      CountRollouts(
          std::vector<RolloutJudgement>{kFlawed, kFlawed, kSound, kSound,
                                        kSound},
          std::vector<VerdictStatus>{VerdictStatus::kOk, VerdictStatus::kOk,
                                     VerdictStatus::kInvalid,
                                     VerdictStatus::kOk, VerdictStatus::kOk}));
  batch += group_a;
  batch += group_b;
  EXPECT_EQ(batch.sound, 4);
  EXPECT_EQ(batch.flawed_positive, 3);
  EXPECT_EQ(batch.wrong, 1);
  EXPECT_EQ(batch.verdicts(VerdictStatus::kOk), 6);
  EXPECT_EQ(batch.verdicts(VerdictStatus::kInvalid), 1);
  EXPECT_EQ(batch.verdicts(VerdictStatus::kSkipped), 1);
  // The batch ratio pools rollouts: 3 / 7, not the mean of 1/2 and 2/5.
  EXPECT_THAT(batch.flawed_positive_ratio(), DoubleEq(3.0 / 7));
  EXPECT_THAT(batch.alpha(), DoubleEq(4.0 / 8));

  // AddRollout one at a time gives the same.
  FlawedCounts one_by_one;
  for (const RolloutJudgement& rollout :
       {kSound, kFlawed, kWrong, kFlawed, kFlawed, kSound, kSound, kSound}) {
    one_by_one.AddRollout(rollout);
  }
  EXPECT_EQ(one_by_one.sound, batch.sound);
  EXPECT_EQ(one_by_one.flawed_positive, batch.flawed_positive);
  EXPECT_EQ(one_by_one.wrong, batch.wrong);
  EXPECT_EQ(one_by_one.verdicts(VerdictStatus::kOk), 0);
}

TEST(FlawedCountsTest, OutOfRangeStatusIsIgnored) {
  FlawedCounts counts;
  counts.AddRollout(kSound, static_cast<VerdictStatus>(42));
  EXPECT_EQ(counts.sound, 1);
  EXPECT_EQ(counts.verdicts(static_cast<VerdictStatus>(42)), 0);
  for (VerdictStatus status : kAllVerdictStatuses) {
    EXPECT_EQ(counts.verdicts(status), 0);
  }
}

}  // namespace
}  // namespace fapo::algorithm
