#include "tests/support/subprocess.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::testing {
namespace {

using ::testing::HasSubstr;

TEST(RunCommandTest, CapturesStdoutStderrAndExitCode) {
  ASSERT_OK_AND_ASSIGN(
      CommandResult result,
      RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"},
                 absl::Seconds(10)));
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_text, "out\n");
  EXPECT_EQ(result.stderr_text, "err\n");
}

TEST(RunCommandTest, FeedsLargeStdinWithoutDeadlock) {
  std::string input(1 << 20, 'x');  // larger than a pipe buffer both ways
  ASSERT_OK_AND_ASSIGN(CommandResult result,
                       RunCommand({"cat"}, absl::Seconds(20), input));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stdout_text.size(), input.size());
}

TEST(RunCommandTest, KillsWhatOutlivesTheTimeout) {
  absl::Time start = absl::Now();
  EXPECT_THAT(RunCommand({"sleep", "30"}, absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(RunCommandTest, MissingProgramIsNotFound) {
  EXPECT_THAT(RunCommand({"fapo-no-such-program"}, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not on PATH")));
}

TEST(SubprocessTest, LogsOutputAndReportsExitCode) {
  TempDir dir;
  ASSERT_OK(dir.status());
  const std::string log = dir.path() + "/child.log";
  ASSERT_OK_AND_ASSIGN(
      auto child, Subprocess::Start({"sh", "-c", "echo hello; exit 7"}, log));
  EXPECT_THAT(child->Wait(absl::Seconds(10)), IsOkAndHolds(7));
  EXPECT_EQ(ReadFileOrEmpty(log), "hello\n");
}

TEST(SubprocessTest, StopTerminatesAndSignalsAreReported) {
  ASSERT_OK_AND_ASSIGN(auto child, Subprocess::Start({"sleep", "30"}));
  EXPECT_TRUE(child->Running());
  EXPECT_THAT(child->Wait(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  child->Stop(absl::Seconds(5));
  EXPECT_FALSE(child->Running());
  EXPECT_THAT(child->Wait(absl::ZeroDuration()), IsOkAndHolds(128 + SIGTERM));
}

TEST(SubprocessTest, ChildStartsWithNoSignalBlocked) {
  // Servers block SIGTERM for sigwait; a child must not inherit that.
  sigset_t blocked, previous;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &blocked, &previous);
  ASSERT_OK_AND_ASSIGN(auto child, Subprocess::Start({"sleep", "30"}));
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  child->Signal(SIGTERM);
  EXPECT_THAT(child->Wait(absl::Seconds(5)), IsOkAndHolds(128 + SIGTERM));
}

TEST(TempDirTest, IsRemovedWithItsContents) {
  std::string path;
  {
    TempDir dir("fapo-tempdir-test-");
    ASSERT_OK(dir.status());
    path = dir.path();
    ASSERT_TRUE(std::filesystem::is_directory(path));
    std::filesystem::create_directories(path + "/a/b");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(FreeLoopbackPortTest, GivesAUsablePort) {
  ASSERT_OK_AND_ASSIGN(int port, FreeLoopbackPort());
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace fapo::testing
