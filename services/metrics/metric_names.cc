#include "services/metrics/metric_names.h"

#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fapo::metrics {

absl::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}
namespace {

bool IsAsciiLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// Shows a byte readably in an error message.
std::string DescribeChar(char c) {
  const unsigned char byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f)
    return absl::StrCat("'", std::string(1, c), "'");
  static constexpr char kHex[] = "0123456789abcdef";
  return absl::StrCat("byte 0x", std::string(1, kHex[byte >> 4]),
                      std::string(1, kHex[byte & 0xf]));
}

// `allow_colon`: metric names may contain ':', label names may not.
absl::Status ValidateIdentifier(absl::string_view kind, absl::string_view name,
                                bool allow_colon) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kind, " must not be empty"));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = IsAsciiLetter(c) || c == '_' || (allow_colon && c == ':') ||
                    (i > 0 && IsAsciiDigit(c));
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          kind, " \"", name, "\" has ", DescribeChar(c), " at position ", i,
          "; it must match ",
          allow_colon ? "[a-zA-Z_:][a-zA-Z0-9_:]*" : "[a-zA-Z_][a-zA-Z0-9_]*"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateMetricName(absl::string_view name) {
  return ValidateIdentifier("metric name", name, /*allow_colon=*/true);
}

absl::Status ValidateLabelName(absl::string_view name) {
  absl::Status status =
      ValidateIdentifier("label name", name, /*allow_colon=*/false);
  if (!status.ok()) return status;
  if (absl::StartsWith(name, "__")) {
    return absl::InvalidArgumentError(
        absl::StrCat("label name \"", name,
                     "\" starts with \"__\", which Prometheus reserves"));
  }
  return absl::OkStatus();
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const unsigned char lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    int length;
    uint32_t code_point;
    uint32_t min_code_point;
    if ((lead & 0xe0) == 0xc0) {
      length = 2;
      code_point = lead & 0x1f;
      min_code_point = 0x80;
    } else if ((lead & 0xf0) == 0xe0) {
      length = 3;
      code_point = lead & 0x0f;
      min_code_point = 0x800;
    } else if ((lead & 0xf8) == 0xf0) {
      length = 4;
      code_point = lead & 0x07;
      min_code_point = 0x10000;
    } else {
      return false;  // continuation byte or 0xf8.. as a lead byte
    }
    if (n - i < static_cast<size_t>(length)) return false;
    for (int k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    if (code_point < min_code_point) return false;  // overlong form
    if (code_point > 0x10ffff) return false;
    if (code_point >= 0xd800 && code_point <= 0xdfff) return false;
    i += length;
  }
  return true;
}

absl::Status ValidateFamilyDefinition(MetricType type, absl::string_view name,
                                      absl::string_view help,
                                      const std::vector<std::string>& labels,
                                      absl::string_view required_prefix) {
  absl::Status status = ValidateMetricName(name);
  if (!status.ok()) return status;
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(MetricTypeName(type), " \"", name, "\": ", why));
  };
  if (!required_prefix.empty() && (!absl::StartsWith(name, required_prefix) ||
                                   name.size() == required_prefix.size())) {
    return invalid(absl::StrCat("project metric names must start with \"",
                                required_prefix,
                                "\" followed by a descriptive name"));
  }
  if (type == MetricType::kCounter && !absl::EndsWith(name, "_total")) {
    return invalid("counter names must end in \"_total\"");
  }
  for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (absl::EndsWith(name, suffix)) {
      return invalid(absl::StrCat(
          "names must not end in \"", suffix,
          "\" (histograms append it to their series; promtool flags it)"));
    }
  }
  if (help.empty()) return invalid("help text must not be empty");
  if (!IsValidUtf8(help)) return invalid("help text is not valid UTF-8");
  if (help.find_first_of("\n\\") != absl::string_view::npos) {
    return invalid(
        "help text must not hold a newline or a backslash (written "
        "unescaped on the HELP line)");
  }
  std::set<absl::string_view> seen;
  for (const std::string& label : labels) {
    status = ValidateLabelName(label);
    if (!status.ok()) return invalid(status.message());
    if (type == MetricType::kHistogram && label == "le") {
      return invalid(
          "histograms must not have a label named \"le\" (it holds the "
          "bucket bound)");
    }
    if (!seen.insert(label).second) {
      return invalid(absl::StrCat("label \"", label, "\" is listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBucketBounds(const std::vector<double>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram bucket bound ", i, " is ", bounds[i],
          "; bounds must be finite (the +Inf bucket is implicit)"));
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram bucket bounds must be strictly increasing, but bound ",
          i - 1, " is ", bounds[i - 1], " and bound ", i, " is ", bounds[i],
          " (bounds: [", absl::StrJoin(bounds, ", "), "])"));
    }
  }
  return absl::OkStatus();
}

}  // namespace fapo::metrics
