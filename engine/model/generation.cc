// Generate (model.h): batched sampling with a KV cache, one row per
// request, each ending at its stop token or its token budget.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/model.h"
#include "services/status/status_macros.h"

namespace fapo::engine {

const char* FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kStop ? "stop" : "length";
}

namespace {

absl::Status CheckSamplingOptions(const SamplingOptions& o) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be >= 0, got ", o.temperature));
  }
  if (!(o.top_p > 0 && o.top_p <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p must be in (0, 1], got ", o.top_p));
  }
  if (o.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be >= 0, got ", o.top_k));
  }
  if (o.max_new_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 0, got ", o.max_new_tokens));
  }
  return absl::OkStatus();
}

// Picks one token per row from float32 logits [B, V]. `uniform` [B] on the
// logits' device: the draw for inverse-CDF sampling.
at::Tensor SampleTokens(const at::Tensor& logits, const SamplingOptions& o,
                        const at::Tensor& uniform) {
  if (o.temperature == 0) return logits.argmax(-1);
  at::Tensor scaled = logits / static_cast<double>(o.temperature);
  const int64_t vocab = scaled.size(-1);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (o.top_k > 0 && o.top_k < vocab) {
    at::Tensor kth =
        std::get<0>(scaled.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    scaled = scaled.masked_fill(scaled < kth, neg_inf);
  }
  // Top-p needs the tokens sorted by probability; without it the (costly,
  // B x V) sort is skipped and the CDF runs over vocabulary order.
  at::Tensor probs;
  at::Tensor order;  // sorted position -> token id, when sorted
  if (o.top_p < 1) {
    at::Tensor sorted;
    std::tie(sorted, order) = scaled.sort(/*dim=*/-1, /*descending=*/true);
    probs = at::softmax(sorted, -1);
    at::Tensor before = probs.cumsum(-1) - probs;  // mass of better tokens
    // The first token is always kept (before == 0).
    probs = probs.masked_fill(before >= static_cast<double>(o.top_p), 0.0);
    probs = probs / probs.sum(-1, /*keepdim=*/true);
  } else {
    probs = at::softmax(scaled, -1);
  }
  at::Tensor cdf = probs.cumsum(-1);
  at::Tensor index =
      (cdf < (uniform.unsqueeze(1) * cdf.narrow(-1, vocab - 1, 1)))
          .sum(-1)
          .clamp_max(vocab - 1);
  // Never land on a zero-probability token (rounding at the top of the
  // CDF): fall back to the most likely one.
  at::Tensor chosen_prob = probs.gather(-1, index.unsqueeze(1)).squeeze(1);
  index = at::where(chosen_prob > 0, index, probs.argmax(-1));
  if (!order.defined()) return index;
  return order.gather(-1, index.unsqueeze(1)).squeeze(1);
}

}  // namespace

