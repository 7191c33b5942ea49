// Live parity with Hugging Face (label "live"): testdata/hf_parity.py, run
// with the project's .venv Python, reads what we write and writes what we
// read, with the safetensors package, transformers' save_pretrained and
// AutoConfig. Needs /work/main/.venv (torch, safetensors, transformers);
// runs offline.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

uint64_t Checksum(absl::Span<const uint8_t> bytes) {
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); ++i) sum += bytes[i] * uint64_t{i + 1};
  return sum;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// Runs hf_parity.py with `args`; its stdout parsed as JSON.
absl::StatusOr<Json> RunParity(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      ::fapo::testing::SourcePath(".venv/bin/python"),
      ::fapo::testing::SourcePath("engine/checkpoint/testdata/hf_parity.py")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = ::fapo::testing::RunCommand(argv, absl::Seconds(240));
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("hf_parity.py ", args[0],
                                            " exited ", result->exit_code,
                                            ":\n", result->stderr_text));
  }
  try {
    return Json::parse(result->stdout_text);
  } catch (const Json::exception& error) {
    return absl::InternalError(absl::StrCat(
        "hf_parity.py output: ", error.what(), "\n", result->stdout_text));
  }
}

Json Describe(const TensorView& view) {
  return Json{{"dtype", std::string(DTypeName(view.dtype))},
              {"shape", view.shape},
              {"checksum", Checksum(view.data)}};
}

struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

class LiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(dir_.status(), IsOk());
    std::ifstream python(::fapo::testing::SourcePath(".venv/bin/python"));
    ASSERT_TRUE(python.good())
        << "the live tests need the project's .venv (scripts/install-deps.sh)";
  }
  std::string Path(const std::string& name) const {
    return dir_.path() + "/" + name;
  }
  ::fapo::testing::TempDir dir_{"fapo-checkpoint-live-"};
};

TEST_F(LiveTest, SafetensorsReadsWhatWeWrite) {
  std::mt19937_64 random(99);
  std::vector<OwnedTensor> tensors;
  const std::vector<std::pair<DType, std::vector<int64_t>>> kinds = {
      {DType::kF64, {3, 2}}, {DType::kF32, {4, 4}},  {DType::kBF16, {5, 3}},
      {DType::kF16, {6}},    {DType::kI64, {2, 24}}, {DType::kI32, {3}},
      {DType::kI16, {2, 2}}, {DType::kI8, {7}},      {DType::kU8, {8}},
      {DType::kBool, {9}},   {DType::kF32, {}},      {DType::kF32, {0, 2}}};
  for (size_t i = 0; i < kinds.size(); ++i) {
    OwnedTensor tensor{
        absl::StrCat("model.t", i, ".", DTypeName(kinds[i].first)),
        kinds[i].first,
        kinds[i].second,
        {}};
    int64_t count = 1;
    for (int64_t dim : tensor.shape) count *= dim;
    tensor.bytes.resize(count * DTypeSize(tensor.dtype));
    for (uint8_t& byte : tensor.bytes) byte = static_cast<uint8_t>(random());
    if (tensor.dtype == DType::kBool) {
      for (uint8_t& byte : tensor.bytes) byte &= 1;
    }
    // Finite floats: NaN payloads may not survive torch unchanged.
    if (tensor.dtype == DType::kF32 || tensor.dtype == DType::kF64 ||
        tensor.dtype == DType::kF16 || tensor.dtype == DType::kBF16) {
      int64_t size = DTypeSize(tensor.dtype);
      for (size_t at = size - 1; at < tensor.bytes.size(); at += size) {
        tensor.bytes[at] &= 0x3f;  // sign 0, exponent well below all-ones
      }
    }
    tensors.push_back(std::move(tensor));
  }
  std::vector<TensorToWrite> views;
  Json expected = Json::object();
  for (const OwnedTensor& tensor : tensors) {
    views.push_back({tensor.name, tensor.dtype, tensor.shape,
                     absl::MakeConstSpan(tensor.bytes)});
    expected[tensor.name] = {{"dtype", std::string(DTypeName(tensor.dtype))},
                             {"shape", tensor.shape},
                             {"checksum", Checksum(tensor.bytes)}};
  }
  const std::string path = Path("ours.safetensors");
  ASSERT_OK(
      WriteSafetensors(path, views, {{"format", "pt"}, {"origin", "fapo"}}));
  ASSERT_OK_AND_ASSIGN(Json listing, RunParity({"inspect", path}));
  EXPECT_EQ(listing["tensors"], expected) << listing.dump(1);
  EXPECT_EQ(listing["metadata"], (Json{{"format", "pt"}, {"origin", "fapo"}}));

  // Sharded: every shard is a file safetensors reads; together they hold
  // every tensor once.
  const std::string directory = Path("sharded");
  ASSERT_OK(WriteCheckpointTensors(directory, views, /*max_shard_bytes=*/100));
  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(directory));
  std::set<std::string> shard_paths;
  for (const std::string& name : reader->names()) {
    shard_paths.insert(reader->Find(name)->file);
  }
  EXPECT_GT(shard_paths.size(), 2u);
  Json merged = Json::object();
  for (const std::string& shard : shard_paths) {
    // save_file of the same tensors writes the very same bytes: header
    // layout, padding and tensor order (NOTE [tensor order]) match the
    // package's. (Shards carry one metadata key: with several, the package
    // writes them in hash order.)
    const std::string resaved = shard + ".resaved";
    ASSERT_OK_AND_ASSIGN(Json shard_listing,
                         RunParity({"inspect", shard, resaved}));
    EXPECT_TRUE(ReadAll(shard) == ReadAll(resaved))
        << "ours:   " << ReadAll(shard).substr(0, 400)
        << "\ntheirs: " << ReadAll(resaved).substr(0, 400);
    for (auto& [name, entry] : shard_listing["tensors"].items()) {
      EXPECT_FALSE(merged.contains(name)) << name;
      merged[name] = entry;
    }
  }
  EXPECT_EQ(merged, expected);
}

