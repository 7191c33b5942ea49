// config.json parsing for the Qwen2, Qwen3 and Llama families: the Hugging
// Face fixtures, both transformers spellings of RoPE settings and dtype,
// defaults, errors, and ModelConfigToJson round trips.
#include "engine/checkpoint/model_config.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

std::string TestData(const std::string& relative) {
  return ::fapo::testing::SourcePath("engine/checkpoint/testdata/" + relative);
}

void ExpectSameConfig(const ModelConfig& actual, const ModelConfig& expected) {
  EXPECT_EQ(actual.family, expected.family);
  EXPECT_EQ(actual.vocab_size, expected.vocab_size);
  EXPECT_EQ(actual.hidden_size, expected.hidden_size);
  EXPECT_EQ(actual.intermediate_size, expected.intermediate_size);
  EXPECT_EQ(actual.num_hidden_layers, expected.num_hidden_layers);
  EXPECT_EQ(actual.num_attention_heads, expected.num_attention_heads);
  EXPECT_EQ(actual.num_key_value_heads, expected.num_key_value_heads);
  EXPECT_EQ(actual.head_dim, expected.head_dim);
  EXPECT_EQ(actual.max_position_embeddings, expected.max_position_embeddings);
  EXPECT_DOUBLE_EQ(actual.rms_norm_eps, expected.rms_norm_eps);
  EXPECT_DOUBLE_EQ(actual.rope_theta, expected.rope_theta);
  EXPECT_EQ(actual.rope_scaling.enabled, expected.rope_scaling.enabled);
  EXPECT_DOUBLE_EQ(actual.rope_scaling.factor, expected.rope_scaling.factor);
  EXPECT_DOUBLE_EQ(actual.rope_scaling.low_freq_factor,
                   expected.rope_scaling.low_freq_factor);
  EXPECT_DOUBLE_EQ(actual.rope_scaling.high_freq_factor,
                   expected.rope_scaling.high_freq_factor);
  EXPECT_EQ(actual.rope_scaling.original_max_position_embeddings,
            expected.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(actual.tie_word_embeddings, expected.tie_word_embeddings);
  EXPECT_EQ(actual.attention_bias, expected.attention_bias);
  EXPECT_EQ(actual.qk_norm, expected.qk_norm);
  EXPECT_EQ(actual.dtype, expected.dtype);
  EXPECT_EQ(actual.bos_token_ids, expected.bos_token_ids);
  EXPECT_EQ(actual.eos_token_ids, expected.eos_token_ids);
}

// A minimal transformers-4-style Llama config to edit per test.
Json LlamaJson() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
    "attention_bias": false,
    "mlp_bias": false,
    "hidden_act": "silu",
    "tie_word_embeddings": false,
    "torch_dtype": "bfloat16",
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009]
  })");
}

absl::StatusOr<ModelConfig> Parse(const Json& json) {
  return ParseModelConfig(json.dump(), "test/config.json");
}

TEST(ModelConfigFixtureTest, Qwen2) {
  ASSERT_OK_AND_ASSIGN(ModelConfig config,
                       LoadModelConfig(TestData("hf/qwen2")));
  EXPECT_EQ(config.family, ModelFamily::kQwen2);
  EXPECT_EQ(config.vocab_size, 1024);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.intermediate_size, 160);
  EXPECT_EQ(config.num_hidden_layers, 2);
  EXPECT_EQ(config.num_attention_heads, 4);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.head_dim, 16);  // derived: 64 / 4
  EXPECT_EQ(config.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(config.rope_theta, 1e6);  // rope_parameters.rope_theta
  EXPECT_FALSE(config.rope_scaling.enabled);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_TRUE(config.attention_bias);  // implied by qwen2
  EXPECT_FALSE(config.qk_norm);
  EXPECT_EQ(config.dtype, "float32");
  EXPECT_THAT(config.bos_token_ids, IsEmpty());  // null
  EXPECT_THAT(config.eos_token_ids, IsEmpty());
}

