// Test-only helpers shared by engine/model's tests (header-only).
#ifndef FAPO_ENGINE_MODEL_MODEL_TEST_UTIL_H_
#define FAPO_ENGINE_MODEL_MODEL_TEST_UTIL_H_

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/safetensors.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace fapo::engine::model_testing {

// A small model of `family` with each family's quirks: Qwen2's biases,
// Qwen3's q/k norms, head_dim != hidden / heads and tied embeddings,
// Llama 3's RoPE scaling (and attention biases with `llama_bias`).
inline ModelConfig TinyConfig(ModelFamily family, int vocab_size = 64,
                              int intermediate_size = 48,
                              bool llama_bias = false) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = vocab_size;
  c.hidden_size = 32;
  c.intermediate_size = intermediate_size;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  switch (family) {
    case ModelFamily::kQwen2:
      c.attention_bias = true;
      break;
    case ModelFamily::kQwen3:
      c.qk_norm = true;
      c.head_dim = 12;  // not hidden / heads
      c.tie_word_embeddings = true;
      break;
    case ModelFamily::kLlama:
      c.attention_bias = llama_bias;
      c.rope_theta = 500000.0;
      c.rope_scaling.enabled = true;
      c.rope_scaling.factor = 8.0;
      c.rope_scaling.low_freq_factor = 1.0;
      c.rope_scaling.high_freq_factor = 4.0;
      c.rope_scaling.original_max_position_embeddings = 64;
      break;
  }
  return c;
}

// A safetensors view (F32, I64, I32) copied into a CPU tensor.
inline at::Tensor ViewToTensor(const TensorView& view) {
  c10::ScalarType type = c10::kFloat;
  switch (view.dtype) {
    case DType::kF32:
      type = c10::kFloat;
      break;
    case DType::kI64:
      type = c10::kLong;
      break;
    case DType::kI32:
      type = c10::kInt;
      break;
    default:
      ADD_FAILURE() << "unexpected dtype of " << view.name;
  }
  at::Tensor t = at::empty(view.shape, at::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), view.data.data(), view.data.size());
  return t;
}

// A reference.safetensors of Hugging Face outputs.
struct Reference {
  at::Tensor input_ids, logits, prompt_ids, greedy_ids;
};

inline Reference ReadReference(const std::string& path) {
  Reference ref;
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return ref;
  auto get = [&](const char* name) {
    const TensorView* view = (*file)->Find(name);
    EXPECT_NE(view, nullptr) << name << " in " << path;
    return view == nullptr ? at::Tensor() : ViewToTensor(*view);
  };
  ref.input_ids = get("input_ids");
  ref.logits = get("logits");
  ref.prompt_ids = get("prompt_ids");
  ref.greedy_ids = get("greedy_ids");
  return ref;
}

inline std::vector<int> Row(const at::Tensor& ids, int64_t row) {
  at::Tensor r = ids[row].to(at::kLong).contiguous();
  return std::vector<int>(r.data_ptr<int64_t>(),
                          r.data_ptr<int64_t>() + r.numel());
}

inline double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

}  // namespace fapo::engine::model_testing

#endif  // FAPO_ENGINE_MODEL_MODEL_TEST_UTIL_H_
