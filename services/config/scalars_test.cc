#include "services/config/scalars.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::config::internal {
namespace {

TEST(ParseYamlIntTest, AcceptsDecimalIntegersOnly) {
  int64_t value = 0;
  EXPECT_EQ(ParseYamlInt("42", &value), NumberParse::kOk);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(ParseYamlInt("-7", &value), NumberParse::kOk);
  EXPECT_EQ(value, -7);
  EXPECT_EQ(ParseYamlInt("+007", &value), NumberParse::kOk);
  EXPECT_EQ(value, 7);
  for (const char* text : {"", "-", "1.0", "1e3", "0x10", " 1", "1 ", "1_000",
                           "one", "true", ".5"}) {
    EXPECT_EQ(ParseYamlInt(text, &value), NumberParse::kMalformed) << text;
  }
}

TEST(ParseYamlIntTest, ReportsOverflowInsteadOfWrapping) {
  int64_t value = 5;
  EXPECT_EQ(ParseYamlInt("9223372036854775807", &value), NumberParse::kOk);
  EXPECT_EQ(value, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseYamlInt("-9223372036854775808", &value), NumberParse::kOk);
  EXPECT_EQ(value, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ParseYamlInt("9223372036854775808", &value),
            NumberParse::kOutOfRange);
  EXPECT_EQ(ParseYamlInt("99999999999999999999", &value),
            NumberParse::kOutOfRange);
  EXPECT_EQ(ParseYamlInt("-99999999999999999999", &value),
            NumberParse::kOutOfRange);
}

TEST(ParseYamlFloatTest, AcceptsYaml12Floats) {
  double value = 0;
  const std::vector<std::pair<const char*, double>> cases = {
      {"1", 1.0},  {"-2.5", -2.5}, {"+0.25", 0.25}, {".5", 0.5},
      {"5.", 5.0}, {"1e-6", 1e-6}, {"2E+3", 2e3},   {"1.5e3", 1500.0},
      {"0", 0.0},  {"-0.0", -0.0}};
  for (const auto& [text, expected] : cases) {
    ASSERT_EQ(ParseYamlFloat(text, &value), NumberParse::kOk) << text;
    EXPECT_EQ(value, expected) << text;
  }
  EXPECT_EQ(ParseYamlFloat(".inf", &value), NumberParse::kOk);
  EXPECT_TRUE(std::isinf(value) && value > 0);
  EXPECT_EQ(ParseYamlFloat("-.Inf", &value), NumberParse::kOk);
  EXPECT_TRUE(std::isinf(value) && value < 0);
  EXPECT_EQ(ParseYamlFloat(".NaN", &value), NumberParse::kOk);
  EXPECT_TRUE(std::isnan(value));
}

TEST(ParseYamlFloatTest, RejectsNonYamlSpellings) {
  double value = 0;
  for (const char* text : {"", ".", "e3", "1e", "1e+", "0x10", "inf", "nan",
                           "1,5", " 1", "1.0.0", "hot", "-.nan", "1_0"}) {
    EXPECT_EQ(ParseYamlFloat(text, &value), NumberParse::kMalformed) << text;
  }
}

TEST(ParseYamlFloatTest, ReportsValuesBeyondADouble) {
  double value = 0;
  EXPECT_EQ(ParseYamlFloat("1e400", &value), NumberParse::kOutOfRange);
  EXPECT_EQ(ParseYamlFloat("-1e400", &value), NumberParse::kOutOfRange);
  EXPECT_EQ(ParseYamlFloat("1e-400", &value), NumberParse::kOutOfRange);
}

TEST(FormatYamlFloatTest, ReadsWellAndAlwaysLooksLikeAFloat) {
  EXPECT_EQ(FormatYamlFloat(1.0), "1.0");
  EXPECT_EQ(FormatYamlFloat(0.0), "0.0");
  EXPECT_EQ(FormatYamlFloat(100.0), "100.0");
  EXPECT_EQ(FormatYamlFloat(0.28), "0.28");
  EXPECT_EQ(FormatYamlFloat(0.1), "0.1");
  EXPECT_EQ(FormatYamlFloat(1e-4), "0.0001");
  EXPECT_EQ(FormatYamlFloat(2e-5), "2.0e-05");
  EXPECT_EQ(FormatYamlFloat(1e-6), "1.0e-06");
  EXPECT_EQ(FormatYamlFloat(3.6e6), "3600000.0");
  EXPECT_EQ(FormatYamlFloat(1e20), "1.0e+20");
  EXPECT_EQ(FormatYamlFloat(-2.5), "-2.5");
  EXPECT_EQ(FormatYamlFloat(std::numeric_limits<double>::infinity()), ".inf");
  EXPECT_EQ(FormatYamlFloat(std::nan("")), ".nan");
}

TEST(FormatYamlFloatTest, RoundTripsExactly) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mantissa(-10.0, 10.0);
  std::uniform_int_distribution<int> exponent(-320, 300);
  std::vector<double> values = {1.0 / 3.0,
                                2.0 / 3.0,
                                0.1 + 0.2,
                                std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::min(),
                                std::numeric_limits<double>::denorm_min(),
                                123456789.123456789,
                                1e-4 * (1.0 / 3.0)};
  for (int i = 0; i < 2000; ++i) {
    values.push_back(mantissa(rng) * std::pow(10.0, exponent(rng)));
  }
  for (double value : values) {
    if (!std::isfinite(value)) continue;
    std::string text = FormatYamlFloat(value);
    double back = 0;
    ASSERT_EQ(ParseYamlFloat(text, &back), NumberParse::kOk) << text;
    EXPECT_EQ(back, value) << text;
    EXPECT_NE(text.find('.'), std::string::npos) << text;
  }
}

