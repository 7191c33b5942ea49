#include "services/config/schema.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/config/scalars.h"

namespace fapo::config::internal {
namespace {

std::string Quoted(const std::string& value) {
  return absl::StrCat("\"", absl::CEscape(value), "\"");
}

}  // namespace

bool InRange(const IntRule& rule, int64_t value) {
  return value >= rule.min && value <= rule.max;
}

bool InRange(const DoubleRule& rule, double value) {
  if (rule.zero_means_off && value == 0.0) return true;
  // Written so that NaN fails both comparisons.
  bool above_min = rule.min_open ? value > rule.min : value >= rule.min;
  bool below_max = rule.max_open ? value < rule.max : value <= rule.max;
  return above_min && below_max;
}

std::string RangeMessage(const IntRule& rule, absl::string_view got) {
  if (rule.max == kInt64Max) {
    return absl::StrCat("must be >= ", rule.min, ", got ", got);
  }
  return absl::StrCat("must be in [", rule.min, ", ", rule.max, "], got ", got);
}

std::string RangeMessage(const DoubleRule& rule, absl::string_view got) {
  std::string interval =
      absl::StrCat(rule.min_open ? "(" : "[", FormatNumber(rule.min), ", ",
                   FormatNumber(rule.max), rule.max_open ? ")" : "]");
  if (rule.zero_means_off) {
    return absl::StrCat("must be 0 (off) or in ", interval, ", got ", got);
  }
  return absl::StrCat("must be in ", interval, ", got ", got);
}

std::string CheckJobName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                c == '.' || c == '_' || c == '-');
  }
  if (ok) return "";
  return absl::StrCat("must be 1-64 characters of [A-Za-z0-9._-], got ",
                      Quoted(name));
}

std::string CheckHttpUrl(const std::string& url) {
  if (url.empty()) return "";
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (absl::StartsWith(url, scheme) && url.size() > scheme.size()) {
      return "";
    }
  }
  return absl::StrCat("must start with http:// or https://, got ", Quoted(url));
}

}  // namespace fapo::config::internal
