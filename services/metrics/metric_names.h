// Name rules for metrics and labels.
//
// Two layers:
//   * the Prometheus data model (what any Prometheus server accepts), checked
//     by ValidateMetricName / ValidateLabelName / IsValidUtf8;
//   * the project's conventions (the README's "Metrics"): every
//     name starts with "fapo_", counters end in "_total", and names that
//     `promtool check metrics` would flag are refused up front. Those are
//     applied by the registry (metrics_registry.h) through
//     ValidateProjectMetricName.
//
// All functions are pure and thread-safe.
#ifndef FAPO_SERVICES_METRICS_METRIC_NAMES_H_
#define FAPO_SERVICES_METRICS_METRIC_NAMES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fapo::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge", "histogram": the word used in "# TYPE" lines.
absl::string_view MetricTypeName(MetricType type);

// OK when `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*, else InvalidArgument
// naming the offending name and character.
absl::Status ValidateMetricName(absl::string_view name);

// OK when `name` matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with
// "__" (reserved for Prometheus-internal labels), else InvalidArgument.
absl::Status ValidateLabelName(absl::string_view name);

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF). Prometheus rejects a whole scrape whose label
// values or help text are not valid UTF-8, so the registry refuses them.
bool IsValidUtf8(absl::string_view text);

// The registry's full check of a new family's definition, Prometheus rules
// plus project conventions:
//   * `name` passes ValidateMetricName, starts with `required_prefix` (when
//     non-empty) and has something after it;
//   * counters end in "_total";
//   * no name ends in "_bucket", "_sum" or "_count" (histograms append those
//     suffixes, and promtool flags them on other types);
//   * `help` is non-empty valid UTF-8 without a newline or a backslash
//     (prometheus-cpp writes HELP text unescaped, and either would break
//     or change the line);
//   * each label name passes ValidateLabelName, none repeats, histograms do
//     not use "le" (their bucket label);
// Returns InvalidArgument naming the metric and the rule it breaks.
absl::Status ValidateFamilyDefinition(MetricType type, absl::string_view name,
                                      absl::string_view help,
                                      const std::vector<std::string>& labels,
                                      absl::string_view required_prefix);

// OK when `bounds` is strictly increasing and every bound is finite (the
// +Inf bucket is implicit), else InvalidArgument. An empty list is valid: the
// histogram then has only the +Inf bucket.
absl::Status ValidateBucketBounds(const std::vector<double>& bounds);

}  // namespace fapo::metrics

#endif  // FAPO_SERVICES_METRICS_METRIC_NAMES_H_
