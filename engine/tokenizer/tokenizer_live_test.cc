// Live check against Hugging Face: testdata/live_reference.py (run with the
// project's .venv) generates >= 1,000 random and adversarial strings from a
// fresh seed, trains a small byte-level BPE, and reports HF's ids and
// decodings for the Qwen3 tokenizer, the trained one and the character
// tokenizer, plus Qwen3 chat-template renderings from transformers. Every
// one must match. Set FAPO_TOKENIZER_LIVE_SEED to replay a seed.
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_test_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using Json = nlohmann::json;

constexpr int kMaxReportedMismatches = 10;

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary);
  file << contents;
}

std::string Quote(const std::string& text) {
  return Json(text).dump(-1, ' ', true, Json::error_handler_t::replace);
}

uint64_t ChooseSeed() {
  if (const char* fixed = std::getenv("FAPO_TOKENIZER_LIVE_SEED")) {
    return std::strtoull(fixed, nullptr, 10);
  }
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 20) ^ device();
}

class TokenizerLiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    seed_ = ChooseSeed();
    const std::string python = fapo::testing::SourcePath(".venv/bin/python");
    if (!std::ifstream(python)) {
      error_ = absl::StrCat("no Python at ", python);
      return;
    }
    work_dir_ = new fapo::testing::TempDir("fapo-tokenizer-live-");
    const std::string dir = work_dir_->path();
    auto qwen3_json = testing::Qwen3TokenizerJson();
    if (!qwen3_json.ok()) {
      error_ = qwen3_json.status().ToString();
      return;
    }
    WriteFile(dir + "/tokenizer.json", *qwen3_json);
    std::ifstream config(fapo::testing::SourcePath(
        "engine/tokenizer/testdata/qwen3_tokenizer/tokenizer_config.json"));
    std::stringstream config_text;
    config_text << config.rdbuf();
    WriteFile(dir + "/tokenizer_config.json", config_text.str());
    WriteFile(dir + "/char.json", ArithTokenizerJson());
    auto result = fapo::testing::RunCommand(
        {python,
         fapo::testing::SourcePath(
             "engine/tokenizer/testdata/live_reference.py"),
         "--seed", absl::StrCat(seed_), "--qwen3-dir", dir, "--char",
         dir + "/char.json", "--workdir", dir},
        absl::Seconds(240));
    if (!result.ok()) {
      error_ = result.status().ToString();
      return;
    }
    if (result->exit_code != 0) {
      error_ = absl::StrCat("live_reference.py exited with ", result->exit_code,
                            ": ", result->stderr_text);
      return;
    }
    reference_ = new Json(Json::parse(result->stdout_text));
  }

  static void TearDownTestSuite() {
    delete reference_;
    reference_ = nullptr;
    delete work_dir_;
    work_dir_ = nullptr;
  }

  void SetUp() override {
    RecordProperty("seed", absl::StrCat(seed_));
    ASSERT_NE(reference_, nullptr) << error_ << " (seed " << seed_ << ")";
  }

  static const Json& TokenizerReference(const std::string& name) {
    for (const Json& entry : (*reference_)["tokenizers"]) {
      if (entry["name"] == name) return entry;
    }
    static const Json* const missing = new Json();
    return *missing;
  }

  // Compares every string's ids and decodings with HF's.
  static void CheckTokenizer(const std::string& name,
                             const Tokenizer& tokenizer) {
    const Json& reference = TokenizerReference(name);
    ASSERT_TRUE(reference.is_object()) << name;
    EXPECT_EQ(tokenizer.vocab_size(), reference["vocab_size"].get<int>())
        << name;
    const Json& cases = reference["cases"];
    ASSERT_GE(cases.size(), 1000u);
    int mismatches = 0;
    for (const Json& entry : cases) {
      const std::string text = entry["text"].get<std::string>();
      const auto expected_ids = entry["ids"].get<std::vector<int>>();
      const std::vector<int> ids = tokenizer.Encode(text);
      const std::vector<int> ids_with_special =
          tokenizer.Encode(text, /*add_special_tokens=*/true);
      const auto decoded = tokenizer.Decode(expected_ids);
      const auto decoded_skip =
          tokenizer.Decode(expected_ids, /*skip_special_tokens=*/true);
      const bool ok =
          ids == expected_ids &&
          ids_with_special ==
              entry["ids_with_special"].get<std::vector<int>>() &&
          decoded.ok() && *decoded == entry["decoded"].get<std::string>() &&
          decoded_skip.ok() &&
          *decoded_skip == entry["decoded_skip_special"].get<std::string>();
      if (!ok && ++mismatches <= kMaxReportedMismatches) {
        ADD_FAILURE()
            << name << " (seed " << seed_ << ") text " << Quote(text)
            << "\n  HF ids:  " << Json(expected_ids).dump()
            << "\n  our ids: " << Json(ids).dump()
            << "\n  HF ids with special:  " << entry["ids_with_special"].dump()
            << "\n  our ids with special: " << Json(ids_with_special).dump()
            << "\n  HF decoded: " << Quote(entry["decoded"].get<std::string>())
            << "\n  our decoded: "
            << (decoded.ok() ? Quote(*decoded) : decoded.status().ToString())
            << "\n  HF skip-special: "
            << Quote(entry["decoded_skip_special"].get<std::string>())
            << "\n  our skip-special: "
            << (decoded_skip.ok() ? Quote(*decoded_skip)
                                  : decoded_skip.status().ToString());
      }
    }
    EXPECT_EQ(mismatches, 0)
        << name << ": " << mismatches << " of " << cases.size()
        << " strings differ (seed " << seed_ << ")";
    int decode_mismatches = 0;
    for (const Json& entry : reference["random_ids"]) {
      const auto ids = entry["ids"].get<std::vector<int>>();
      const auto decoded = tokenizer.Decode(ids);
      const std::string expected = entry["decoded"].get<std::string>();
      if ((!decoded.ok() || *decoded != expected) &&
          ++decode_mismatches <= kMaxReportedMismatches) {
        ADD_FAILURE() << name << " (seed " << seed_ << ") decode of "
                      << Json(ids).dump() << "\n  HF:  " << Quote(expected)
                      << "\n  our: "
                      << (decoded.ok() ? Quote(*decoded)
                                       : decoded.status().ToString());
      }
    }
    EXPECT_EQ(decode_mismatches, 0) << name << " (seed " << seed_ << ")";
  }

  static uint64_t seed_;
  static std::string error_;
  static fapo::testing::TempDir* work_dir_;
  static Json* reference_;
};

