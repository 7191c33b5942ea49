#include "engine/tokenizer/byte_level.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace fapo::engine {
namespace {

TEST(ByteLevelTest, TableIsABijectionOntoGpt2Symbols) {
  std::set<char32_t> code_points;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t code_point = ByteToCodePoint(static_cast<uint8_t>(byte));
    code_points.insert(code_point);
    EXPECT_EQ(CodePointToByte(code_point), static_cast<uint8_t>(byte));
  }
  EXPECT_EQ(code_points.size(), 256u);
  // Printable bytes stand for themselves; the rest count up from U+0100.
  EXPECT_EQ(ByteToCodePoint('a'), U'a');
  EXPECT_EQ(ByteToCodePoint('!'), U'!');
  EXPECT_EQ(ByteToCodePoint(0xE9), U'\u00E9');
  EXPECT_EQ(ByteToCodePoint(0x00), U'\u0100');
  EXPECT_EQ(ByteToCodePoint('\n'), U'\u010A');  // "Ċ"
  EXPECT_EQ(ByteToCodePoint(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(ByteToCodePoint(0x7F), U'\u0121');
  EXPECT_EQ(ByteToCodePoint(0xAD), U'\u0143');  // the last one
  EXPECT_FALSE(CodePointToByte(U' ').has_value());
  EXPECT_FALSE(CodePointToByte(U'\u0144').has_value());
  EXPECT_FALSE(CodePointToByte(U'\u4E00').has_value());
}

TEST(ByteLevelTest, StringsRoundTrip) {
  EXPECT_EQ(BytesToByteLevel(" hello\n"), "\xC4\xA0hello\xC4\x8A");
  std::string all_bytes;
  for (int byte = 0; byte < 256; ++byte) all_bytes.push_back(char(byte));
  EXPECT_EQ(ByteLevelToBytes(BytesToByteLevel(all_bytes)), all_bytes);
  // "é" is two bytes, so two symbols: "Ã©".
  EXPECT_EQ(BytesToByteLevel("\xC3\xA9"), "\xC3\x83\xC2\xA9");
}

TEST(ByteLevelTest, RejectsSymbolsOutsideTheTable) {
  EXPECT_FALSE(ByteLevelToBytes("a b").has_value());           // raw space
  EXPECT_FALSE(ByteLevelToBytes("\xE4\xB8\x80").has_value());  // U+4E00
  EXPECT_FALSE(ByteLevelToBytes("\xC4").has_value());          // cut UTF-8
  EXPECT_EQ(ByteLevelToBytes(""), "");
}

}  // namespace
}  // namespace fapo::engine
