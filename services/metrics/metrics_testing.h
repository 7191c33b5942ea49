// Test only: values read back from a MetricsRegistry, as a scrape would
// see them.
//
//   EXPECT_EQ(metrics::testing::Value(registry, "fapo_steps_total",
//                                     {{"outcome", "ok"}}), 3);
#ifndef FAPO_SERVICES_METRICS_METRICS_TESTING_H_
#define FAPO_SERVICES_METRICS_METRICS_TESTING_H_

#include <prometheus/metric_family.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "services/metrics/metrics_registry.h"

namespace fapo::metrics::testing {

// The family `name` in `families`, or null.
const prometheus::MetricFamily* FindFamily(
    const std::vector<prometheus::MetricFamily>& families,
    const std::string& name);

// The series of `family` whose labels are exactly `labels`, or null.
const prometheus::ClientMetric* FindSeries(
    const prometheus::MetricFamily& family, const Labels& labels);

// The value of the counter or gauge series name{labels}; nullopt when the
// family or the series is not exported.
std::optional<double> Value(const MetricsRegistry& registry,
                            const std::string& name, const Labels& labels = {});

// The observation count of the histogram series name{labels}; nullopt
// when it is not exported.
std::optional<uint64_t> HistogramCount(const MetricsRegistry& registry,
                                       const std::string& name,
                                       const Labels& labels = {});

// One number per series, addressed by its label values in label-name
// order (the order prometheus-cpp exports labels in: {"genrm", "alive"} is
// {role="genrm", state="alive"}): a counter's or a gauge's value, a
// histogram's observation count. nullopt when the series is not exported.
std::optional<double> Read(const MetricsRegistry& registry,
                           const std::string& name,
                           const std::vector<std::string>& label_values = {});

// A histogram series' sum of observations, addressed as Read does.
std::optional<double> HistogramSum(
    const MetricsRegistry& registry, const std::string& name,
    const std::vector<std::string>& label_values = {});

// The label sets of every series of `name`, each as a Labels map; empty
// when the family is not exported.
std::vector<Labels> SeriesLabels(const MetricsRegistry& registry,
                                 const std::string& name);

}  // namespace fapo::metrics::testing

#endif  // FAPO_SERVICES_METRICS_METRICS_TESTING_H_
