// ComputeLogProbs (model.h): teacher-forced log-probs (and entropies) of
// every next token, the trainer's and `fapo logprobs`' view of a model.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/model/model.h"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<TokenLogProbs> ComputeLogProbs(CausalLM& model,
                                              const at::Tensor& input_ids,
                                              const at::Tensor& attention_mask,
                                              bool with_entropy,
                                              bool enable_grad) {
  if (input_ids.defined() && input_ids.dim() == 2 && input_ids.size(1) < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ComputeLogProbs needs at least 2 tokens per row, got input_ids ",
        ShapeString(input_ids.sizes())));
  }
  std::optional<at::NoGradGuard> no_grad;
  if (!enable_grad) no_grad.emplace();
  ASSIGN_OR_RETURN(at::Tensor logits, model.Forward(input_ids, attention_mask));
  try {
    const int64_t time = input_ids.size(1);
    at::Tensor predicting = logits.narrow(1, 0, time - 1).to(at::kFloat);
    at::Tensor targets =
        input_ids.narrow(1, 1, time - 1).to(logits.device(), at::kLong);
    at::Tensor log_norm = at::logsumexp(predicting, -1);  // [B, T-1]
    TokenLogProbs result;
    result.logprobs =
        predicting.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_norm;
    if (with_entropy) {
      at::Tensor probs = at::softmax(predicting, -1);
      result.entropy = log_norm - (probs * predicting).sum(-1);
    }
    if (attention_mask.defined()) {
      at::Tensor target_mask =
          attention_mask.narrow(1, 1, time - 1).to(logits.device(), at::kFloat);
      result.logprobs = result.logprobs * target_mask;
      if (with_entropy) result.entropy = result.entropy * target_mask;
    }
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("log-probs of input_ids ",
                                            ShapeString(input_ids.sizes()),
                                            ": ", e.what_without_backtrace()));
  }
}

}  // namespace fapo::engine
