#include "engine/tokenizer/unicode_text.h"

#include <string>

#include "gtest/gtest.h"

namespace fapo::engine {
namespace {

TEST(UnicodeTextTest, RepairsInvalidUtf8AsPythonsReplaceDoes) {
  // Expected values from bytes.decode("utf-8", errors="replace").
  EXPECT_EQ(RepairUtf8("\xFF"), "\uFFFD");
  EXPECT_EQ(RepairUtf8("a\xE2\x82"), "a\uFFFD");  // a cut character
  EXPECT_EQ(RepairUtf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate
  EXPECT_EQ(RepairUtf8("\xF0\x9F\x98"), "\uFFFD");
  EXPECT_EQ(RepairUtf8("\xC0\xAF"), "\uFFFD\uFFFD");  // overlong
  EXPECT_EQ(RepairUtf8("\xE2\x82\xACx\xF4\x90\x80\x80"),
            "\u20ACx\uFFFD\uFFFD\uFFFD\uFFFD");  // above U+10FFFF
  EXPECT_EQ(RepairUtf8("\xF8\x88\x80\x80\x80"),
            "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD");
  const std::string valid = "h\u00E9llo \u4E16\u754C \U0001F600";
  EXPECT_TRUE(IsValidUtf8(valid));
  EXPECT_EQ(RepairUtf8(valid), valid);
  EXPECT_FALSE(IsValidUtf8("\xC3"));
  EXPECT_TRUE(IsValidUtf8(""));
}

TEST(UnicodeTextTest, DecodesCodePoints) {
  const std::string text = "a\u00E9\u4E16\U0001F600";
  size_t position = 0;
  EXPECT_EQ(NextCodePoint(text, &position), U'a');
  EXPECT_EQ(NextCodePoint(text, &position), U'\u00E9');
  EXPECT_EQ(NextCodePoint(text, &position), U'\u4E16');
  EXPECT_EQ(NextCodePoint(text, &position), U'\U0001F600');
  EXPECT_EQ(position, text.size());
  EXPECT_FALSE(NextCodePoint(text, &position).has_value());
  std::string encoded;
  for (char32_t code_point : {U'a', U'\u00E9', U'\u4E16', U'\U0001F600'}) {
    AppendUtf8(code_point, &encoded);
  }
  EXPECT_EQ(encoded, text);
}

TEST(UnicodeTextTest, NfcComposes) {
  EXPECT_EQ(NfcNormalize("e\u0301"), "\u00E9");
  EXPECT_EQ(NfcNormalize("\u212B"), "\u00C5");        // Angstrom sign
  EXPECT_EQ(NfcNormalize("\u1100\u1161"), "\uAC00");  // Hangul jamo
  EXPECT_EQ(NfcNormalize("plain ascii"), "plain ascii");
  EXPECT_EQ(NfcNormalize(""), "");
}

TEST(UnicodeTextTest, CharacterClasses) {
  for (char32_t space : {U' ', U'\t', U'\n', U'\r', U'\u0085', U'\u00A0',
                         U'\u2003', U'\u3000', U'\u2028'}) {
    EXPECT_TRUE(IsUnicodeWhitespace(space)) << static_cast<int>(space);
  }
  for (char32_t other : {U'a', U'\u200B', U'\uFEFF', U'\u001C'}) {
    EXPECT_FALSE(IsUnicodeWhitespace(other)) << static_cast<int>(other);
  }
  EXPECT_TRUE(IsWordCharacter(U'a'));
  EXPECT_TRUE(IsWordCharacter(U'_'));
  EXPECT_TRUE(IsWordCharacter(U'7'));
  EXPECT_TRUE(IsWordCharacter(U'\u4E16'));
  EXPECT_FALSE(IsWordCharacter(U' '));
  EXPECT_FALSE(IsWordCharacter(U'-'));
}

}  // namespace
}  // namespace fapo::engine
