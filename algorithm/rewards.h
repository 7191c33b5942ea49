// Policy rewards: RLVR's outcome reward, FAPO's flawed-positive penalty and
// DAPO's overlong (soft) penalty.
//
//   R = R_RLVR + R_delta + R_overlong
//   R_RLVR     = +1 when the answer is correct, -1 when it is wrong
//   R_delta    = -flawed_penalty (the paper's lambda) when kind is kFapo, the
//                answer is correct and the GenRM flagged a step; else 0
//   R_overlong = 0 unless overlong.enabled (see OverlongPenalty)
//
// With lambda = 1: sound +1, flawed positive 0, wrong -1.
//
// Validate options once with ValidateRewardOptions; the compute functions
// assume valid options, never fail, never allocate, and are thread-safe.
#ifndef FAPO_ALGORITHM_REWARDS_H_
#define FAPO_ALGORITHM_REWARDS_H_

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace fapo::algorithm {

enum class RewardKind {
  kRlvr,  // outcome reward only; the GenRM's verdict is ignored
  kFapo,  // outcome reward plus the flawed-positive penalty
};

// DAPO's overlong reward shaping, with L = max_response_tokens and
// C = buffer_tokens, added to the reward of a response of `len` tokens:
//   0                               if len <= L - C
//   ((L - C) - len) / C * penalty   if L - C < len <= L
//   -penalty                        if len > L
struct OverlongPenaltyOptions {
  // Default false (no penalty; the other fields are then not checked).
  bool enabled = false;
  // L, in tokens. Default 0; must be > 0 when enabled.
  int max_response_tokens = 0;
  // C, in tokens: the ramp before L. Default 0 (a hard step at L); must be in
  // [0, max_response_tokens) when enabled.
  int buffer_tokens = 0;
  // The penalty at and beyond L. Default 1.0; finite and >= 0.
  double penalty = 1.0;
};

struct RewardOptions {
  // Default kFapo.
  RewardKind kind = RewardKind::kFapo;
  // lambda: the reward taken off a flawed positive (kFapo only). Default 1.0;
  // finite and >= 0.
  double flawed_penalty = 1.0;
  OverlongPenaltyOptions overlong;
};

// What is known about one rollout when its reward is computed.
struct RolloutJudgement {
  // The final answer matches the ground truth (the task's verifier).
  bool answer_correct = false;
  // The GenRM flagged a step of this correct answer. Ignored when the answer
  // is wrong. An unparsable, invalid or timed-out verdict is "not flawed".
  bool flawed = false;
  // Length of the response, in tokens (for the overlong penalty).
  int response_tokens = 0;
};

// InvalidArgument naming the offending field when `options` is out of range
// (see the field comments).
absl::Status ValidateRewardOptions(const RewardOptions& options);

// The overlong penalty (<= 0) for a response of `response_tokens` tokens;
// 0 when options.enabled is false.
double OverlongPenalty(int response_tokens,
                       const OverlongPenaltyOptions& options) noexcept;

// R for one rollout.
double ComputeReward(const RolloutJudgement& judgement,
                     const RewardOptions& options) noexcept;

// rewards[i] = ComputeReward(judgements[i], options). InvalidArgument, with
// `rewards` untouched, when the sizes differ.
absl::Status ComputeRewards(absl::Span<const RolloutJudgement> judgements,
                            const RewardOptions& options,
                            absl::Span<double> rewards);

}  // namespace fapo::algorithm

#endif  // FAPO_ALGORITHM_REWARDS_H_
