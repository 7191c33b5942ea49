#include "services/metrics/metric_names.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::metrics {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

TEST(ValidateMetricNameTest, AcceptsPrometheusNames) {
  for (const char* name :
       {"a", "_x", ":x", "fapo_queue_depth", "a:b_c9", "Z"}) {
    EXPECT_THAT(ValidateMetricName(name), IsOk()) << name;
  }
}

TEST(ValidateMetricNameTest, RejectsOthersNamingTheCharacter) {
  EXPECT_THAT(ValidateMetricName(""), StatusIs(kInvalid, HasSubstr("empty")));
  EXPECT_THAT(ValidateMetricName("9lives"),
              StatusIs(kInvalid, HasSubstr("'9' at position 0")));
  EXPECT_THAT(ValidateMetricName("fapo-queue"),
              StatusIs(kInvalid, HasSubstr("'-' at position 4")));
  EXPECT_THAT(ValidateMetricName("fapo queue"),
              StatusIs(kInvalid, HasSubstr("' ' at position 4")));
  EXPECT_THAT(ValidateMetricName("caf\xc3\xa9"),
              StatusIs(kInvalid, HasSubstr("byte 0xc3 at position 3")));
}

TEST(ValidateLabelNameTest, AcceptsPrometheusLabelNames) {
  for (const char* name : {"state", "_x", "a9", "le", "Worker_ID"}) {
    EXPECT_THAT(ValidateLabelName(name), IsOk()) << name;
  }
}

TEST(ValidateLabelNameTest, RejectsColonsDigitsFirstAndReservedPrefix) {
  EXPECT_THAT(ValidateLabelName(""), StatusIs(kInvalid));
  EXPECT_THAT(ValidateLabelName("a:b"), StatusIs(kInvalid, HasSubstr("':'")));
  EXPECT_THAT(ValidateLabelName("1a"), StatusIs(kInvalid));
  EXPECT_THAT(ValidateLabelName("__name__"),
              StatusIs(kInvalid, HasSubstr("reserves")));
  EXPECT_THAT(ValidateLabelName("_single_ok"), IsOk());
}

TEST(IsValidUtf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii \n\"\\"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9"));           // é
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac"));          // €
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));      // U+1F600
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));  // NUL is valid UTF-8
}

TEST(IsValidUtf8Test, RejectsMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation byte
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc3("));             // bad continuation
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(ValidateFamilyDefinitionTest, AcceptsProjectConformingDefinitions) {
  EXPECT_THAT(
      ValidateFamilyDefinition(MetricType::kCounter, "fapo_trajectories_total",
                               "Help.", {"state"}, "fapo_"),
      IsOk());
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_queue_depth",
                                       "Help.", {}, "fapo_"),
              IsOk());
  EXPECT_THAT(
      ValidateFamilyDefinition(MetricType::kHistogram, "fapo_latency_seconds",
                               "Help.", {"method", "outcome"}, "fapo_"),
      IsOk());
  // An empty prefix turns the project rule off.
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "other_gauge",
                                       "Help.", {}, ""),
              IsOk());
}

TEST(ValidateFamilyDefinitionTest, RejectsEachBrokenRuleWithAClearMessage) {
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "queue_depth",
                                       "Help.", {}, "fapo_"),
              StatusIs(kInvalid, AllOf(HasSubstr("\"queue_depth\""),
                                       HasSubstr("start with \"fapo_\""))));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_", "Help.", {},
                                       "fapo_"),
              StatusIs(kInvalid, HasSubstr("start with")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kCounter, "fapo_requests",
                                       "Help.", {}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("end in \"_total\"")));
  for (const char* name :
       {"fapo_queue_count", "fapo_latency_sum", "fapo_latency_bucket"}) {
    EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, name, "Help.", {},
                                         "fapo_"),
                StatusIs(kInvalid, HasSubstr("must not end in")))
        << name;
  }
  EXPECT_THAT(
      ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "", {}, "fapo_"),
      StatusIs(kInvalid, HasSubstr("help text must not be empty")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "\xff", {},
                                       "fapo_"),
              StatusIs(kInvalid, HasSubstr("UTF-8")));
  // prometheus-cpp writes HELP unescaped: either would break the line.
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x",
                                       "Two\nlines.", {}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("newline")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "C:\\path",
                                       {}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("backslash")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo-x", "Help.",
                                       {}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("'-'")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "Help.",
                                       {"bad-label"}, "fapo_"),
              StatusIs(kInvalid, AllOf(HasSubstr("\"fapo_x\""),
                                       HasSubstr("\"bad-label\""))));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "Help.",
                                       {"__reserved"}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("reserves")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "Help.",
                                       {"a", "b", "a"}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("\"a\" is listed twice")));
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kHistogram, "fapo_x_seconds",
                                       "Help.", {"le"}, "fapo_"),
              StatusIs(kInvalid, HasSubstr("\"le\"")));
  // "le" is only reserved on histograms.
  EXPECT_THAT(ValidateFamilyDefinition(MetricType::kGauge, "fapo_x", "Help.",
                                       {"le"}, "fapo_"),
              IsOk());
}

TEST(ValidateBucketBoundsTest, AcceptsStrictlyIncreasingFiniteBounds) {
  EXPECT_THAT(ValidateBucketBounds({}), IsOk());
  EXPECT_THAT(ValidateBucketBounds({1}), IsOk());
  EXPECT_THAT(ValidateBucketBounds({-1, 0, 0.5, 1e9}), IsOk());
}

TEST(ValidateBucketBoundsTest, RejectsUnorderedDuplicateAndNonFinite) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateBucketBounds({1, 1}),
              StatusIs(kInvalid, HasSubstr("strictly increasing")));
  EXPECT_THAT(ValidateBucketBounds({2, 1}),
              StatusIs(kInvalid, HasSubstr("strictly increasing")));
  EXPECT_THAT(ValidateBucketBounds({1, kInf}),
              StatusIs(kInvalid, HasSubstr("finite")));
  EXPECT_THAT(ValidateBucketBounds({-kInf, 1}),
              StatusIs(kInvalid, HasSubstr("finite")));
  EXPECT_THAT(ValidateBucketBounds({1, std::nan("")}),
              StatusIs(kInvalid, HasSubstr("finite")));
}

}  // namespace
}  // namespace fapo::metrics
