#include "engine/tokenizer/character_tokenizer.h"

#include <algorithm>
#include <array>

#include "engine/tokenizer/byte_level.h"
#include "nlohmann/json.hpp"

namespace fapo::engine {

std::vector<std::string> ArithSpecialTokens() {
  return {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
}

std::string MakeCharacterTokenizerJson(
    absl::string_view alphabet, std::vector<std::string> special_tokens) {
  // ordered_json keeps the keys in HF's order, so the file reads like one
  // HF wrote.
  using Json = nlohmann::ordered_json;
  Json vocab = Json::object();
  std::array<bool, 256> seen{};
  int next_id = 0;
  for (char byte : alphabet) {
    const uint8_t value = static_cast<uint8_t>(byte);
    if (seen[value]) continue;
    seen[value] = true;
    vocab[BytesToByteLevel(absl::string_view(&byte, 1))] = next_id++;
  }
  Json added_tokens = Json::array();
  std::vector<std::string> added;
  for (std::string& token : special_tokens) {
    if (token.empty() ||
        std::find(added.begin(), added.end(), token) != added.end() ||
        vocab.contains(token)) {
      continue;
    }
    vocab[token] = next_id;
    added_tokens.push_back(Json{{"id", next_id},
                                {"content", token},
                                {"single_word", false},
                                {"lstrip", false},
                                {"rstrip", false},
                                {"normalized", false},
                                {"special", true}});
    added.push_back(std::move(token));
    ++next_id;
  }
  const Json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", true}};
  Json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", Json::array()}}},
  };
  // Invalid UTF-8 in a special token becomes U+FFFD rather than throwing.
  return root.dump(2, ' ', false, Json::error_handler_t::replace);
}

std::string ArithTokenizerJson() {
  return MakeCharacterTokenizerJson(kArithAlphabet, ArithSpecialTokens());
}

}  // namespace fapo::engine
