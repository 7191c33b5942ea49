// CausalLM (model.h): weights, forward and the KV cache; generation.cc
// samples from it, logprobs.cc scores with it. The forward follows
// transformers' eager modeling code operation for operation (same float32
// upcasts, same order), which is why it matches its logits to the bit on
// the CPU.
#include "engine/model/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "engine/checkpoint/safetensors.h"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The tensors a config implies, in the order they are kept.
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  enum Init { kNormal, kOnes, kZeros } init;
};

std::vector<WeightSpec> ExpectedWeights(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;
  std::vector<WeightSpec> specs;
  specs.push_back({"model.embed_tokens.weight",
                   {c.vocab_size, hidden},
                   WeightSpec::kNormal});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    specs.push_back(
        {p + "input_layernorm.weight", {hidden}, WeightSpec::kOnes});
    specs.push_back(
        {p + "self_attn.q_proj.weight", {q_dim, hidden}, WeightSpec::kNormal});
    if (c.attention_bias) {
      specs.push_back(
          {p + "self_attn.q_proj.bias", {q_dim}, WeightSpec::kZeros});
    }
    specs.push_back(
        {p + "self_attn.k_proj.weight", {kv_dim, hidden}, WeightSpec::kNormal});
    if (c.attention_bias) {
      specs.push_back(
          {p + "self_attn.k_proj.bias", {kv_dim}, WeightSpec::kZeros});
    }
    specs.push_back(
        {p + "self_attn.v_proj.weight", {kv_dim, hidden}, WeightSpec::kNormal});
    if (c.attention_bias) {
      specs.push_back(
          {p + "self_attn.v_proj.bias", {kv_dim}, WeightSpec::kZeros});
    }
    specs.push_back(
        {p + "self_attn.o_proj.weight", {hidden, q_dim}, WeightSpec::kNormal});
    // Llama's attention_bias covers o_proj too; Qwen2's biases stop at v.
    if (c.attention_bias && c.family == ModelFamily::kLlama) {
      specs.push_back(
          {p + "self_attn.o_proj.bias", {hidden}, WeightSpec::kZeros});
    }
    if (c.qk_norm) {
      specs.push_back(
          {p + "self_attn.q_norm.weight", {c.head_dim}, WeightSpec::kOnes});
      specs.push_back(
          {p + "self_attn.k_norm.weight", {c.head_dim}, WeightSpec::kOnes});
    }
    specs.push_back(
        {p + "post_attention_layernorm.weight", {hidden}, WeightSpec::kOnes});
    specs.push_back({p + "mlp.gate_proj.weight",
                     {c.intermediate_size, hidden},
                     WeightSpec::kNormal});
    specs.push_back({p + "mlp.up_proj.weight",
                     {c.intermediate_size, hidden},
                     WeightSpec::kNormal});
    specs.push_back({p + "mlp.down_proj.weight",
                     {hidden, c.intermediate_size},
                     WeightSpec::kNormal});
  }
  specs.push_back({"model.norm.weight", {hidden}, WeightSpec::kOnes});
  if (!c.tie_word_embeddings) {
    specs.push_back(
        {"lm_head.weight", {c.vocab_size, hidden}, WeightSpec::kNormal});
  }
  return specs;
}

absl::StatusOr<c10::ScalarType> ToScalarType(const TensorView& view) {
  switch (view.dtype) {
    case DType::kF32:
      return c10::kFloat;
    case DType::kBF16:
      return c10::kBFloat16;
    case DType::kF16:
      return c10::kHalf;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", view.name, " in ", view.file, " has dtype ",
          DTypeName(view.dtype), "; models load F32, BF16 or F16"));
  }
}

absl::StatusOr<DType> ToDType(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat:
      return DType::kF32;
    case c10::kBFloat16:
      return DType::kBF16;
    case c10::kHalf:
      return DType::kF16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported model dtype ", c10::toString(type),
                       "; use float32, bfloat16 or float16"));
  }
}

absl::Status CheckOptions(const LoadOptions& options) {
  return ToDType(options.dtype).status();
}

std::string DTypeConfigName(c10::ScalarType type) {
  switch (type) {
    case c10::kBFloat16:
      return "bfloat16";
    case c10::kHalf:
      return "float16";
    default:
      return "float32";
  }
}

