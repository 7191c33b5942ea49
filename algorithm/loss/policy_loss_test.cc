// The policy loss against hand-computed values and gradients.
#include "algorithm/loss/policy_loss.h"

#include <torch/torch.h>

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::algorithm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

torch::Tensor Row(std::vector<double> values) {
  return torch::tensor(values, torch::kFloat64).unsqueeze(0);
}

struct Case {
  torch::Tensor logp;  // leaf with grad
  PolicyLossInputs inputs;
};

// One sequence; logp = old + log(ratio) per token.
Case SingleSequence(std::vector<double> ratios, double advantage,
                    std::vector<double> mask = {}) {
  std::vector<double> old(ratios.size(), -1.0), now;
  for (size_t t = 0; t < ratios.size(); ++t) {
    now.push_back(old[t] + std::log(ratios[t]));
  }
  if (mask.empty()) mask.assign(ratios.size(), 1.0);
  Case c;
  c.logp = Row(now).requires_grad_(true);
  c.inputs.logprobs = c.logp;
  c.inputs.old_logprobs = Row(old);
  c.inputs.advantages = torch::tensor({advantage}, torch::kFloat64);
  c.inputs.mask = Row(mask);
  return c;
}

TEST(PolicyLossTest, UnclippedGradientMatchesHandComputation) {
  // ratios inside [0.8, 1.28]: loss = -(A/N) * sum r_t, d/dlogp_t = -A r_t/N.
  Case c = SingleSequence({0.9, 1.1}, 2.0);
  ASSERT_OK_AND_ASSIGN(PolicyLossResult result,
                       ComputePolicyLoss(c.inputs, {}));
  EXPECT_NEAR(result.loss.item<double>(), -(2.0 * 0.9 + 2.0 * 1.1) / 2, 1e-12);
  result.loss.backward();
  auto grad = c.logp.grad();
  EXPECT_NEAR(grad[0][0].item<double>(), -2.0 * 0.9 / 2, 1e-12);
  EXPECT_NEAR(grad[0][1].item<double>(), -2.0 * 1.1 / 2, 1e-12);
  EXPECT_EQ(result.clip_fraction, 0.0);
  EXPECT_EQ(result.num_tokens, 2);
  EXPECT_DOUBLE_EQ(result.is_weight_mean, 1.0);
}

TEST(PolicyLossTest, PositiveAdvantageClipsOnlyAboveOnePlusClipHigh) {
  // A > 0: r = 1.5 > 1.28 is clipped (no gradient); r = 0.5 < 0.8 is not.
  Case c = SingleSequence({1.5, 0.5}, 1.0);
  ASSERT_OK_AND_ASSIGN(PolicyLossResult result,
                       ComputePolicyLoss(c.inputs, {}));
  EXPECT_NEAR(result.loss.item<double>(), -(1.28 + 0.5) / 2, 1e-12);
  result.loss.backward();
  EXPECT_EQ(c.logp.grad()[0][0].item<double>(), 0.0);
  EXPECT_NEAR(c.logp.grad()[0][1].item<double>(), -0.5 / 2, 1e-12);
  EXPECT_DOUBLE_EQ(result.clip_fraction, 0.5);
  EXPECT_DOUBLE_EQ(result.clip_fraction_high, 0.5);
  EXPECT_DOUBLE_EQ(result.clip_fraction_low, 0.0);
}

TEST(PolicyLossTest, NegativeAdvantageClipsOnlyBelowOneMinusClipLow) {
  // A < 0: r = 0.5 < 0.8 is clipped (no gradient); r = 1.5 is not.
  Case c = SingleSequence({0.5, 1.5}, -1.0);
  ASSERT_OK_AND_ASSIGN(PolicyLossResult result,
                       ComputePolicyLoss(c.inputs, {}));
  EXPECT_NEAR(result.loss.item<double>(), (0.8 + 1.5) / 2, 1e-12);
  result.loss.backward();
  EXPECT_EQ(c.logp.grad()[0][0].item<double>(), 0.0);
  EXPECT_NEAR(c.logp.grad()[0][1].item<double>(), 1.5 / 2, 1e-12);
  EXPECT_DOUBLE_EQ(result.clip_fraction_low, 0.5);
  EXPECT_DOUBLE_EQ(result.clip_fraction_high, 0.0);
}