TEST(ModelConfigFixtureTest, Qwen3) {
  ASSERT_OK_AND_ASSIGN(ModelConfig config,
                       LoadModelConfig(TestData("hf/qwen3") + "/"));
  EXPECT_EQ(config.family, ModelFamily::kQwen3);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.num_attention_heads, 4);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.head_dim, 32);  // given, not 64 / 4
  EXPECT_DOUBLE_EQ(config.rope_theta, 1e6);
  EXPECT_TRUE(config.tie_word_embeddings);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_TRUE(config.qk_norm);
  EXPECT_EQ(config.dtype, "float32");
}

TEST(ModelConfigFixtureTest, MissingDirectoryIsNotFound) {
  EXPECT_THAT(LoadModelConfig("/nonexistent/fapo/model"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/fapo/model/config.json")));
}

TEST(ModelConfigParseTest, Llama3WithRopeScalingTransformers4) {
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(LlamaJson()));
  EXPECT_EQ(config.family, ModelFamily::kLlama);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_DOUBLE_EQ(config.rope_theta, 500000.0);
  EXPECT_TRUE(config.rope_scaling.enabled);
  EXPECT_DOUBLE_EQ(config.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(config.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.qk_norm);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_EQ(config.dtype, "bfloat16");  // torch_dtype spelling
  EXPECT_THAT(config.bos_token_ids, ElementsAre(128000));
  EXPECT_THAT(config.eos_token_ids, ElementsAre(128001, 128008, 128009));
}

TEST(ModelConfigParseTest, Llama3WithRopeParametersTransformers5) {
  Json json = LlamaJson();
  json.erase("rope_theta");
  json.erase("rope_scaling");
  json.erase("torch_dtype");
  json["dtype"] = "float16";
  json["rope_parameters"] = Json::parse(
      R"({"rope_type": "llama3", "rope_theta": 250000.0, "factor": 32.0,
          "low_freq_factor": 2.0, "high_freq_factor": 8.0,
          "original_max_position_embeddings": 4096})");
  json["eos_token_id"] = 7;
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(json));
  EXPECT_DOUBLE_EQ(config.rope_theta, 250000.0);
  EXPECT_TRUE(config.rope_scaling.enabled);
  EXPECT_DOUBLE_EQ(config.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(config.rope_scaling.low_freq_factor, 2.0);
  EXPECT_DOUBLE_EQ(config.rope_scaling.high_freq_factor, 8.0);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(config.dtype, "float16");
  EXPECT_THAT(config.eos_token_ids, ElementsAre(7));  // int form
}

TEST(ModelConfigParseTest, RopeParametersWinOverTopLevelTheta) {
  Json json = LlamaJson();
  json["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1234.0}};
  json.erase("rope_scaling");
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(json));
  EXPECT_DOUBLE_EQ(config.rope_theta, 1234.0);
  EXPECT_FALSE(config.rope_scaling.enabled);
}

TEST(ModelConfigParseTest, RopeScalingOldTypeSpellingAndDefaults) {
  Json json = LlamaJson();
  json["rope_scaling"] = {{"type", "llama3"}, {"factor", 4.0}};
  json.erase("rope_theta");
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(json));
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);  // default
  EXPECT_TRUE(config.rope_scaling.enabled);
  EXPECT_DOUBLE_EQ(config.rope_scaling.factor, 4.0);
  EXPECT_DOUBLE_EQ(config.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 8192);
  json["rope_scaling"] = nullptr;
  ASSERT_OK_AND_ASSIGN(config, Parse(json));
  EXPECT_FALSE(config.rope_scaling.enabled);
}

TEST(ModelConfigParseTest, DefaultsForOptionalKeys) {
  Json json = LlamaJson();
  for (const char* key :
       {"num_key_value_heads", "rms_norm_eps", "rope_theta", "rope_scaling",
        "attention_bias", "mlp_bias", "tie_word_embeddings", "torch_dtype",
        "bos_token_id", "eos_token_id", "hidden_act"}) {
    json.erase(key);
  }
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(json));
  EXPECT_EQ(config.num_key_value_heads, 32);  // = num_attention_heads
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_FALSE(config.rope_scaling.enabled);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_EQ(config.dtype, "float32");
  EXPECT_THAT(config.bos_token_ids, IsEmpty());
  EXPECT_THAT(config.eos_token_ids, IsEmpty());
  // null counts as absent, as transformers writes it.
  json["num_key_value_heads"] = nullptr;
  json["head_dim"] = nullptr;
  ASSERT_OK_AND_ASSIGN(config, Parse(json));
  EXPECT_EQ(config.num_key_value_heads, 32);
  EXPECT_EQ(config.head_dim, 128);
}

