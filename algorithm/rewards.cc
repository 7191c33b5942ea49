#include "algorithm/rewards.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace fapo::algorithm {

absl::Status ValidateRewardOptions(const RewardOptions& options) {
  if (options.kind != RewardKind::kRlvr && options.kind != RewardKind::kFapo) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kind: unknown RewardKind value ", static_cast<int>(options.kind)));
  }
  if (!std::isfinite(options.flawed_penalty) || options.flawed_penalty < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("flawed_penalty must be finite and >= 0, got ",
                     options.flawed_penalty));
  }
  const OverlongPenaltyOptions& overlong = options.overlong;
  if (!overlong.enabled) return absl::OkStatus();
  if (overlong.max_response_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlong.max_response_tokens must be > 0 when the "
                     "overlong penalty is enabled, got ",
                     overlong.max_response_tokens));
  }
  if (overlong.buffer_tokens < 0 ||
      overlong.buffer_tokens >= overlong.max_response_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "overlong.buffer_tokens must be in [0, max_response_tokens = ",
        overlong.max_response_tokens, "), got ", overlong.buffer_tokens));
  }
  if (!std::isfinite(overlong.penalty) || overlong.penalty < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "overlong.penalty must be finite and >= 0, got ", overlong.penalty));
  }
  return absl::OkStatus();
}

namespace {

// The compute functions avoid data-dependent branches: correctness, flags
// and lengths are coin flips across a batch, and a mispredicted branch costs
// more than the arithmetic. Options are folded once into a Kernel; the bools
// enter the reward as 0/1 factors, the overlong ramp is a clamp.
class Kernel {
 public:
  explicit Kernel(const RewardOptions& options)
      : flawed_penalty_(
            options.kind == RewardKind::kFapo ? options.flawed_penalty : 0.0),
        overlong_enabled_(options.overlong.enabled),
        buffer_tokens_(options.overlong.buffer_tokens),
        ramp_start_(int64_t{options.overlong.max_response_tokens} -
                    options.overlong.buffer_tokens),
        penalty_(options.overlong.penalty) {}

  double Overlong(int response_tokens) const {
    if (!overlong_enabled_) return 0.0;
    // Tokens past the start of the ramp (L - C); 64-bit, so no overflow.
    const int64_t excess = int64_t{response_tokens} - ramp_start_;
    if (buffer_tokens_ <= 0) return excess > 0 ? -penalty_ : 0.0;
    // ((L - C) - len) / C * penalty on the ramp, 0 before it, -penalty past
    // L: the formula's rounding, since negation is exact. "0.0 -" turns the
    // -0.0 below the ramp into +0.0.
    // Clamped in integers (cmov; GCC branches on double compares): the
    // same values as clamping the quotient to [0, 1].
    const int64_t clamped =
        std::min<int64_t>(std::max<int64_t>(excess, 0), buffer_tokens_);
    const double ramp = static_cast<double>(clamped) / buffer_tokens_;
    return 0.0 - ramp * penalty_;
  }

  double Reward(const RolloutJudgement& judgement) const {
    // Conversions, not ?: (which compiles to a branch).
    const double correct = static_cast<double>(judgement.answer_correct);
    const double flawed = static_cast<double>(judgement.flawed);
    // +1 / -1, minus lambda for a flawed positive: exact in binary.
    const double outcome = 2.0 * correct - 1.0;
    return outcome - flawed_penalty_ * (correct * flawed) +
           Overlong(judgement.response_tokens);
  }

 private:
  double flawed_penalty_;  // 0 under RLVR
  bool overlong_enabled_;
  int buffer_tokens_;
  int64_t ramp_start_;
  double penalty_;
};

}  // namespace

double OverlongPenalty(int response_tokens,
                       const OverlongPenaltyOptions& options) noexcept {
  RewardOptions reward_options;
  reward_options.overlong = options;
  return Kernel(reward_options).Overlong(response_tokens);
}

double ComputeReward(const RolloutJudgement& judgement,
                     const RewardOptions& options) noexcept {
  return Kernel(options).Reward(judgement);
}

absl::Status ComputeRewards(absl::Span<const RolloutJudgement> judgements,
                            const RewardOptions& options,
                            absl::Span<double> rewards) {
  if (judgements.size() != rewards.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ComputeRewards: ", judgements.size(),
                     " judgements but room for ", rewards.size(), " rewards"));
  }
  const Kernel kernel(options);
  for (size_t i = 0; i < judgements.size(); ++i) {
    rewards[i] = kernel.Reward(judgements[i]);
  }
  return absl::OkStatus();
}

}  // namespace fapo::algorithm
