#include "tests/support/service_process.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::testing {
namespace {

using ::testing::HasSubstr;

TEST(StartServiceTest, AProcessThatDiesFailsAtOnceWithItsLog) {
  TempDir dir("fapo-service-process-");
  const absl::Time start = absl::Now();
  // sh -c: $0 is the message; the appended flags are ignored.
  auto started = StartService({"sh", "-c", "echo \"$0\" >&2; exit 3",
                               "cannot bind the port"},
                              dir.path(), "broken", absl::Seconds(30));
  EXPECT_THAT(started, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("cannot bind the port")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(StartServiceTest, ReadsTheReadyFile) {
  TempDir dir("fapo-service-process-");
  // Writes {"grpc_address": "x"} to the --ready-file argument ($2), then
  // lives on.
  auto started = StartService(
      {"sh", "-c", "echo '{\"grpc_address\": \"x\"}' > \"$2\"; sleep 30", "sh"},
      dir.path(), "fine", absl::Seconds(30));
  ASSERT_THAT(started, IsOk());
  EXPECT_EQ(started->ready["grpc_address"], "x");
  EXPECT_TRUE(started->process->Running());
}

TEST(StartServiceTest, NotReadyInTimeIsStopped) {
  TempDir dir("fapo-service-process-");
  auto started = StartService({"sh", "-c", "sleep 30"}, dir.path(), "slow",
                              absl::Milliseconds(300));
  EXPECT_THAT(started, StatusIs(absl::StatusCode::kDeadlineExceeded,
                                HasSubstr("slow not ready")));
}

}  // namespace
}  // namespace fapo::testing
