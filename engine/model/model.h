// engine/model: decoder-only causal language models on LibTorch.
//
//   model.h   CausalLM (Qwen2/Qwen2.5, Qwen3, Llama 2/3), KvCache,
//             Generate (batched sampling with a KV cache) and
//             ComputeLogProbs (the trainer's teacher-forced forward)
//
// Weights come from Hugging Face checkpoints through engine/checkpoint
// (config.json + safetensors); Save writes the same layout back, so
// transformers loads what this writes. Numerics follow transformers' eager
// implementation: RMSNorm in float32, rotate_half RoPE (Llama 3 frequency
// scaling), grouped-query attention with a float32 softmax, SwiGLU MLP.
// float32 on CPU; the same code runs on CUDA in bf16 when LibTorch has CUDA.
//
// Only <ATen/core/Tensor.h> here: <torch/torch.h> stays in the .cc files.
#ifndef FAPO_ENGINE_MODEL_MODEL_H_
#define FAPO_ENGINE_MODEL_MODEL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/checkpoint/model_config.h"

namespace fapo::engine {

struct LoadOptions {
  // Where the weights live. Default CPU.
  c10::Device device = c10::Device(c10::kCPU);
  // What the weights are converted to: kFloat (default), kBFloat16, kHalf.
  c10::ScalarType dtype = c10::kFloat;
};

class CausalLM;
struct SamplingOptions;
struct GenerationResult;

// Keys and values of every layer for a batch being decoded, plus which cache
// slots hold real tokens. Slots are shared by the batch (slot j of every
// row was written by the same Forward call); a row whose token in a call is
// padding (mask 0) gets a masked slot that is never attended to, so rows of
// different lengths (left-padded prompts, finished sequences) share one
// cache. Storage is preallocated for `capacity` slots and grows (doubling)
// when a Forward needs more. Not thread-safe; one cache per batch.
class KvCache {
 public:
  // Slots written so far.
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t batch_size() const { return batch_size_; }
  // [batch, length] bool: true where the slot holds a real token.
  at::Tensor mask() const;
  // [batch] int64: real tokens seen per row (the next position id).
  const at::Tensor& positions_seen() const { return seen_; }
  // Forgets everything (keeps the storage).
  void Reset();

 private:
  friend class CausalLM;
  KvCache() = default;

  int64_t batch_size_ = 0;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  std::vector<at::Tensor> keys_;    // per layer [batch, kv_heads, cap, dim]
  std::vector<at::Tensor> values_;  // per layer [batch, kv_heads, cap, dim]
  at::Tensor mask_;                 // [batch, cap] bool
  at::Tensor seen_;                 // [batch] int64
};

// A decoder-only transformer holding its weights as plain tensors (leaf
// tensors: the trainer sets requires_grad and hands parameters() to an
// optimizer). Not thread-safe: one caller at a time.
class CausalLM {
 public:
  ~CausalLM();
  CausalLM(const CausalLM&) = delete;
  CausalLM& operator=(const CausalLM&) = delete;

  // Reads config.json and the safetensors of `directory` (single file or
  // sharded). Errors name the tensor and the file: a missing tensor
  // (NotFound), a shape that does not match the config, a dtype that is not
  // F32/BF16/F16, a tensor the model does not have (InvalidArgument; a
  // tied checkpoint's lm_head.weight and rotary inv_freq buffers are
  // ignored), plus the config errors of LoadModelConfig (unknown family).
  static absl::StatusOr<std::unique_ptr<CausalLM>> Load(
      const std::string& directory, const LoadOptions& options = {});

  // Randomly initialised as transformers does (normal(0, 0.02) matrices,
  // unit norms, zero biases), reproducibly from `seed` whatever the device.
  static absl::StatusOr<std::unique_ptr<CausalLM>> FromConfig(
      const ModelConfig& config, uint64_t seed,
      const LoadOptions& options = {});

  // Writes config.json and model.safetensors (Hugging Face names; no
  // lm_head.weight when tied; weights in the model's dtype) into
  // `directory`, created if missing.
  absl::Status Save(const std::string& directory) const;

  // input_ids [B, T] (int64); attention_mask [B, T] (1 = real token,
  // 0 = padding; undefined = all real). Returns logits [B, T, vocab] in the
  // model's dtype.
  //
  // Without a cache, position ids are cumsum(mask) - 1 per row (as
  // transformers derives them), so left padding (generation) and right
  // padding (training) give the same logits on real tokens as unpadded runs.
  // With a cache, the call appends T slots; attention_mask then covers the
  // new tokens only ([B, T]) or the whole cache plus the new tokens
  // ([B, length + T], transformers' convention), and positions continue
  // from each row's real tokens so far. `position_ids` [B, T] overrides the
  // derived positions.
  //
  // Errors (InvalidArgument): shapes, ids outside the vocabulary, a cache
  // of another batch size; LibTorch errors become Internal.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input_ids,
                                     const at::Tensor& attention_mask = {},
                                     KvCache* cache = nullptr,
                                     const at::Tensor& position_ids = {});

  // An empty cache for `batch_size` rows with room for `capacity` slots.
  std::unique_ptr<KvCache> NewKvCache(int64_t batch_size,
                                      int64_t capacity) const;

  const ModelConfig& config() const { return config_; }
  c10::Device device() const { return options_.device; }
  c10::ScalarType dtype() const { return options_.dtype; }
  // Every weight under its Hugging Face name, in a fixed order (tied
  // lm_head not listed separately).
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters()
      const {
    return parameters_;
  }
  std::vector<at::Tensor> parameters() const;
  void SetRequiresGrad(bool requires_grad);

