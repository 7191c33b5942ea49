// The real Qwen3 tokenizer against the ids Hugging Face `tokenizers` gave
// for 195 strings (testdata/qwen3_tokenizer_reference.json).
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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

using ::testing::ElementsAreArray;

struct ReferenceCase {
  std::string text;
  std::vector<int> ids;
  std::string decoded;
};

std::vector<ReferenceCase> LoadCases() {
  std::ifstream file(fapo::testing::SourcePath(
      "engine/tokenizer/testdata/qwen3_tokenizer_reference.json"));
  std::stringstream contents;
  contents << file.rdbuf();
  const nlohmann::json root = nlohmann::json::parse(contents.str());
  std::vector<ReferenceCase> cases;
  for (const auto& entry : root) {
    cases.push_back(ReferenceCase{entry["text"].get<std::string>(),
                                  entry["ids"].get<std::vector<int>>(),
                                  entry["decoded"].get<std::string>()});
  }
  return cases;
}

TEST(Qwen3ReferenceTest, EncodesAndDecodesEveryReferenceString) {
  ASSERT_OK_AND_ASSIGN(const Tokenizer* tokenizer, testing::Qwen3Tokenizer());
  const std::vector<ReferenceCase> cases = LoadCases();
  ASSERT_EQ(cases.size(), 195u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const ReferenceCase& reference = cases[i];
    SCOPED_TRACE(::testing::Message() << "case " << i << ": "
                                      << nlohmann::json(reference.text).dump());
    EXPECT_THAT(tokenizer->Encode(reference.text),
                ElementsAreArray(reference.ids));
    ASSERT_OK_AND_ASSIGN(const std::string decoded,
                         tokenizer->Decode(reference.ids));
    EXPECT_EQ(decoded, reference.decoded);
  }
}

TEST(Qwen3ReferenceTest, VocabularyShape) {
  ASSERT_OK_AND_ASSIGN(const Tokenizer* tokenizer, testing::Qwen3Tokenizer());
  EXPECT_EQ(tokenizer->vocab_size(), 151669);
  EXPECT_EQ(tokenizer->TokenToId("<|endoftext|>"), 151643);
  EXPECT_EQ(tokenizer->TokenToId("<|im_start|>"), 151644);
  EXPECT_EQ(tokenizer->TokenToId("<|im_end|>"), 151645);
  EXPECT_EQ(tokenizer->TokenToId("<think>"), 151667);
  EXPECT_TRUE(tokenizer->IsSpecialToken(151645));
  EXPECT_FALSE(tokenizer->IsSpecialToken(151667));   // <think> is not special
  EXPECT_EQ(tokenizer->IdToToken(220), "\xC4\xA0");  // "Ġ": a space
  EXPECT_TRUE(tokenizer->regex_jit_compiled());
  // Qwen's post-processor is ByteLevel alone: no tokens are added.
  EXPECT_EQ(tokenizer->Encode("hi", /*add_special_tokens=*/true),
            tokenizer->Encode("hi"));
}

TEST(Qwen3ReferenceTest, ChatPromptIds) {
  ASSERT_OK_AND_ASSIGN(const Tokenizer* tokenizer, testing::Qwen3Tokenizer());
  const std::string prompt =
      FormatChatML({{"user", "What is 2+2?"}}, /*add_generation_prompt=*/true);
  // From HF: tokenizer.encode(prompt).ids.
  EXPECT_THAT(tokenizer->Encode(prompt),
              ElementsAreArray({151644, 872, 198, 3838, 374, 220, 17, 10, 17,
                                30, 151645, 198, 151644, 77091, 198}));
  // Invalid UTF-8 is encoded as its U+FFFD repair (HF: 5691 is U+FFFD).
  EXPECT_THAT(tokenizer->Encode("a\xFF"
                                "b"),
              ElementsAreArray({64, 5691, 65}));
  EXPECT_THAT(tokenizer->Decode({9707, 1879, 151645}, true),
              fapo::testing::IsOkAndHolds("Hello world"));
}

TEST(Qwen3ReferenceTest, ConcurrentEncodesAgree) {
  ASSERT_OK_AND_ASSIGN(const Tokenizer* tokenizer, testing::Qwen3Tokenizer());
  const std::vector<ReferenceCase> cases = LoadCases();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int thread = 0; thread < 4; ++thread) {
    threads.emplace_back([&, thread] {
      for (int round = 0; round < 20; ++round) {
        for (const ReferenceCase& reference : cases) {
          if (tokenizer->Encode(reference.text) != reference.ids) {
            ++mismatches[thread];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

}  // namespace
}  // namespace fapo::engine
