// Tokenizer on small hand-made tokenizer.json files: added-token splitting,
// special tokens, post-processing, invalid UTF-8, and the errors for files
// it does not support. (The real Qwen3 file: qwen3_reference_test; HF as a
// live oracle: tokenizer_live_test.)
#include "engine/tokenizer/tokenizer.h"

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "engine/tokenizer/unicode_text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// Ids: a=0 b=1 c=2 " "=3 "\n"=4 e=5 <|im_end|>=6.
Json BaseJson() {
  return Json::parse(MakeCharacterTokenizerJson("abc \ne", {"<|im_end|>"}));
}

Json AddedTokenJson(int id, const std::string& content, bool special) {
  return Json{{"id", id},          {"content", content}, {"single_word", false},
              {"lstrip", false},   {"rstrip", false},    {"normalized", false},
              {"special", special}};
}

std::unique_ptr<Tokenizer> Load(const Json& json) {
  auto tokenizer = Tokenizer::FromJson(json.dump(), "test.json");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

absl::Status LoadError(const Json& json) {
  return Tokenizer::FromJson(json.dump(), "test.json").status();
}

TEST(TokenizerTest, CharacterTokenizerBasics) {
  auto tokenizer = Load(BaseJson());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 7);
  EXPECT_THAT(tokenizer->Encode("ab c\n"), ElementsAre(0, 1, 3, 2, 4));
  EXPECT_THAT(tokenizer->Decode({0, 1, 3, 2, 4}), IsOkAndHolds("ab c\n"));
  EXPECT_EQ(tokenizer->TokenToId(BytesToByteLevel(" ")), 3);
  EXPECT_EQ(tokenizer->IdToToken(4), BytesToByteLevel("\n"));
  EXPECT_FALSE(tokenizer->IdToToken(7).has_value());
  // Bytes without a token are dropped, as HF does without an unk_token.
  EXPECT_THAT(tokenizer->Encode("axyzb"), ElementsAre(0, 1));
  EXPECT_THAT(tokenizer->Encode(""), ElementsAre());
}

TEST(TokenizerTest, SpecialTokensAreMatchedBeforePreTokenization) {
  auto tokenizer = Load(BaseJson());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Encode("a<|im_end|>b"), ElementsAre(0, 6, 1));
  EXPECT_THAT(tokenizer->Encode("<|im_end|><|im_end|>"), ElementsAre(6, 6));
  // Not quite the token: only "e" of it has a token here.
  EXPECT_THAT(tokenizer->Encode("a<|im_en|>"), ElementsAre(0, 5));
  EXPECT_TRUE(tokenizer->IsSpecialToken(6));
  EXPECT_FALSE(tokenizer->IsSpecialToken(0));
  EXPECT_THAT(tokenizer->Decode({0, 6, 1}), IsOkAndHolds("a<|im_end|>b"));
  EXPECT_THAT(tokenizer->Decode({0, 6, 1}, /*skip_special_tokens=*/true),
              IsOkAndHolds("ab"));
}

TEST(TokenizerTest, LongestAddedTokenWins) {
  Json json = BaseJson();
  json["added_tokens"].push_back(AddedTokenJson(7, "<|im", false));
  json["added_tokens"].push_back(AddedTokenJson(8, "<|im_end|>x", false));
  auto tokenizer = Load(json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Encode("<|im_end|>"), ElementsAre(6));
  EXPECT_THAT(tokenizer->Encode("<|im_end|>x"), ElementsAre(8));
  EXPECT_THAT(tokenizer->Encode("<|imb"), ElementsAre(7, 1));
  EXPECT_EQ(tokenizer->vocab_size(), 9);
}

