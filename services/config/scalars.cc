#include "services/config/scalars.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <system_error>
#include <vector>

#include "absl/strings/charconv.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fapo::config::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Consumes [0-9]* from text[*pos]; returns how many digits it consumed.
size_t SkipDigits(absl::string_view text, size_t* pos) {
  size_t start = *pos;
  while (*pos < text.size() && IsDigit(text[*pos])) ++*pos;
  return *pos - start;
}

bool IsYamlFloatSyntax(absl::string_view text) {
  size_t pos = 0;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) ++pos;
  size_t int_digits = SkipDigits(text, &pos);
  size_t frac_digits = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    frac_digits = SkipDigits(text, &pos);
  }
  // "5." is a float in YAML 1.2; "." and ".e3" are not.
  if (int_digits == 0 && frac_digits == 0) return false;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) ++pos;
    if (SkipDigits(text, &pos) == 0) return false;
  }
  return pos == text.size();
}

}  // namespace

NumberParse ParseYamlInt(absl::string_view text, int64_t* value) {
  size_t pos = 0;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) ++pos;
  if (SkipDigits(text, &pos) == 0 || pos != text.size()) {
    return NumberParse::kMalformed;
  }
  // The syntax is right, so the only way SimpleAtoi fails is overflow.
  if (!absl::SimpleAtoi(text, value)) return NumberParse::kOutOfRange;
  return NumberParse::kOk;
}

NumberParse ParseYamlFloat(absl::string_view text, double* value) {
  absl::string_view unsigned_text = text;
  bool negative = false;
  if (!unsigned_text.empty() &&
      (unsigned_text[0] == '-' || unsigned_text[0] == '+')) {
    negative = unsigned_text[0] == '-';
    unsigned_text.remove_prefix(1);
  }
  if (unsigned_text == ".inf" || unsigned_text == ".Inf" ||
      unsigned_text == ".INF") {
    *value = negative ? -std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::infinity();
    return NumberParse::kOk;
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") {
    *value = std::numeric_limits<double>::quiet_NaN();
    return NumberParse::kOk;
  }
  if (!IsYamlFloatSyntax(text)) return NumberParse::kMalformed;
  // from_chars never matches a leading '+' and ignores the locale.
  absl::string_view digits = text[0] == '+' ? text.substr(1) : text;
  double parsed = 0.0;
  absl::from_chars_result result =
      absl::from_chars(digits.data(), digits.data() + digits.size(), parsed);
  if (result.ec == std::errc::result_out_of_range) {
    return NumberParse::kOutOfRange;
  }
  if (result.ec != std::errc() || result.ptr != digits.data() + digits.size()) {
    return NumberParse::kMalformed;
  }
  *value = parsed;
  return NumberParse::kOk;
}

namespace {

// Whether `text` parses to exactly `value`. On overflow from_chars yields
// DBL_MAX, so "2e+308" would seem to read back as DBL_MAX without the check.
bool ReadsBackAs(const std::string& text, double value) {
  double back = 0.0;
  absl::from_chars_result result =
      absl::from_chars(text.data(), text.data() + text.size(), back);
  return result.ec == std::errc() && back == value;
}

// The shortest "%.*g" rendering of `value` that reads back exactly.
std::string ShortestRoundTrip(double value) {
  std::string text;
  for (int precision = 1; precision <= 17; ++precision) {
    text = absl::StrFormat("%.*g", precision, value);
    if (ReadsBackAs(text, value)) break;
  }
  return text;
}

}  // namespace

std::string FormatYamlFloat(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  std::string text;
  const double magnitude = std::fabs(value);
  if (magnitude == 0.0 || (magnitude >= 1e-4 && magnitude < 1e16)) {
    // Fixed notation reads best in this range: 100.0, not 1.0e+02.
    // 17 significant digits always round-trip; at 1e-4 that is 21 decimals.
    for (int decimals = 0; decimals <= 24; ++decimals) {
      text = absl::StrFormat("%.*f", decimals, value);
      if (ReadsBackAs(text, value)) break;
    }
  } else {
    text = ShortestRoundTrip(value);
  }
  if (text.find('.') == std::string::npos) {
    // YAML 1.1 readers (PyYAML) need the dot to see a float: 1.0e-06.
    size_t exponent = text.find('e');
    text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  }
  return text;
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return ShortestRoundTrip(value);
}

size_t FindInvalidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    unsigned char min_second = 0x80, max_second = 0xBF;
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) min_second = 0xA0;  // overlong
      if (lead == 0xED) max_second = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) min_second = 0x90;  // overlong
      if (lead == 0xF4) max_second = 0x8F;  // past U+10FFFF
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char c = static_cast<unsigned char>(text[i + k]);
      const unsigned char low = k == 1 ? min_second : 0x80;
      const unsigned char high = k == 1 ? max_second : 0xBF;
      if (c < low || c > high) return i;
    }
    i += length;
  }
  return absl::string_view::npos;
}

int EditDistance(absl::string_view a, absl::string_view b) {
  const size_t rows = a.size() + 1;
  const size_t cols = b.size() + 1;
  std::vector<int> d(rows * cols);
  auto at = [&](size_t i, size_t j) -> int& { return d[i * cols + j]; };
  for (size_t i = 0; i < rows; ++i) at(i, 0) = static_cast<int>(i);
  for (size_t j = 0; j < cols; ++j) at(0, j) = static_cast<int>(j);
  for (size_t i = 1; i < rows; ++i) {
    for (size_t j = 1; j < cols; ++j) {
      int substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1,
                           at(i - 1, j - 1) + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(rows - 1, cols - 1);
}

std::string NearestWord(absl::string_view word,
                        absl::Span<const std::string> candidates,
                        int max_distance) {
  std::string best;
  int best_distance = max_distance + 1;
  for (const std::string& candidate : candidates) {
    int distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace fapo::config::internal
