#include "services/process/child_process.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/status/status_matchers.h"

namespace fapo::process {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  return absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/fapo-child-", getpid(),
                      "-", name);
}

TEST(ChildProcessTest, LogsOutputAndReportsTheExitCode) {
  const std::string log = TempPath("exit.log");
  unlink(log.c_str());
  SpawnOptions options;
  options.log_path = log;
  auto child = ChildProcess::Start(
      {"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"},
      options);
  ASSERT_THAT(child, IsOk());
  EXPECT_THAT((*child)->Wait(absl::Seconds(10)), IsOkAndHolds(3));
  EXPECT_FALSE((*child)->Running());
  EXPECT_EQ((*child)->exit_code(), 3);
  absl::StatusOr<std::string> text = files::ReadFile(log);
  ASSERT_THAT(text, IsOk());
  EXPECT_THAT(*text, HasSubstr("to-stdout"));
  EXPECT_THAT(*text, HasSubstr("to-stderr"));
  unlink(log.c_str());
}

TEST(ChildProcessTest, StopTerminatesAndReapsARunningChild) {
  auto child = ChildProcess::Start({"sleep", "60"});
  ASSERT_THAT(child, IsOk());
  EXPECT_TRUE((*child)->Running());
  EXPECT_EQ((*child)->exit_code(), std::nullopt);
  (*child)->Stop(absl::Seconds(5));
  EXPECT_FALSE((*child)->Running());
  EXPECT_EQ((*child)->exit_code(), 128 + SIGTERM);
  EXPECT_EQ(DescribeExit(*(*child)->exit_code()), "was killed by SIGTERM");
}

TEST(ChildProcessTest, WaitTimesOutOnARunningChild) {
  auto child = ChildProcess::Start({"sleep", "60"});
  ASSERT_THAT(child, IsOk());
  EXPECT_THAT((*child)->Wait(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(ChildProcessTest, OwnProcessGroupKeepsTheTerminalsSignalsAway) {
  SpawnOptions options;
  options.own_process_group = true;
  auto child = ChildProcess::Start({"sleep", "60"}, options);
  ASSERT_THAT(child, IsOk());
  // setpgid runs in the child right after fork: poll briefly.
  pid_t group = -1;
  for (int i = 0; i < 200 && group != (*child)->pid(); ++i) {
    group = getpgid((*child)->pid());
    usleep(5000);
  }
  EXPECT_EQ(group, (*child)->pid());
  EXPECT_NE(group, getpgrp());
}

TEST(ChildProcessTest, AMissingProgramIsNotFound) {
  EXPECT_THAT(ChildProcess::Start({"/nonexistent/fapo-nothing"}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/fapo-nothing")));
  EXPECT_THAT(ChildProcess::Start({"fapo-no-such-program-on-path"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not on PATH")));
  EXPECT_THAT(ChildProcess::Start({}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ChildProcessTest, AnUnwritableLogIsNamed) {
  SpawnOptions options;
  options.log_path = "/nonexistent/dir/x.log";
  EXPECT_THAT(ChildProcess::Start({"/bin/true"}, options),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("/nonexistent/dir/x.log")));
}

TEST(ChildProcessTest, DescribeExitWordsCodesAndSignals) {
  EXPECT_EQ(DescribeExit(0), "exited cleanly");
  EXPECT_EQ(DescribeExit(2), "exited with code 2");
  EXPECT_EQ(DescribeExit(128 + SIGKILL), "was killed by SIGKILL");
}

TEST(ChildProcessTest, FreeLoopbackPortAndExecutableDirectory) {
  absl::StatusOr<int> port = FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  EXPECT_GT(*port, 0);
  EXPECT_LT(*port, 65536);
  absl::StatusOr<std::string> dir = ExecutableDirectory();
  ASSERT_THAT(dir, IsOk());
  EXPECT_EQ(access(absl::StrCat(*dir, "/child_process_test").c_str(), X_OK),
            0)
      << *dir;
}

}  // namespace
}  // namespace fapo::process
