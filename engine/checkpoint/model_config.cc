#include "engine/checkpoint/model_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

using Json = nlohmann::json;

struct FamilyInfo {
  ModelFamily family;
  const char* model_type;
  const char* architecture;
};
constexpr FamilyInfo kFamilies[] = {
    {ModelFamily::kQwen2, "qwen2", "Qwen2ForCausalLM"},
    {ModelFamily::kQwen3, "qwen3", "Qwen3ForCausalLM"},
    {ModelFamily::kLlama, "llama", "LlamaForCausalLM"},
};

const FamilyInfo& InfoOf(ModelFamily family) {
  for (const FamilyInfo& info : kFamilies) {
    if (info.family == family) return info;
  }
  return kFamilies[0];
}

// Reads config.json keys with errors that say which key and why. Every
// accessor treats JSON null as absent: transformers writes null for unset
// optional fields ("bos_token_id": null).
class ConfigReader {
 public:
  ConfigReader(const Json& root, absl::string_view source)
      : root_(root), source_(source) {}

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": key \"", key, "\": ", what));
  }

  const Json* Find(const Json& object, absl::string_view key) const {
    auto it = object.find(std::string(key));
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
  }
  const Json* Find(absl::string_view key) const { return Find(root_, key); }

  absl::StatusOr<int> PositiveInt(const Json* value,
                                  absl::string_view key) const {
    if (value == nullptr) return Error(key, "missing");
    if (!value->is_number_integer() || value->get<int64_t>() <= 0 ||
        value->get<int64_t>() > std::numeric_limits<int>::max()) {
      return Error(key, absl::StrCat("expected a positive integer, got ",
                                     value->dump()));
    }
    return static_cast<int>(value->get<int64_t>());
  }
  absl::StatusOr<int> RequiredPositiveInt(absl::string_view key) const {
    return PositiveInt(Find(key), key);
  }
  absl::StatusOr<int> OptionalPositiveInt(absl::string_view key,
                                          int default_value) const {
    const Json* value = Find(key);
    if (value == nullptr) return default_value;
    return PositiveInt(value, key);
  }

  absl::StatusOr<double> PositiveDouble(const Json* value,
                                        absl::string_view key,
                                        double default_value) const {
    if (value == nullptr) return default_value;
    if (!value->is_number() || !(value->get<double>() > 0) ||
        !std::isfinite(value->get<double>())) {
      return Error(
          key, absl::StrCat("expected a positive number, got ", value->dump()));
    }
    return value->get<double>();
  }

  absl::StatusOr<bool> OptionalBool(absl::string_view key,
                                    bool default_value) const {
    const Json* value = Find(key);
    if (value == nullptr) return default_value;
    if (!value->is_boolean()) {
      return Error(key,
                   absl::StrCat("expected true or false, got ", value->dump()));
    }
    return value->get<bool>();
  }

  // An int, a list of ints, or absent/null (empty).
  absl::StatusOr<std::vector<int>> TokenIds(absl::string_view key) const {
    const Json* value = Find(key);
    std::vector<int> ids;
    if (value == nullptr) return ids;
    auto one = [&](const Json& id) -> absl::Status {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() > std::numeric_limits<int>::max()) {
        return Error(key, absl::StrCat("expected a token id, got ", id.dump()));
      }
      ids.push_back(static_cast<int>(id.get<int64_t>()));
      return absl::OkStatus();
    };
    if (value->is_array()) {
      for (const Json& id : *value) RETURN_IF_ERROR(one(id));
    } else {
      RETURN_IF_ERROR(one(*value));
    }
    return ids;
  }

 private:
  const Json& root_;
  std::string source_;
};

