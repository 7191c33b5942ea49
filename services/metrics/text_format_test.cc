#include "services/metrics/text_format.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(FormatSampleValueTest, IntegersHaveNoExponentOrDecimalPoint) {
  EXPECT_EQ(FormatSampleValue(0), "0");
  EXPECT_EQ(FormatSampleValue(-0.0), "0");
  EXPECT_EQ(FormatSampleValue(1), "1");
  EXPECT_EQ(FormatSampleValue(-1), "-1");
  EXPECT_EQ(FormatSampleValue(42), "42");
  EXPECT_EQ(FormatSampleValue(1e6), "1000000");  // Go would print 1e+06
  EXPECT_EQ(FormatSampleValue(-123456789012.0), "-123456789012");
  EXPECT_EQ(FormatSampleValue(9007199254740991.0), "9007199254740991");
}

TEST(FormatSampleValueTest, SpecialValuesAreSpelledAsPrometheusExpects) {
  EXPECT_EQ(FormatSampleValue(kInf), "+Inf");
  EXPECT_EQ(FormatSampleValue(-kInf), "-Inf");
  EXPECT_EQ(FormatSampleValue(std::nan("")), "NaN");
}

TEST(FormatSampleValueTest, FractionsUseTheShortestRoundTripForm) {
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(0.1), "0.1");
  EXPECT_EQ(FormatSampleValue(-3.75), "-3.75");
  EXPECT_EQ(FormatSampleValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatSampleValue(1e-9), "1e-09");
  EXPECT_EQ(FormatSampleValue(1.5e300), "1.5e+300");
  EXPECT_EQ(FormatSampleValue(1e20), "1e+20");  // beyond 2^53
}

TEST(FormatSampleValueTest, EveryFiniteValueRoundTrips) {
  for (double value : {0.1, 1.0 / 3, 2.0 / 3, 1e-300, 123.456, 6.02214076e23,
                       std::nextafter(1.0, 2.0), 4.9e-324}) {
    const std::string text = FormatSampleValue(value);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), value) << text;
  }
}

TEST(EscapingTest, HelpEscapesBackslashAndNewlineButNotQuotes) {
  EXPECT_EQ(EscapeHelp("plain"), "plain");
  EXPECT_EQ(EscapeHelp("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
}

TEST(EscapingTest, LabelValueEscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\nc \"q\""), "a\\\\b\\nc \\\"q\\\"");
  EXPECT_EQ(EscapeLabelValue("tab\tstays, caf\xc3\xa9 too"),
            "tab\tstays, caf\xc3\xa9 too");
}

TEST(RenderTextFormatTest, EmptyInputRendersNothing) {
  EXPECT_EQ(RenderTextFormat({}), "");
}

TEST(RenderTextFormatTest, FamiliesWithoutMetricsAreSkipped) {
  FamilySnapshot family;
  family.name = "fapo_unused";
  family.help = "Never set.";
  family.type = MetricType::kGauge;
  family.label_names = {"worker"};
  EXPECT_EQ(RenderTextFormat({family}), "");
}

TEST(RenderTextFormatTest, RendersEveryKindExactly) {
  FamilySnapshot counter;
  counter.name = "fapo_requests_total";
  counter.help = "Requests by outcome.\nSecond line with a \\ backslash.";
  counter.type = MetricType::kCounter;
  counter.label_names = {"outcome", "path"};
  counter.metrics.push_back({{"ok", "/a"}, 3, {}});
  counter.metrics.push_back({{"bad \"x\"", "C:\\dir\nnext"}, 0.5, {}});

  FamilySnapshot gauge;
  gauge.name = "fapo_temperature";
  gauge.help = "A gauge without labels.";
  gauge.type = MetricType::kGauge;
  gauge.metrics.push_back({{}, -kInf, {}});

  FamilySnapshot histogram;
  histogram.name = "fapo_latency_seconds";
  histogram.help = "Latency.";
  histogram.type = MetricType::kHistogram;
  histogram.label_names = {"method"};
  MetricSnapshot get;
  get.label_values = {"get"};
  get.histogram.bucket_bounds = {0.1, 1};
  get.histogram.cumulative_counts = {1, 3, 4};
  get.histogram.sum = 12.5;
  get.histogram.count = 4;
  histogram.metrics.push_back(get);

  FamilySnapshot unlabelled_histogram;
  unlabelled_histogram.name = "fapo_size_bytes";
  unlabelled_histogram.help = "Only the +Inf bucket.";
  unlabelled_histogram.type = MetricType::kHistogram;
  MetricSnapshot sizes;
  sizes.histogram.cumulative_counts = {2};
  sizes.histogram.sum = 2048;
  sizes.histogram.count = 2;
  unlabelled_histogram.metrics.push_back(sizes);

  EXPECT_EQ(
      RenderTextFormat({counter, gauge, histogram, unlabelled_histogram}),
      "# HELP fapo_requests_total Requests by outcome.\\nSecond line with a "
      "\\\\ backslash.\n"
      "# TYPE fapo_requests_total counter\n"
      "fapo_requests_total{outcome=\"ok\",path=\"/a\"} 3\n"
      "fapo_requests_total{outcome=\"bad \\\"x\\\"\",path=\"C:\\\\dir\\nnext\"}"
      " 0.5\n"
      "# HELP fapo_temperature A gauge without labels.\n"
      "# TYPE fapo_temperature gauge\n"
      "fapo_temperature -Inf\n"
      "# HELP fapo_latency_seconds Latency.\n"
      "# TYPE fapo_latency_seconds histogram\n"
      "fapo_latency_seconds_bucket{method=\"get\",le=\"0.1\"} 1\n"
      "fapo_latency_seconds_bucket{method=\"get\",le=\"1\"} 3\n"
      "fapo_latency_seconds_bucket{method=\"get\",le=\"+Inf\"} 4\n"
      "fapo_latency_seconds_sum{method=\"get\"} 12.5\n"
      "fapo_latency_seconds_count{method=\"get\"} 4\n"
      "# HELP fapo_size_bytes Only the +Inf bucket.\n"
      "# TYPE fapo_size_bytes histogram\n"
      "fapo_size_bytes_bucket{le=\"+Inf\"} 2\n"
      "fapo_size_bytes_sum 2048\n"
      "fapo_size_bytes_count 2\n");
}

TEST(RenderTextFormatTest, KeepsTheGivenOrder) {
  FamilySnapshot b{"fapo_b", "B.", MetricType::kGauge, {}, {{{}, 1, {}}}};
  FamilySnapshot a{"fapo_a", "A.", MetricType::kGauge, {}, {{{}, 2, {}}}};
  EXPECT_EQ(RenderTextFormat({b, a}),
            "# HELP fapo_b B.\n# TYPE fapo_b gauge\nfapo_b 1\n"
            "# HELP fapo_a A.\n# TYPE fapo_a gauge\nfapo_a 2\n");
}

}  // namespace
}  // namespace fapo::metrics
