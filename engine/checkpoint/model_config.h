// config.json of the supported model families, parsed into one struct.
#ifndef FAPO_ENGINE_CHECKPOINT_MODEL_CONFIG_H_
#define FAPO_ENGINE_CHECKPOINT_MODEL_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::engine {

enum class ModelFamily { kQwen2, kQwen3, kLlama };

// Llama 3's RoPE frequency scaling ("rope_type": "llama3").
struct RopeScaling {
  bool enabled = false;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kQwen3;  // from "model_type"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // defaults to num_attention_heads
  int head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  // A top-level "rope_theta" (transformers 4) or rope_parameters.rope_theta
  // (transformers 5); both are read, rope_parameters wins.
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // q/k/v projections have biases: Qwen2 (true), Llama ("attention_bias").
  bool attention_bias = false;
  // RMSNorm on queries and keys per head: Qwen3.
  bool qk_norm = false;
  // "torch_dtype" / "dtype": "float32", "bfloat16", "float16".
  std::string dtype = "float32";
  std::vector<int> bos_token_ids;
  std::vector<int> eos_token_ids;  // "eos_token_id": int or list
};

// Parses config.json text; `source` names it in errors. Errors: not JSON,
// unknown model_type (lists the supported ones), missing or non-positive
// sizes, heads not dividing evenly, an unsupported rope type.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view source);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& directory);

// config.json text that transformers loads as the same model (both
// rope_theta spellings written, architectures set).
std::string ModelConfigToJson(const ModelConfig& config);

absl::string_view ModelFamilyName(ModelFamily family);  // "qwen3", ...

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_CHECKPOINT_MODEL_CONFIG_H_