TEST_F(LiveTest, WeReadWhatSafetensorsWrites) {
  const std::string path = Path("theirs.safetensors");
  ASSERT_OK_AND_ASSIGN(Json listing, RunParity({"write", path}));
  ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  Json ours = Json::object();
  for (const TensorView& view : file->tensors()) {
    ours[view.name] = Describe(view);
  }
  EXPECT_EQ(ours, listing["tensors"]) << listing.dump(1);
  EXPECT_EQ(ours.size(), 13u);  // 10 dtypes + scalar, empty, arange
  EXPECT_EQ(file->metadata().at("origin"), "python");
  // Values, not only bytes' checksums.
  const TensorView* arange = file->Find("arange");
  ASSERT_NE(arange, nullptr);
  std::vector<float> values(6);
  std::memcpy(values.data(), arange->data.data(), arange->data.size());
  EXPECT_THAT(values, ElementsAre(0, 1, 2, 3, 4, 5));
  const TensorView* scalar = file->Find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  float scalar_value = 0;
  std::memcpy(&scalar_value, scalar->data.data(), sizeof(float));
  EXPECT_EQ(scalar_value, 2.5f);
}

TEST_F(LiveTest, WeReadShardedSavePretrained) {
  const std::string directory = Path("qwen3-tiny");
  ASSERT_OK_AND_ASSIGN(Json saved, RunParity({"save_pretrained", directory}));
  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(directory));
  std::vector<std::string> expected_names;
  for (auto& [name, shard] : saved["weight_map"].items()) {
    expected_names.push_back(name);
    ASSERT_OK_AND_ASSIGN(const TensorView* view, reader->Get(name));
    EXPECT_THAT(view->file, HasSubstr(shard.get<std::string>())) << name;
    EXPECT_EQ(Describe(*view), saved["tensors"][name]) << name;
  }
  std::sort(expected_names.begin(), expected_names.end());
  EXPECT_EQ(reader->names(), expected_names);
  EXPECT_GT(expected_names.size(), 20u);
  std::set<std::string> shards;
  for (auto& [name, shard] : saved["weight_map"].items()) {
    shards.insert(shard.get<std::string>());
  }
  EXPECT_GT(shards.size(), 1u);

  ASSERT_OK_AND_ASSIGN(ModelConfig config, LoadModelConfig(directory));
  EXPECT_EQ(config.family, ModelFamily::kQwen3);
  EXPECT_EQ(config.vocab_size, 128);
  EXPECT_EQ(config.hidden_size, 32);
  EXPECT_EQ(config.head_dim, 16);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_TRUE(config.qk_norm);
}

