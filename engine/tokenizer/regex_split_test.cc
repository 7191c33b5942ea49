#include "engine/tokenizer/regex_split.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Qwen2/Qwen3's pre-tokenizer pattern.
constexpr char kQwenPattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::vector<std::string> Split(const RegexSplitter& splitter,
                               const std::string& text,
                               bool drop_matches = false) {
  std::vector<absl::string_view> pieces;
  splitter.Split(text, drop_matches, &pieces);
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

TEST(RegexSplitTest, QwenPatternSplitsLikeHuggingFace) {
  ASSERT_OK_AND_ASSIGN(auto splitter,
                       RegexSplitter::Create(kQwenPattern, false));
  EXPECT_TRUE(splitter->jit_compiled());
  // From HF's pre_tokenize_str with the Qwen3 tokenizer.
  EXPECT_THAT(Split(*splitter, "Hello, world! We'LL see 123   x\n\n y"),
              ElementsAre("Hello", ",", " world", "!", " We", "'LL", " see",
                          " ", "1", "2", "3", "  ", " x", "\n\n", " y"));
  // U+0085 is \s for PCRE2 in UCP mode, as for Oniguruma.
  EXPECT_THAT(Split(*splitter, "a\u0085 b\u0085\u0085c \u0085"),
              ElementsAre("a", "\u0085", " b", "\u0085", "\u0085c", " \u0085"));
  EXPECT_THAT(Split(*splitter, ""), ElementsAre());
}

TEST(RegexSplitTest, RemovedDropsMatchesAndLiteralPatternsWork) {
  ASSERT_OK_AND_ASSIGN(auto splitter, RegexSplitter::Create("a.c", true));
  EXPECT_THAT(Split(*splitter, "xa.cyabcz"), ElementsAre("x", "a.c", "yabcz"));
  EXPECT_THAT(Split(*splitter, "xa.cya.c", /*drop_matches=*/true),
              ElementsAre("x", "y"));
}

TEST(RegexSplitTest, EmptyMatchesSplitButLeaveNoPieces) {
  ASSERT_OK_AND_ASSIGN(auto splitter, RegexSplitter::Create("x*", false));
  EXPECT_THAT(Split(*splitter, "a\u00E9xxb"),
              ElementsAre("a", "\u00E9", "xx", "b"));
}

TEST(RegexSplitTest, LongRunsDoNotExhaustTheMatcher) {
  ASSERT_OK_AND_ASSIGN(auto splitter,
                       RegexSplitter::Create(kQwenPattern, false));
  const std::string spaces(200000, ' ');
  EXPECT_THAT(Split(*splitter, spaces + "x"),
              ElementsAre(std::string(199999, ' '), " x"));
  const std::string letters(200000, 'q');
  EXPECT_THAT(Split(*splitter, letters), ElementsAre(letters));
}

TEST(RegexSplitTest, BadPatternIsAnError) {
  EXPECT_THAT(RegexSplitter::Create("(unclosed", false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not compile")));
}

}  // namespace
}  // namespace fapo::engine
