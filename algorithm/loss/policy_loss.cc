#include "algorithm/loss/policy_loss.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fapo::algorithm {
namespace {

std::string ShapeOf(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

absl::Status CheckPerToken(const at::Tensor& tensor, const char* name,
                           const at::Tensor& like) {
  if (!tensor.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is missing"));
  }
  if (!at::isFloatingType(tensor.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be floating point"));
  }
  if (tensor.sizes() != like.sizes()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has shape ", ShapeOf(tensor), ", expected ",
                     ShapeOf(like), " like logprobs"));
  }
  return absl::OkStatus();
}

// Token mean over the micro-batch, or mean of per-sequence token means.
at::Tensor Aggregate(const at::Tensor& per_token, const at::Tensor& mask,
                     LossAggregation aggregation) {
  if (aggregation == LossAggregation::kTokenMean) {
    return (per_token * mask).sum() / mask.sum();
  }
  at::Tensor tokens_per_sequence = mask.sum(1);
  at::Tensor has_tokens = tokens_per_sequence > 0;
  at::Tensor sequence_means =
      (per_token * mask).sum(1) / tokens_per_sequence.clamp_min(1);
  // Sequences with no response token (all masked) do not count.
  return (sequence_means * has_tokens).sum() / has_tokens.sum();
}

double MaskedMean(const at::Tensor& values, const at::Tensor& mask) {
  return ((values * mask).sum() / mask.sum()).item<double>();
}

}  // namespace

absl::Status ValidatePolicyLossOptions(const PolicyLossOptions& options) {
  if (!(options.clip_low >= 0 && options.clip_low < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("clip_low must be in [0, 1), got ", options.clip_low));
  }
  if (!(options.clip_high >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("clip_high must be >= 0, got ", options.clip_high));
  }
  if (!(options.kl_coef >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kl_coef must be >= 0, got ", options.kl_coef));
  }
  if (!(options.importance_sampling_cap == 0 ||
        options.importance_sampling_cap >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("importance_sampling_cap must be 0 (off) or >= 1, got ",
                     options.importance_sampling_cap));
  }
  return absl::OkStatus();
}

absl::StatusOr<PolicyLossResult> ComputePolicyLoss(
    const PolicyLossInputs& inputs, const PolicyLossOptions& options) {
  absl::Status valid = ValidatePolicyLossOptions(options);
  if (!valid.ok()) return valid;
  const at::Tensor& logp = inputs.logprobs;
  if (!logp.defined() || logp.dim() != 2) {
    return absl::InvalidArgumentError(
        "logprobs must be a [batch, time] tensor");
  }
  if (!at::isFloatingType(logp.scalar_type())) {
    return absl::InvalidArgumentError("logprobs must be floating point");
  }
  absl::Status checked =
      CheckPerToken(inputs.old_logprobs, "old_logprobs", logp);
  if (!checked.ok()) return checked;
  if (!inputs.mask.defined() || inputs.mask.sizes() != logp.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mask ",
        inputs.mask.defined() ? absl::StrCat("has shape ", ShapeOf(inputs.mask))
                              : std::string("is missing"),
        ", expected ", ShapeOf(logp), " like logprobs"));
  }
  if (!inputs.advantages.defined()) {
    return absl::InvalidArgumentError("advantages is missing");
  }
  at::Tensor advantages = inputs.advantages;
  if (advantages.dim() == 1 && advantages.size(0) == logp.size(0)) {
    advantages = advantages.unsqueeze(1);
  } else if (advantages.sizes() != logp.sizes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("advantages has shape ", ShapeOf(advantages),
                     ", expected [", logp.size(0), "] or ", ShapeOf(logp)));
  }
  at::Tensor mask = inputs.mask.to(logp.scalar_type());
  const int64_t num_tokens = mask.sum().item<double>();
  if (num_tokens == 0) {
    return absl::InvalidArgumentError(
        "mask selects no token: nothing to train on");
  }
  if (options.kl_coef > 0) {
    checked = CheckPerToken(inputs.ref_logprobs, "ref_logprobs", logp);
    if (!checked.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kl_coef > 0 needs ref_logprobs: ", checked.message()));
    }
  }
  const bool use_tis =
      options.importance_sampling_cap > 0 && inputs.rollout_logprobs.defined();
  if (use_tis) {
    checked = CheckPerToken(inputs.rollout_logprobs, "rollout_logprobs", logp);
    if (!checked.ok()) return checked;
  }
  if (inputs.entropy.defined()) {
    checked = CheckPerToken(inputs.entropy, "entropy", logp);
    if (!checked.ok()) return checked;
  }

  at::Tensor old_logp = inputs.old_logprobs.detach();
  at::Tensor log_ratio = logp - old_logp;
  at::Tensor ratio = at::exp(log_ratio);
  at::Tensor clipped_ratio =
      at::clamp(ratio, 1.0 - options.clip_low, 1.0 + options.clip_high);
  at::Tensor unclipped_loss = -advantages * ratio;
  at::Tensor clipped_loss = -advantages * clipped_ratio;
  at::Tensor pg = at::maximum(unclipped_loss, clipped_loss);

  at::Tensor weight;
  if (use_tis) {
    weight = at::clamp_max(at::exp(old_logp - inputs.rollout_logprobs.detach()),
                           options.importance_sampling_cap);
    pg = pg * weight;
  }
  at::Tensor per_token = pg;
  at::Tensor kl_to_ref;
  if (options.kl_coef > 0) {
    at::Tensor delta = inputs.ref_logprobs.detach() - logp;
    kl_to_ref = at::exp(delta) - delta - 1;
    per_token = per_token + options.kl_coef * kl_to_ref;
  }

  PolicyLossResult result;
  result.loss = Aggregate(per_token, mask, options.aggregation);
  result.num_tokens = num_tokens;
  {
    c10::NoGradGuard no_grad;
    result.policy_loss =
        Aggregate(pg.detach(), mask, options.aggregation).item<double>();
    at::Tensor chose_clipped = (clipped_loss > unclipped_loss).to(mask.dtype());
    at::Tensor below = (ratio < 1.0 - options.clip_low).to(mask.dtype());
    at::Tensor above = (ratio > 1.0 + options.clip_high).to(mask.dtype());
    result.clip_fraction = MaskedMean(chose_clipped, mask);
    result.clip_fraction_low = MaskedMean(chose_clipped * below, mask);
    result.clip_fraction_high = MaskedMean(chose_clipped * above, mask);
    // k3 estimator of KL(pi_old || pi_theta): unbiased and never negative.
    at::Tensor d = -log_ratio.detach();
    result.approx_kl = MaskedMean(at::exp(-d) - 1 + d, mask);
    if (kl_to_ref.defined()) {
      result.kl_to_ref = MaskedMean(kl_to_ref.detach(), mask);
    }
    if (inputs.entropy.defined()) {
      result.entropy = MaskedMean(inputs.entropy.detach(), mask);
    }
    if (use_tis) {
      result.is_weight_mean = MaskedMean(weight, mask);
      result.is_truncated_fraction = MaskedMean(
          (weight >= options.importance_sampling_cap).to(mask.dtype()), mask);
    } else {
      result.is_weight_mean = 1.0;
    }
  }
  return result;
}

}  // namespace fapo::algorithm