uint64_t TokenizerLiveTest::seed_ = 0;
std::string TokenizerLiveTest::error_;
fapo::testing::TempDir* TokenizerLiveTest::work_dir_ = nullptr;
Json* TokenizerLiveTest::reference_ = nullptr;

TEST_F(TokenizerLiveTest, Qwen3MatchesHuggingFace) {
  ASSERT_OK_AND_ASSIGN(const Tokenizer* tokenizer, testing::Qwen3Tokenizer());
  CheckTokenizer("qwen3", *tokenizer);
}

TEST_F(TokenizerLiveTest, TrainedByteLevelBpeMatchesHuggingFace) {
  ASSERT_OK_AND_ASSIGN(
      auto tokenizer,
      Tokenizer::FromFile(TokenizerReference("trained")["path"]));
  CheckTokenizer("trained", *tokenizer);
}

TEST_F(TokenizerLiveTest, LlamaLikeLayoutMatchesHuggingFace) {
  ASSERT_OK_AND_ASSIGN(
      auto tokenizer,
      Tokenizer::FromFile(TokenizerReference("llama_like")["path"]));
  CheckTokenizer("llama_like", *tokenizer);
}

TEST_F(TokenizerLiveTest, CharacterTokenizerMatchesHuggingFace) {
  ASSERT_OK_AND_ASSIGN(auto tokenizer,
                       Tokenizer::FromJson(ArithTokenizerJson()));
  CheckTokenizer("char", *tokenizer);
}

TEST_F(TokenizerLiveTest, Qwen3ChatTemplateMatchesTransformers) {
  const Json& cases = (*reference_)["chat"];
  ASSERT_GE(cases.size(), 100u);
  int mismatches = 0;
  for (const Json& entry : cases) {
    std::vector<ChatMessage> messages;
    for (const Json& message : entry["messages"]) {
      messages.push_back(ChatMessage{message["role"].get<std::string>(),
                                     message["content"].get<std::string>()});
    }
    Qwen3ChatOptions options;
    options.add_generation_prompt = entry["add_generation_prompt"].get<bool>();
    options.enable_thinking = entry["enable_thinking"].is_null() ||
                              entry["enable_thinking"].get<bool>();
    const auto text = FormatQwen3Chat(messages, options);
    const std::string expected = entry["text"].get<std::string>();
    if ((!text.ok() || *text != expected) &&
        ++mismatches <= kMaxReportedMismatches) {
      ADD_FAILURE() << "(seed " << seed_ << ") messages "
                    << entry["messages"].dump() << " options "
                    << options.add_generation_prompt << "/"
                    << entry["enable_thinking"].dump()
                    << "\n  transformers: " << Quote(expected) << "\n  ours: "
                    << (text.ok() ? Quote(*text) : text.status().ToString());
    }
  }
  EXPECT_EQ(mismatches, 0) << "(seed " << seed_ << ")";
}

}  // namespace
}  // namespace fapo::engine