TEST(FormatNumberTest, IntegralValuesHaveNoDecimals) {
  EXPECT_EQ(FormatNumber(10.0), "10");
  EXPECT_EQ(FormatNumber(3.6e6), "3600000");
  EXPECT_EQ(FormatNumber(0.0), "0");
  EXPECT_EQ(FormatNumber(12.5), "12.5");
  EXPECT_EQ(FormatNumber(1e-6), "1e-06");
  EXPECT_EQ(FormatNumber(std::nan("")), "nan");
}

TEST(FindInvalidUtf8Test, AcceptsUtf8AndFindsTheFirstBadByte) {
  constexpr size_t kNone = absl::string_view::npos;
  EXPECT_EQ(FindInvalidUtf8(""), kNone);
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), kNone);
  EXPECT_EQ(FindInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            kNone);
  EXPECT_EQ(FindInvalidUtf8(absl::string_view("nul\0inside", 11)), kNone);
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);            // never valid
  EXPECT_EQ(FindInvalidUtf8("a\xc3"), 1u);             // truncated
  EXPECT_EQ(FindInvalidUtf8("a\xc3(b"), 1u);           // bad continuation
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\xaf"), 0u);      // overlong
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);     // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // past U+10FFFF
}

TEST(EditDistanceTest, CountsEditsAndTranspositions) {
  EXPECT_EQ(EditDistance("", ""), 0);
  EXPECT_EQ(EditDistance("abc", ""), 3);
  EXPECT_EQ(EditDistance("temperature", "temperature"), 0);
  EXPECT_EQ(EditDistance("temprature", "temperature"), 1);   // deletion
  EXPECT_EQ(EditDistance("tempreature", "temperature"), 1);  // transposition
  EXPECT_EQ(EditDistance("workrs", "workers"), 1);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
}

TEST(NearestWordTest, PicksTheClosestWithinTheLimit) {
  const std::vector<std::string> keys = {"workers", "group_size", "top_p",
                                         "top_k"};
  EXPECT_EQ(NearestWord("worker", keys, 2), "workers");
  EXPECT_EQ(NearestWord("top_q", keys, 2), "top_p");  // first of two ties
  EXPECT_EQ(NearestWord("groupsize", keys, 2), "group_size");
  EXPECT_EQ(NearestWord("learning_rate", keys, 2), "");
}

}  // namespace
}  // namespace fapo::config::internal