// ModelConfigToJson -> transformers AutoConfig: the same numbers, a model of
// the right shapes, and a config that transformers writes back and we read
// as the one we started from.
void ExpectTransformersAgrees(const ModelConfig& config,
                              const std::string& directory) {
  ASSERT_EQ(::system(("mkdir -p '" + directory + "'").c_str()), 0);
  {
    std::ofstream out(directory + "/config.json");
    out << ModelConfigToJson(config);
  }
  const std::string resaved = directory + "-resaved";
  ASSERT_OK_AND_ASSIGN(Json hf, RunParity({"config", directory, resaved}));
  EXPECT_EQ(hf["model_type"], std::string(ModelFamilyName(config.family)));
  EXPECT_EQ(hf["vocab_size"], config.vocab_size);
  EXPECT_EQ(hf["hidden_size"], config.hidden_size);
  EXPECT_EQ(hf["intermediate_size"], config.intermediate_size);
  EXPECT_EQ(hf["num_hidden_layers"], config.num_hidden_layers);
  EXPECT_EQ(hf["num_attention_heads"], config.num_attention_heads);
  EXPECT_EQ(hf["num_key_value_heads"], config.num_key_value_heads);
  EXPECT_EQ(hf["head_dim"], config.head_dim);
  EXPECT_EQ(hf["max_position_embeddings"], config.max_position_embeddings);
  EXPECT_DOUBLE_EQ(hf["rms_norm_eps"].get<double>(), config.rms_norm_eps);
  EXPECT_DOUBLE_EQ(hf["rope_theta"].get<double>(), config.rope_theta);
  EXPECT_EQ(hf["tie_word_embeddings"], config.tie_word_embeddings);
  EXPECT_EQ(hf["dtype"], config.dtype);
  if (config.rope_scaling.enabled) {
    EXPECT_EQ(hf["rope_type"], "llama3");
    EXPECT_DOUBLE_EQ(hf["factor"].get<double>(), config.rope_scaling.factor);
    EXPECT_DOUBLE_EQ(hf["low_freq_factor"].get<double>(),
                     config.rope_scaling.low_freq_factor);
    EXPECT_DOUBLE_EQ(hf["high_freq_factor"].get<double>(),
                     config.rope_scaling.high_freq_factor);
    EXPECT_EQ(hf["original_max_position_embeddings"],
              config.rope_scaling.original_max_position_embeddings);
  } else {
    EXPECT_EQ(hf["rope_type"], "default");
  }
  if (config.eos_token_ids.size() == 1) {
    EXPECT_EQ(hf["eos_token_id"], config.eos_token_ids[0]);
  } else if (config.eos_token_ids.size() > 1) {
    EXPECT_EQ(hf["eos_token_id"], Json(config.eos_token_ids));
  } else {
    EXPECT_TRUE(hf["eos_token_id"].is_null());
  }

  // The model transformers builds from it has the shapes ours expects.
  const Json& parameters = hf["parameters"];
  const std::string layer = "model.layers.0.self_attn.";
  EXPECT_EQ(
      parameters[layer + "q_proj.weight"],
      Json({config.num_attention_heads * config.head_dim, config.hidden_size}));
  EXPECT_EQ(
      parameters[layer + "k_proj.weight"],
      Json({config.num_key_value_heads * config.head_dim, config.hidden_size}));
  EXPECT_EQ(parameters.contains(layer + "q_proj.bias"), config.attention_bias);
  EXPECT_EQ(parameters.contains(layer + "q_norm.weight"), config.qk_norm);
  EXPECT_EQ(parameters.contains("lm_head.weight"), !config.tie_word_embeddings);
  EXPECT_EQ(parameters["model.layers.0.mlp.gate_proj.weight"],
            Json({config.intermediate_size, config.hidden_size}));

  ASSERT_OK_AND_ASSIGN(ModelConfig again, LoadModelConfig(resaved));
  EXPECT_EQ(again.family, config.family);
  EXPECT_EQ(again.head_dim, config.head_dim);
  EXPECT_EQ(again.num_key_value_heads, config.num_key_value_heads);
  EXPECT_DOUBLE_EQ(again.rope_theta, config.rope_theta);
  EXPECT_EQ(again.rope_scaling.enabled, config.rope_scaling.enabled);
  EXPECT_DOUBLE_EQ(again.rope_scaling.factor, config.rope_scaling.factor);
  EXPECT_EQ(again.rope_scaling.original_max_position_embeddings,
            config.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(again.attention_bias, config.attention_bias);
  EXPECT_EQ(again.qk_norm, config.qk_norm);
  EXPECT_EQ(again.tie_word_embeddings, config.tie_word_embeddings);
  EXPECT_EQ(again.dtype, config.dtype);
  EXPECT_EQ(again.eos_token_ids, config.eos_token_ids);
  EXPECT_EQ(again.bos_token_ids, config.bos_token_ids);
}

TEST_F(LiveTest, TransformersLoadsOurQwen2Config) {
  ASSERT_OK_AND_ASSIGN(ModelConfig config,
                       LoadModelConfig(::fapo::testing::SourcePath(
                           "engine/checkpoint/testdata/hf/qwen2")));
  config.eos_token_ids = {5};
  ExpectTransformersAgrees(config, Path("qwen2"));
}

TEST_F(LiveTest, TransformersLoadsOurQwen3Config) {
  ASSERT_OK_AND_ASSIGN(ModelConfig config,
                       LoadModelConfig(::fapo::testing::SourcePath(
                           "engine/checkpoint/testdata/hf/qwen3")));
  config.dtype = "bfloat16";
  ExpectTransformersAgrees(config, Path("qwen3"));
}

TEST_F(LiveTest, TransformersLoadsOurLlama3Config) {
  ModelConfig config;
  config.family = ModelFamily::kLlama;
  config.vocab_size = 256;
  config.hidden_size = 64;
  config.intermediate_size = 96;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 8;
  config.num_key_value_heads = 2;
  config.head_dim = 8;
  config.max_position_embeddings = 1024;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 500000.0;
  config.rope_scaling = {true, 8.0, 1.0, 4.0, 128};
  config.tie_word_embeddings = true;
  config.attention_bias = false;
  config.dtype = "bfloat16";
  config.bos_token_ids = {1};
  config.eos_token_ids = {2, 3, 4};
  ExpectTransformersAgrees(config, Path("llama3"));
}

}  // namespace
}  // namespace fapo::engine
