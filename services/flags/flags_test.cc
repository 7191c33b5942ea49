#include "services/flags/flags.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::flags {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Parsed {
  std::string config;
  int64_t port = 0;
  bool verbose = false;
  std::vector<std::string> overrides;
  std::string job;
  std::string extra;
};

class FlagSetTest : public ::testing::Test {
 protected:
  FlagSetTest() : flags_("fapo-test", "A test program.") {
    flags_.String("config", &parsed_.config, "PATH", "the job spec");
    flags_.Int("port", &parsed_.port, "gRPC port");
    flags_.Bool("verbose", &parsed_.verbose, "say more");
    flags_.Repeated("set", &parsed_.overrides, "KEY=VALUE", "override a key");
    flags_.Positional("JOB", &parsed_.job, "the job");
    flags_.Positional("EXTRA", &parsed_.extra, "optional", /*required=*/false);
  }
  absl::Status Parse(std::vector<std::string> args) {
    return flags_.Parse(args);
  }
  FlagSet flags_;
  Parsed parsed_;
};

TEST_F(FlagSetTest, ParsesBothSpellingsAndPositionals) {
  ASSERT_THAT(Parse({"--config", "a.yaml", "--port=50051", "job1", "--verbose",
                     "--set", "a.b=1", "--set=c.d=x=y"}),
              IsOk());
  EXPECT_EQ(parsed_.config, "a.yaml");
  EXPECT_EQ(parsed_.port, 50051);
  EXPECT_TRUE(parsed_.verbose);
  EXPECT_THAT(parsed_.overrides, ElementsAre("a.b=1", "c.d=x=y"));
  EXPECT_EQ(parsed_.job, "job1");
  EXPECT_EQ(parsed_.extra, "");
  EXPECT_FALSE(flags_.help_requested());
}

TEST_F(FlagSetTest, BoolTakesExplicitValues) {
  ASSERT_THAT(Parse({"--verbose=true", "j"}), IsOk());
  EXPECT_TRUE(parsed_.verbose);
  ASSERT_THAT(Parse({"--verbose=false", "j"}), IsOk());
  EXPECT_FALSE(parsed_.verbose);
  EXPECT_THAT(Parse({"--verbose=yes", "j"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--verbose: expected true or false")));
}

TEST_F(FlagSetTest, ErrorsNameTheFlag) {
  EXPECT_THAT(Parse({"--bogus", "j"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown flag '--bogus'")));
  EXPECT_THAT(Parse({"j", "--port"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--port needs a value")));
  EXPECT_THAT(Parse({"--port", "12x", "j"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--port: expected an integer, got '12x'")));
  EXPECT_THAT(Parse({"--port", "99999999999999999999", "j"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({}), StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("missing argument JOB")));
  EXPECT_THAT(Parse({"a", "b", "c"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unexpected argument 'c'")));
}

TEST_F(FlagSetTest, DoubleDashEndsFlags) {
  ASSERT_THAT(Parse({"--", "--not-a-flag"}), IsOk());
  EXPECT_EQ(parsed_.job, "--not-a-flag");
}

TEST_F(FlagSetTest, HelpStopsParsingAndUsageListsEverything) {
  ASSERT_THAT(Parse({"--bogus-before-help-is-not-reached", "--help"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(Parse({"--help", "--bogus"}), IsOk());
  EXPECT_TRUE(flags_.help_requested());
  std::string usage = flags_.Usage();
  EXPECT_THAT(usage, HasSubstr("Usage: fapo-test [flags] JOB [EXTRA]"));
  EXPECT_THAT(usage, HasSubstr("A test program."));
  EXPECT_THAT(usage, HasSubstr("--config PATH\n      the job spec"));
  EXPECT_THAT(usage, HasSubstr("--set KEY=VALUE\n      override a key "
                               "(repeatable)"));
  EXPECT_THAT(usage, HasSubstr("--verbose\n"));
  EXPECT_THAT(usage, HasSubstr("--port N\n      gRPC port (default: 0)"));
}

}  // namespace
}  // namespace fapo::flags