TEST(ModelConfigParseTest, LlamaAttentionBiasAndDtypePrecedence) {
  Json json = LlamaJson();
  json["attention_bias"] = true;
  json["dtype"] = "float32";  // transformers 5's key wins over torch_dtype
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(json));
  EXPECT_TRUE(config.attention_bias);
  EXPECT_EQ(config.dtype, "float32");
}

TEST(ModelConfigParseTest, HeadDimGivenNeedNotDivideHidden) {
  Json json = LlamaJson();
  json["hidden_size"] = 100;
  json["num_attention_heads"] = 8;
  json["head_dim"] = 16;
  ASSERT_OK_AND_ASSIGN(ModelConfig config, Parse(json));
  EXPECT_EQ(config.head_dim, 16);
}

// Errors: each names the source and the key.
void ExpectError(const Json& json, absl::StatusCode code,
                 const std::vector<std::string>& parts) {
  auto config = Parse(json);
  ASSERT_FALSE(config.ok()) << json.dump();
  EXPECT_EQ(config.status().code(), code) << config.status();
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("test/config.json"));
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(part))
        << json.dump();
  }
}

TEST(ModelConfigErrorTest, NotJsonOrNotObject) {
  EXPECT_THAT(
      ParseModelConfig("{\"model_type\": ", "dir/config.json"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("dir/config.json"), HasSubstr("not JSON"))));
  EXPECT_THAT(ParseModelConfig("[1]", "dir/config.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a JSON object")));
}

TEST(ModelConfigErrorTest, MissingRequiredKeys) {
  for (const char* key : {"model_type", "vocab_size", "hidden_size",
                          "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "max_position_embeddings"}) {
    Json json = LlamaJson();
    json.erase(key);
    ExpectError(json, absl::StatusCode::kInvalidArgument, {key});
  }
}

TEST(ModelConfigErrorTest, BadValues) {
  Json json = LlamaJson();
  json["hidden_size"] = 0;
  ExpectError(json, absl::StatusCode::kInvalidArgument,
              {"hidden_size", "positive integer"});
  json = LlamaJson();
  json["vocab_size"] = "1024";
  ExpectError(json, absl::StatusCode::kInvalidArgument, {"vocab_size"});
  json = LlamaJson();
  json["num_hidden_layers"] = 2.5;
  ExpectError(json, absl::StatusCode::kInvalidArgument, {"num_hidden_layers"});
  json = LlamaJson();
  json["rms_norm_eps"] = -1;
  ExpectError(json, absl::StatusCode::kInvalidArgument, {"rms_norm_eps"});
  json = LlamaJson();
  json["tie_word_embeddings"] = "yes";
  ExpectError(json, absl::StatusCode::kInvalidArgument,
              {"tie_word_embeddings"});
  json = LlamaJson();
  json["eos_token_id"] = Json::array({1, "two"});
  ExpectError(json, absl::StatusCode::kInvalidArgument, {"eos_token_id"});
  json = LlamaJson();
  json["torch_dtype"] = "int8";
  ExpectError(json, absl::StatusCode::kInvalidArgument,
              {"torch_dtype", "int8"});
  json = LlamaJson();
  json["rope_scaling"] = 3;
  ExpectError(json, absl::StatusCode::kInvalidArgument, {"rope_scaling"});
}

TEST(ModelConfigErrorTest, UnknownModelTypeListsSupported) {
  Json json = LlamaJson();
  json["model_type"] = "mistral";
  ExpectError(json, absl::StatusCode::kInvalidArgument,
              {"mistral", "qwen2", "qwen3", "llama"});
}

TEST(ModelConfigErrorTest, HeadsNotDividing) {
  Json json = LlamaJson();
  json["num_key_value_heads"] = 5;
  ExpectError(json, absl::StatusCode::kInvalidArgument,
              {"num_key_value_heads", "does not divide"});
  json = LlamaJson();
  json["num_attention_heads"] = 24;  // 4096 / 24 is not whole, no head_dim
  json["num_key_value_heads"] = 8;
  ExpectError(json, absl::StatusCode::kInvalidArgument,
              {"num_attention_heads", "hidden_size"});
}

TEST(ModelConfigErrorTest, UnsupportedFeatures) {
  Json json = LlamaJson();
  json["mlp_bias"] = true;
  ExpectError(json, absl::StatusCode::kUnimplemented, {"mlp_bias"});
  json = LlamaJson();
  json["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  ExpectError(json, absl::StatusCode::kUnimplemented,
              {"rope_scaling.rope_type", "yarn"});
  json = LlamaJson();
  json["rope_scaling"]["high_freq_factor"] = 1.0;
  ExpectError(json, absl::StatusCode::kInvalidArgument, {"high_freq_factor"});
  json = LlamaJson();
  json["hidden_act"] = "gelu";
  ExpectError(json, absl::StatusCode::kUnimplemented, {"hidden_act"});
  json = Json::parse(R"({"model_type": "qwen2", "vocab_size": 8,
      "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 2, "max_position_embeddings": 8,
      "use_sliding_window": true})");
  ExpectError(json, absl::StatusCode::kUnimplemented, {"use_sliding_window"});
}

