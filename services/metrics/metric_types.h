// Plain data shared by the registry, the text renderer and the server: the
// metric kinds, label maps, and point-in-time snapshots of metric families.
//
// Snapshots are values: MetricsRegistry::Collect() fills them, the renderer
// (text_format.h) turns them into exposition text. Keeping the renderer on
// plain data means another registry implementation (prometheus-cpp, say)
// only has to produce FamilySnapshots to reuse it.
#ifndef FAPO_SERVICES_METRICS_METRIC_TYPES_H_
#define FAPO_SERVICES_METRICS_METRIC_TYPES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fapo::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge", "histogram": the word used in "# TYPE" lines.
inline absl::string_view MetricTypeName(MetricType type) {
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

// Label name -> label value, e.g. {{"state", "scored"}}.
using Labels = std::map<std::string, std::string>;

struct HistogramSnapshot {
  // Finite upper bounds, strictly increasing; the +Inf bucket is implicit.
  std::vector<double> bucket_bounds;
  // Cumulative counts: cumulative_counts[i] observations were <=
  // bucket_bounds[i]; the last element (index bucket_bounds.size()) is the
  // +Inf bucket and equals `count`.
  std::vector<uint64_t> cumulative_counts;
  double sum = 0;
  uint64_t count = 0;
};

// One series (counter or gauge) or one histogram (a group of series).
struct MetricSnapshot {
  // Values of the family's labels, in the family's label_names order.
  std::vector<std::string> label_values;
  // Counter or gauge value; unused for histograms.
  double value = 0;
  // Histogram data; empty for counters and gauges.
  HistogramSnapshot histogram;
};

struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<std::string> label_names;
  // Ordered by label_values (lexicographically, value by value).
  std::vector<MetricSnapshot> metrics;
};

}  // namespace fapo::metrics

#endif  // FAPO_SERVICES_METRICS_METRIC_TYPES_H_
