#include "engine/tokenizer/chat_format.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ChatFormatTest, ChatMLGolden) {
  const std::vector<ChatMessage> messages = {
      {"system", "You are helpful."},
      {"user", "What is 2+2?"},
      {"assistant", "4"},
  };
  EXPECT_EQ(FormatChatML(messages, /*add_generation_prompt=*/false),
            "<|im_start|>system\nYou are helpful.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n4<|im_end|>\n");
  EXPECT_EQ(FormatChatML({{"user", "12+3="}}, /*add_generation_prompt=*/true),
            "<|im_start|>user\n12+3=<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(FormatChatML({}, true), "<|im_start|>assistant\n");
}

// Expected strings: transformers' apply_chat_template with Qwen3's
// tokenizer_config.json (tokenizer_live_test checks random ones).
TEST(ChatFormatTest, Qwen3PromptMatchesPlainChatML) {
  const std::vector<ChatMessage> messages = {{"system", "Be brief."},
                                             {"user", "Hi"}};
  Qwen3ChatOptions options;
  options.add_generation_prompt = true;
  EXPECT_THAT(FormatQwen3Chat(messages, options),
              IsOkAndHolds(FormatChatML(messages, true)));
  options.enable_thinking = false;
  EXPECT_THAT(FormatQwen3Chat(messages, options),
              IsOkAndHolds("<|im_start|>system\nBe brief.<|im_end|>\n"
                           "<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n<think>\n\n</think>\n\n"));
}

TEST(ChatFormatTest, Qwen3ThinkBlocks) {
  // The final assistant turn gets a think block (empty when it had none);
  // earlier turns lose theirs.
  const std::vector<ChatMessage> messages = {
      {"user", "a"},
      {"assistant", "<think>\nold reasoning\n</think>\n\nfirst"},
      {"user", "b"},
      {"assistant", "second"},
  };
  EXPECT_THAT(FormatQwen3Chat(messages, {}),
              IsOkAndHolds("<|im_start|>user\na<|im_end|>\n"
                           "<|im_start|>assistant\nfirst<|im_end|>\n"
                           "<|im_start|>user\nb<|im_end|>\n"
                           "<|im_start|>assistant\n<think>\n\n</think>\n\n"
                           "second<|im_end|>\n"));
  EXPECT_THAT(
      FormatQwen3Chat({{"user", "q"}, {"assistant", "<think>r</think>x"}}, {}),
      IsOkAndHolds("<|im_start|>user\nq<|im_end|>\n"
                   "<|im_start|>assistant\n<think>\nr\n</think>\n\nx"
                   "<|im_end|>\n"));
}

TEST(ChatFormatTest, Qwen3ToolResponsesAndRoles) {
  const std::vector<ChatMessage> messages = {
      {"user", "q"},
      {"assistant", "call"},
      {"tool", "r1"},
      {"tool", "r2"},
  };
  EXPECT_THAT(FormatQwen3Chat(messages, {}),
              IsOkAndHolds("<|im_start|>user\nq<|im_end|>\n"
                           "<|im_start|>assistant\ncall<|im_end|>\n"
                           "<|im_start|>user\n<tool_response>\nr1\n"
                           "</tool_response>\n<tool_response>\nr2\n"
                           "</tool_response><|im_end|>\n"));
  EXPECT_THAT(FormatQwen3Chat({{"narrator", "x"}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("messages[0].role")));
}

}  // namespace
}  // namespace fapo::engine

namespace fapo::engine {
namespace {

TEST(FormatPolicyPromptTest, RawAddsANewlineChatmlAUserTurn) {
  EXPECT_EQ(FormatPolicyPrompt("3+7*4-2", /*chatml=*/false), "3+7*4-2\n");
  EXPECT_EQ(FormatPolicyPrompt("hi", /*chatml=*/true),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace fapo::engine