// transformers' RMSNorm: normalise in float32, cast back, then scale.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  x32 = x32 * at::rsqrt(variance + eps);
  return weight * x32.to(x.scalar_type());
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// inv_freq as transformers' default and "llama3" rope initialisers compute
// it, operation for operation in float32 (x / t is reciprocal(t) * x there).
at::Tensor ComputeInvFreq(const ModelConfig& c) {
  const int64_t dim = c.head_dim;
  at::Tensor exponent =
      at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong))
          .to(at::kFloat) /
      static_cast<double>(dim);
  at::Tensor inv_freq = at::reciprocal(at::pow(c.rope_theta, exponent)) * 1.0;
  if (!c.rope_scaling.enabled) return inv_freq;
  const RopeScaling& s = c.rope_scaling;
  const double old_context_len = s.original_max_position_embeddings;
  const double low_freq_wavelen = old_context_len / s.low_freq_factor;
  const double high_freq_wavelen = old_context_len / s.high_freq_factor;
  at::Tensor wavelen = at::reciprocal(inv_freq) * (2 * M_PI);
  at::Tensor llama =
      at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  at::Tensor smooth =
      (at::reciprocal(wavelen) * old_context_len - s.low_freq_factor) /
      (s.high_freq_factor - s.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * llama / s.factor + smooth * llama;
  at::Tensor is_medium = (wavelen < high_freq_wavelen).logical_not() &
                         (wavelen > low_freq_wavelen).logical_not();
  return at::where(is_medium, smoothed, llama);
}

}  // namespace

struct CausalLM::Layer {
  at::Tensor input_norm;
  at::Tensor q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, o_weight,
      o_bias;
  at::Tensor q_norm, k_norm;
  at::Tensor post_norm;
  at::Tensor gate_weight, up_weight, down_weight;
};

// ---------------------------------------------------------------- KvCache

at::Tensor KvCache::mask() const {
  if (!mask_.defined()) return at::Tensor();
  return mask_.narrow(1, 0, length_);
}

void KvCache::Reset() {
  length_ = 0;
  if (mask_.defined()) mask_.zero_();
  if (seen_.defined()) seen_.zero_();
}

// --------------------------------------------------------------- CausalLM

CausalLM::CausalLM(ModelConfig config, LoadOptions options)
    : config_(std::move(config)), options_(options) {}

CausalLM::~CausalLM() = default;

