// Trainer (trainer.h): the update loop TrainStep and SftStep share, and
// the recompute of the old log-probs.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "algorithm/loss/policy_loss.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"
#include "trainer/trainer_internal.h"

namespace fapo::trainer {
namespace internal {

// Weights of `source` into `target`'s tensors (same names and shapes).
absl::Status CopyWeights(const engine::CausalLM& source,
                         engine::CausalLM& target, absl::string_view what) {
  const auto& from = source.named_parameters();
  const auto& to = target.named_parameters();
  if (from.size() != to.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", from.size(), " tensors, the policy ", to.size()));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i].first != to[i].first ||
        !from[i].second.sizes().equals(to[i].second.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " does not match the policy at tensor ", to[i].first));
    }
    to[i].second.copy_(from[i].second);
  }
  return absl::OkStatus();
}

MicroBatch BuildMicroBatch(absl::Span<const SequenceView> rows,
                           c10::Device device) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  int64_t length = 2;
  for (const SequenceView& row : rows) {
    length = std::max<int64_t>(length, row.prompt.size() + row.response.size());
  }
  std::vector<int64_t> ids(batch * length, 0);
  std::vector<int64_t> attention(batch * length, 0);
  std::vector<float> mask(batch * (length - 1), 0.0f);
  std::vector<float> old_logprobs(batch * (length - 1), 0.0f);
  const bool with_rollout = !rows.empty() && !rows[0].rollout_logprobs.empty();
  std::vector<float> rollout_logprobs(with_rollout ? batch * (length - 1) : 0,
                                      0.0f);
  std::vector<float> advantages(batch, 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    const SequenceView& row = rows[b];
    const int64_t prompt_length = row.prompt.size();
    for (int64_t t = 0; t < prompt_length; ++t) {
      ids[b * length + t] = row.prompt[t];
      attention[b * length + t] = 1;
    }
    for (size_t j = 0; j < row.response.size(); ++j) {
      const int64_t position = prompt_length + static_cast<int64_t>(j);
      ids[b * length + position] = row.response[j];
      attention[b * length + position] = 1;
      mask[b * (length - 1) + position - 1] = 1.0f;
      if (!row.old_logprobs.empty()) {
        old_logprobs[b * (length - 1) + position - 1] = row.old_logprobs[j];
      }
      if (with_rollout) {
        rollout_logprobs[b * (length - 1) + position - 1] =
            row.rollout_logprobs[j];
      }
    }
    advantages[b] = row.advantage;
  }
  auto to_tensor = [&](auto& values, std::vector<int64_t> shape,
                       c10::ScalarType type) {
    return torch::from_blob(values.data(), shape,
                            torch::TensorOptions().dtype(type))
        .to(device, /*non_blocking=*/false, /*copy=*/true);
  };
  MicroBatch micro;
  micro.input_ids = to_tensor(ids, {batch, length}, torch::kInt64);
  micro.attention_mask = to_tensor(attention, {batch, length}, torch::kInt64);
  micro.response_mask = to_tensor(mask, {batch, length - 1}, torch::kFloat);
  micro.old_logprobs =
      to_tensor(old_logprobs, {batch, length - 1}, torch::kFloat);
  if (with_rollout) {
    micro.rollout_logprobs =
        to_tensor(rollout_logprobs, {batch, length - 1}, torch::kFloat);
  }
  micro.advantages = to_tensor(advantages, {batch}, torch::kFloat);
  return micro;
}

algorithm::PolicyLossOptions LossOptions(const config::AlgorithmOptions& a) {
  algorithm::PolicyLossOptions options;
  options.clip_low = a.clip_low;
  options.clip_high = a.clip_high;
  options.aggregation =
      a.loss_aggregation == config::LossAggregation::kSequenceMean
          ? algorithm::LossAggregation::kSequenceMean
          : algorithm::LossAggregation::kTokenMean;
  options.kl_coef = a.kl_coef;
  options.importance_sampling_cap = a.importance_sampling_cap;
  return options;
}

