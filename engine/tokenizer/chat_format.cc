#include "engine/tokenizer/chat_format.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fapo::engine {
namespace {

constexpr absl::string_view kThinkOpen = "<think>";
constexpr absl::string_view kThinkClose = "</think>";

// Python's str.lstrip / rstrip / strip with the characters "\n".
absl::string_view LeftStripNewlines(absl::string_view text) {
  while (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return text;
}
absl::string_view RightStripNewlines(absl::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

bool IsToolResponse(absl::string_view content) {
  return absl::StartsWith(content, "<tool_response>") &&
         absl::EndsWith(content, "</tool_response>");
}

}  // namespace

std::string FormatChatML(absl::Span<const ChatMessage> messages,
                         bool add_generation_prompt) {
  std::string text;
  for (const ChatMessage& message : messages) {
    absl::StrAppend(&text, "<|im_start|>", message.role, "\n", message.content,
                    "<|im_end|>\n");
  }
  if (add_generation_prompt) text += "<|im_start|>assistant\n";
  return text;
}

absl::StatusOr<std::string> FormatQwen3Chat(
    absl::Span<const ChatMessage> messages, const Qwen3ChatOptions& options) {
  const int count = static_cast<int>(messages.size());
  for (int i = 0; i < count; ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" &&
        role != "tool") {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].role: \"", role,
                       "\" is not system, user, assistant or tool"));
    }
  }
  std::string text;
  if (count > 0 && messages[0].role == "system") {
    absl::StrAppend(&text, "<|im_start|>system\n", messages[0].content,
                    "<|im_end|>\n");
  }
  // The last user turn that is not a wrapped tool response.
  int last_query_index = count - 1;
  for (int i = count - 1; i >= 0; --i) {
    if (messages[i].role == "user" && !IsToolResponse(messages[i].content)) {
      last_query_index = i;
      break;
    }
  }
  for (int i = 0; i < count; ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == "user" || (message.role == "system" && i > 0)) {
      absl::StrAppend(&text, "<|im_start|>", message.role, "\n",
                      message.content, "<|im_end|>\n");
    } else if (message.role == "assistant") {
      absl::string_view content = message.content;
      absl::string_view reasoning;
      const size_t first_close = content.find(kThinkClose);
      if (first_close != absl::string_view::npos) {
        // content.split('</think>')[-1].lstrip('\n')
        const size_t last_close = content.rfind(kThinkClose);
        const absl::string_view after =
            content.substr(last_close + kThinkClose.size());
        // content.split('</think>')[0].rstrip('\n')
        //     .split('<think>')[-1].lstrip('\n')
        absl::string_view before =
            RightStripNewlines(content.substr(0, first_close));
        const size_t open = before.rfind(kThinkOpen);
        if (open != absl::string_view::npos) {
          before = before.substr(open + kThinkOpen.size());
        }
        reasoning = LeftStripNewlines(before);
        content = LeftStripNewlines(after);
      }
      const bool last = i == count - 1;
      if (i > last_query_index && (last || !reasoning.empty())) {
        absl::StrAppend(&text, "<|im_start|>assistant\n<think>\n",
                        RightStripNewlines(LeftStripNewlines(reasoning)),
                        "\n</think>\n\n", LeftStripNewlines(content));
      } else {
        absl::StrAppend(&text, "<|im_start|>assistant\n", content);
      }
      text += "<|im_end|>\n";
    } else if (message.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") text += "<|im_start|>user";
      absl::StrAppend(&text, "\n<tool_response>\n", message.content,
                      "\n</tool_response>");
      if (i == count - 1 || messages[i + 1].role != "tool") {
        text += "<|im_end|>\n";
      }
    }
  }
  if (options.add_generation_prompt) {
    text += "<|im_start|>assistant\n";
    if (!options.enable_thinking) text += "<think>\n\n</think>\n\n";
  }
  return text;
}

std::string FormatPolicyPrompt(absl::string_view prompt, bool chatml) {
  if (chatml) {
    const ChatMessage message{"user", std::string(prompt)};
    return FormatChatML({&message, 1}, /*add_generation_prompt=*/true);
  }
  return absl::StrCat(prompt, "\n");
}

}  // namespace fapo::engine
