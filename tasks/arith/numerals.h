// Canonical decimal numerals, shared by the prompt parser and the checker
// (internal to tasks/arith).
//
// NOTE [canonical numerals]
// Prompts and solutions write every number in one canonical form: "0", or a
// nonzero digit followed by digits, with a leading '-' for negative values
// (exact arithmetic only). Parsers accept only that form: "07", "+7", "-0",
// " 7" are not numbers. One spelling per value keeps the checker a plain
// comparison and matches what the tokenizer-level policy is trained to emit.
#ifndef FAPO_TASKS_ARITH_NUMERALS_H_
#define FAPO_TASKS_ARITH_NUMERALS_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace fapo::tasks::arith::internal {

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Parses the canonical numeral that starts at text[*pos], taking every digit
// there is, and advances *pos past it. A '-' is accepted only when
// `allow_negative`. Returns false (leaving *pos and *value alone) when there
// is no digit, the numeral is not canonical, or its value does not fit int64.
inline bool ConsumeCanonicalInt(absl::string_view text, size_t* pos,
                                bool allow_negative, int64_t* value) {
  size_t i = *pos;
  bool negative = false;
  if (allow_negative && i < text.size() && text[i] == '-') {
    negative = true;
    ++i;
  }
  if (i >= text.size() || !IsDigit(text[i])) return false;
  if (text[i] == '0') {
    // "0" alone; "-0" and "07" are not canonical.
    if (negative) return false;
    ++i;
    if (i < text.size() && IsDigit(text[i])) return false;
    *pos = i;
    *value = 0;
    return true;
  }
  // |INT64_MIN| = 2^63 is representable in the magnitude.
  const uint64_t limit =
      negative ? (uint64_t{1} << 63) : static_cast<uint64_t>(INT64_MAX);
  uint64_t magnitude = 0;
  while (i < text.size() && IsDigit(text[i])) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (magnitude > (limit - digit) / 10) return false;
    magnitude = magnitude * 10 + digit;
    ++i;
  }
  *pos = i;
  *value = negative ? static_cast<int64_t>(uint64_t{0} - magnitude)
                    : static_cast<int64_t>(magnitude);
  return true;
}

}  // namespace fapo::tasks::arith::internal

#endif  // FAPO_TASKS_ARITH_NUMERALS_H_
