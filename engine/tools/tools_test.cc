// The model tools through the `fapo` binary, as a user runs them, and the
// tiny default model checked against Hugging Face transformers.
#include "engine/tools/tools.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::BinaryPath;
using ::fapo::testing::CommandResult;
using ::fapo::testing::RunCommand;
using ::fapo::testing::SourcePath;
using ::testing::HasSubstr;

CommandResult Fapo(std::vector<std::string> args,
                   const std::string& stdin_text = "") {
  args.insert(args.begin(), BinaryPath("fapo"));
  auto result = RunCommand(args, absl::Seconds(120), stdin_text);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CommandResult{-1, "", ""};
}

class ToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("fapo-tools-test-");
    model_ = dir_->path() + "/tiny";
    CommandResult init = Fapo({"init-model", "--out", model_, "--seed", "3"});
    ASSERT_EQ(init.exit_code, 0) << init.stderr_text;
  }
  static void TearDownTestSuite() { delete dir_; }
  static testing::TempDir* dir_;
  static std::string model_;
};

testing::TempDir* ToolsTest::dir_ = nullptr;
std::string ToolsTest::model_;

TEST_F(ToolsTest, TinyModelHasTheTestbedShape) {
  ModelConfig config = TinyArithModelConfig();
  const int64_t per_layer =
      config.hidden_size * config.head_dim *
          (2 * config.num_attention_heads + 2 * config.num_key_value_heads) +
      3 * config.hidden_size * config.intermediate_size;
  const int64_t parameters = config.num_hidden_layers * per_layer +
                             config.vocab_size * config.hidden_size;
  // docs/arith-testbed.md: ~156k parameters worked.
  EXPECT_GT(parameters, 120000);
  EXPECT_LT(parameters, 200000);
  for (const char* file :
       {"config.json", "model.safetensors", "tokenizer.json"}) {
    EXPECT_FALSE(testing::ReadFileOrEmpty(model_ + "/" + file).empty()) << file;
  }
}

TEST_F(ToolsTest, TokenizeRoundTripsArithText) {
  const std::string tokenizer = model_ + "/tokenizer.json";
  CommandResult encoded = Fapo({"tokenize", "--tokenizer", tokenizer},
                               "\"3+7=0\\n#3\"\n\"<|endoftext|>12\"\n");
  ASSERT_EQ(encoded.exit_code, 0) << encoded.stderr_text;
  std::vector<std::string> lines =
      absl::StrSplit(encoded.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).size(), 8u);  // one id per char
  EXPECT_EQ(nlohmann::json::parse(lines[1]).size(), 3u);  // special + 2

  CommandResult decoded = Fapo(
      {"tokenize", "--tokenizer", tokenizer, "--decode"}, encoded.stdout_text);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.stderr_text;
  EXPECT_EQ(decoded.stdout_text, "\"3+7=0\\n#3\"\n\"<|endoftext|>12\"\n");

  CommandResult bad = Fapo({"tokenize", "--tokenizer", tokenizer}, "3+4\n");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.stderr_text, HasSubstr("stdin line 1"));
}

TEST_F(ToolsTest, GenerateIsReproducibleAndAgreesWithLogprobs) {
  std::vector<std::string> args = {
      "generate",  "--model",          model_, "--prompt-ids",
      "3,10,7,12", "--max-new-tokens", "8",    "--seed",
      "11"};
  CommandResult first = Fapo(args);
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  CommandResult second = Fapo(args);
  EXPECT_EQ(first.stdout_text, second.stdout_text);
  nlohmann::json generated = nlohmann::json::parse(first.stdout_text);
  std::vector<int> tokens = generated["token_ids"];
  std::vector<float> logprobs = generated["logprobs"];
  ASSERT_EQ(tokens.size(), 8u);
  EXPECT_EQ(generated["finish_reason"], "length");

  // Teacher-forced log-probs of prompt + generation at the generated
  // positions are the log-probs generate reported.
  std::vector<int> sequence = {3, 10, 7, 12};
  sequence.insert(sequence.end(), tokens.begin(), tokens.end());
  CommandResult forced = Fapo({"logprobs", "--model", model_, "--ids",
                               absl::StrJoin(sequence, ","), "--entropy"});
  ASSERT_EQ(forced.exit_code, 0) << forced.stderr_text;
  nlohmann::json json = nlohmann::json::parse(forced.stdout_text);
  std::vector<float> teacher = json["logprobs"];
  ASSERT_EQ(teacher.size(), sequence.size() - 1);
  EXPECT_EQ(json["entropy"].size(), teacher.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_NEAR(teacher[3 + i], logprobs[i], 1e-4) << "token " << i;
  }
}