// NOTE [rope]: transformers 4 writes "rope_theta" at the top level and the
// scaling as "rope_scaling" {"rope_type" (or "type"), "factor", ...};
// transformers 5 writes "rope_parameters" {"rope_type", "rope_theta",
// "factor", ...} and may still read the old spellings. Each field is taken
// from rope_parameters first, then rope_scaling, then the top level.
absl::Status ParseRope(const ConfigReader& reader, ModelConfig& config) {
  const Json* parameters = reader.Find("rope_parameters");
  const Json* scaling = reader.Find("rope_scaling");
  if (parameters != nullptr && !parameters->is_object()) {
    return reader.Error("rope_parameters", "expected an object");
  }
  if (scaling != nullptr && !scaling->is_object()) {
    return reader.Error("rope_scaling", "expected an object");
  }
  // The first of the places that holds `key`, with the key path for errors.
  auto lookup = [&](absl::string_view key, std::string& path) -> const Json* {
    if (parameters != nullptr) {
      if (const Json* value = reader.Find(*parameters, key)) {
        path = absl::StrCat("rope_parameters.", key);
        return value;
      }
    }
    if (scaling != nullptr) {
      if (const Json* value = reader.Find(*scaling, key)) {
        path = absl::StrCat("rope_scaling.", key);
        return value;
      }
    }
    return nullptr;
  };

  std::string path;
  const Json* theta = lookup("rope_theta", path);
  if (theta == nullptr) {
    theta = reader.Find("rope_theta");
    path = "rope_theta";
  }
  ASSIGN_OR_RETURN(config.rope_theta,
                   reader.PositiveDouble(theta, path, config.rope_theta));

  const Json* type = lookup("rope_type", path);
  if (type == nullptr) type = lookup("type", path);  // transformers 4.3x
  std::string rope_type = "default";
  if (type != nullptr) {
    if (!type->is_string()) return reader.Error(path, "expected a string");
    rope_type = type->get<std::string>();
  }
  if (rope_type == "default") {
    config.rope_scaling = RopeScaling();
    return absl::OkStatus();
  }
  if (rope_type != "llama3") {
    return absl::UnimplementedError(absl::StrCat(
        reader.Error(path, "").message(), "unsupported rope type \"", rope_type,
        "\" (supported: default, llama3)"));
  }
  RopeScaling& scaling_out = config.rope_scaling;
  scaling_out = RopeScaling();
  scaling_out.enabled = true;
  const Json* value = lookup("factor", path);
  ASSIGN_OR_RETURN(scaling_out.factor,
                   reader.PositiveDouble(value, path, scaling_out.factor));
  value = lookup("low_freq_factor", path);
  ASSIGN_OR_RETURN(
      scaling_out.low_freq_factor,
      reader.PositiveDouble(value, path, scaling_out.low_freq_factor));
  value = lookup("high_freq_factor", path);
  ASSIGN_OR_RETURN(
      scaling_out.high_freq_factor,
      reader.PositiveDouble(value, path, scaling_out.high_freq_factor));
  if (!(scaling_out.high_freq_factor > scaling_out.low_freq_factor)) {
    return reader.Error("rope high_freq_factor",
                        "must exceed low_freq_factor (llama3 divides by "
                        "their difference)");
  }
  value = lookup("original_max_position_embeddings", path);
  if (value != nullptr) {
    ASSIGN_OR_RETURN(scaling_out.original_max_position_embeddings,
                     reader.PositiveInt(value, path));
  }
  return absl::OkStatus();
}

