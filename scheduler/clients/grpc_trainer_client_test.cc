// GrpcTrainerClient against in-test Trainer and Rollout services on a real
// loopback server.
#include "scheduler/clients/grpc_trainer_client.h"

#include <memory>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rpc/server.h"
#include "services/status/status_matchers.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

class TestTrainer final : public v1::Trainer::CallbackService {
 public:
  grpc::ServerUnaryReactor* TrainStep(
      grpc::CallbackServerContext* context, const v1::TrainStepRequest* request,
      v1::TrainStepResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->step() == 99) {
      // Never answers in time: the client's deadline must fire.
      held_ = reactor;
      return reactor;
    }
    response->set_step(request->step());
    response->set_policy_version(request->step());
    response->mutable_metrics()->set_num_trajectories(
        request->trajectories_size());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* SaveCheckpoint(
      grpc::CallbackServerContext* context,
      const v1::SaveCheckpointRequest* request,
      v1::SaveCheckpointResponse* response) override {
    response->set_path("/ckpt/" + request->scheduler_snapshot());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* GetResumeState(grpc::CallbackServerContext* context,
                                           const v1::GetResumeStateRequest*,
                                           v1::ResumeState* response) override {
    response->set_step(7);
    response->set_scheduler_snapshot("snap");
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  void Release() {
    if (held_ != nullptr) held_->Finish(grpc::Status::CANCELLED);
    held_ = nullptr;
  }

 private:
  grpc::ServerUnaryReactor* held_ = nullptr;
};

class TestRollout final : public v1::Rollout::CallbackService {
 public:
  grpc::ServerUnaryReactor* UpdateWeights(
      grpc::CallbackServerContext* context,
      const v1::UpdateWeightsRequest* request,
      v1::UpdateWeightsResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->source_address().empty()) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no source"));
      return reactor;
    }
    response->set_policy_version(request->version());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class GrpcTrainerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rpc::ServerOptions options;
    options.host = "127.0.0.1";
    options.drain_timeout = absl::Milliseconds(100);
    auto server = rpc::RpcServer::Start(
        options, {{&trainer_, v1::Trainer::service_full_name()},
                  {&rollout_, v1::Rollout::service_full_name()}});
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    auto client = GrpcTrainerClient::Create({});
    ASSERT_THAT(client, IsOk());
    client_ = *std::move(client);
  }
  void TearDown() override {
    trainer_.Release();
    server_.reset();
  }
  absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

  TestTrainer trainer_;
  TestRollout rollout_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<GrpcTrainerClient> client_;
};

TEST_F(GrpcTrainerClientTest, EveryCallRoundTrips) {
  const std::string address = server_->address();
  v1::TrainStepRequest step;
  step.set_step(3);
  step.add_trajectories();
  auto trained = client_->TrainStep(address, step, Soon());
  ASSERT_THAT(trained, IsOk());
  EXPECT_EQ(trained->policy_version(), 3);
  EXPECT_EQ(trained->metrics().num_trajectories(), 1);
  v1::SaveCheckpointRequest save;
  save.set_scheduler_snapshot("abc");
  auto saved = client_->SaveCheckpoint(address, save, Soon());
  ASSERT_THAT(saved, IsOk());
  EXPECT_EQ(saved->path(), "/ckpt/abc");
  auto resume = client_->GetResumeState(address, Soon());
  ASSERT_THAT(resume, IsOk());
  EXPECT_EQ(resume->step(), 7);
  v1::UpdateWeightsRequest update;
  update.set_version(4);
  update.set_source_address(address);
  auto updated = client_->UpdateWeights(address, update, Soon());
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->policy_version(), 4);
}

TEST_F(GrpcTrainerClientTest, ErrorsKeepTheirCodeAndNameTheAddress) {
  const std::string address = server_->address();
  v1::UpdateWeightsRequest update;  // no source
  EXPECT_THAT(client_->UpdateWeights(address, update, Soon()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(address)));
  v1::TrainStepRequest slow;
  slow.set_step(99);
  EXPECT_THAT(
      client_->TrainStep(address, slow, absl::Now() + absl::Milliseconds(200)),
      StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(client_->GetResumeState("127.0.0.1:1", Soon()),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace fapo::scheduler