TEST(TokenizerTest, LstripAndRstripTakeTheWhitespaceAround) {
  Json json = BaseJson();
  Json both = AddedTokenJson(7, "<m>", false);
  both["lstrip"] = true;
  both["rstrip"] = true;
  Json left = AddedTokenJson(8, "<l>", false);
  left["lstrip"] = true;
  Json right = AddedTokenJson(9, "<r>", false);
  right["rstrip"] = true;
  json["added_tokens"].push_back(both);
  json["added_tokens"].push_back(left);
  json["added_tokens"].push_back(right);
  auto tokenizer = Load(json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Encode("a \n <m> \n b"), ElementsAre(0, 7, 1));
  EXPECT_THAT(tokenizer->Encode("a  <l>  b"), ElementsAre(0, 8, 3, 3, 1));
  EXPECT_THAT(tokenizer->Encode("a  <r>  b"), ElementsAre(0, 3, 3, 9, 1));
  // Unicode whitespace counts too (U+3000 has no token here anyway).
  EXPECT_THAT(tokenizer->Encode("a\u3000<m>\u3000b"), ElementsAre(0, 7, 1));
  // A stripping token does not take whitespace that an earlier token took.
  EXPECT_THAT(tokenizer->Encode("<r> <l>"), ElementsAre(9, 8));
  // The stripped whitespace is not given back by Decode (as in HF).
  EXPECT_THAT(tokenizer->Decode({0, 7, 1}), IsOkAndHolds("a<m>b"));
}

TEST(TokenizerTest, SingleWordTokensMatchOnlyOutsideWords) {
  Json json = BaseJson();
  Json token = AddedTokenJson(7, "[M]", false);
  token["single_word"] = true;
  json["added_tokens"].push_back(token);
  auto tokenizer = Load(json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Encode(" [M] "), ElementsAre(3, 7, 3));
  EXPECT_THAT(tokenizer->Encode("[M]"), ElementsAre(7));
  EXPECT_THAT(tokenizer->Encode("a[M]"), ElementsAre(0));  // inside a word
  EXPECT_THAT(tokenizer->Encode("[M]b"), ElementsAre(1));
}

TEST(TokenizerTest, NormalizedAddedTokensMatchAfterNfc) {
  Json json = BaseJson();
  json["normalizer"] = {{"type", "NFC"}};
  Json token = AddedTokenJson(7, "caf\u00E9", false);
  token["normalized"] = true;
  json["added_tokens"].push_back(token);
  auto tokenizer = Load(json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Encode("a cafe\u0301"), ElementsAre(0, 3, 7));
  EXPECT_THAT(tokenizer->Encode("a caf\u00E9"), ElementsAre(0, 3, 7));
  // Text on either side of a non-normalised token is normalised apart:
  // "e" and U+0301 do not compose across <|im_end|>.
  EXPECT_THAT(tokenizer->Encode("e<|im_end|>\u0301"), ElementsAre(5, 6));
}

TEST(TokenizerTest, MergesInStringAndPairFormAgree) {
  Json strings = BaseJson();
  strings["model"]["vocab"]["ab"] = 7;
  strings["model"]["merges"] = {"a b"};
  Json pairs = BaseJson();
  pairs["model"]["vocab"]["ab"] = 7;
  pairs["model"]["merges"] = Json::array({Json::array({"a", "b"})});
  auto from_strings = Load(strings);
  auto from_pairs = Load(pairs);
  ASSERT_NE(from_strings, nullptr);
  ASSERT_NE(from_pairs, nullptr);
  EXPECT_THAT(from_strings->Encode("abcab"), ElementsAre(7, 2, 7));
  EXPECT_THAT(from_pairs->Encode("abcab"), ElementsAre(7, 2, 7));
}

TEST(TokenizerTest, SplitSequencePreTokenizer) {
  Json json = BaseJson();
  // Qwen's layout: a Split step, then ByteLevel without its own regex.
  json["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\p{L}+| ?[^\\s\\p{L}]+|\\s+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"},
         {"add_prefix_space", false},
         {"trim_offsets", false},
         {"use_regex", false}}}}};
  json["model"]["vocab"]["ab"] = 7;
  json["model"]["vocab"][BytesToByteLevel(" a")] = 8;
  json["model"]["merges"] = {"a b", BytesToByteLevel(" ") + " a"};
  auto tokenizer = Load(json);
  ASSERT_NE(tokenizer, nullptr);
  // Words are "ab", " ", "ab": " a" never meets within one word.
  EXPECT_THAT(tokenizer->Encode("ab ab"), ElementsAre(7, 3, 7));
}