TEST(PolicyLossTest, ClipBoundariesAreExactAndAsymmetric) {
  PolicyLossOptions options;
  options.clip_low = 0.1;
  options.clip_high = 0.3;
  // Just inside the upper bound: gradient flows; just outside: none.
  Case inside = SingleSequence({1.3 - 1e-6}, 1.0);
  ASSERT_OK_AND_ASSIGN(auto in, ComputePolicyLoss(inside.inputs, options));
  in.loss.backward();
  EXPECT_NE(inside.logp.grad()[0][0].item<double>(), 0.0);
  Case outside = SingleSequence({1.3 + 1e-6}, 1.0);
  ASSERT_OK_AND_ASSIGN(auto out, ComputePolicyLoss(outside.inputs, options));
  out.loss.backward();
  EXPECT_EQ(outside.logp.grad()[0][0].item<double>(), 0.0);
  // The lower bound is 1 - clip_low = 0.9, not 1 - clip_high.
  Case low = SingleSequence({0.85}, -1.0);
  ASSERT_OK_AND_ASSIGN(auto l, ComputePolicyLoss(low.inputs, options));
  EXPECT_NEAR(l.loss.item<double>(), 0.9, 1e-12);
  EXPECT_DOUBLE_EQ(l.clip_fraction, 1.0);
}

TEST(PolicyLossTest, TokenMeanWeighsTokensSequenceMeanWeighsSequences) {
  // Sequence 0 has 3 tokens, sequence 1 has 1; ratios 1, so pg = -A.
  torch::Tensor logp =
      torch::full({2, 3}, -1.0, torch::kFloat64).requires_grad_(true);
  PolicyLossInputs inputs;
  inputs.logprobs = logp;
  inputs.old_logprobs = torch::full({2, 3}, -1.0, torch::kFloat64);
  inputs.advantages = torch::tensor({1.0, -3.0}, torch::kFloat64);
  inputs.mask =
      torch::tensor({{1.0, 1.0, 1.0}, {1.0, 0.0, 0.0}}, torch::kFloat64);
  ASSERT_OK_AND_ASSIGN(auto token_mean, ComputePolicyLoss(inputs, {}));
  EXPECT_NEAR(token_mean.loss.item<double>(), (-1 - 1 - 1 + 3) / 4.0, 1e-12);

  PolicyLossOptions sequence;
  sequence.aggregation = LossAggregation::kSequenceMean;
  ASSERT_OK_AND_ASSIGN(auto seq_mean, ComputePolicyLoss(inputs, sequence));
  EXPECT_NEAR(seq_mean.loss.item<double>(), (-1.0 + 3.0) / 2, 1e-12);
  seq_mean.loss.backward();
  // d/dlogp = -A * r / (T_i * B): 1/6 per token of seq 0, 3/2 for seq 1.
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), -1.0 / 6, 1e-12);
  EXPECT_NEAR(logp.grad()[1][0].item<double>(), 3.0 / 2, 1e-12);
  EXPECT_EQ(logp.grad()[1][1].item<double>(), 0.0);  // padding
}

TEST(PolicyLossTest, PerTokenAdvantagesAreAccepted) {
  Case c = SingleSequence({1.0, 1.0}, 0.0);
  c.inputs.advantages = Row({1.0, -1.0});
  ASSERT_OK_AND_ASSIGN(auto result, ComputePolicyLoss(c.inputs, {}));
  EXPECT_NEAR(result.loss.item<double>(), 0.0, 1e-12);
  result.loss.backward();
  EXPECT_NEAR(c.logp.grad()[0][0].item<double>(), -0.5, 1e-12);
  EXPECT_NEAR(c.logp.grad()[0][1].item<double>(), 0.5, 1e-12);
}

TEST(PolicyLossTest, KlPenaltyUsesK3AndItsGradient) {
  Case c = SingleSequence({1.0}, 0.0);
  c.inputs.ref_logprobs = Row({-1.5});  // ref - logp = -0.5
  PolicyLossOptions options;
  options.kl_coef = 0.1;
  ASSERT_OK_AND_ASSIGN(auto result, ComputePolicyLoss(c.inputs, options));
  const double k3 = std::exp(-0.5) + 0.5 - 1;
  EXPECT_NEAR(result.kl_to_ref, k3, 1e-12);
  EXPECT_NEAR(result.loss.item<double>(), 0.1 * k3, 1e-12);
  result.loss.backward();
  // d/dlogp [e^(ref-logp) - (ref-logp) - 1] = 1 - e^(ref-logp)
  EXPECT_NEAR(c.logp.grad()[0][0].item<double>(), 0.1 * (1 - std::exp(-0.5)),
              1e-12);
}

