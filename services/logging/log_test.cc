#include "services/logging/log.h"

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::logging {
namespace {

using ::testing::HasSubstr;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetComponent("test-component");
    SetMinSeverity(Severity::kInfo);
    SetSink([this](absl::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetSink(nullptr);
    SetMinSeverity(Severity::kInfo);
  }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, RecordHasTheDocumentedFormat) {
  FAPO_LOG(INFO) << "hello " << 42;
  ASSERT_EQ(lines_.size(), 1u);
  const std::regex format(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z I test-component\[\d+\] )"
      R"(log_test\.cc:\d+\] hello 42\n$)");
  EXPECT_TRUE(std::regex_match(lines_[0], format)) << lines_[0];
}

TEST_F(LogTest, BelowMinimumIsDroppedAndNotEvaluated) {
  int evaluations = 0;
  auto count = [&evaluations] { return ++evaluations; };
  FAPO_LOG(DEBUG) << count();
  EXPECT_TRUE(lines_.empty());
  EXPECT_EQ(evaluations, 0);
  SetMinSeverity(Severity::kDebug);
  FAPO_LOG(DEBUG) << count();
  EXPECT_EQ(lines_.size(), 1u);
  EXPECT_EQ(evaluations, 1);
}

TEST_F(LogTest, NewlinesAreEscapedSoOneRecordIsOneLine) {
  FAPO_LOG(WARNING) << "first\nsecond";
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr(" W test-component"));
  EXPECT_THAT(lines_[0], HasSubstr("first\\nsecond\n"));
  EXPECT_EQ(lines_[0].find('\n'), lines_[0].size() - 1);
}

TEST_F(LogTest, ConcurrentRecordsDoNotInterleave) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 200; ++i)
        FAPO_LOG(INFO) << "thread " << t << " " << i;
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(lines_.size(), 800u);
  for (const std::string& line : lines_) {
    EXPECT_THAT(line, ::testing::MatchesRegex(".*thread [0-3] [0-9]+\n"));
  }
}

TEST(LogSeverityTest, ParsesNamesCaseInsensitively) {
  Severity severity = Severity::kInfo;
  EXPECT_TRUE(ParseSeverity("DEBUG", &severity));
  EXPECT_EQ(severity, Severity::kDebug);
  EXPECT_TRUE(ParseSeverity("warn", &severity));
  EXPECT_EQ(severity, Severity::kWarning);
  EXPECT_FALSE(ParseSeverity("verbose", &severity));
  EXPECT_EQ(severity, Severity::kWarning);
}

TEST(LogDeathTest, FatalAborts) {
  EXPECT_DEATH({ FAPO_LOG(FATAL) << "giving up"; }, "giving up");
}

}  // namespace
}  // namespace fapo::logging