TEST(TokenizerTest, TemplateProcessingAddsSpecialTokens) {
  Json json = BaseJson();
  const Json template_processing = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<|im_end|>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", Json::array()},
      {"special_tokens",
       {{"<|im_end|>",
         {{"id", "<|im_end|>"}, {"ids", {6}}, {"tokens", {"<|im_end|>"}}}}}}};
  // Llama 3's layout: a Sequence of ByteLevel and TemplateProcessing.
  json["post_processor"] = {
      {"type", "Sequence"},
      {"processors", {json["post_processor"], template_processing}}};
  auto tokenizer = Load(json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Encode("ab", /*add_special_tokens=*/true),
              ElementsAre(6, 0, 1));
  EXPECT_THAT(tokenizer->Encode("ab"), ElementsAre(0, 1));
}

TEST(TokenizerTest, InvalidUtf8IsRepairedNotFatal) {
  auto tokenizer = Load(Json::parse(
      MakeCharacterTokenizerJson("ab\xEF\xBF\xBD", {"<|im_end|>"})));
  ASSERT_NE(tokenizer, nullptr);
  // U+FFFD is EF BF BD: ids 2, 3, 4.
  EXPECT_THAT(tokenizer->Encode("a\xFF"
                                "b"),
              ElementsAre(0, 2, 3, 4, 1));
  EXPECT_EQ(tokenizer->Encode("a\xE2\x82"), tokenizer->Encode("a\uFFFD"));
  // Random bytes never crash, and what comes back decodes to valid UTF-8.
  std::mt19937 random(1234);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(random() % 40, '\0');
    for (char& byte : bytes) byte = static_cast<char>(random() % 256);
    if (i % 3 == 0) bytes += "<|im_end|>";
    const std::vector<int> ids = tokenizer->Encode(bytes);
    ASSERT_OK_AND_ASSIGN(const std::string decoded, tokenizer->Decode(ids));
    EXPECT_TRUE(IsValidUtf8(decoded));
  }
}