TEST(PolicyLossTest, TruncatedImportanceWeightsScaleAndCap) {
  // old - rollout = log 1.5 (weight 1.5) and log 3 (capped at 2).
  Case c = SingleSequence({1.0, 1.0}, 1.0);
  c.inputs.rollout_logprobs = Row({-1.0 - std::log(1.5), -1.0 - std::log(3.0)});
  ASSERT_OK_AND_ASSIGN(auto result, ComputePolicyLoss(c.inputs, {}));
  EXPECT_NEAR(result.loss.item<double>(), -(1.5 + 2.0) / 2, 1e-12);
  EXPECT_NEAR(result.is_weight_mean, 1.75, 1e-12);
  EXPECT_DOUBLE_EQ(result.is_truncated_fraction, 0.5);
  result.loss.backward();
  EXPECT_NEAR(c.logp.grad()[0][0].item<double>(), -1.5 / 2, 1e-12);

  PolicyLossOptions off;
  off.importance_sampling_cap = 0;
  ASSERT_OK_AND_ASSIGN(auto plain, ComputePolicyLoss(c.inputs, off));
  EXPECT_NEAR(plain.loss.item<double>(), -1.0, 1e-12);
}

TEST(PolicyLossTest, DiagnosticsReportKlAndEntropy) {
  Case c = SingleSequence({1.1, 0.9}, 1.0);
  c.inputs.entropy = Row({0.5, 1.5});
  ASSERT_OK_AND_ASSIGN(auto result, ComputePolicyLoss(c.inputs, {}));
  const double k3 = ((1.1 - 1 - std::log(1.1)) + (0.9 - 1 - std::log(0.9))) / 2;
  EXPECT_NEAR(result.approx_kl, k3, 1e-12);
  EXPECT_GT(result.approx_kl, 0);
  EXPECT_DOUBLE_EQ(result.entropy, 1.0);
}

TEST(PolicyLossTest, WorksInFloat32) {
  torch::Tensor logp = torch::zeros({4, 5}).requires_grad_(true);
  PolicyLossInputs inputs;
  inputs.logprobs = logp;
  inputs.old_logprobs = torch::zeros({4, 5});
  inputs.advantages = torch::ones({4});
  inputs.mask = torch::ones({4, 5}, torch::kBool);
  ASSERT_OK_AND_ASSIGN(auto result, ComputePolicyLoss(inputs, {}));
  EXPECT_NEAR(result.loss.item<float>(), -1.0f, 1e-6);
  result.loss.backward();
  EXPECT_NEAR(logp.grad()[0][0].item<float>(), -1.0f / 20, 1e-7);
}

TEST(PolicyLossTest, BadInputsAreNamed) {
  Case c = SingleSequence({1.0, 1.0}, 1.0);
  PolicyLossInputs bad = c.inputs;
  bad.old_logprobs = Row({-1.0});
  EXPECT_THAT(ComputePolicyLoss(bad, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("old_logprobs has shape [1, 1]")));
  bad = c.inputs;
  bad.mask = Row({0.0, 0.0});
  EXPECT_THAT(
      ComputePolicyLoss(bad, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no token")));
  bad = c.inputs;
  bad.advantages = torch::ones({3}, torch::kFloat64);
  EXPECT_THAT(ComputePolicyLoss(bad, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("advantages has shape [3]")));
  PolicyLossOptions kl;
  kl.kl_coef = 0.5;
  EXPECT_THAT(
      ComputePolicyLoss(c.inputs, kl),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ref_logprobs")));
  PolicyLossOptions clip;
  clip.clip_low = 1.0;
  EXPECT_THAT(
      ComputePolicyLoss(c.inputs, clip),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("clip_low")));
  PolicyLossOptions cap;
  cap.importance_sampling_cap = 0.5;
  EXPECT_THAT(ComputePolicyLoss(c.inputs, cap),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("importance_sampling_cap")));
}

}  // namespace
}  // namespace fapo::algorithm
