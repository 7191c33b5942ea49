#include "services/metrics/text_format.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"

namespace fapo::metrics {
namespace {

// Integers below 2^53 are exact in a double, so printing them as decimal
// digits loses nothing and reads better than "1e+06" (what Go's
// strconv.FormatFloat(v, 'g', -1, 64) would print).
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

std::string Escape(absl::string_view text, bool escape_quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        out += escape_quote ? "\\\"" : "\"";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void AppendValue(std::string* out, double value) {
  if (std::isnan(value)) {
    out->append("NaN");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "+Inf" : "-Inf");
  } else if (value == 0) {
    out->push_back('0');  // also for -0.0
  } else if (std::fabs(value) < kMaxExactInteger &&
             value == std::trunc(value)) {
    absl::StrAppend(out, static_cast<int64_t>(value));
  } else {
    // Shortest representation that round-trips (C++17 <charconv>).
    char buffer[32];
    const std::to_chars_result result =
        std::to_chars(buffer, buffer + sizeof(buffer), value);
    out->append(buffer, result.ptr);
  }
}

// Appends `{a="x",b="y"` for the family's labels (no closing brace), or
// nothing when there are no labels. Returns whether a brace was opened.
bool AppendLabels(std::string* out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values) {
  if (names.empty()) return false;
  out->push_back('{');
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out->push_back(',');
    absl::StrAppend(out, names[i], "=\"",
                    EscapeLabelValue(i < values.size() ? values[i] : ""), "\"");
  }
  return true;
}

void AppendSeries(std::string* out, absl::string_view name,
                  absl::string_view suffix,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, double value) {
  absl::StrAppend(out, name, suffix);
  if (AppendLabels(out, label_names, label_values)) out->push_back('}');
  out->push_back(' ');
  AppendValue(out, value);
  out->push_back('\n');
}

void AppendHistogram(std::string* out, const FamilySnapshot& family,
                     const MetricSnapshot& metric) {
  const HistogramSnapshot& histogram = metric.histogram;
  const size_t buckets = histogram.bucket_bounds.size();
  for (size_t i = 0; i <= buckets; ++i) {
    absl::StrAppend(out, family.name, "_bucket");
    out->push_back(
        AppendLabels(out, family.label_names, metric.label_values) ? ',' : '{');
    out->append("le=\"");
    AppendValue(out, i < buckets ? histogram.bucket_bounds[i]
                                 : std::numeric_limits<double>::infinity());
    out->append("\"} ");
    const uint64_t count = i < histogram.cumulative_counts.size()
                               ? histogram.cumulative_counts[i]
                               : histogram.count;
    absl::StrAppend(out, count, "\n");
  }
  AppendSeries(out, family.name, "_sum", family.label_names,
               metric.label_values, histogram.sum);
  absl::StrAppend(out, family.name, "_count");
  if (AppendLabels(out, family.label_names, metric.label_values)) {
    out->push_back('}');
  }
  absl::StrAppend(out, " ", histogram.count, "\n");
}

}  // namespace

std::string FormatSampleValue(double value) {
  std::string out;
  AppendValue(&out, value);
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  return Escape(help, /*escape_quote=*/false);
}

std::string EscapeLabelValue(absl::string_view value) {
  return Escape(value, /*escape_quote=*/true);
}

std::string RenderTextFormat(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    if (family.metrics.empty()) continue;
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help),
                    "\n# TYPE ", family.name, " ", MetricTypeName(family.type),
                    "\n");
    for (const MetricSnapshot& metric : family.metrics) {
      if (family.type == MetricType::kHistogram) {
        AppendHistogram(&out, family, metric);
      } else {
        AppendSeries(&out, family.name, "", family.label_names,
                     metric.label_values, metric.value);
      }
    }
  }
  return out;
}

}  // namespace fapo::metrics
