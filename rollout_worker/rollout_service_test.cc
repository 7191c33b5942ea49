#include "rollout_worker/rollout_service.h"

#include <ATen/Parallel.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tools/tools.h"
#include "engine/weights/weights.h"
#include "engine/weights/weights_rpc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rpc/channel.h"
#include "services/rpc/server.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"
#include "tests/support/subprocess.h"

namespace fapo::rollout {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

// A Trainer that serves GetWeights from one snapshot (test only); can
// corrupt one message of each stream.
class FakeTrainer : public v1::Trainer::CallbackService {
 public:
  explicit FakeTrainer(std::shared_ptr<const engine::WeightsSnapshot> snapshot)
      : snapshot_(std::move(snapshot)) {}
  void CorruptMessage(int index) { corrupt_index_ = index; }
  int calls() const { return calls_.load(); }

  grpc::ServerWriteReactor<v1::WeightsMessage>* GetWeights(
      grpc::CallbackServerContext* context,
      const v1::GetWeightsRequest* request) override {
    ++calls_;
    if (request->min_version() > snapshot_->version) {
      return engine::NewWeightsErrorReactor(
          absl::FailedPreconditionError("no weights of that version yet"));
    }
    auto counter = std::make_shared<int>(0);
    const int corrupt = corrupt_index_.load();
    return engine::NewWeightsStreamReactor(
        snapshot_, /*max_chunk_bytes=*/1024,
        [counter, corrupt](v1::WeightsMessage& message) {
          if ((*counter)++ == corrupt && message.has_chunk()) {
            (*message.mutable_chunk()->mutable_data())[7] ^= 0x04;
          }
        });
  }

 private:
  std::shared_ptr<const engine::WeightsSnapshot> snapshot_;
  std::atomic<int> corrupt_index_{-1};
  std::atomic<int> calls_{0};
};

class RolloutServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    ASSERT_OK_AND_ASSIGN(dir_, testing::MakeTempDir("rollout-service-test-"));
    ASSERT_OK(engine::WriteTinyArithModel(dir_ + "/v0", 1));
    ASSERT_OK(engine::WriteTinyArithModel(dir_ + "/v1", 2));
    ASSERT_OK_AND_ASSIGN(auto next, engine::CausalLM::Load(dir_ + "/v1"));
    ASSERT_OK_AND_ASSIGN(auto snapshot, engine::SnapshotWeights(*next, 1));
    total_bytes_ = snapshot->manifest.total_bytes();
    trainer_ = std::make_unique<FakeTrainer>(snapshot);
    rpc::ServerOptions server_options;
    server_options.host = "127.0.0.1";
    ASSERT_OK_AND_ASSIGN(
        trainer_server_,
        rpc::RpcServer::Start(
            server_options,
            {{trainer_.get(), v1::Trainer::service_full_name()}}));

    ASSERT_OK_AND_ASSIGN(auto model, engine::CausalLM::Load(dir_ + "/v0"));
    ASSERT_OK_AND_ASSIGN(auto tokenizer, engine::Tokenizer::FromFile(
                                             dir_ + "/v0/tokenizer.json"));
    engine::PullWeightsOptions pull;
    pull.timeout = absl::Seconds(30);
    RolloutWorkerOptions options;
    options.worker_id = "w1";
    ASSERT_OK_AND_ASSIGN(
        worker_, RolloutWorker::Create(std::move(model), std::move(tokenizer),
                                       std::make_unique<GrpcWeightsFetcher>(
                                           rpc::ChannelOptions{}, pull),
                                       options));
    service_ = std::make_unique<RolloutService>(worker_.get());
    ASSERT_OK_AND_ASSIGN(
        server_, rpc::RpcServer::Start(
                     server_options,
                     {{service_.get(), v1::Rollout::service_full_name()}}));
    ASSERT_OK_AND_ASSIGN(auto channel,
                         rpc::MakeChannel(server_->address(), {}));
    stub_ = v1::Rollout::NewStub(channel);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    if (worker_ != nullptr) worker_->Shutdown();
    if (trainer_server_ != nullptr) trainer_server_->Shutdown();
    std::system(("rm -rf " + dir_).c_str());
  }

  static v1::GenerateRequest Request(int samples, int max_new_tokens = 10) {
    v1::GenerateRequest request;
    request.set_group_id("grp");
    request.mutable_prompt()->set_prompt_id("p");
    request.mutable_prompt()->set_text("3*4=");
    request.set_num_samples(samples);
    request.mutable_sampling()->set_temperature(0.0f);
    request.mutable_sampling()->set_max_new_tokens(max_new_tokens);
    return request;
  }

  absl::Status Generate(const v1::GenerateRequest& request,
                        std::vector<v1::Trajectory>* out) {
    auto context = rpc::NewContext(absl::Seconds(60));
    auto reader = stub_->Generate(context.get(), request);
    v1::Trajectory trajectory;
    while (reader->Read(&trajectory)) out->push_back(trajectory);
    return rpc::FromGrpcStatus(reader->Finish());
  }

  absl::StatusOr<v1::UpdateWeightsResponse> Update(int64_t version,
                                                   const std::string& source) {
    auto context = rpc::NewContext(absl::Seconds(60));
    v1::UpdateWeightsRequest request;
    request.set_version(version);
    request.set_source_address(source);
    v1::UpdateWeightsResponse response;
    grpc::Status status =
        stub_->UpdateWeights(context.get(), request, &response);
    if (!status.ok()) return rpc::FromGrpcStatus(status);
    return response;
  }

  std::string dir_;
  int64_t total_bytes_ = 0;
  std::unique_ptr<FakeTrainer> trainer_;
  std::unique_ptr<rpc::RpcServer> trainer_server_;
  std::unique_ptr<RolloutWorker> worker_;
  std::unique_ptr<RolloutService> service_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<v1::Rollout::Stub> stub_;
};