absl::Status CausalLM::Initialize(
    std::vector<std::pair<std::string, at::Tensor>> named_weights) {
  parameters_ = std::move(named_weights);
  std::map<std::string, at::Tensor> by_name(parameters_.begin(),
                                            parameters_.end());
  auto get = [&](const std::string& name) -> at::Tensor {
    auto it = by_name.find(name);
    return it == by_name.end() ? at::Tensor() : it->second;
  };
  embed_tokens_ = get("model.embed_tokens.weight");
  final_norm_ = get("model.norm.weight");
  lm_head_ =
      config_.tie_word_embeddings ? embed_tokens_ : get("lm_head.weight");
  layers_.clear();
  layers_.resize(config_.num_hidden_layers);
  for (int i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    Layer& l = layers_[i];
    l.input_norm = get(p + "input_layernorm.weight");
    l.q_weight = get(p + "self_attn.q_proj.weight");
    l.q_bias = get(p + "self_attn.q_proj.bias");
    l.k_weight = get(p + "self_attn.k_proj.weight");
    l.k_bias = get(p + "self_attn.k_proj.bias");
    l.v_weight = get(p + "self_attn.v_proj.weight");
    l.v_bias = get(p + "self_attn.v_proj.bias");
    l.o_weight = get(p + "self_attn.o_proj.weight");
    l.o_bias = get(p + "self_attn.o_proj.bias");
    l.q_norm = get(p + "self_attn.q_norm.weight");
    l.k_norm = get(p + "self_attn.k_norm.weight");
    l.post_norm = get(p + "post_attention_layernorm.weight");
    l.gate_weight = get(p + "mlp.gate_proj.weight");
    l.up_weight = get(p + "mlp.up_proj.weight");
    l.down_weight = get(p + "mlp.down_proj.weight");
  }
  try {
    inv_freq_ = ComputeInvFreq(config_).to(options_.device);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("computing rotary frequencies: ",
                                            e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CausalLM>> CausalLM::Load(
    const std::string& directory, const LoadOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(directory));
  ASSIGN_OR_RETURN(std::unique_ptr<CheckpointReader> reader,
                   CheckpointReader::Open(directory));
  const std::vector<WeightSpec> specs = ExpectedWeights(config);
  std::set<std::string> expected;
  for (const WeightSpec& spec : specs) expected.insert(spec.name);
  for (const std::string& name : reader->names()) {
    if (expected.count(name) > 0) continue;
    // Tolerated: a tied lm_head saved anyway, and rotary buffers that old
    // checkpoints carry; both are recomputed from the config.
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    if (absl::string_view(name).find("rotary_emb.inv_freq") !=
        absl::string_view::npos) {
      continue;
    }
    const TensorView* view = reader->Find(name);
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", name, " in ", view != nullptr ? view->file : directory,
        " is not part of a ", ModelFamilyName(config.family), " model with ",
        config.num_hidden_layers, " layers"));
  }
  std::vector<std::pair<std::string, at::Tensor>> weights;
  weights.reserve(specs.size());
  for (const WeightSpec& spec : specs) {
    ASSIGN_OR_RETURN(const TensorView* view, reader->Get(spec.name));
    if (view->shape != spec.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", spec.name, " in ", view->file, " has shape ",
                       ShapeString(view->shape), "; the config implies ",
                       ShapeString(spec.shape)));
    }
    ASSIGN_OR_RETURN(c10::ScalarType source_type, ToScalarType(*view));
    try {
      at::Tensor host =
          at::empty(spec.shape, at::TensorOptions().dtype(source_type));
      if (static_cast<size_t>(host.nbytes()) != view->data.size()) {
        return absl::DataLossError(
            absl::StrCat("tensor ", spec.name, " in ", view->file, " holds ",
                         view->data.size(), " bytes; shape ",
                         ShapeString(spec.shape), " needs ", host.nbytes()));
      }
      // A copy, not from_blob: the mapping may be unaligned for the dtype
      // and must not outlive the reader.
      std::memcpy(host.data_ptr(), view->data.data(), view->data.size());
      weights.emplace_back(spec.name, host.to(options.device, options.dtype));
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("loading tensor ", spec.name,
                                              " from ", view->file, ": ",
                                              e.what_without_backtrace()));
    }
  }
  std::unique_ptr<CausalLM> model(new CausalLM(std::move(config), options));
  RETURN_IF_ERROR(model->Initialize(std::move(weights)));
  return model;
}

absl::StatusOr<std::unique_ptr<CausalLM>> CausalLM::FromConfig(
    const ModelConfig& config, uint64_t seed, const LoadOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));
  if (config.vocab_size <= 0 || config.hidden_size <= 0 ||
      config.intermediate_size <= 0 || config.num_hidden_layers <= 0 ||
      config.num_attention_heads <= 0 || config.num_key_value_heads <= 0 ||
      config.head_dim <= 0 || config.head_dim % 2 != 0 ||
      config.num_attention_heads % config.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(
        "model config needs positive sizes, an even head_dim and "
        "num_attention_heads divisible by num_key_value_heads");
  }
  std::vector<std::pair<std::string, at::Tensor>> weights;
  try {
    // Drawn on the CPU in float32, then converted: the same seed gives the
    // same model on every device.
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (const WeightSpec& spec : ExpectedWeights(config)) {
      at::Tensor t;
      switch (spec.init) {
        case WeightSpec::kNormal:
          t = at::empty(spec.shape, at::kFloat).normal_(0.0, 0.02, generator);
          break;
        case WeightSpec::kOnes:
          t = at::ones(spec.shape, at::kFloat);
          break;
        case WeightSpec::kZeros:
          t = at::zeros(spec.shape, at::kFloat);
          break;
      }
      weights.emplace_back(spec.name, t.to(options.device, options.dtype));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("initialising model weights: ",
                                            e.what_without_backtrace()));
  }
  ModelConfig saved = config;
  saved.dtype = DTypeConfigName(options.dtype);
  std::unique_ptr<CausalLM> model(new CausalLM(std::move(saved), options));
  RETURN_IF_ERROR(model->Initialize(std::move(weights)));
  return model;
}

