// Data-parallel fapo-trainer ranks as processes (NOTE [trainer ranks] in
// trainer/comm/rank_group.h): two ranks meet over Gloo on loopback, rank 0
// serves TrainStep for both; a rank whose peer dies fails loudly (a clear
// step error, exit 1) rather than hanging; rank 0 stopping stops rank 1;
// bad rank flags are refused.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fapo/v1/trainer.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rpc/channel.h"
#include "services/status/status_matchers.h"
#include "tests/support/service_process.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::BinaryPath;
using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::SourcePath;
using ::fapo::testing::StartedService;
using ::fapo::testing::TailOfFile;
using ::testing::HasSubstr;

class TrainerRanksTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(dir_.status(), IsOk()); }

  std::vector<std::string> Flags(int rank, int port, int ranks = 2) {
    // clang-format off: one flag and its value a pair.
    return {BinaryPath("fapo-trainer"),
            "--config",
            SourcePath("configs/quickstart.yaml"),
            "--set",
            absl::StrCat("trainer.ranks=", ranks),
            "--set",
            "trainer.micro_batch_size=4",
            "--set",
            "job.output_dir=" + dir_.path() + "/run",
            "--set",
            "metrics.enabled=false",
            "--rank",
            absl::StrCat(rank),
            "--rendezvous",
            absl::StrCat("127.0.0.1:", port),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--drain-timeout-ms",
            "2000"};
    // clang-format on
  }

  // Both ranks, started together (each is ready only once both joined).
  // `keep_alive_ms`: rank 0's --rank-keep-alive-ms.
  void StartRanks(int keep_alive_ms = 2000) {
    absl::StatusOr<int> port = testing::FreeLoopbackPort();
    ASSERT_THAT(port, IsOk());
    std::vector<std::string> rank0 = Flags(0, *port);
    rank0.insert(rank0.end(),
                 {"--rank-keep-alive-ms", absl::StrCat(keep_alive_ms)});
    auto started = testing::StartServices(
        {{"rank-0", rank0}, {"rank-1", Flags(1, *port)}}, dir_.path());
    ASSERT_THAT(started, IsOk());
    ranks_ = *std::move(started);
    auto channel = rpc::MakeChannel(ranks_[0].ready["grpc_address"], {});
    ASSERT_THAT(channel, IsOk());
    stub_ = v1::Trainer::NewStub(*channel);
  }

  // `count` trajectories of the tiny arith policy's tokens; `scale`
  // multiplies their lengths.
  grpc::Status TrainStep(int64_t step, v1::TrainStepResponse* response,
                         int count = 8, int scale = 1,
                         v1::Trainer::Stub* stub = nullptr) {
    v1::TrainStepRequest request;
    request.set_step(step);
    for (int i = 0; i < count; ++i) {
      v1::Trajectory* trajectory =
          request.add_trajectories()->mutable_trajectory();
      trajectory->set_trajectory_id(absl::StrCat("s", step, "-", i));
      for (int j = 0; j < (3 + i % 3) * scale; ++j) {
        trajectory->add_prompt_token_ids(1 + (i + j) % 12);
      }
      for (int j = 0; j < (2 + i % 5) * scale; ++j) {
        trajectory->add_response_token_ids(1 + (i * 3 + j) % 12);
        trajectory->add_response_logprobs(-2.0f);
      }
      request.mutable_trajectories(i)->set_advantage(i % 2 ? 1.0 : -1.0);
    }
    auto context = rpc::NewContext(absl::Seconds(60));
    return (stub != nullptr ? stub : stub_.get())
        ->TrainStep(context.get(), request, response);
  }

  std::string Logs() {
    std::string out;
    for (const StartedService& rank : ranks_) {
      out += absl::StrCat("==== ", rank.log, "\n", TailOfFile(rank.log), "\n");
    }
    return out;
  }

  testing::TempDir dir_{"fapo-trainer-ranks-"};
  std::vector<StartedService> ranks_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(TrainerRanksTest, RankZeroServesStepsAndFailsLoudlyWhenRankOneDies) {
  // Only the step may find rank 1 gone (no keep-alive in between).
  ASSERT_NO_FATAL_FAILURE(StartRanks(/*keep_alive_ms=*/600000));
  for (int step = 1; step <= 2; ++step) {
    v1::TrainStepResponse response;
    grpc::Status status = TrainStep(step, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << Logs();
    EXPECT_EQ(response.policy_version(), step);
    // Global metrics: both ranks' trajectories and tokens.
    EXPECT_EQ(response.metrics().num_trajectories(), 8);
    EXPECT_EQ(response.metrics().num_tokens(), 2 + 3 + 4 + 5 + 6 + 2 + 3 + 4);
  }

  ranks_[1].process->Signal(SIGKILL);
  ASSERT_THAT(ranks_[1].process->Wait(absl::Seconds(10)),
              IsOkAndHolds(128 + SIGKILL));
  const absl::Time start = absl::Now();
  v1::TrainStepResponse response;
  grpc::Status status = TrainStep(3, &response);
  EXPECT_FALSE(status.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_THAT(status.error_message(), HasSubstr("trainer rank 0/2 (gloo)"))
      << Logs();
  EXPECT_THAT(status.error_message(), HasSubstr("restart every rank"));
  // Nothing can train any more: rank 0 exits 1.
  EXPECT_THAT(ranks_[0].process->Wait(absl::Seconds(30)), IsOkAndHolds(1))
      << Logs();
}

TEST_F(TrainerRanksTest, RankOneStopsWhenRankZeroStops) {
  ASSERT_NO_FATAL_FAILURE(StartRanks());
  v1::TrainStepResponse response;
  grpc::Status status = TrainStep(1, &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << Logs();
  ranks_[0].process->Signal(SIGTERM);
  EXPECT_THAT(ranks_[0].process->Wait(absl::Seconds(30)), IsOkAndHolds(0))
      << Logs();
  EXPECT_THAT(ranks_[1].process->Wait(absl::Seconds(30)), IsOkAndHolds(0))
      << Logs();
  EXPECT_THAT(TailOfFile(ranks_[1].log), HasSubstr("rank 0 is stopping"));
}

TEST_F(TrainerRanksTest, RankOneExitsWhenRankZeroDies) {
  ASSERT_NO_FATAL_FAILURE(StartRanks());
  ranks_[0].process->Signal(SIGKILL);
  EXPECT_THAT(ranks_[1].process->Wait(absl::Seconds(30)), IsOkAndHolds(1))
      << Logs();
  EXPECT_THAT(TailOfFile(ranks_[1].log), HasSubstr("lost rank 0"));
}

TEST_F(TrainerRanksTest, BadRankFlagsAreRefused) {
  for (const auto& [extra, message] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--rank", "2", "--rendezvous", "127.0.0.1:1"},
            "--rank 2 is outside [0, trainer.ranks = 2)"},
           {{"--rank", "1"}, "--rendezvous HOST:PORT is required"},
           {{"--rank", "0", "--rendezvous", "127.0.0.1"}, "expected HOST:PORT"},
           {{"--rank-keep-alive-ms", "0"},
            "--rank-keep-alive-ms must be >= 1, got 0"}}) {
    std::vector<std::string> argv = {BinaryPath("fapo-trainer"),
                                     "--config",
                                     SourcePath("configs/quickstart.yaml"),
                                     "--set",
                                     "trainer.ranks=2",
                                     "--set",
                                     "metrics.enabled=false"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto result = testing::RunCommand(argv, absl::Seconds(60));
    ASSERT_THAT(result, IsOk());
    // A usage error (the flags disagree with the spec): 2, on stderr,
    // before anything starts.
    EXPECT_EQ(result->exit_code, 2);
    EXPECT_THAT(result->stderr_text, HasSubstr(message));
  }
}

// trainer.collective_timeout_ms bounds the wait for the other ranks: a
// rank whose peers never come gives up after it, not after the default
// five minutes.
TEST_F(TrainerRanksTest, ARankAloneGivesUpAfterTheCollectiveTimeout) {
  absl::StatusOr<int> port = testing::FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  const absl::Time start = absl::Now();
  auto result = testing::RunCommand(
      {BinaryPath("fapo-trainer"), "--config",
       SourcePath("configs/quickstart.yaml"), "--set", "trainer.ranks=2",
       "--set", "trainer.collective_timeout_ms=2000", "--set",
       "metrics.enabled=false", "--rank", "1", "--rendezvous",
       absl::StrCat("127.0.0.1:", *port), "--rank-keep-alive-ms", "500"},
      absl::Seconds(120));
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->exit_code, 1) << result->stderr_text;
  EXPECT_LT(absl::Now() - start, absl::Seconds(60))
      << result->stdout_text << result->stderr_text;
  EXPECT_THAT(result->stdout_text + result->stderr_text, HasSubstr("rank 1"));
}

// A measurement, not a check (scripts/bench-trainer-ranks.sh runs it):
// the median step time (rank 0's metrics.step_time) of one trainer and of
// two ranks on the same GRPO batches. On a machine with fewer free cores
// than ranks, two ranks only add communication.
TEST_F(TrainerRanksTest, DISABLED_StepTimeOfOneAndTwoRanks) {
  constexpr int kTrajectories = 64;
  constexpr int kScale = 8;  // prompts of 24-40 tokens, responses 16-48
  constexpr int kMeasuredSteps = 6;
  auto median_step_seconds = [&](v1::Trainer::Stub* stub) {
    std::vector<double> seconds;
    for (int step = 1; step <= kMeasuredSteps + 1; ++step) {
      v1::TrainStepResponse response;
      grpc::Status status =
          TrainStep(step, &response, kTrajectories, kScale, stub);
      EXPECT_TRUE(status.ok()) << status.error_message() << Logs();
      if (step == 1) continue;  // warm-up
      seconds.push_back(response.metrics().step_time().seconds() +
                        response.metrics().step_time().nanos() * 1e-9);
    }
    std::sort(seconds.begin(), seconds.end());
    return seconds[seconds.size() / 2];
  };
  absl::StatusOr<int> port = testing::FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  auto single = testing::StartServices(
      {{"single", Flags(0, *port, /*ranks=*/1)}}, dir_.path());
  ASSERT_THAT(single, IsOk());
  auto channel = rpc::MakeChannel((*single)[0].ready["grpc_address"], {});
  ASSERT_THAT(channel, IsOk());
  auto single_stub = v1::Trainer::NewStub(*channel);
  const double one = median_step_seconds(single_stub.get());
  (*single)[0].process->Stop(absl::Seconds(5));
  ASSERT_NO_FATAL_FAILURE(StartRanks());
  const double two = median_step_seconds(stub_.get());
  std::printf("GRPO step, %d trajectories: 1 rank %.3f s, 2 ranks %.3f s\n",
              kTrajectories, one, two);
}

}  // namespace
}  // namespace fapo