// The log-probs of every response token under the policy as it is now
// (before the step's first update), with the trainer's numerics, in
// micro-batches under no-grad: the PPO anchor (NOTE [old vs rollout
// log-probs] in algorithm/loss/policy_loss.h).
absl::Status RecomputeOldLogProbs(engine::CausalLM& policy,
                                  const std::vector<SequenceView>& sequences,
                                  int64_t micro_size,
                                  std::vector<std::vector<float>>* recomputed) {
  recomputed->assign(sequences.size(), {});
  const int64_t count = static_cast<int64_t>(sequences.size());
  for (int64_t begin = 0; begin < count; begin += micro_size) {
    const int64_t end = std::min(begin + micro_size, count);
    MicroBatch micro = BuildMicroBatch(
        absl::MakeConstSpan(sequences).subspan(begin, end - begin),
        policy.device());
    ASSIGN_OR_RETURN(
        engine::TokenLogProbs logprobs,
        engine::ComputeLogProbs(policy, micro.input_ids, micro.attention_mask,
                                /*with_entropy=*/false,
                                /*enable_grad=*/false));
    at::Tensor cpu =
        logprobs.logprobs.to(torch::kCPU, torch::kFloat).contiguous();
    auto values = cpu.accessor<float, 2>();
    for (int64_t i = begin; i < end; ++i) {
      const SequenceView& row = sequences[i];
      std::vector<float>& out = (*recomputed)[i];
      out.resize(row.response.size());
      const int64_t prompt_length = row.prompt.size();
      for (size_t j = 0; j < row.response.size(); ++j) {
        out[j] = values[i - begin][prompt_length + static_cast<int64_t>(j) - 1];
      }
    }
  }
  return absl::OkStatus();
}

// Sums `values` over ranks in place (one collective). The tensor lives on
// the policy's device: the communicator serves that device (CPU for Gloo,
// CUDA for NCCL).
absl::Status SumOverRanks(GradientSync& sync, c10::Device device,
                          at::Tensor* values) {
  std::vector<at::Tensor> reduce = {values->to(device)};
  RETURN_IF_ERROR(sync.AllReduceSum(reduce));
  *values = reduce[0].to(torch::kCPU);
  return absl::OkStatus();
}