absl::Status CausalLM::Save(const std::string& directory) const {
  ASSIGN_OR_RETURN(DType dtype, ToDType(options_.dtype));
  std::vector<at::Tensor> host;  // keeps the bytes alive during the write
  std::vector<TensorToWrite> tensors;
  host.reserve(parameters_.size());
  tensors.reserve(parameters_.size());
  try {
    for (const auto& [name, tensor] : parameters_) {
      host.push_back(tensor.detach().to(at::kCPU).contiguous());
      const at::Tensor& t = host.back();
      tensors.push_back(TensorToWrite{
          name, dtype, t.sizes().vec(),
          absl::Span<const uint8_t>(static_cast<const uint8_t*>(t.data_ptr()),
                                    t.nbytes())});
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("copying weights to save in ",
                                            directory, ": ",
                                            e.what_without_backtrace()));
  }
  RETURN_IF_ERROR(WriteCheckpointTensors(directory, tensors));
  ModelConfig config = config_;
  config.dtype = DTypeConfigName(options_.dtype);
  const std::string path = directory + "/config.json";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << ModelConfigToJson(config);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::vector<at::Tensor> CausalLM::parameters() const {
  std::vector<at::Tensor> result;
  result.reserve(parameters_.size());
  for (const auto& entry : parameters_) result.push_back(entry.second);
  return result;
}

void CausalLM::SetRequiresGrad(bool requires_grad) {
  for (auto& entry : parameters_) entry.second.requires_grad_(requires_grad);
}

absl::Status CausalLM::CopyWeightsFrom(
    const std::vector<std::pair<std::string, at::Tensor>>& named) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    index[parameters_[i].first] = i;
  }
  std::vector<const at::Tensor*> sources(parameters_.size(), nullptr);
  for (const auto& [name, tensor] : named) {
    auto it = index.find(name);
    if (it == index.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight ", name, ": the model has no such tensor"));
    }
    if (sources[it->second] != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight ", name, ": given twice"));
    }
    const at::Tensor& target = parameters_[it->second].second;
    if (!tensor.defined() || !at::isFloatingType(tensor.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight ", name, ": not a floating-point tensor"));
    }
    if (tensor.sizes() != target.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight ", name, ": shape [", absl::StrJoin(tensor.sizes(), ", "),
          "], the model's is [", absl::StrJoin(target.sizes(), ", "), "]"));
    }
    sources[it->second] = &tensor;
  }
  for (size_t i = 0; i < sources.size(); ++i) {
    if (sources[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight ", parameters_[i].first, ": missing"));
    }
  }
  try {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < sources.size(); ++i) {
      parameters_[i].second.copy_(*sources[i]);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("copying weights into the model: ",
                                            e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

std::unique_ptr<KvCache> CausalLM::NewKvCache(int64_t batch_size,
                                              int64_t capacity) const {
  std::unique_ptr<KvCache> cache(new KvCache());
  cache->batch_size_ = batch_size;
  cache->capacity_ = std::max<int64_t>(capacity, 1);
  const auto options =
      at::TensorOptions().device(options_.device).dtype(options_.dtype);
  for (int i = 0; i < config_.num_hidden_layers; ++i) {
    cache->keys_.push_back(at::zeros({batch_size, config_.num_key_value_heads,
                                      cache->capacity_, config_.head_dim},
                                     options));
    cache->values_.push_back(at::zeros_like(cache->keys_.back()));
  }
  cache->mask_ =
      at::zeros({batch_size, cache->capacity_},
                at::TensorOptions().device(options_.device).dtype(at::kBool));
  cache->seen_ =
      at::zeros({batch_size},
                at::TensorOptions().device(options_.device).dtype(at::kLong));
  return cache;
}

absl::StatusOr<at::Tensor> CausalLM::Forward(const at::Tensor& input_ids,
                                             const at::Tensor& attention_mask,
                                             KvCache* cache,
                                             const at::Tensor& position_ids) {
  if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.size(0) == 0 ||
      input_ids.size(1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input_ids must be a non-empty [batch, time] tensor, got ",
        input_ids.defined() ? ShapeString(input_ids.sizes()) : "undefined"));
  }
  if (input_ids.scalar_type() != at::kLong &&
      input_ids.scalar_type() != at::kInt) {
    return absl::InvalidArgumentError(
        absl::StrCat("input_ids must be int64 or int32, got ",
                     c10::toString(input_ids.scalar_type())));
  }
  const int64_t batch = input_ids.size(0);
  const int64_t time = input_ids.size(1);
  const int64_t past = cache != nullptr ? cache->length() : 0;
  if (cache != nullptr && cache->batch_size() != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache holds ", cache->batch_size(),
                     " rows; input_ids has ", batch));
  }
  if (attention_mask.defined()) {
    const bool ok_shape =
        attention_mask.dim() == 2 && attention_mask.size(0) == batch &&
        (attention_mask.size(1) == time ||
         (cache != nullptr && attention_mask.size(1) == past + time));
    if (!ok_shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attention_mask has shape ", ShapeString(attention_mask.sizes()),
          "; expected [", batch, ", ", time, "]",
          cache != nullptr
              ? absl::StrCat(" or [", batch, ", ", past + time, "]")
              : ""));
    }
  }
  if (position_ids.defined() &&
      (position_ids.dim() != 2 || position_ids.size(0) != batch ||
       position_ids.size(1) != time)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "position_ids has shape ", ShapeString(position_ids.sizes()),
        "; expected [", batch, ", ", time, "]"));
  }
  try {
    const int64_t min_id = input_ids.min().item<int64_t>();
    const int64_t max_id = input_ids.max().item<int64_t>();
    if (min_id < 0 || max_id >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input_ids hold ", min_id < 0 ? min_id : max_id,
          ", outside the vocabulary [0, ", config_.vocab_size, ")"));
    }
    return ForwardUnchecked(input_ids, attention_mask, cache, position_ids,
                            /*last_only=*/false);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("forward of input_ids ",
                                            ShapeString(input_ids.sizes()),
                                            ": ", e.what_without_backtrace()));
  }
}