TEST(TokenizerTest, DecodeRepairsCutCharactersAndRejectsUnknownIds) {
  // The three bytes of "€" (E2 82 AC) are ids 0, 1, 2.
  auto tokenizer = Load(Json::parse(MakeCharacterTokenizerJson("\u20AC", {})));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(tokenizer->Decode({0, 1, 2}), IsOkAndHolds("\u20AC"));
  EXPECT_THAT(tokenizer->Decode({0, 1}), IsOkAndHolds("\uFFFD"));
  EXPECT_THAT(tokenizer->DecodeToBytes({0, 1}), IsOkAndHolds("\xE2\x82"));
  EXPECT_THAT(
      tokenizer->Decode({0, 3}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ids[1] = 3")));
  EXPECT_THAT(tokenizer->Decode({-1}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

struct BadFileCase {
  std::string name;
  std::function<void(Json*)> mutate;
  std::string field;
};

TEST(TokenizerTest, UnsupportedOrBrokenFilesNameTheField) {
  const std::vector<BadFileCase> cases = {
      {"wordpiece", [](Json* j) { (*j)["model"]["type"] = "WordPiece"; },
       "model.type"},
      {"unigram", [](Json* j) { (*j)["model"]["type"] = "Unigram"; },
       "model.type"},
      {"metaspace",
       [](Json* j) {
         (*j)["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
       },
       "pre_tokenizer.type"},
      {"no pre-tokenizer", [](Json* j) { (*j)["pre_tokenizer"] = nullptr; },
       "pre_tokenizer"},
      {"byte level not last",
       [](Json* j) {
         (*j)["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers", {(*j)["pre_tokenizer"], {{"type", "Digits"}}}}};
       },
       "pre_tokenizer.pretokenizers[0].type"},
      {"split behavior",
       [](Json* j) {
         (*j)["pre_tokenizer"] = {{"type", "Sequence"},
                                  {"pretokenizers",
                                   {{{"type", "Split"},
                                     {"pattern", {{"Regex", "a"}}},
                                     {"behavior", "MergedWithPrevious"}},
                                    (*j)["pre_tokenizer"]}}};
       },
       "pre_tokenizer.pretokenizers[0].behavior"},
      {"bad regex",
       [](Json* j) {
         (*j)["pre_tokenizer"] = {{"type", "Sequence"},
                                  {"pretokenizers",
                                   {{{"type", "Split"},
                                     {"pattern", {{"Regex", "(a"}}},
                                     {"behavior", "Isolated"}},
                                    (*j)["pre_tokenizer"]}}};
       },
       "pre_tokenizer.pretokenizers[0].pattern"},
      {"lowercase",
       [](Json* j) {
         (*j)["normalizer"] = {{"type", "Lowercase"}};
       },
       "normalizer.type"},
      {"nfkc in sequence",
       [](Json* j) {
         (*j)["normalizer"] = {
             {"type", "Sequence"},
             {"normalizers", {{{"type", "NFC"}}, {{"type", "NFKC"}}}}};
       },
       "normalizer.normalizers[1].type"},
      {"no decoder", [](Json* j) { (*j)["decoder"] = nullptr; }, "decoder"},
      {"wordpiece decoder",
       [](Json* j) {
         (*j)["decoder"] = {{"type", "WordPiece"}};
       },
       "decoder.type"},
      {"roberta",
       [](Json* j) {
         (*j)["post_processor"] = {{"type", "RobertaProcessing"}};
       },
       "post_processor.type"},
      {"byte fallback", [](Json* j) { (*j)["model"]["byte_fallback"] = true; },
       "model.byte_fallback"},
      {"dropout", [](Json* j) { (*j)["model"]["dropout"] = 0.1; },
       "model.dropout"},
      {"subword prefix",
       [](Json* j) { (*j)["model"]["continuing_subword_prefix"] = "##"; },
       "model.continuing_subword_prefix"},
      {"vocab", [](Json* j) { (*j)["model"]["vocab"] = Json::array(); },
       "model.vocab"},
      {"vocab id", [](Json* j) { (*j)["model"]["vocab"]["zz"] = "one"; },
       "model.vocab[\"zz\"]"},
      {"merge shape",
       [](Json* j) {
         (*j)["model"]["merges"] = {{1, 2}};
       },
       "model.merges[0]"},
      {"merge form", [](Json* j) { (*j)["model"]["merges"] = {"ab"}; },
       "model.merges[0]"},
      {"merge tokens", [](Json* j) { (*j)["model"]["merges"] = {"a b"}; },
       "model.merges[0]"},
      {"no model", [](Json* j) { j->erase("model"); }, "model"},
      {"added token id", [](Json* j) { (*j)["added_tokens"][0].erase("id"); },
       "added_tokens[0].id"},
      {"added token flag",
       [](Json* j) { (*j)["added_tokens"][0]["lstrip"] = "yes"; },
       "added_tokens[0].lstrip"},
      {"truncation",
       [](Json* j) {
         (*j)["truncation"] = {{"max_length", 8}};
       },
       "truncation"},
  };
  for (const BadFileCase& bad : cases) {
    Json json = BaseJson();
    bad.mutate(&json);
    EXPECT_THAT(LoadError(json), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("test.json: " + bad.field)))
        << bad.name;
  }
}

TEST(TokenizerTest, UnreadableInputsAreErrors) {
  EXPECT_THAT(Tokenizer::FromJson("{\"model\": ", "broken.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("broken.json: not valid JSON")));
  EXPECT_THAT(
      Tokenizer::FromJson("[1, 2]", "list.json").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list.json")));
  EXPECT_THAT(Tokenizer::FromFile("/nonexistent/tokenizer.json").status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/tokenizer.json")));
}

}  // namespace
}  // namespace fapo::engine