TEST(ModelConfigToJsonTest, RoundTripsEveryFamily) {
  for (const char* dir : {"hf/qwen2", "hf/qwen3"}) {
    SCOPED_TRACE(dir);
    ASSERT_OK_AND_ASSIGN(ModelConfig config, LoadModelConfig(TestData(dir)));
    config.eos_token_ids = {3, 4};
    config.bos_token_ids = {1};
    std::string text = ModelConfigToJson(config);
    ASSERT_OK_AND_ASSIGN(ModelConfig again, ParseModelConfig(text, "written"));
    ExpectSameConfig(again, config);
  }
  ASSERT_OK_AND_ASSIGN(ModelConfig llama, Parse(LlamaJson()));
  std::string text = ModelConfigToJson(llama);
  ASSERT_OK_AND_ASSIGN(ModelConfig again, ParseModelConfig(text, "written"));
  ExpectSameConfig(again, llama);

  // Both rope spellings, the architecture and both dtype keys are written.
  Json json = Json::parse(text);
  EXPECT_EQ(json["architectures"], Json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(json["model_type"], "llama");
  EXPECT_EQ(json["rope_theta"], 500000.0);
  EXPECT_EQ(json["rope_parameters"]["rope_theta"], 500000.0);
  EXPECT_EQ(json["rope_parameters"]["rope_type"], "llama3");
  EXPECT_EQ(json["rope_scaling"]["factor"], 8.0);
  EXPECT_EQ(json["dtype"], "bfloat16");
  EXPECT_EQ(json["torch_dtype"], "bfloat16");
  EXPECT_EQ(json["eos_token_id"], Json::array({128001, 128008, 128009}));
  EXPECT_EQ(json["bos_token_id"], 128000);
}

TEST(ModelConfigToJsonTest, FamilyNames) {
  EXPECT_EQ(ModelFamilyName(ModelFamily::kQwen2), "qwen2");
  EXPECT_EQ(ModelFamilyName(ModelFamily::kQwen3), "qwen3");
  EXPECT_EQ(ModelFamilyName(ModelFamily::kLlama), "llama");
  ModelConfig qwen3;
  qwen3.family = ModelFamily::kQwen3;
  Json json = Json::parse(ModelConfigToJson(qwen3));
  EXPECT_EQ(json["architectures"], Json::array({"Qwen3ForCausalLM"}));
}

}  // namespace
}  // namespace fapo::engine
