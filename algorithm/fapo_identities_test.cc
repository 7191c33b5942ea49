// The paper's identities about FAPO rewards under GRPO advantages, checked
// numerically over many random groups (sizes 2..64, random mixes of sound,
// flawed-positive and wrong rollouts, shuffled).
//
// With alpha, beta, gamma the shares of sound, wrong and flawed rollouts and
// lambda the flawed penalty, a flawed positive's reward is 1 - lambda and the
// group mean is alpha - beta + gamma (1 - lambda), so its advantage has the
// sign of (2 - lambda) beta - lambda alpha: positive while
// alpha / beta < 2 / lambda - 1, negative above; with lambda = 1 the switch
// is at alpha = beta.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "algorithm/advantages.h"
#include "algorithm/flawed_metrics.h"
#include "algorithm/rewards.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::algorithm {
namespace {

using ::fapo::testing::IsOk;

constexpr int kNumGroups = 20000;

struct GroupMix {
  int sound = 0;
  int flawed = 0;
  int wrong = 0;
  int size() const { return sound + flawed + wrong; }
};

// A random mix of 2..64 rollouts with at least `min_flawed` flawed ones.
GroupMix RandomMix(std::mt19937_64& rng, int min_flawed) {
  const int size = std::uniform_int_distribution<int>(2, 64)(rng);
  GroupMix mix;
  mix.flawed = std::uniform_int_distribution<int>(min_flawed, size)(rng);
  mix.sound = std::uniform_int_distribution<int>(0, size - mix.flawed)(rng);
  mix.wrong = size - mix.flawed - mix.sound;
  return mix;
}

// The rollouts of `mix`, shuffled. Some wrong rollouts are also flagged by
// the GenRM: that must not matter.
std::vector<RolloutJudgement> Rollouts(const GroupMix& mix,
                                       std::mt19937_64& rng) {
  std::vector<RolloutJudgement> rollouts;
  for (int i = 0; i < mix.sound; ++i) rollouts.push_back({true, false, 100});
  for (int i = 0; i < mix.flawed; ++i) rollouts.push_back({true, true, 100});
  std::bernoulli_distribution flagged(0.3);
  for (int i = 0; i < mix.wrong; ++i) {
    rollouts.push_back({false, flagged(rng), 100});
  }
  std::shuffle(rollouts.begin(), rollouts.end(), rng);
  return rollouts;
}

RewardOptions Fapo(double lambda) {
  RewardOptions options;
  options.kind = RewardKind::kFapo;
  options.flawed_penalty = lambda;
  return options;
}

std::vector<double> Rewards(const std::vector<RolloutJudgement>& rollouts,
                            const RewardOptions& options) {
  std::vector<double> rewards(rollouts.size());
  EXPECT_THAT(ComputeRewards(rollouts, options, absl::MakeSpan(rewards)),
              IsOk());
  return rewards;
}

// The advantage every flawed positive of the group gets (they share one
// reward, so one advantage); checks that they indeed agree.
double FlawedAdvantage(const std::vector<RolloutJudgement>& rollouts,
                       const std::vector<double>& advantages) {
  double flawed_advantage = 0.0;
  bool seen = false;
  for (size_t i = 0; i < rollouts.size(); ++i) {
    if (ClassifyRollout(rollouts[i]) != RolloutClass::kFlawedPositive) continue;
    if (seen) {
      EXPECT_EQ(advantages[i], flawed_advantage);
    }
    flawed_advantage = advantages[i];
    seen = true;
  }
  EXPECT_TRUE(seen);
  return flawed_advantage;
}

TEST(FapoIdentitiesTest, LambdaOneSwitchesSignWhereAlphaEqualsBeta) {
  std::mt19937_64 rng(20251022);
  int below = 0, at = 0, above = 0;
  for (int trial = 0; trial < kNumGroups; ++trial) {
    GroupMix mix = RandomMix(rng, /*min_flawed=*/1);
    if (trial % 3 == 0) {
      // Force alpha == beta often enough to test the switch point itself.
      const int pair = std::min(mix.sound, mix.wrong);
      mix.flawed += mix.sound - pair + mix.wrong - pair;
      mix.sound = mix.wrong = pair;
    }
    const std::vector<RolloutJudgement> rollouts = Rollouts(mix, rng);
    const std::vector<double> rewards = Rewards(rollouts, Fapo(1.0));
    for (bool scale_by_std : {true, false}) {
      AdvantageOptions options;
      options.scale_by_std = scale_by_std;
      const double advantage =
          FlawedAdvantage(rollouts, ComputeGroupAdvantages(rewards, options));
      const FlawedCounts counts = CountRollouts(rollouts);
      ASSERT_EQ(counts.sound, mix.sound);
      ASSERT_EQ(counts.wrong, mix.wrong);
      if (counts.alpha() < counts.beta()) {
        ASSERT_GT(advantage, 0.0)
            << mix.sound << "/" << mix.flawed << "/" << mix.wrong;
        below += scale_by_std;
      } else if (counts.alpha() == counts.beta()) {
        ASSERT_NEAR(advantage, 0.0, 1e-9)
            << mix.sound << "/" << mix.flawed << "/" << mix.wrong;
        at += scale_by_std;
      } else {
        ASSERT_LT(advantage, 0.0)
            << mix.sound << "/" << mix.flawed << "/" << mix.wrong;
        above += scale_by_std;
      }
    }
  }
  EXPECT_GT(below, 1000);
  EXPECT_GT(at, 1000);
  EXPECT_GT(above, 1000);
}

TEST(FapoIdentitiesTest, GeneralLambdaSwitchesAtTwoOverLambdaMinusOne) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> lambdas(0.0, 2.0);
  int below = 0, above = 0;
  for (int trial = 0; trial < kNumGroups; ++trial) {
    double lambda = 0.0;
    while (lambda <= 0.0) lambda = lambdas(rng);
    const double threshold = 2.0 / lambda - 1.0;  // on rho = alpha / beta
    // Alternate the side of the switch the group must fall on; rejection
    // sampling always succeeds (all wrong but one flawed is below, no wrong
    // and one sound is above).
    const bool want_below = trial % 2 == 0;
    GroupMix mix;
    double margin = 0.0;  // (2 - lambda) beta - lambda alpha, in counts
    for (;;) {
      mix = RandomMix(rng, /*min_flawed=*/1);
      margin = (2.0 - lambda) * mix.wrong - lambda * mix.sound;
      if (std::abs(margin) < 1e-9) continue;  // on the switch: not a side
      if ((margin > 0) == want_below) break;
    }
    // The side in terms of rho, as the paper states it.
    if (mix.wrong > 0) {
      const double rho = static_cast<double>(mix.sound) / mix.wrong;
      ASSERT_EQ(rho < threshold, want_below) << rho << " vs " << threshold;
    } else {
      ASSERT_FALSE(want_below);  // rho = infinity
    }
    const std::vector<RolloutJudgement> rollouts = Rollouts(mix, rng);
    const double advantage = FlawedAdvantage(
        rollouts, ComputeGroupAdvantages(Rewards(rollouts, Fapo(lambda)),
                                         AdvantageOptions()));
    if (want_below) {
      ASSERT_GT(advantage, 0.0) << "lambda " << lambda << " mix " << mix.sound
                                << "/" << mix.flawed << "/" << mix.wrong;
      ++below;
    } else {
      ASSERT_LT(advantage, 0.0) << "lambda " << lambda << " mix " << mix.sound
                                << "/" << mix.flawed << "/" << mix.wrong;
      ++above;
    }
  }
  EXPECT_EQ(below, kNumGroups / 2);
  EXPECT_EQ(above, kNumGroups / 2);
}

