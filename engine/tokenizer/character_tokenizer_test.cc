#include "engine/tokenizer/character_tokenizer.h"

#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOkAndHolds;
using ::testing::ElementsAre;

TEST(CharacterTokenizerTest, ArithTokenizerLayout) {
  const nlohmann::json json = nlohmann::json::parse(ArithTokenizerJson());
  EXPECT_EQ(json["model"]["type"], "BPE");
  EXPECT_TRUE(json["model"]["merges"].empty());
  EXPECT_EQ(json["model"]["vocab"].size(), 19u);      // 16 bytes + 3 special
  EXPECT_EQ(json["model"]["vocab"]["\xC4\x8A"], 15);  // "\n" as "Ċ"
  EXPECT_EQ(json["added_tokens"].size(), 3u);

  ASSERT_OK_AND_ASSIGN(auto tokenizer,
                       Tokenizer::FromJson(ArithTokenizerJson()));
  EXPECT_EQ(tokenizer->vocab_size(), 19);
  EXPECT_EQ(tokenizer->TokenToId("<|endoftext|>"), 16);
  EXPECT_EQ(tokenizer->TokenToId("<|im_start|>"), 17);
  EXPECT_EQ(tokenizer->TokenToId("<|im_end|>"), 18);
  // One id per character: digits are 0-9, then + - * = # \n.
  EXPECT_THAT(tokenizer->Encode("12+3=15\n#"),
              ElementsAre(1, 2, 10, 3, 13, 1, 5, 15, 14));
  EXPECT_THAT(tokenizer->Encode("<|im_start|>7*8=56<|im_end|>"),
              ElementsAre(17, 7, 12, 8, 13, 5, 6, 18));
  EXPECT_THAT(tokenizer->Decode({17, 7, 12, 8, 13, 5, 6, 18}),
              IsOkAndHolds("<|im_start|>7*8=56<|im_end|>"));
  EXPECT_THAT(tokenizer->Decode({17, 7, 18}, /*skip_special_tokens=*/true),
              IsOkAndHolds("7"));
}

TEST(CharacterTokenizerTest, DuplicatesAndMultiByteCharacters) {
  ASSERT_OK_AND_ASSIGN(auto tokenizer,
                       Tokenizer::FromJson(MakeCharacterTokenizerJson(
                           "aab\u00E9", {"<s>", "<s>", "", "a"})));
  // a=0 b=1, then the two bytes of "é", then "<s>" once; "" and "a" (a
  // character already) add nothing.
  EXPECT_EQ(tokenizer->vocab_size(), 5);
  EXPECT_THAT(tokenizer->Encode("b\u00E9a<s>"), ElementsAre(1, 2, 3, 0, 4));
  EXPECT_THAT(tokenizer->Decode({1, 2, 3, 0, 4}), IsOkAndHolds("b\u00E9a<s>"));
}

}  // namespace
}  // namespace fapo::engine