absl::StatusOr<std::vector<GenerationResult>> Generate(
    CausalLM& model, const std::vector<std::vector<int>>& prompts,
    const SamplingOptions& options) {
  RETURN_IF_ERROR(CheckSamplingOptions(options));
  if (prompts.empty()) {
    return absl::InvalidArgumentError("Generate needs at least one prompt");
  }
  const int64_t vocab = model.config().vocab_size;
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt ", i, " is empty"));
    }
    for (size_t j = 0; j < prompts[i].size(); ++j) {
      if (prompts[i][j] < 0 || prompts[i][j] >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat(
            "prompt ", i, " position ", j, " holds token id ", prompts[i][j],
            ", outside the vocabulary [0, ", vocab, ")"));
      }
    }
    longest = std::max(longest, prompts[i].size());
  }
  const int64_t batch = static_cast<int64_t>(prompts.size());
  const int64_t prompt_length = static_cast<int64_t>(longest);
  std::vector<GenerationResult> results(prompts.size());
  if (options.max_new_tokens == 0) {
    for (size_t i = 0; i < results.size() && options.on_row_finished; ++i) {
      options.on_row_finished(i, results[i]);
    }
    return results;
  }

  try {
    at::NoGradGuard no_grad;
    const c10::Device device = model.device();
    // Left padding: every row's last prompt token sits in the last column.
    at::Tensor ids = at::zeros({batch, prompt_length}, at::kLong);
    at::Tensor mask = at::zeros({batch, prompt_length}, at::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t offset = prompt_length - prompts[i].size();
      for (size_t j = 0; j < prompts[i].size(); ++j) {
        ids_a[i][offset + j] = prompts[i][j];
        mask_a[i][offset + j] = 1;
      }
    }
    std::unique_ptr<KvCache> cache =
        model.NewKvCache(batch, prompt_length + options.max_new_tokens);
    at::Tensor logits = model.ForwardUnchecked(ids.to(device), mask.to(device),
                                               cache.get(), at::Tensor(),
                                               /*last_only=*/true);
    at::Generator generator =
        at::make_generator<at::CPUGeneratorImpl>(options.seed);
    const std::set<int> stop(options.stop_token_ids.begin(),
                             options.stop_token_ids.end());
    std::vector<char> active(batch, 1);
    int64_t remaining = batch;
    for (int step = 0; step < options.max_new_tokens && remaining > 0; ++step) {
      if (options.cancelled && options.cancelled()) {
        return absl::CancelledError(
            absl::StrCat("generation cancelled after ", step, " of at most ",
                         options.max_new_tokens, " tokens"));
      }
      at::Tensor last = logits.select(1, 0).to(at::kFloat);  // [B, V]
      // One draw per row every step (finished rows too), so a row's draws
      // do not depend on when the others finish.
      at::Tensor uniform =
          at::rand({batch}, generator, at::TensorOptions().dtype(at::kDouble))
              .to(device, at::kFloat);
      at::Tensor tokens = SampleTokens(last, options, uniform);
      // NOTE [generation logprobs]: raw distribution, temperature 1.
      at::Tensor logprobs =
          at::log_softmax(last, -1).gather(-1, tokens.unsqueeze(1)).squeeze(1);
      at::Tensor tokens_cpu = tokens.to(at::kCPU);
      at::Tensor logprobs_cpu = logprobs.to(at::kCPU);
      auto tokens_a = tokens_cpu.accessor<int64_t, 1>();
      auto logprobs_a = logprobs_cpu.accessor<float, 1>();
      at::Tensor next_mask = at::zeros({batch, 1}, at::kLong);
      auto next_mask_a = next_mask.accessor<int64_t, 2>();
      for (int64_t i = 0; i < batch; ++i) {
        if (!active[i]) {
          tokens_a[i] = 0;  // a masked placeholder
          continue;
        }
        const int token = static_cast<int>(tokens_a[i]);
        results[i].token_ids.push_back(token);
        results[i].logprobs.push_back(logprobs_a[i]);
        if (stop.count(token) > 0) {
          results[i].finish_reason = FinishReason::kStop;
          active[i] = 0;
          --remaining;
          if (options.on_row_finished) options.on_row_finished(i, results[i]);
        } else if (static_cast<int>(results[i].token_ids.size()) ==
                   options.max_new_tokens) {
          results[i].finish_reason = FinishReason::kLength;
          active[i] = 0;
          --remaining;
          if (options.on_row_finished) options.on_row_finished(i, results[i]);
        } else {
          next_mask_a[i][0] = 1;
        }
      }
      if (remaining == 0) break;
      logits = model.ForwardUnchecked(tokens_cpu.unsqueeze(1).to(device),
                                      next_mask.to(device), cache.get(),
                                      at::Tensor(), /*last_only=*/true);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(
        "generating for ", batch, " prompts: ", e.what_without_backtrace()));
  }
  return results;
}

}  // namespace fapo::engine