absl::Status ParseFields(const ConfigReader& reader, ModelConfig& config) {
  const Json* model_type = reader.Find("model_type");
  if (model_type == nullptr || !model_type->is_string()) {
    return reader.Error("model_type",
                        "missing or not a string (supported: qwen2, qwen3, "
                        "llama)");
  }
  bool known = false;
  for (const FamilyInfo& info : kFamilies) {
    if (model_type->get<std::string>() == info.model_type) {
      config.family = info.family;
      known = true;
    }
  }
  if (!known) {
    return reader.Error("model_type",
                        absl::StrCat("unknown model_type ", model_type->dump(),
                                     " (supported: qwen2, qwen3, llama)"));
  }

  ASSIGN_OR_RETURN(config.vocab_size, reader.RequiredPositiveInt("vocab_size"));
  ASSIGN_OR_RETURN(config.hidden_size,
                   reader.RequiredPositiveInt("hidden_size"));
  ASSIGN_OR_RETURN(config.intermediate_size,
                   reader.RequiredPositiveInt("intermediate_size"));
  ASSIGN_OR_RETURN(config.num_hidden_layers,
                   reader.RequiredPositiveInt("num_hidden_layers"));
  ASSIGN_OR_RETURN(config.num_attention_heads,
                   reader.RequiredPositiveInt("num_attention_heads"));
  ASSIGN_OR_RETURN(config.max_position_embeddings,
                   reader.RequiredPositiveInt("max_position_embeddings"));
  ASSIGN_OR_RETURN(config.num_key_value_heads,
                   reader.OptionalPositiveInt("num_key_value_heads",
                                              config.num_attention_heads));
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    return reader.Error("num_key_value_heads",
                        absl::StrCat(config.num_key_value_heads,
                                     " does not divide num_attention_heads ",
                                     config.num_attention_heads));
  }
  if (reader.Find("head_dim") != nullptr) {
    ASSIGN_OR_RETURN(config.head_dim, reader.RequiredPositiveInt("head_dim"));
  } else {
    if (config.hidden_size % config.num_attention_heads != 0) {
      return reader.Error(
          "num_attention_heads",
          absl::StrCat(config.num_attention_heads,
                       " does not divide hidden_size ", config.hidden_size,
                       " (and no head_dim is given)"));
    }
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  ASSIGN_OR_RETURN(config.rms_norm_eps,
                   reader.PositiveDouble(reader.Find("rms_norm_eps"),
                                         "rms_norm_eps", config.rms_norm_eps));
  RETURN_IF_ERROR(ParseRope(reader, config));
  ASSIGN_OR_RETURN(config.tie_word_embeddings,
                   reader.OptionalBool("tie_word_embeddings", false));

  switch (config.family) {
    case ModelFamily::kQwen2:
      // Qwen2's q/k/v projections always have biases; its config has no key.
      config.attention_bias = true;
      config.qk_norm = false;
      break;
    case ModelFamily::kQwen3: {
      ASSIGN_OR_RETURN(config.attention_bias,
                       reader.OptionalBool("attention_bias", false));
      config.qk_norm = true;
      break;
    }
    case ModelFamily::kLlama: {
      ASSIGN_OR_RETURN(config.attention_bias,
                       reader.OptionalBool("attention_bias", false));
      config.qk_norm = false;
      ASSIGN_OR_RETURN(bool mlp_bias, reader.OptionalBool("mlp_bias", false));
      if (mlp_bias) {
        return absl::UnimplementedError(
            absl::StrCat(reader.Error("mlp_bias", "").message(),
                         "true is not supported (MLP projections without "
                         "biases only)"));
      }
      break;
    }
  }
  if (config.family != ModelFamily::kLlama) {
    ASSIGN_OR_RETURN(bool sliding,
                     reader.OptionalBool("use_sliding_window", false));
    if (sliding) {
      return absl::UnimplementedError(
          absl::StrCat(reader.Error("use_sliding_window", "").message(),
                       "true is not supported (full attention only)"));
    }
  }
  if (const Json* act = reader.Find("hidden_act")) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      return absl::UnimplementedError(
          absl::StrCat(reader.Error("hidden_act", "").message(), act->dump(),
                       " is not supported (silu only)"));
    }
  }

  // transformers 5 writes "dtype", older versions "torch_dtype".
  const char* dtype_key = "dtype";
  const Json* dtype = reader.Find("dtype");
  if (dtype == nullptr) {
    dtype_key = "torch_dtype";
    dtype = reader.Find("torch_dtype");
  }
  if (dtype != nullptr) {
    std::string name = dtype->is_string() ? dtype->get<std::string>() : "";
    if (name != "float32" && name != "bfloat16" && name != "float16") {
      return reader.Error(dtype_key,
                          absl::StrCat("unsupported dtype ", dtype->dump(),
                                       " (supported: float32, bfloat16, "
                                       "float16)"));
    }
    config.dtype = name;
  }
  ASSIGN_OR_RETURN(config.bos_token_ids, reader.TokenIds("bos_token_id"));
  ASSIGN_OR_RETURN(config.eos_token_ids, reader.TokenIds("eos_token_id"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view source) {
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not JSON: ", error.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a JSON object"));
  }
  ModelConfig config;
  // The accessors only read; still, nothing below may throw past here.
  try {
    ConfigReader reader(root, source);
    RETURN_IF_ERROR(ParseFields(reader, config));
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", error.what()));
  }
  return config;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& directory) {
  std::string path = directory.empty() || directory.back() == '/'
                         ? directory + "config.json"
                         : directory + "/config.json";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error_number = errno;
    std::string message =
        absl::StrCat(path, ": cannot open: ", std::strerror(error_number));
    return absl::Status(absl::ErrnoToStatusCode(error_number), message);
  }
  std::string text;
  char buffer[1 << 14];
  while (true) {
    ssize_t count = ::read(fd, buffer, sizeof(buffer));
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      int error_number = errno;
      ::close(fd);
      return absl::DataLossError(
          absl::StrCat(path, ": read failed: ", std::strerror(error_number)));
    }
    if (count == 0) break;
    text.append(buffer, static_cast<size_t>(count));
  }
  ::close(fd);
  return ParseModelConfig(text, path);
}

