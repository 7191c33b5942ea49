#include "services/rpc/channel.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"

namespace fapo::rpc {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ChannelTest, RetryableMethodsComeFromTheProtoIdempotencyLevels) {
  EXPECT_THAT(
      RetryableMethods(),
      ElementsAre(
          "fapo.v1.GenRM/Score", "fapo.v1.Rollout/UpdateWeights",
          "fapo.v1.Scheduler/GetJobStatus", "fapo.v1.Scheduler/Heartbeat",
          "fapo.v1.Scheduler/RegisterWorker", "fapo.v1.Scheduler/StopJob",
          "fapo.v1.Trainer/GetResumeState", "fapo.v1.Trainer/GetWeights",
          "fapo.v1.Trainer/SaveCheckpoint", "fapo.v1.Trainer/TrainStep",
          "grpc.health.v1.Health/Check"));
}

TEST(ChannelTest, ServiceConfigIsValidJsonWithTheRetryPolicy) {
  RetryOptions retry;
  retry.max_attempts = 5;
  retry.initial_backoff = absl::Milliseconds(50);
  auto config = nlohmann::json::parse(RetryServiceConfigJson(retry));
  ASSERT_EQ(config["methodConfig"].size(), 1u);
  const auto& method_config = config["methodConfig"][0];
  EXPECT_EQ(method_config["name"].size(), RetryableMethods().size());
  EXPECT_EQ(method_config["retryPolicy"]["maxAttempts"], 5);
  EXPECT_EQ(method_config["retryPolicy"]["initialBackoff"], "0.05s");
  EXPECT_EQ(method_config["retryPolicy"]["retryableStatusCodes"][0],
            "UNAVAILABLE");
  for (const auto& name : method_config["name"]) {
    EXPECT_NE(name["method"], "Generate") << "Generate is not idempotent";
  }
}

TEST(ChannelTest, TokenWithoutTlsIsRefused) {
  ChannelOptions options;
  options.security.token_file = "/dev/null";
  EXPECT_THAT(
      MakeChannel("127.0.0.1:1", options),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("plaintext")));
}

TEST(ChannelTest, MissingCaFileIsNamed) {
  ChannelOptions options;
  options.security.tls = true;
  options.security.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(MakeChannel("127.0.0.1:1", options),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("security.tls.ca_file: cannot read "
                                 "'/nonexistent/ca.pem'")));
}

TEST(ChannelTest, NewContextSetsADeadline) {
  auto context = NewContext(absl::Seconds(3));
  auto remaining = context->deadline() - std::chrono::system_clock::now();
  EXPECT_GT(remaining, std::chrono::seconds(2));
  EXPECT_LE(remaining, std::chrono::seconds(3));
}

}  // namespace
}  // namespace fapo::rpc
