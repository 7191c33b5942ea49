// algorithm/loss: the GRPO/FAPO policy loss on LibTorch tensors.
//
// The only LibTorch part of the algorithm (rewards, advantages, verdicts
// and metrics are plain C++ in algorithm/). The trainer calls it once per
// micro-batch with per-token log-probs from its teacher-forced forward.
//
// Per response token t of sequence i (masked tokens contribute nothing):
//
//   ratio   r      = exp(logp - old_logp)               (PPO ratio)
//   clipped        = clip(r, 1 - clip_low, 1 + clip_high)   (DAPO clip-higher)
//   pg             = max(-A_i * r, -A_i * clipped)
//   tis weight w   = min(exp(old_logp - rollout_logp), importance_sampling_cap)
//                    (truncated importance sampling, no gradient; 1 when off)
//   kl (k3)        = exp(ref_logp - logp) - (ref_logp - logp) - 1
//   per-token loss = w * pg + kl_coef * kl
//
// aggregated as a token mean over the whole micro-batch (default, DAPO) or as
// the mean over sequences of each sequence's token mean.
//
// NOTE [old vs rollout log-probs]: `old_logprobs` anchor the PPO ratio: the
// log-probs of the policy that sampled the batch, recomputed by the trainer
// (train-time numerics). `rollout_logprobs` are what the rollout engine
// reported at sampling time; inference and training kernels differ, so the
// two disagree a little, and the truncated importance weight corrects the
// gradient for that mismatch. Without a recompute, pass the rollout
// log-probs as old_logprobs and leave rollout_logprobs undefined.
#ifndef FAPO_ALGORITHM_LOSS_POLICY_LOSS_H_
#define FAPO_ALGORITHM_LOSS_POLICY_LOSS_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace fapo::algorithm {

enum class LossAggregation { kTokenMean, kSequenceMean };

struct PolicyLossOptions {
  // Lower and upper clip ranges of the ratio: [1 - clip_low, 1 + clip_high].
  // Defaults 0.2 / 0.28 (DAPO's clip-higher). clip_low in [0, 1),
  // clip_high >= 0.
  double clip_low = 0.2;
  double clip_high = 0.28;
  LossAggregation aggregation = LossAggregation::kTokenMean;
  // Weight of the k3 KL penalty to the reference policy. Default 0 (off);
  // > 0 needs ref_logprobs.
  double kl_coef = 0.0;
  // Cap of the truncated importance-sampling weight. Default 2; 0 turns the
  // correction off. Otherwise >= 1.
  double importance_sampling_cap = 2.0;
};

// All per-token tensors are [batch, time] floating point on one device;
// `mask` is 1 (or true) on response tokens and 0 on padding and prompt.
struct PolicyLossInputs {
  at::Tensor logprobs;          // log pi_theta, requires grad
  at::Tensor old_logprobs;      // log pi_old (NOTE [old vs rollout ...])
  at::Tensor advantages;        // [batch] or [batch, time]
  at::Tensor mask;              // [batch, time]
  at::Tensor rollout_logprobs;  // optional: sampling-time log-probs
  at::Tensor ref_logprobs;      // optional: needed when kl_coef > 0
  at::Tensor entropy;           // optional: per-token entropy, reported only
};

struct PolicyLossResult {
  // Scalar, differentiable with respect to inputs.logprobs.
  at::Tensor loss;
  // Diagnostics over the masked tokens (plain numbers, no gradient):
  double policy_loss = 0;            // the aggregated w * pg term alone
  double clip_fraction = 0;          // tokens where the clipped term was chosen
  double clip_fraction_low = 0;      // ... because r < 1 - clip_low (A < 0)
  double clip_fraction_high = 0;     // ... because r > 1 + clip_high (A > 0)
  double approx_kl = 0;              // k3 estimate of KL(pi_old || pi_theta)
  double kl_to_ref = 0;              // mean k3 to the reference (0 without one)
  double entropy = 0;                // mean entropy (0 when not given)
  double is_weight_mean = 0;         // mean truncated IS weight (1 when off)
  double is_truncated_fraction = 0;  // tokens whose weight hit the cap
  int64_t num_tokens = 0;
};

// Errors (InvalidArgument, naming the tensor): missing or mismatched shapes,
// non-floating tensors, an empty mask, bad options, kl_coef > 0 without
// ref_logprobs.
absl::StatusOr<PolicyLossResult> ComputePolicyLoss(
    const PolicyLossInputs& inputs, const PolicyLossOptions& options);

absl::Status ValidatePolicyLossOptions(const PolicyLossOptions& options);

}  // namespace fapo::algorithm

#endif  // FAPO_ALGORITHM_LOSS_POLICY_LOSS_H_