std::string ModelConfigToJson(const ModelConfig& config) {
  const FamilyInfo& info = InfoOf(config.family);
  Json root = Json::object();
  root["architectures"] = Json::array({info.architecture});
  root["model_type"] = info.model_type;
  root["vocab_size"] = config.vocab_size;
  root["hidden_size"] = config.hidden_size;
  root["intermediate_size"] = config.intermediate_size;
  root["num_hidden_layers"] = config.num_hidden_layers;
  root["num_attention_heads"] = config.num_attention_heads;
  root["num_key_value_heads"] = config.num_key_value_heads;
  root["head_dim"] = config.head_dim;
  root["max_position_embeddings"] = config.max_position_embeddings;
  root["rms_norm_eps"] = config.rms_norm_eps;
  root["hidden_act"] = "silu";
  // NOTE [rope]: both spellings, so transformers 4 and 5 read the same.
  root["rope_theta"] = config.rope_theta;
  Json rope = Json::object();
  rope["rope_theta"] = config.rope_theta;
  if (config.rope_scaling.enabled) {
    rope["rope_type"] = "llama3";
    rope["factor"] = config.rope_scaling.factor;
    rope["low_freq_factor"] = config.rope_scaling.low_freq_factor;
    rope["high_freq_factor"] = config.rope_scaling.high_freq_factor;
    rope["original_max_position_embeddings"] =
        config.rope_scaling.original_max_position_embeddings;
    Json scaling = rope;
    scaling.erase("rope_theta");
    root["rope_scaling"] = scaling;
  } else {
    rope["rope_type"] = "default";
    root["rope_scaling"] = nullptr;
  }
  root["rope_parameters"] = rope;
  root["tie_word_embeddings"] = config.tie_word_embeddings;
  switch (config.family) {
    case ModelFamily::kQwen2:
      root["use_sliding_window"] = false;
      break;
    case ModelFamily::kQwen3:
      root["attention_bias"] = config.attention_bias;
      root["use_sliding_window"] = false;
      break;
    case ModelFamily::kLlama:
      root["attention_bias"] = config.attention_bias;
      root["mlp_bias"] = false;
      break;
  }
  root["dtype"] = config.dtype;
  root["torch_dtype"] = config.dtype;
  auto ids = [](const std::vector<int>& token_ids) -> Json {
    if (token_ids.empty()) return nullptr;
    if (token_ids.size() == 1) return token_ids[0];
    return token_ids;
  };
  root["bos_token_id"] = ids(config.bos_token_ids);
  root["eos_token_id"] = ids(config.eos_token_ids);
  return root.dump(2) + "\n";
}

absl::string_view ModelFamilyName(ModelFamily family) {
  return InfoOf(family).model_type;
}

}  // namespace fapo::engine
