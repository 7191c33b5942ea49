#include "services/metrics/metrics_testing.h"

#include <utility>

namespace fapo::metrics::testing {
namespace {

Labels LabelsOf(const prometheus::ClientMetric& metric) {
  Labels labels;
  for (const prometheus::ClientMetric::Label& label : metric.label) {
    labels[label.name] = label.value;
  }
  return labels;
}

std::vector<std::string> ValuesOf(const prometheus::ClientMetric& metric) {
  std::vector<std::string> values;
  for (const prometheus::ClientMetric::Label& label : metric.label) {
    values.push_back(label.value);
  }
  return values;
}

// The family `name` and its series with `label_values`, or nullopt.
std::optional<std::pair<prometheus::MetricType, prometheus::ClientMetric>>
SeriesByValues(const MetricsRegistry& registry, const std::string& name,
               const std::vector<std::string>& label_values) {
  const std::vector<prometheus::MetricFamily> families = registry.Collect();
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return std::nullopt;
  for (const prometheus::ClientMetric& metric : family->metric) {
    if (ValuesOf(metric) == label_values) {
      return std::make_pair(family->type, metric);
    }
  }
  return std::nullopt;
}

}  // namespace

const prometheus::MetricFamily* FindFamily(
    const std::vector<prometheus::MetricFamily>& families,
    const std::string& name) {
  for (const prometheus::MetricFamily& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

const prometheus::ClientMetric* FindSeries(
    const prometheus::MetricFamily& family, const Labels& labels) {
  for (const prometheus::ClientMetric& metric : family.metric) {
    if (LabelsOf(metric) == labels) return &metric;
  }
  return nullptr;
}

std::optional<double> Value(const MetricsRegistry& registry,
                            const std::string& name, const Labels& labels) {
  const std::vector<prometheus::MetricFamily> families = registry.Collect();
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return std::nullopt;
  const prometheus::ClientMetric* series = FindSeries(*family, labels);
  if (series == nullptr) return std::nullopt;
  return family->type == prometheus::MetricType::Counter ? series->counter.value
                                                         : series->gauge.value;
}

std::optional<uint64_t> HistogramCount(const MetricsRegistry& registry,
                                       const std::string& name,
                                       const Labels& labels) {
  const std::vector<prometheus::MetricFamily> families = registry.Collect();
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return std::nullopt;
  const prometheus::ClientMetric* series = FindSeries(*family, labels);
  if (series == nullptr) return std::nullopt;
  return series->histogram.sample_count;
}

std::optional<double> Read(const MetricsRegistry& registry,
                           const std::string& name,
                           const std::vector<std::string>& label_values) {
  auto series = SeriesByValues(registry, name, label_values);
  if (!series.has_value()) return std::nullopt;
  switch (series->first) {
    case prometheus::MetricType::Counter:
      return series->second.counter.value;
    case prometheus::MetricType::Histogram:
      return static_cast<double>(series->second.histogram.sample_count);
    default:
      return series->second.gauge.value;
  }
}

std::optional<double> HistogramSum(
    const MetricsRegistry& registry, const std::string& name,
    const std::vector<std::string>& label_values) {
  auto series = SeriesByValues(registry, name, label_values);
  if (!series.has_value() ||
      series->first != prometheus::MetricType::Histogram) {
    return std::nullopt;
  }
  return series->second.histogram.sample_sum;
}

std::vector<Labels> SeriesLabels(const MetricsRegistry& registry,
                                 const std::string& name) {
  const std::vector<prometheus::MetricFamily> families = registry.Collect();
  const prometheus::MetricFamily* family = FindFamily(families, name);
  std::vector<Labels> labels;
  if (family == nullptr) return labels;
  for (const prometheus::ClientMetric& metric : family->metric) {
    labels.push_back(LabelsOf(metric));
  }
  return labels;
}

}  // namespace fapo::metrics::testing