TEST_F(ToolsTest, GreedyStopsAtAStopToken) {
  CommandResult greedy = Fapo({"generate", "--model", model_, "--prompt-ids",
                               "1,2", "--max-new-tokens", "5", "--greedy"});
  ASSERT_EQ(greedy.exit_code, 0) << greedy.stderr_text;
  int first = nlohmann::json::parse(greedy.stdout_text)["token_ids"][0];
  CommandResult stopped = Fapo({"generate", "--model", model_, "--prompt-ids",
                                "1,2", "--max-new-tokens", "5", "--greedy",
                                "--stop-ids", std::to_string(first)});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.stderr_text;
  nlohmann::json json = nlohmann::json::parse(stopped.stdout_text);
  EXPECT_EQ(json["token_ids"].size(), 1u);
  EXPECT_EQ(json["finish_reason"], "stop");
}

TEST_F(ToolsTest, BadInputsAreClearErrors) {
  CommandResult ids = Fapo({"logprobs", "--model", model_, "--ids", "1,x"});
  EXPECT_EQ(ids.exit_code, 1);
  EXPECT_THAT(ids.stderr_text, HasSubstr("--ids: expected comma-separated"));
  CommandResult vocab =
      Fapo({"generate", "--model", model_, "--prompt-ids", "1,400"});
  EXPECT_EQ(vocab.exit_code, 1);
  EXPECT_THAT(vocab.stderr_text, HasSubstr("400"));
  CommandResult missing = Fapo(
      {"generate", "--model", dir_->path() + "/nope", "--prompt-ids", "1"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.stderr_text, HasSubstr("nope"));
  CommandResult usage = Fapo({"generate", "--model", model_});
  EXPECT_EQ(usage.exit_code, 2);
}

// transformers loads the tiny model and its tokenizer as written, and its
// log-probs match ours.
TEST_F(ToolsTest, TransformersLoadsTheTinyModel) {
  const std::string python = SourcePath(".venv/bin/python");
  const std::string script = absl::StrCat(R"(
import os
os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub: no network here
os.environ["OMP_NUM_THREADS"] = "1"
import json, sys, torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
d = sys.argv[1]
tok = PreTrainedTokenizerFast(tokenizer_file=d + "/tokenizer.json")
ids = tok("3+7=0\n#3")["input_ids"]
model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager")
x = torch.tensor([ids])
lp = torch.log_softmax(model(x).logits.float(), -1)[0, :-1]
print(json.dumps({"ids": ids,
                  "logprobs": lp.gather(1, x[0, 1:, None])[:, 0].tolist()}))
)");
  auto result = RunCommand({python, "-c", script, model_}, absl::Seconds(240));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->exit_code, 0) << result->stderr_text;
  nlohmann::json reference = nlohmann::json::parse(result->stdout_text);
  std::vector<int> ids = reference["ids"];
  std::vector<float> expected = reference["logprobs"];

  CommandResult ours =
      Fapo({"tokenize", "--tokenizer", model_ + "/tokenizer.json"},
           "\"3+7=0\\n#3\"\n");
  EXPECT_EQ(nlohmann::json::parse(ours.stdout_text).get<std::vector<int>>(),
            ids);
  CommandResult forced =
      Fapo({"logprobs", "--model", model_, "--ids", absl::StrJoin(ids, ",")});
  ASSERT_EQ(forced.exit_code, 0) << forced.stderr_text;
  std::vector<float> actual =
      nlohmann::json::parse(forced.stdout_text)["logprobs"];
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-4) << i;
  }
}

}  // namespace
}  // namespace fapo::engine