TEST(FapoIdentitiesTest, FapoMeanIsRlvrMeanMinusLambdaGamma) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> lambdas(0.0, 2.0);
  RewardOptions rlvr;
  rlvr.kind = RewardKind::kRlvr;
  for (int trial = 0; trial < kNumGroups; ++trial) {
    const double lambda = trial % 4 == 0 ? 1.0 : lambdas(rng);
    const std::vector<RolloutJudgement> rollouts =
        Rollouts(RandomMix(rng, /*min_flawed=*/0), rng);
    const double fapo_mean =
        ComputeGroupMoments(Rewards(rollouts, Fapo(lambda))).mean;
    const double rlvr_mean = ComputeGroupMoments(Rewards(rollouts, rlvr)).mean;
    const double gamma = CountRollouts(rollouts).gamma();
    ASSERT_NEAR(fapo_mean, rlvr_mean - lambda * gamma, 1e-12);
  }
}

TEST(FapoIdentitiesTest, GroupsWithoutFlawedPositivesIgnoreLambda) {
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> lambdas(0.0, 2.0);
  for (int trial = 0; trial < kNumGroups; ++trial) {
    GroupMix mix = RandomMix(rng, /*min_flawed=*/0);
    mix.wrong += mix.flawed;  // flagged wrong rollouts stay in the mix
    mix.flawed = 0;
    const std::vector<RolloutJudgement> rollouts = Rollouts(mix, rng);
    const std::vector<double> rewards_a = Rewards(rollouts, Fapo(lambdas(rng)));
    const std::vector<double> rewards_b = Rewards(rollouts, Fapo(lambdas(rng)));
    ASSERT_EQ(rewards_a, rewards_b);
    ASSERT_EQ(ComputeGroupAdvantages(rewards_a, AdvantageOptions()),
              ComputeGroupAdvantages(rewards_b, AdvantageOptions()));
  }
}

TEST(FapoIdentitiesTest, DrGrpoDiffersOnlyByThePositiveStdScale) {
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> lambdas(0.0, 2.0);
  AdvantageOptions grpo;
  AdvantageOptions dr_grpo;
  dr_grpo.scale_by_std = false;
  for (int trial = 0; trial < kNumGroups; ++trial) {
    const std::vector<RolloutJudgement> rollouts =
        Rollouts(RandomMix(rng, /*min_flawed=*/0), rng);
    const std::vector<double> rewards = Rewards(rollouts, Fapo(lambdas(rng)));
    const std::vector<double> scaled = ComputeGroupAdvantages(rewards, grpo);
    const std::vector<double> unscaled =
        ComputeGroupAdvantages(rewards, dr_grpo);
    const double scale = ComputeGroupMoments(rewards).std + grpo.eps;
    ASSERT_GT(scale, 0.0);
    for (size_t i = 0; i < rewards.size(); ++i) {
      ASSERT_EQ(scaled[i] > 0, unscaled[i] > 0);
      ASSERT_EQ(scaled[i] < 0, unscaled[i] < 0);
      ASSERT_NEAR(scaled[i] * scale, unscaled[i], 1e-12);
    }
  }
}

}  // namespace
}  // namespace fapo::algorithm
