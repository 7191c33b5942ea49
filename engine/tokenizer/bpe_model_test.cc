#include "engine/tokenizer/bpe_model.h"

#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Ids: a=0 b=1 c=2 ab=3 bc=4 abc=5 aa=6 aaaa=7 " "=8.
BpeModelConfig SmallConfig() {
  BpeModelConfig config;
  config.vocab = {{"a", 0},  {"b", 1},    {"c", 2},
                  {"ab", 3}, {"bc", 4},   {"abc", 5},
                  {"aa", 6}, {"aaaa", 7}, {BytesToByteLevel(" "), 8}};
  return config;
}

std::vector<int> Tokenize(const BpeModel& model, const std::string& word) {
  std::vector<int> ids;
  model.Tokenize(word, &ids);
  return ids;
}

TEST(BpeModelTest, LowestRankMergesFirst) {
  BpeModelConfig bc_first = SmallConfig();
  bc_first.merges = {{"b", "c"}, {"a", "b"}, {"a", "bc"}};
  ASSERT_OK_AND_ASSIGN(auto model, BpeModel::Create(bc_first));
  EXPECT_THAT(Tokenize(*model, "abc"), ElementsAre(5));  // a + bc

  BpeModelConfig ab_first = SmallConfig();
  ab_first.merges = {{"a", "b"}, {"b", "c"}, {"a", "bc"}};
  ASSERT_OK_AND_ASSIGN(auto other, BpeModel::Create(ab_first));
  // ab wins, and there is no (ab, c) merge.
  EXPECT_THAT(Tokenize(*other, "abc"), ElementsAre(3, 2));
}

TEST(BpeModelTest, EqualRanksMergeLeftmostFirst) {
  BpeModelConfig config = SmallConfig();
  config.merges = {{"a", "a"}, {"aa", "aa"}};
  ASSERT_OK_AND_ASSIGN(auto model, BpeModel::Create(config));
  EXPECT_THAT(Tokenize(*model, "aaa"), ElementsAre(6, 0));
  EXPECT_THAT(Tokenize(*model, "aaaa"), ElementsAre(7));
  EXPECT_THAT(Tokenize(*model, "aaaaa"), ElementsAre(7, 0));
  // A second call comes from the cache and must agree.
  EXPECT_THAT(Tokenize(*model, "aaaaa"), ElementsAre(7, 0));
}

TEST(BpeModelTest, RepeatedPairKeepsItsLaterRank) {
  BpeModelConfig config = SmallConfig();
  // (a, b) is listed first and again after (b, c): as in HF, the later rank
  // counts, so b + c merges first.
  config.merges = {{"a", "b"}, {"b", "c"}, {"a", "bc"}, {"a", "b"}};
  ASSERT_OK_AND_ASSIGN(auto model, BpeModel::Create(config));
  EXPECT_THAT(Tokenize(*model, "abc"), ElementsAre(5));
}

TEST(BpeModelTest, IgnoreMergesTakesWholeWords) {
  BpeModelConfig config = SmallConfig();
  config.merges = {{"a", "b"}};
  config.ignore_merges = true;
  ASSERT_OK_AND_ASSIGN(auto model, BpeModel::Create(config));
  // "abc" is in the vocabulary although no merges make it.
  EXPECT_THAT(Tokenize(*model, "abc"), ElementsAre(5));
  EXPECT_THAT(Tokenize(*model, "abab"), ElementsAre(3, 3));
}

TEST(BpeModelTest, UnknownBytesAreDroppedOrBecomeUnk) {
  BpeModelConfig config = SmallConfig();
  ASSERT_OK_AND_ASSIGN(auto dropping, BpeModel::Create(config));
  EXPECT_THAT(Tokenize(*dropping, "axxb"), ElementsAre(0, 1));

  config.vocab["<unk>"] = 9;
  config.unk_token = "<unk>";
  ASSERT_OK_AND_ASSIGN(auto unk, BpeModel::Create(config));
  EXPECT_THAT(Tokenize(*unk, "axxb"), ElementsAre(0, 9, 9, 1));
  config.fuse_unk = true;
  ASSERT_OK_AND_ASSIGN(auto fused, BpeModel::Create(config));
  EXPECT_THAT(Tokenize(*fused, "axxbx"), ElementsAre(0, 9, 1, 9));
}

TEST(BpeModelTest, LooksUpTokensAndIds) {
  ASSERT_OK_AND_ASSIGN(auto model, BpeModel::Create(SmallConfig()));
  EXPECT_EQ(model->TokenToId("abc"), 5);
  EXPECT_FALSE(model->TokenToId("zzz").has_value());
  ASSERT_NE(model->IdToToken(4), nullptr);
  EXPECT_EQ(*model->IdToToken(4), "bc");
  EXPECT_EQ(model->IdToToken(99), nullptr);
  EXPECT_EQ(model->IdToToken(-1), nullptr);
  EXPECT_EQ(model->id_limit(), 9);
}

TEST(BpeModelTest, RejectsBadConfigurations) {
  BpeModelConfig missing = SmallConfig();
  missing.merges = {{"a", "b"}, {"c", "c"}};
  EXPECT_THAT(BpeModel::Create(missing),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model.merges[1]")));
  BpeModelConfig unk = SmallConfig();
  unk.unk_token = "<unk>";
  EXPECT_THAT(BpeModel::Create(unk),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model.unk_token")));
  BpeModelConfig duplicate = SmallConfig();
  duplicate.vocab["z"] = 0;
  EXPECT_THAT(
      BpeModel::Create(duplicate),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("used twice")));
}

}  // namespace
}  // namespace fapo::engine
