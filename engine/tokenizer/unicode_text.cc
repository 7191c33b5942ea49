#include "engine/tokenizer/unicode_text.h"

#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>

namespace fapo::engine {
namespace {

constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";

// How many bytes of a well-formed sequence start at `position` (1..4), or,
// when none does, minus the length of the maximal ill-formed subpart there
// (the longest prefix of some well-formed sequence; at least 1). Follows
// Table 3-7 of the Unicode standard.
int ClassifySequence(absl::string_view text, size_t position) {
  const auto byte_at = [&](size_t offset) -> int {
    return position + offset < text.size()
               ? static_cast<uint8_t>(text[position + offset])
               : -1;
  };
  const int lead = byte_at(0);
  if (lead < 0x80) return 1;
  int length = 0;
  int second_low = 0x80;
  int second_high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_low = 0xA0;
    if (lead == 0xED) second_high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_low = 0x90;
    if (lead == 0xF4) second_high = 0x8F;  // nothing above U+10FFFF
  } else {
    return -1;
  }
  for (int offset = 1; offset < length; ++offset) {
    const int byte = byte_at(offset);
    const int low = offset == 1 ? second_low : 0x80;
    const int high = offset == 1 ? second_high : 0xBF;
    if (byte < low || byte > high) return -offset;
  }
  return length;
}

}  // namespace

void AppendUtf8(char32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

std::optional<char32_t> NextCodePoint(absl::string_view text,
                                      size_t* position) {
  if (*position >= text.size()) return std::nullopt;
  const int length = ClassifySequence(text, *position);
  if (length <= 0) return std::nullopt;
  const auto byte_at = [&](int offset) {
    return static_cast<char32_t>(
        static_cast<uint8_t>(text[*position + offset]));
  };
  char32_t code_point = 0;
  switch (length) {
    case 1:
      code_point = byte_at(0);
      break;
    case 2:
      code_point = ((byte_at(0) & 0x1F) << 6) | (byte_at(1) & 0x3F);
      break;
    case 3:
      code_point = ((byte_at(0) & 0x0F) << 12) | ((byte_at(1) & 0x3F) << 6) |
                   (byte_at(2) & 0x3F);
      break;
    default:
      code_point = ((byte_at(0) & 0x07) << 18) | ((byte_at(1) & 0x3F) << 12) |
                   ((byte_at(2) & 0x3F) << 6) | (byte_at(3) & 0x3F);
      break;
  }
  *position += length;
  return code_point;
}

bool IsValidUtf8(absl::string_view text) {
  size_t position = 0;
  while (position < text.size()) {
    if (static_cast<uint8_t>(text[position]) < 0x80) {
      ++position;
      continue;
    }
    const int length = ClassifySequence(text, position);
    if (length <= 0) return false;
    position += length;
  }
  return true;
}

std::string RepairUtf8(absl::string_view text) {
  std::string repaired;
  repaired.reserve(text.size());
  size_t position = 0;
  while (position < text.size()) {
    const int length = ClassifySequence(text, position);
    if (length > 0) {
      repaired.append(text.data() + position, length);
      position += length;
    } else {
      repaired += kReplacementCharacter;
      position += -length;
    }
  }
  return repaired;
}

std::string NfcNormalize(absl::string_view text) {
  // Pure ASCII is already in NFC: skip utf8proc's allocation for it.
  bool ascii = true;
  for (char byte : text) {
    if (static_cast<uint8_t>(byte) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return std::string(text);
  utf8proc_uint8_t* normalized = nullptr;
  const utf8proc_ssize_t length = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
      static_cast<utf8proc_ssize_t>(text.size()), &normalized,
      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  // Only fails on invalid UTF-8 or memory exhaustion; callers pass repaired
  // text, so leave it as it is then.
  if (length < 0) return std::string(text);
  std::string result(reinterpret_cast<const char*>(normalized),
                     static_cast<size_t>(length));
  std::free(normalized);
  return result;
}

bool IsUnicodeWhitespace(char32_t code_point) {
  switch (code_point) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return code_point >= 0x2000 && code_point <= 0x200A;
  }
}

bool IsWordCharacter(char32_t code_point) {
  // Join_Control (ZWNJ, ZWJ) is in \w too.
  if (code_point == 0x200C || code_point == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(code_point))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace fapo::engine
