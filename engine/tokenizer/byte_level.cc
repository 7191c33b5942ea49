#include "engine/tokenizer/byte_level.h"

#include <array>

#include "engine/tokenizer/unicode_text.h"

namespace fapo::engine {
namespace {

struct ByteTables {
  std::array<char32_t, 256> byte_to_code_point{};
  // Every symbol is below U+0144 (256 + 68).
  std::array<int16_t, 512> code_point_to_byte{};
  std::array<std::string, 256> byte_to_utf8;
};

bool StandsForItself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

const ByteTables& Tables() {
  static const ByteTables* const tables = [] {
    auto* built = new ByteTables;
    built->code_point_to_byte.fill(-1);
    int next_extra = 0;
    for (int byte = 0; byte < 256; ++byte) {
      const char32_t code_point =
          StandsForItself(byte) ? static_cast<char32_t>(byte)
                                : static_cast<char32_t>(256 + next_extra++);
      built->byte_to_code_point[byte] = code_point;
      built->code_point_to_byte[code_point] = static_cast<int16_t>(byte);
      AppendUtf8(code_point, &built->byte_to_utf8[byte]);
    }
    return built;
  }();
  return *tables;
}

}  // namespace

char32_t ByteToCodePoint(uint8_t byte) {
  return Tables().byte_to_code_point[byte];
}

std::optional<uint8_t> CodePointToByte(char32_t code_point) {
  if (code_point >= Tables().code_point_to_byte.size()) return std::nullopt;
  const int16_t byte = Tables().code_point_to_byte[code_point];
  if (byte < 0) return std::nullopt;
  return static_cast<uint8_t>(byte);
}

std::string BytesToByteLevel(absl::string_view bytes) {
  const ByteTables& tables = Tables();
  std::string symbols;
  symbols.reserve(bytes.size() * 2);
  for (char byte : bytes) {
    symbols += tables.byte_to_utf8[static_cast<uint8_t>(byte)];
  }
  return symbols;
}

std::optional<std::string> ByteLevelToBytes(absl::string_view symbols) {
  std::string bytes;
  bytes.reserve(symbols.size());
  size_t position = 0;
  while (position < symbols.size()) {
    const std::optional<char32_t> code_point =
        NextCodePoint(symbols, &position);
    if (!code_point.has_value()) return std::nullopt;
    const std::optional<uint8_t> byte = CodePointToByte(*code_point);
    if (!byte.has_value()) return std::nullopt;
    bytes.push_back(static_cast<char>(*byte));
  }
  return bytes;
}

}  // namespace fapo::engine