TEST_F(RolloutServiceTest, GenerateStreamsEverySample) {
  std::vector<v1::Trajectory> trajectories;
  ASSERT_OK(Generate(Request(5), &trajectories));
  ASSERT_EQ(trajectories.size(), 5u);
  std::set<std::string> ids;
  for (const auto& t : trajectories) {
    ids.insert(t.trajectory_id());
    EXPECT_EQ(t.response_logprobs_size(), t.response_token_ids_size());
    EXPECT_EQ(t.worker_id(), "w1");
  }
  EXPECT_EQ(ids.size(), 5u);
}

TEST_F(RolloutServiceTest, StaleWorkerAnswersFailedPrecondition) {
  v1::GenerateRequest request = Request(2);
  request.set_min_policy_version(3);
  std::vector<v1::Trajectory> trajectories;
  EXPECT_THAT(Generate(request, &trajectories),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(trajectories.empty());
}

TEST_F(RolloutServiceTest, UpdateWeightsPullsFromTheTrainerAndChangesLogits) {
  std::vector<v1::Trajectory> before;
  ASSERT_OK(Generate(Request(1), &before));
  ASSERT_OK_AND_ASSIGN(v1::UpdateWeightsResponse response,
                       Update(1, trainer_server_->address()));
  EXPECT_EQ(response.policy_version(), 1);
  EXPECT_EQ(response.bytes_received(), total_bytes_);
  std::vector<v1::Trajectory> after;
  ASSERT_OK(Generate(Request(1), &after));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].policy_version(), 1);
  EXPECT_NE(before[0].response_logprobs(0), after[0].response_logprobs(0));

  // Versions only move forward: an old or equal one is acknowledged
  // without a transfer.
  const int calls = trainer_->calls();
  ASSERT_OK_AND_ASSIGN(response, Update(1, trainer_server_->address()));
  EXPECT_EQ(response.policy_version(), 1);
  EXPECT_EQ(response.bytes_received(), 0);
  ASSERT_OK_AND_ASSIGN(response, Update(0, ""));
  EXPECT_EQ(response.policy_version(), 1);
  EXPECT_EQ(trainer_->calls(), calls);
}

TEST_F(RolloutServiceTest, CorruptedChunkLeavesTheOldWeights) {
  std::vector<v1::Trajectory> before;
  ASSERT_OK(Generate(Request(1), &before));
  trainer_->CorruptMessage(3);
  EXPECT_THAT(
      Update(1, trainer_server_->address()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32C")));
  EXPECT_EQ(worker_->policy_version(), 0);
  std::vector<v1::Trajectory> after;
  ASSERT_OK(Generate(Request(1), &after));
  EXPECT_EQ(after[0].policy_version(), 0);
  EXPECT_EQ(before[0].response_logprobs(0), after[0].response_logprobs(0));
  // A version the trainer does not have, or no trainer at all: errors, and
  // still the old weights.
  EXPECT_THAT(Update(2, trainer_server_->address()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(worker_->policy_version(), 0);
}

TEST_F(RolloutServiceTest, CancellingGenerateStopsTheGroup) {
  v1::GenerateRequest request = Request(64, 120);
  request.mutable_sampling()->set_temperature(1.0f);
  // No stop ids beyond the model's EOS; a large group keeps rows going.
  auto context = rpc::NewContext(absl::Seconds(60));
  auto reader = stub_->Generate(context.get(), request);
  v1::Trajectory trajectory;
  int read = 0;
  if (reader->Read(&trajectory)) ++read;
  context->TryCancel();
  while (reader->Read(&trajectory)) ++read;
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(read, 64);
  EXPECT_TRUE(testing::Eventually([&] { return worker_->in_flight() == 0; },
                                  absl::Seconds(30)));
  // The worker is free again.
  std::vector<v1::Trajectory> trajectories;
  EXPECT_OK(Generate(Request(2), &trajectories));
}

}  // namespace
}  // namespace fapo::rollout