  // Overwrites every weight in place from `named`, which must hold exactly
  // the names of named_parameters() (any order, each once) with the same
  // shapes and a floating dtype (converted to the model's dtype and
  // device). All-or-nothing: everything is checked before the first copy,
  // and a failing check (InvalidArgument naming the tensor) leaves the
  // model unchanged. Copies under no-grad into the existing tensors, so
  // their identity stays (an optimizer holding them, a tied lm_head that is
  // embed_tokens, see it). A LibTorch error mid-copy is Internal.
  absl::Status CopyWeightsFrom(
      const std::vector<std::pair<std::string, at::Tensor>>& named);

 private:
  struct Layer;
  friend absl::StatusOr<std::vector<GenerationResult>> Generate(
      CausalLM& model, const std::vector<std::vector<int>>& prompts,
      const SamplingOptions& options);

  // The forward without input validation; LibTorch errors propagate as
  // c10::Error. `last_only` computes logits for the last position only
  // ([B, 1, V]): generation needs no more.
  at::Tensor ForwardUnchecked(const at::Tensor& input_ids,
                              const at::Tensor& attention_mask, KvCache* cache,
                              const at::Tensor& position_ids, bool last_only);
  CausalLM(ModelConfig config, LoadOptions options);
  absl::Status Initialize(
      std::vector<std::pair<std::string, at::Tensor>> named_weights);

  ModelConfig config_;
  LoadOptions options_;
  std::vector<std::pair<std::string, at::Tensor>> parameters_;
  std::vector<Layer> layers_;
  at::Tensor embed_tokens_;  // [V, H]
  at::Tensor final_norm_;    // [H]
  at::Tensor lm_head_;       // [V, H] (embed_tokens_ when tied)
  at::Tensor inv_freq_;      // [head_dim / 2] float32, on device
};

// NOTE [generation logprobs]: GenerationResult::logprobs are log-probs of
// the chosen tokens under the raw model distribution, log_softmax(logits)
// at temperature 1, whatever the sampling temperature, top-k or top-p (as
// vLLM and verl report them by default). RL wants log pi_theta of the
// policy being trained, which is the raw distribution; the trainer
// recomputes them with ComputeLogProbs and the gap between the two is the
// rollout/train mismatch that truncated importance sampling corrects.
struct SamplingOptions {
  // 0 = greedy (argmax); otherwise logits are divided by it. Default 1.
  float temperature = 1.0f;
  // Nucleus sampling: the smallest set of tokens whose probability reaches
  // top_p (at least one). In (0, 1]; 1 (default) = off.
  float top_p = 1.0f;
  // Only the k most likely tokens. 0 (default) = off.
  int top_k = 0;
  // Tokens generated at most per sequence. Default 16; >= 0.
  int max_new_tokens = 16;
  // Generating one of these ends the sequence (the token is kept).
  std::vector<int> stop_token_ids;
  // Same seed, model and prompts -> same output. Default 0.
  uint64_t seed = 0;
  // Optional (default null): called as soon as a row finishes (stop token
  // or max_new_tokens), on the calling thread while the other rows go on,
  // with the row's index in `prompts` and its result (the same value
  // Generate returns). For streaming each sample back when it is done.
  std::function<void(size_t row, const GenerationResult& result)>
      on_row_finished;
  // Optional (default null): polled before each decoding step; true stops
  // the batch there and Generate returns Cancelled (rows reported through
  // on_row_finished so far stay reported).
  std::function<bool()> cancelled;
};

enum class FinishReason { kStop, kLength };
const char* FinishReasonName(FinishReason reason);  // "stop", "length"

struct GenerationResult {
  std::vector<int> token_ids;   // generated tokens only (not the prompt)
  std::vector<float> logprobs;  // one per token: NOTE [generation logprobs]
  FinishReason finish_reason = FinishReason::kLength;
};

// Samples continuations of all prompts as one batch: prompts left-padded,
// one KV cache, finished sequences masked while the others continue.
// Sampling draws come from one CPU generator seeded with options.seed, so
// results do not depend on the device's RNG. Errors (InvalidArgument): an
// empty prompt list or prompt, a token id outside the vocabulary (naming
// the prompt and position), invalid options.
absl::StatusOr<std::vector<GenerationResult>> Generate(
    CausalLM& model, const std::vector<std::vector<int>>& prompts,
    const SamplingOptions& options);

// Per-token log-probs of each next token of a padded batch: the trainer's
// input. logprobs[b, t] = log p(input_ids[b, t+1] | input_ids[b, :t+1]),
// float32 [B, T-1]; entropy[b, t] is the entropy of that distribution
// (defined only when requested). Positions whose target is padding
// (attention_mask[b, t+1] == 0) are 0 in both.
struct TokenLogProbs {
  at::Tensor logprobs;  // [B, T-1] float32
  at::Tensor entropy;   // [B, T-1] float32, or undefined
};

// With `enable_grad` (the default) the result is differentiable with
// respect to the model's parameters that require grad (while LibTorch's grad
// mode is on: an enclosing NoGradGuard still wins); without it the forward
// runs under no-grad (cheaper: no activations kept). Errors as
// CausalLM::Forward, plus T < 2.
absl::StatusOr<TokenLogProbs> ComputeLogProbs(CausalLM& model,
                                              const at::Tensor& input_ids,
                                              const at::Tensor& attention_mask,
                                              bool with_entropy,
                                              bool enable_grad = true);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_MODEL_MODEL_H_
