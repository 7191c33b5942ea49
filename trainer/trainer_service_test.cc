#include "trainer/trainer_service.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/tools/tools.h"
#include "engine/weights/weights.h"
#include "engine/weights/weights_rpc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/metrics/metrics_testing.h"
#include "services/rpc/channel.h"
#include "services/rpc/server.h"
#include "services/status/status_matchers.h"
#include "trainer/checkpoint_manager.h"

namespace fapo::trainer {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

v1::ScoredTrajectory Trajectory(std::vector<int> prompt,
                                std::vector<int> response, double advantage) {
  v1::ScoredTrajectory scored;
  for (int id : prompt) scored.mutable_trajectory()->add_prompt_token_ids(id);
  for (int id : response) {
    scored.mutable_trajectory()->add_response_token_ids(id);
    scored.mutable_trajectory()->add_response_logprobs(-3.0f);
  }
  scored.set_advantage(advantage);
  return scored;
}

class TrainerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    char pattern[] = "/tmp/trainer_service_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    TrainerSettings settings;
    settings.trainer.learning_rate = 1e-3;
    settings.trainer.micro_batch_size = 2;
    settings.checkpoint_dir = dir_ + "/checkpoints";
    auto model =
        engine::CausalLM::FromConfig(engine::TinyArithModelConfig(), 7);
    ASSERT_THAT(model.status(), IsOk());
    auto trainer = Trainer::CreateWithPolicy(settings, *std::move(model));
    ASSERT_THAT(trainer.status(), IsOk());
    trainer_ = trainer->get();
    registry_ = metrics::NewMetricsRegistry();
    auto service = TrainerService::Create(*std::move(trainer), registry_.get());
    ASSERT_THAT(service.status(), IsOk());
    service_ = *std::move(service);
    rpc::ServerOptions options;
    options.host = "127.0.0.1";
    auto server = rpc::RpcServer::Start(
        options, {{service_.get(), v1::Trainer::service_full_name()}});
    ASSERT_THAT(server.status(), IsOk());
    server_ = *std::move(server);
    auto channel = rpc::MakeChannel(server_->address(), {});
    ASSERT_THAT(channel.status(), IsOk());
    stub_ = v1::Trainer::NewStub(*channel);
  }

  void TearDown() override {
    server_->Shutdown();
    service_.reset();
    ASSERT_THAT(files::RemoveRecursively(dir_), IsOk());
  }

  v1::TrainStepRequest Request(int64_t step) {
    v1::TrainStepRequest request;
    request.set_step(step);
    *request.add_trajectories() = Trajectory({1, 10, 2}, {3, 11, 4}, 1.0);
    *request.add_trajectories() = Trajectory({5, 12}, {8, 14, 9, 15}, -1.0);
    *request.add_trajectories() = Trajectory({2, 10}, {2, 16}, 0.5);
    return request;
  }

  grpc::Status TrainStep(int64_t step, v1::TrainStepResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    return stub_->TrainStep(&context, Request(step), response);
  }

  double MetricValue(const std::string& name) {
    return metrics::testing::Read(*registry_, name).value_or(-1);
  }

  std::string dir_;
  std::unique_ptr<metrics::MetricsRegistry> registry_;
  Trainer* trainer_ = nullptr;  // owned by the service
  std::unique_ptr<TrainerService> service_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(TrainerServiceTest, TrainSaveResumeStateAndWeights) {
  {
    grpc::ClientContext context;
    v1::ResumeState state;
    ASSERT_TRUE(stub_->GetResumeState(&context, {}, &state).ok());
    EXPECT_EQ(state.step(), 0);
    EXPECT_EQ(state.checkpoint_path(), "");
  }
  EXPECT_EQ(service_->policy_version(), 0);

  v1::TrainStepResponse first;
  grpc::Status status = TrainStep(1, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(first.step(), 1);
  EXPECT_EQ(first.policy_version(), 1);
  EXPECT_EQ(first.metrics().num_trajectories(), 3);
  EXPECT_EQ(first.metrics().num_tokens(), 9);
  EXPECT_EQ(service_->policy_version(), 1);
  EXPECT_EQ(MetricValue("fapo_trainer_policy_version"), 1);
  EXPECT_EQ(MetricValue("fapo_trainer_tokens_total"), 9);

  // A retried step gets the recorded answer; a step out of order is
  // FAILED_PRECONDITION.
  v1::TrainStepResponse again;
  ASSERT_TRUE(TrainStep(1, &again).ok());
  EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  v1::TrainStepResponse skipped;
  status = TrainStep(3, &skipped);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("out of order"));

  {
    grpc::ClientContext context;
    v1::SaveCheckpointRequest request;
    request.set_step(1);
    request.set_scheduler_snapshot("queue");
    v1::SaveCheckpointResponse response;
    ASSERT_TRUE(stub_->SaveCheckpoint(&context, request, &response).ok());
    EXPECT_EQ(response.path(), dir_ + "/checkpoints/step-1");
    EXPECT_THAT(CheckpointManager::Verify(response.path()), IsOk());
  }
  {
    grpc::ClientContext context;
    v1::SaveCheckpointRequest request;
    request.set_step(2);
    v1::SaveCheckpointResponse response;
    EXPECT_EQ(stub_->SaveCheckpoint(&context, request, &response).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }

  // The weights of version 1 arrive intact and equal the trainer's.
  engine::WeightsAssembler assembler;
  engine::PullWeightsOptions options;
  options.timeout = absl::Seconds(30);
  options.max_chunk_bytes = 4096;
  ASSERT_THAT(engine::PullWeights(*stub_, 1, options, assembler), IsOk());
  EXPECT_EQ(assembler.version(), 1);
  auto copy = engine::CausalLM::FromConfig(engine::TinyArithModelConfig(), 99);
  ASSERT_THAT(copy.status(), IsOk());
  ASSERT_THAT(assembler.ApplyTo(**copy), IsOk());
  for (size_t i = 0; i < (*copy)->named_parameters().size(); ++i) {
    EXPECT_TRUE(at::equal((*copy)->named_parameters()[i].second,
                          trainer_->policy().named_parameters()[i].second))
        << (*copy)->named_parameters()[i].first;
  }
  engine::WeightsAssembler too_new;
  EXPECT_THAT(engine::PullWeights(*stub_, 2, options, too_new),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(TrainerServiceTest, BadBatchIsInvalidArgumentAndChangesNothing) {
  v1::TrainStepRequest request = Request(1);
  request.mutable_trajectories(1)->mutable_trajectory()->add_response_logprobs(
      0.0f);
  grpc::ClientContext context;
  v1::TrainStepResponse response;
  grpc::Status status = stub_->TrainStep(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("response_logprobs"));
  EXPECT_EQ(service_->policy_version(), 0);
  for (int step = 1; step <= 3; ++step) {
    v1::TrainStepResponse ok;
    ASSERT_TRUE(TrainStep(step, &ok).ok());
    EXPECT_EQ(ok.policy_version(), step);
  }
  EXPECT_EQ(service_->policy_version(), 3);
}

}  // namespace
}  // namespace fapo::trainer