at::Tensor CausalLM::ForwardUnchecked(const at::Tensor& input_ids_in,
                                      const at::Tensor& attention_mask,
                                      KvCache* cache,
                                      const at::Tensor& position_ids_in,
                                      bool last_only) {
  const ModelConfig& c = config_;
  const c10::Device device = options_.device;
  const at::Tensor input_ids = input_ids_in.to(device, at::kLong);
  const int64_t batch = input_ids.size(0);
  const int64_t time = input_ids.size(1);
  const int64_t past = cache != nullptr ? cache->length_ : 0;
  const int64_t total = past + time;

  // The mask of the new tokens (bool [B, T]); undefined = all real.
  at::Tensor new_mask;
  if (attention_mask.defined()) {
    at::Tensor m = attention_mask.to(device);
    if (m.size(1) == total && cache != nullptr && past > 0) {
      m = m.narrow(1, past, time);
    }
    new_mask = m.to(at::kBool);
  }

  // Position ids as CausalLM::Forward in model.h states: cumsum of the mask
  // minus one, continuing from the cache. Padding positions are clamped to
  // 0; no real token attends to them.
  at::Tensor positions;
  if (position_ids_in.defined()) {
    positions = position_ids_in.to(device, at::kLong);
  } else if (new_mask.defined()) {
    positions = (new_mask.to(at::kLong).cumsum(1) - 1).clamp_min(0);
    if (cache != nullptr) positions = positions + cache->seen_.unsqueeze(1);
  } else {
    positions =
        at::arange(time, at::TensorOptions().device(device).dtype(at::kLong))
            .unsqueeze(0)
            .expand({batch, time});
    if (cache != nullptr) positions = positions + cache->seen_.unsqueeze(1);
  }

  // Which keys each query may see: causal over cache slots, and only slots
  // holding real tokens.
  at::Tensor key_mask;  // bool [B, total] or undefined (all real)
  if (cache != nullptr) {
    if (total > cache->capacity_) {
      // Grow by doubling: copy what is there into larger storage.
      int64_t new_capacity = std::max<int64_t>(cache->capacity_ * 2, total);
      for (size_t i = 0; i < cache->keys_.size(); ++i) {
        for (at::Tensor* store : {&cache->keys_[i], &cache->values_[i]}) {
          at::Tensor bigger = at::zeros(
              {batch, c.num_key_value_heads, new_capacity, c.head_dim},
              store->options());
          bigger.narrow(2, 0, past).copy_(store->narrow(2, 0, past));
          *store = bigger;
        }
      }
      at::Tensor bigger_mask =
          at::zeros({batch, new_capacity}, cache->mask_.options());
      bigger_mask.narrow(1, 0, past).copy_(cache->mask_.narrow(1, 0, past));
      cache->mask_ = bigger_mask;
      cache->capacity_ = new_capacity;
    }
    if (new_mask.defined()) {
      cache->mask_.narrow(1, past, time).copy_(new_mask);
      cache->seen_ += new_mask.to(at::kLong).sum(1);
    } else {
      cache->mask_.narrow(1, past, time).fill_(true);
      cache->seen_ += time;
    }
    key_mask = cache->mask_.narrow(1, 0, total);
  } else if (new_mask.defined()) {
    key_mask = new_mask;
  }
  const auto index_options =
      at::TensorOptions().device(device).dtype(at::kLong);
  at::Tensor causal = at::arange(total, index_options).unsqueeze(0) <=
                      (at::arange(time, index_options) + past).unsqueeze(1);
  at::Tensor allowed = causal.unsqueeze(0);  // [1 or B, T, total]
  if (key_mask.defined()) allowed = allowed & key_mask.unsqueeze(1);
  const at::Tensor blocked = allowed.logical_not().unsqueeze(1);  // [B,1,T,S]

  // Rotary embedding tables for these positions (float32, then the model's
  // dtype, as transformers does).
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  const at::Tensor cos = emb.cos().to(options_.dtype).unsqueeze(1);
  const at::Tensor sin = emb.sin().to(options_.dtype).unsqueeze(1);

  const int64_t heads = c.num_attention_heads;
  const int64_t kv_heads = c.num_key_value_heads;
  const int64_t groups = heads / kv_heads;
  const int64_t head_dim = c.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const double lowest =
      options_.dtype == at::kFloat  ? std::numeric_limits<float>::lowest()
      : options_.dtype == at::kHalf ? -65504.0
                                    : -3.3895313892515355e38;  // bf16 lowest

  at::Tensor hidden = at::embedding(embed_tokens_, input_ids);
  for (size_t layer_index = 0; layer_index < layers_.size(); ++layer_index) {
    const Layer& l = layers_[layer_index];
    at::Tensor residual = hidden;
    at::Tensor x = RmsNorm(hidden, l.input_norm, c.rms_norm_eps);
    at::Tensor q = at::linear(x, l.q_weight, l.q_bias)
                       .view({batch, time, heads, head_dim});
    at::Tensor k = at::linear(x, l.k_weight, l.k_bias)
                       .view({batch, time, kv_heads, head_dim});
    at::Tensor v = at::linear(x, l.v_weight, l.v_bias)
                       .view({batch, time, kv_heads, head_dim})
                       .transpose(1, 2);
    if (c.qk_norm) {
      q = RmsNorm(q, l.q_norm, c.rms_norm_eps);
      k = RmsNorm(k, l.k_norm, c.rms_norm_eps);
    }
    q = q.transpose(1, 2);  // [B, H, T, D]
    k = k.transpose(1, 2);  // [B, KvH, T, D]
    q = q * cos + RotateHalf(q) * sin;
    k = k * cos + RotateHalf(k) * sin;
    if (cache != nullptr) {
      cache->keys_[layer_index].narrow(2, past, time).copy_(k);
      cache->values_[layer_index].narrow(2, past, time).copy_(v);
      k = cache->keys_[layer_index].narrow(2, 0, total);
      v = cache->values_[layer_index].narrow(2, 0, total);
    }
    if (groups > 1) {
      k = k.unsqueeze(2)
              .expand({batch, kv_heads, groups, total, head_dim})
              .reshape({batch, heads, total, head_dim});
      v = v.unsqueeze(2)
              .expand({batch, kv_heads, groups, total, head_dim})
              .reshape({batch, heads, total, head_dim});
    }
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * scale;
    // A finite lowest value, not -inf: a padding query that sees no real
    // key gets a uniform (ignored) row instead of NaN.
    scores = scores.masked_fill(blocked, lowest);
    at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    at::Tensor attended = at::matmul(probs, v).transpose(1, 2).reshape(
        {batch, time, heads * head_dim});
    hidden = residual + at::linear(attended, l.o_weight, l.o_bias);

    residual = hidden;
    x = RmsNorm(hidden, l.post_norm, c.rms_norm_eps);
    x = at::linear(
        at::silu(at::linear(x, l.gate_weight)) * at::linear(x, l.up_weight),
        l.down_weight);
    hidden = residual + x;
  }
  if (cache != nullptr) cache->length_ = total;
  if (last_only) hidden = hidden.narrow(1, time - 1, 1);
  hidden = RmsNorm(hidden, final_norm_, c.rms_norm_eps);
  return at::linear(hidden, lm_head_);
}

}  // namespace fapo::engine
