// fapo-rollout-worker as a process, with a fake Scheduler in the test
// process and a tiny arith policy written by engine/tools: it registers
// (role ROLLOUT, its address, capacity and policy version), serves Generate,
// exits 0 on SIGTERM and when the job is over, and refuses to start without
// policy.model_dir, saying how to get one.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/tools/tools.h"
#include "fapo/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/rpc/channel.h"
#include "services/rpc/fake_scheduler_service.h"
#include "services/rpc/server.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::BinaryPath;
using ::fapo::testing::Eventually;
using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::SourcePath;
using ::fapo::testing::Subprocess;
using ::testing::HasSubstr;

class RolloutWorkerBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(dir_.status(), IsOk());
    ASSERT_THAT(engine::WriteTinyArithModel(dir_.path() + "/policy", 1),
                IsOk());
    rpc::ServerOptions options;
    options.host = "127.0.0.1";
    options.drain_timeout = absl::Milliseconds(200);
    auto server = rpc::RpcServer::Start(
        options, {{&scheduler_, fapo::v1::Scheduler::service_full_name()}});
    ASSERT_THAT(server, IsOk());
    scheduler_server_ = *std::move(server);
  }

  // quickstart.yaml leaves policy.model_dir empty; "" keeps it so.
  std::vector<std::string> Argv(const std::string& model_dir) {
    std::vector<std::string> argv = {BinaryPath("fapo-rollout-worker"),
                                     "--config",
                                     SourcePath("configs/quickstart.yaml")};
    if (!model_dir.empty()) {
      argv.push_back("--set");
      argv.push_back("policy.model_dir=" + model_dir);
    }
    const std::vector<std::string> rest = {"--host",
                                           "127.0.0.1",
                                           "--port",
                                           "0",
                                           "--worker-id",
                                           "rollout-test-1",
                                           "--scheduler",
                                           scheduler_server_->address(),
                                           "--ready-file",
                                           dir_.path() + "/rollout.ready",
                                           "--drain-timeout-ms",
                                           "2000"};
    argv.insert(argv.end(), rest.begin(), rest.end());
    return argv;
  }

  std::unique_ptr<Subprocess> StartWorker() {
    log_ = dir_.path() + "/rollout.log";
    auto process = Subprocess::Start(Argv(dir_.path() + "/policy"), log_);
    EXPECT_THAT(process, IsOk());
    if (!process.ok()) return nullptr;
    auto contents =
        testing::WaitForFile(dir_.path() + "/rollout.ready", absl::Seconds(60));
    EXPECT_THAT(contents, IsOk()) << testing::TailOfFile(log_);
    if (!contents.ok()) return nullptr;
    ready_ = nlohmann::json::parse(*contents);
    return *std::move(process);
  }

  testing::TempDir dir_{"fapo-rollout-binary-test-"};
  rpc::FakeSchedulerService scheduler_{absl::Milliseconds(50)};
  std::unique_ptr<rpc::RpcServer> scheduler_server_;
  std::string log_;
  nlohmann::json ready_;
};

TEST_F(RolloutWorkerBinaryTest, RegistersAsRolloutServesGenerateAndStops) {
  auto process = StartWorker();
  ASSERT_NE(process, nullptr);
  const std::string address = ready_["grpc_address"];
  ASSERT_TRUE(Eventually([&] { return scheduler_.knows("rollout-test-1"); },
                         absl::Seconds(10)))
      << testing::TailOfFile(log_);
  const fapo::v1::WorkerInfo worker = scheduler_.registrations().front();
  EXPECT_EQ(worker.role(), fapo::v1::WORKER_ROLE_ROLLOUT);
  EXPECT_EQ(worker.address(), address);
  EXPECT_GT(worker.capacity(), 0);
  EXPECT_EQ(worker.policy_version(), 0);

  auto channel = rpc::MakeChannel(address, {});
  ASSERT_THAT(channel, IsOk());
  auto stub = fapo::v1::Rollout::NewStub(*channel);
  fapo::v1::GenerateRequest request;
  request.set_group_id("g1");
  request.mutable_prompt()->set_prompt_id("p1");
  request.mutable_prompt()->set_text("3+7*4-2");
  request.set_num_samples(3);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_max_new_tokens(8);
  request.mutable_sampling()->set_seed(5);
  auto context = rpc::NewContext(absl::Seconds(60));
  auto reader = stub->Generate(context.get(), request);
  std::vector<fapo::v1::Trajectory> trajectories;
  fapo::v1::Trajectory trajectory;
  while (reader->Read(&trajectory)) trajectories.push_back(trajectory);
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message()
                           << testing::TailOfFile(log_);
  ASSERT_EQ(trajectories.size(), 3u);
  for (const auto& t : trajectories) {
    EXPECT_EQ(t.worker_id(), "rollout-test-1");
    EXPECT_EQ(t.group_id(), "g1");
    EXPECT_EQ(t.response_logprobs_size(), t.response_token_ids_size());
  }

  process->Signal(SIGTERM);
  EXPECT_THAT(process->Wait(absl::Seconds(20)), IsOkAndHolds(0))
      << testing::TailOfFile(log_);
  EXPECT_THAT(testing::ReadFileOrEmpty(log_), HasSubstr("stopped cleanly"));
}

TEST_F(RolloutWorkerBinaryTest, ExitsWhenTheJobEnds) {
  auto process = StartWorker();
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(Eventually([&] { return scheduler_.knows("rollout-test-1"); },
                         absl::Seconds(10)))
      << testing::TailOfFile(log_);
  scheduler_.SetJobState(fapo::v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(process->Wait(absl::Seconds(20)), IsOkAndHolds(0))
      << testing::TailOfFile(log_);
}

TEST_F(RolloutWorkerBinaryTest, WithoutAModelDirItSaysHowToGetOne) {
  auto result = testing::RunCommand(Argv(""), absl::Seconds(60));
  ASSERT_THAT(result, IsOk());
  EXPECT_NE(result->exit_code, 0);
  EXPECT_THAT(result->stderr_text, HasSubstr("policy.model_dir"));
  EXPECT_THAT(result->stderr_text, HasSubstr("fapo init-model"));
}

}  // namespace
}  // namespace fapo