// The shared minibatch / micro-batch / AdamW loop of TrainStep and SftStep.
// `supervised` selects the cross-entropy objective. `minibatch_sizes`: as
// TrainStep's (checked by the caller); empty = equal contiguous splits.
absl::Status RunUpdates(int64_t step, double learning_rate,
                        const TrainerSettings& settings,
                        engine::CausalLM& policy, engine::CausalLM* reference,
                        torch::optim::AdamW& optimizer,
                        std::vector<at::Tensor>& parameters,
                        const std::vector<SequenceView>& sequences,
                        int num_minibatches,
                        absl::Span<const int64_t> minibatch_sizes,
                        bool supervised, bool* updated, StepTotals* totals) {
  GradientSync* sync = settings.gradient_sync;
  const int64_t count = static_cast<int64_t>(sequences.size());
  std::vector<int64_t> bounds(num_minibatches + 1);
  for (int k = 0; k <= num_minibatches; ++k) {
    bounds[k] = minibatch_sizes.empty()
                    ? count * k / num_minibatches
                    : (k == 0 ? 0 : bounds[k - 1] + minibatch_sizes[k - 1]);
  }
  // Global tokens and sequences of each minibatch: the accumulation
  // denominators (NOTE [trainer step semantics]).
  at::Tensor counts = torch::zeros({2 * num_minibatches}, torch::kDouble);
  for (int k = 0; k < num_minibatches; ++k) {
    double tokens = 0;
    for (int64_t i = bounds[k]; i < bounds[k + 1]; ++i) {
      tokens += sequences[i].response.size();
    }
    counts[2 * k] = tokens;
    counts[2 * k + 1] = static_cast<double>(bounds[k + 1] - bounds[k]);
  }
  if (sync != nullptr) {
    RETURN_IF_ERROR(SumOverRanks(*sync, policy.device(), &counts));
  }
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate);
  }
  const algorithm::PolicyLossOptions loss_options =
      LossOptions(settings.algorithm);
  const bool sequence_mean =
      !supervised &&
      loss_options.aggregation == algorithm::LossAggregation::kSequenceMean;
  const int64_t micro_size = settings.trainer.micro_batch_size;
  const double max_norm = settings.trainer.grad_clip > 0
                              ? settings.trainer.grad_clip
                              : std::numeric_limits<double>::infinity();
  for (int k = 0; k < num_minibatches; ++k) {
    const double global_tokens = counts[2 * k].item<double>();
    const double global_sequences = counts[2 * k + 1].item<double>();
    if (global_tokens <= 0) continue;  // an empty minibatch on every rank
    optimizer.zero_grad();
    for (int64_t begin = bounds[k]; begin < bounds[k + 1];
         begin += micro_size) {
      const int64_t end = std::min(begin + micro_size, bounds[k + 1]);
      MicroBatch micro = BuildMicroBatch(
          absl::MakeConstSpan(sequences).subspan(begin, end - begin),
          policy.device());
      ASSIGN_OR_RETURN(
          engine::TokenLogProbs current,
          engine::ComputeLogProbs(policy, micro.input_ids, micro.attention_mask,
                                  /*with_entropy=*/true));
      const double micro_tokens = micro.response_mask.sum().item<double>();
      at::Tensor scaled_loss;
      double entropy_sum;
      if (supervised) {
        at::Tensor ce_sum = -(current.logprobs * micro.response_mask).sum();
        scaled_loss = ce_sum / global_tokens;
        entropy_sum =
            (current.entropy * micro.response_mask).sum().item<double>();
      } else {
        algorithm::PolicyLossInputs inputs;
        inputs.logprobs = current.logprobs;
        inputs.old_logprobs = micro.old_logprobs;
        inputs.advantages = micro.advantages;
        inputs.mask = micro.response_mask;
        inputs.entropy = current.entropy;
        if (micro.rollout_logprobs.defined()) {
          inputs.rollout_logprobs = micro.rollout_logprobs;
        }
        if (reference != nullptr) {
          ASSIGN_OR_RETURN(engine::TokenLogProbs ref,
                           engine::ComputeLogProbs(*reference, micro.input_ids,
                                                   micro.attention_mask,
                                                   /*with_entropy=*/false,
                                                   /*enable_grad=*/false));
          inputs.ref_logprobs = ref.logprobs;
        }
        ASSIGN_OR_RETURN(algorithm::PolicyLossResult result,
                         algorithm::ComputePolicyLoss(inputs, loss_options));
        // The micro-batch's mean times its share of the minibatch: the sum
        // over micro-batches (and ranks) is the minibatch's mean.
        const double share =
            sequence_mean ? static_cast<double>(end - begin) / global_sequences
                          : micro_tokens / global_tokens;
        scaled_loss = result.loss * share;
        totals->clip_tokens += result.clip_fraction * micro_tokens;
        totals->kl_tokens += result.approx_kl * micro_tokens;
        entropy_sum = result.entropy * micro_tokens;
      }
      scaled_loss.backward();
      totals->loss += scaled_loss.item<double>();
      totals->entropy_tokens += entropy_sum;
      totals->tokens += micro_tokens;
      totals->sequences += static_cast<double>(end - begin);
    }
    std::vector<at::Tensor> grads;
    grads.reserve(parameters.size());
    for (at::Tensor& parameter : parameters) {
      if (!parameter.grad().defined()) {
        parameter.mutable_grad() = torch::zeros_like(parameter);
      }
      grads.push_back(parameter.grad());
    }
    if (sync != nullptr) RETURN_IF_ERROR(sync->AllReduceSum(grads));
    const double grad_norm =
        torch::nn::utils::clip_grad_norm_(parameters, max_norm);
    totals->grad_norm += grad_norm;
    ++totals->updates;
    if (!std::isfinite(grad_norm)) {
      // Same decision on every rank: the norm is of the summed gradients.
      FAPO_LOG(WARNING) << "step " << step << ": gradient norm is " << grad_norm
                        << "; minibatch " << k << " skipped";
      optimizer.zero_grad();
      continue;
    }
    *updated = true;
    optimizer.step();
  }
  optimizer.zero_grad();
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace fapo::trainer
