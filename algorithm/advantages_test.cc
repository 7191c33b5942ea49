#include "algorithm/advantages.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::algorithm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::DoubleEq;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pointwise;

AdvantageOptions Grpo(double eps) {
  AdvantageOptions options;
  options.scale_by_std = true;
  options.eps = eps;
  return options;
}

AdvantageOptions DrGrpo() {
  AdvantageOptions options;
  options.scale_by_std = false;
  return options;
}

TEST(AdvantageOptionsTest, DefaultsAreGrpoWithSmallEps) {
  const AdvantageOptions options;
  EXPECT_TRUE(options.scale_by_std);
  EXPECT_EQ(options.eps, 1e-6);
  EXPECT_THAT(ValidateAdvantageOptions(options), IsOk());
}

TEST(ValidateAdvantageOptionsTest, RejectsNegativeOrNonFiniteEps) {
  for (double bad : {-1e-9, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    EXPECT_THAT(ValidateAdvantageOptions(Grpo(bad)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("eps")))
        << bad;
  }
  EXPECT_THAT(ValidateAdvantageOptions(Grpo(0.0)), IsOk());
}

TEST(ComputeGroupMomentsTest, UsesTheUnbiasedStd) {
  // Biased std of {1, -1} is 1; unbiased (n - 1) is sqrt(2).
  const GroupMoments moments = ComputeGroupMoments(std::vector<double>{1, -1});
  EXPECT_EQ(moments.mean, 0.0);
  EXPECT_DOUBLE_EQ(moments.std, std::sqrt(2.0));
}

TEST(ComputeGroupMomentsTest, EmptyAndSingleton) {
  EXPECT_EQ(ComputeGroupMoments({}).mean, 0.0);
  EXPECT_EQ(ComputeGroupMoments({}).std, 0.0);
  const GroupMoments one = ComputeGroupMoments(std::vector<double>{0.5});
  EXPECT_EQ(one.mean, 0.5);
  EXPECT_EQ(one.std, 0.0);
}

TEST(ComputeGroupAdvantagesTest, HandComputedGrpo) {
  // mean = -1/4, deviations {5/4, 1/4, -3/4, -3/4}, sum of squares 11/4,
  // unbiased variance 11/12.
  const std::vector<double> rewards = {1, 0, -1, -1};
  const double std = std::sqrt(11.0 / 12.0);
  EXPECT_THAT(
      ComputeGroupAdvantages(rewards, Grpo(0.0)),
      Pointwise(DoubleEq(), std::vector<double>{1.25 / std, 0.25 / std,
                                                -0.75 / std, -0.75 / std}));
  // What verl computes: torch (float64)
  // (r - r.mean()) / (r.std() + 1e-6) for r = [1, 0, -1, -1].
  EXPECT_THAT(
      ComputeGroupAdvantages(rewards, Grpo(1e-6)),
      Pointwise(DoubleNear(1e-15),
                std::vector<double>{1.3055810560327943, 0.26111621120655887,
                                    -0.7833486336196767, -0.7833486336196767}));
}

TEST(ComputeGroupAdvantagesTest, HandComputedDrGrpo) {
  const std::vector<double> rewards = {1, 0, -1, -1};
  EXPECT_THAT(ComputeGroupAdvantages(rewards, DrGrpo()),
              ElementsAre(1.25, 0.25, -0.75, -0.75));
}

TEST(ComputeGroupAdvantagesTest, EpsIsAddedToTheStd) {
  const std::vector<double> rewards = {1, -1};
  const double root2 = std::sqrt(2.0);
  EXPECT_THAT(
      ComputeGroupAdvantages(rewards, Grpo(0.0)),
      Pointwise(DoubleEq(), std::vector<double>{1 / root2, -1 / root2}));
  EXPECT_THAT(ComputeGroupAdvantages(rewards, Grpo(0.5)),
              Pointwise(DoubleEq(), std::vector<double>{1 / (root2 + 0.5),
                                                        -1 / (root2 + 0.5)}));
  // Dr. GRPO ignores eps.
  AdvantageOptions dr = DrGrpo();
  dr.eps = 0.5;
  EXPECT_THAT(ComputeGroupAdvantages(rewards, dr), ElementsAre(1.0, -1.0));
}

TEST(ComputeGroupAdvantagesTest, AllEqualGroupGivesExactZeros) {
  // 0.1 * 3 / 3 != 0.1 in binary: a naive r - mean would not be 0.
  for (const std::vector<double>& rewards :
       {std::vector<double>{1, 1, 1, 1}, std::vector<double>{-1, -1},
        std::vector<double>{0.1, 0.1, 0.1}, std::vector<double>{0.7}}) {
    EXPECT_THAT(ComputeGroupAdvantages(rewards, Grpo(0.0)),
                ::testing::Each(0.0));
    EXPECT_THAT(ComputeGroupAdvantages(rewards, Grpo(1e-6)),
                ::testing::Each(0.0));
    EXPECT_THAT(ComputeGroupAdvantages(rewards, DrGrpo()),
                ::testing::Each(0.0));
  }
}

TEST(ComputeGroupAdvantagesTest, SpanApiWritesIntoTheGivenBuffer) {
  const std::vector<double> rewards = {1, 0, -1, -1};
  std::vector<double> advantages(4, 42.0);
  const double* data = advantages.data();
  ASSERT_THAT(
      ComputeGroupAdvantages(rewards, DrGrpo(), absl::MakeSpan(advantages)),
      IsOk());
  EXPECT_EQ(advantages.data(), data);
  EXPECT_THAT(advantages, ElementsAre(1.25, 0.25, -0.75, -0.75));
}

TEST(ComputeGroupAdvantagesTest, SpanApiWorksInPlace) {
  std::vector<double> values = {1, 0, -1, -1};
  const std::vector<double> expected =
      ComputeGroupAdvantages(values, Grpo(1e-6));
  ASSERT_THAT(
      ComputeGroupAdvantages(values, Grpo(1e-6), absl::MakeSpan(values)),
      IsOk());
  EXPECT_THAT(values, Pointwise(DoubleEq(), expected));
}

TEST(ComputeGroupAdvantagesTest, SizeMismatchIsAnErrorAndWritesNothing) {
  const std::vector<double> rewards = {1, 0, -1};
  std::vector<double> advantages(4, 42.0);
  EXPECT_THAT(
      ComputeGroupAdvantages(rewards, Grpo(1e-6), absl::MakeSpan(advantages)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("3 rewards")));
  EXPECT_THAT(advantages, ::testing::Each(42.0));
}

TEST(ComputeBatchAdvantagesTest, EachGroupOnItsOwn) {
  const std::vector<double> rewards = {1, 0, -1, -1, /**/ 1, 1, /**/ 1, -1, 0};
  const std::vector<int> sizes = {4, 2, 3};
  EXPECT_THAT(ComputeBatchAdvantages(rewards, sizes, DrGrpo()),
              IsOkAndHolds(ElementsAre(1.25, 0.25, -0.75, -0.75, 0.0, 0.0, 1.0,
                                       -1.0, 0.0)));
  ASSERT_OK_AND_ASSIGN(std::vector<double> grpo,
                       ComputeBatchAdvantages(rewards, sizes, Grpo(1e-6)));
  const std::vector<double> first = ComputeGroupAdvantages(
      absl::MakeConstSpan(rewards).subspan(0, 4), Grpo(1e-6));
  const std::vector<double> last = ComputeGroupAdvantages(
      absl::MakeConstSpan(rewards).subspan(6, 3), Grpo(1e-6));
  EXPECT_THAT(absl::MakeConstSpan(grpo).subspan(0, 4),
              Pointwise(DoubleEq(), first));
  EXPECT_THAT(absl::MakeConstSpan(grpo).subspan(6, 3),
              Pointwise(DoubleEq(), last));
}

TEST(ComputeBatchAdvantagesTest, InPlace) {
  std::vector<double> values = {1, 0, -1, -1, 1, 1};
  const std::vector<int> sizes = {4, 2};
  ASSERT_THAT(
      ComputeBatchAdvantages(values, sizes, DrGrpo(), absl::MakeSpan(values)),
      IsOk());
  EXPECT_THAT(values, ElementsAre(1.25, 0.25, -0.75, -0.75, 0.0, 0.0));
}

TEST(ComputeBatchAdvantagesTest, LayoutErrorsWriteNothing) {
  const std::vector<double> rewards = {1, 0, -1, -1};
  std::vector<double> advantages(4, 42.0);
  const AdvantageOptions options;
  EXPECT_THAT(
      ComputeBatchAdvantages(rewards, std::vector<int>{2, 1}, options,
                             absl::MakeSpan(advantages)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("add up to 3")));
  EXPECT_THAT(ComputeBatchAdvantages(rewards, std::vector<int>{4, 0}, options,
                                     absl::MakeSpan(advantages)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("group_sizes[1]")));
  EXPECT_THAT(ComputeBatchAdvantages(rewards, std::vector<int>{5, -1}, options,
                                     absl::MakeSpan(advantages)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(advantages, ::testing::Each(42.0));
  std::vector<double> short_output(3);
  EXPECT_THAT(
      ComputeBatchAdvantages(rewards, std::vector<int>{4}, options,
                             absl::MakeSpan(short_output)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("room for 3")));
  EXPECT_THAT(ComputeBatchAdvantages(rewards, std::vector<int>{3}, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(HasLearningSignalTest, NeedsTwoDistinctValues) {
  EXPECT_FALSE(HasLearningSignal({}));
  EXPECT_FALSE(HasLearningSignal(std::vector<double>{1}));
  EXPECT_FALSE(HasLearningSignal(std::vector<double>{0, 0, 0}));
  EXPECT_TRUE(HasLearningSignal(std::vector<double>{0, 0, 1e-12}));
  EXPECT_TRUE(HasLearningSignal(std::vector<double>{-1, 1}));
}

TEST(FilterGroupsWithoutSignalTest, DropsAllEqualGroupsAndCountsThem) {
  const std::vector<double> rewards = {1,   1,  1,  1,   // all sound: dropped
                                       1,   0,  -1, -1,  // kept
                                       -1,  -1,          // all wrong: dropped
                                       0.5,              // singleton: dropped
                                       0,   1,  1};      // kept
  const std::vector<int> sizes = {4, 4, 2, 1, 3};
  ASSERT_OK_AND_ASSIGN(DynamicSamplingResult result,
                       FilterGroupsWithoutSignal(rewards, sizes));
  EXPECT_THAT(result.kept_groups, ElementsAre(1, 4));
  EXPECT_EQ(result.stats.groups_kept, 2);
  EXPECT_EQ(result.stats.groups_dropped, 3);
  EXPECT_EQ(result.stats.rollouts_kept, 7);
  EXPECT_EQ(result.stats.rollouts_dropped, 7);
}

TEST(FilterGroupsWithoutSignalTest, EmptyBatchAndLayoutErrors) {
  ASSERT_OK_AND_ASSIGN(DynamicSamplingResult empty,
                       FilterGroupsWithoutSignal({}, {}));
  EXPECT_TRUE(empty.kept_groups.empty());
  EXPECT_EQ(empty.stats.groups_dropped, 0);
  EXPECT_THAT(
      FilterGroupsWithoutSignal(std::vector<double>{1, 2}, std::vector<int>{3}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FilterGroupsWithoutSignal(std::vector<double>{1, 2},
                                        std::vector<int>{2, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DynamicSamplingStatsTest, Accumulates) {
  DynamicSamplingStats total;
  total += DynamicSamplingStats{1, 2, 3, 4};
  total += DynamicSamplingStats{10, 20, 30, 40};
  EXPECT_EQ(total.groups_kept, 11);
  EXPECT_EQ(total.groups_dropped, 22);
  EXPECT_EQ(total.rollouts_kept, 33);
  EXPECT_EQ(total.rollouts_dropped, 44);
}

}  // namespace
}  // namespace fapo::algorithm
