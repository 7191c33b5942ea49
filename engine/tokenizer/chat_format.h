// Chat formatting for Qwen-style ChatML.
//
// Two flavours:
//   FormatChatML     plain ChatML: every message as
//                    "<|im_start|>{role}\n{content}<|im_end|>\n", then
//                    "<|im_start|>assistant\n" when a generation prompt is
//                    asked for. This is what Qwen2.5's and Qwen3's templates
//                    produce for system/user turns and for assistant turns
//                    before the last user turn; any role is accepted.
//   FormatQwen3Chat  exactly what Qwen3's chat_template (tokenizer_config.json)
//                    renders through transformers' apply_chat_template for
//                    messages with a role and a string content, without
//                    `tools`, tool_calls or reasoning_content fields: the
//                    "<think>" handling of assistant turns and
//                    enable_thinking=false's empty think block included.
//                    Checked live against transformers in
//                    tokenizer_live_test.
#ifndef FAPO_ENGINE_TOKENIZER_CHAT_FORMAT_H_
#define FAPO_ENGINE_TOKENIZER_CHAT_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fapo::engine {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
};

std::string FormatChatML(absl::Span<const ChatMessage> messages,
                         bool add_generation_prompt);

struct Qwen3ChatOptions {
  // Ends with "<|im_start|>assistant\n" (default false).
  bool add_generation_prompt = false;
  // false adds "<think>\n\n</think>\n\n" after the generation prompt, as
  // apply_chat_template(..., enable_thinking=False) does (default true:
  // the model thinks).
  bool enable_thinking = true;
};

// Qwen3's template (see above). Assistant turns after the last user query
// get their reasoning in a "<think>\n...\n</think>\n\n" block (an empty one
// for the last message); earlier ones lose theirs. Consecutive "tool"
// messages become one user turn of <tool_response> blocks.
// InvalidArgument for a role other than system, user, assistant or tool
// (the template would drop such a message silently).
absl::StatusOr<std::string> FormatQwen3Chat(
    absl::Span<const ChatMessage> messages, const Qwen3ChatOptions& options);

// NOTE [policy prompt]: the text the policy is conditioned on for a task
// prompt, the same in SFT, in the trainer and in the rollout workers: with
// `chatml`, one user turn plus the generation prompt; otherwise the prompt
// and a newline, which marks where the problem ends and the first step
// begins. The response follows, ended by the end-of-sequence token.
std::string FormatPolicyPrompt(absl::string_view prompt, bool chatml);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_CHAT_FORMAT_H_
