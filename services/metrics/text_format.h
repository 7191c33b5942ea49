// Prometheus text exposition format, version 0.0.4.
//
//   # HELP fapo_trajectories_total Trajectories by state.
//   # TYPE fapo_trajectories_total counter
//   fapo_trajectories_total{state="scored"} 12
//
// Spec: https://prometheus.io/docs/instrumenting/exposition_formats/
//
// All functions are pure and thread-safe.
#ifndef FAPO_SERVICES_METRICS_TEXT_FORMAT_H_
#define FAPO_SERVICES_METRICS_TEXT_FORMAT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "services/metrics/metric_types.h"

namespace fapo::metrics {

// The Content-Type of RenderTextFormat's output.
inline constexpr absl::string_view kTextFormatContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Renders `families` in the order given (MetricsRegistry::Collect returns
// them sorted by name, children sorted by label values). Families without
// metrics are skipped entirely, as client_golang does. Histograms expand to
// <name>_bucket{...,le="<bound>"} (cumulative, ending with le="+Inf"),
// <name>_sum and <name>_count. Labels are written in the family's
// label_names order, "le" last. Every line ends with '\n'; no timestamps.
std::string RenderTextFormat(const std::vector<FamilySnapshot>& families);

// A sample value as Prometheus expects it: integers with |v| < 2^53 in plain
// decimal ("42", "-3", "1000000"), other finite values in the shortest form
// that parses back to the same double ("0.25", "1e-09", "1.5e+300"), and
// "+Inf", "-Inf", "NaN". Negative zero is "0". Also used for "le" values.
std::string FormatSampleValue(double value);

// HELP text escaping: '\' -> "\\", newline -> "\n".
std::string EscapeHelp(absl::string_view help);

// Label value escaping: '\' -> "\\", '"' -> "\"", newline -> "\n".
std::string EscapeLabelValue(absl::string_view value);

}  // namespace fapo::metrics

#endif  // FAPO_SERVICES_METRICS_TEXT_FORMAT_H_
