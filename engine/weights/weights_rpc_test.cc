#include "engine/weights/weights_rpc.h"

#include <torch/torch.h>

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "engine/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rpc/channel.h"
#include "services/rpc/server.h"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

ModelConfig SmallConfig() {
  ModelConfig c;
  c.family = ModelFamily::kQwen3;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  return c;
}

// Serves one snapshot; optionally corrupts the n-th message's data.
class TestTrainer : public v1::Trainer::CallbackService {
 public:
  explicit TestTrainer(std::shared_ptr<const WeightsSnapshot> snapshot)
      : snapshot_(std::move(snapshot)) {}
  void CorruptMessage(int index) { corrupt_index_ = index; }

  grpc::ServerWriteReactor<v1::WeightsMessage>* GetWeights(
      grpc::CallbackServerContext* context,
      const v1::GetWeightsRequest* request) override {
    if (request->min_version() > snapshot_->version) {
      return NewWeightsErrorReactor(
          absl::FailedPreconditionError("no such version yet"));
    }
    auto counter = std::make_shared<int>(0);
    const int corrupt = corrupt_index_;
    return NewWeightsStreamReactor(
        snapshot_, request->max_chunk_bytes(),
        [counter, corrupt](v1::WeightsMessage& message) {
          if ((*counter)++ == corrupt && message.has_chunk()) {
            (*message.mutable_chunk()->mutable_data())[0] ^= 1;
          }
        });
  }

 private:
  std::shared_ptr<const WeightsSnapshot> snapshot_;
  int corrupt_index_ = -1;
};

class WeightsRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    ASSERT_OK_AND_ASSIGN(source_, CausalLM::FromConfig(SmallConfig(), 1));
    ASSERT_OK_AND_ASSIGN(auto snapshot, SnapshotWeights(*source_, 3));
    trainer_ = std::make_unique<TestTrainer>(snapshot);
    rpc::ServerOptions options;
    options.host = "127.0.0.1";
    ASSERT_OK_AND_ASSIGN(
        server_,
        rpc::RpcServer::Start(
            options, {{trainer_.get(), v1::Trainer::service_full_name()}}));
    ASSERT_OK_AND_ASSIGN(auto channel,
                         rpc::MakeChannel(server_->address(), {}));
    stub_ = v1::Trainer::NewStub(channel);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<CausalLM> source_;
  std::unique_ptr<TestTrainer> trainer_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(WeightsRpcTest, PullsAndApplies) {
  ASSERT_OK_AND_ASSIGN(auto target, CausalLM::FromConfig(SmallConfig(), 2));
  PullWeightsOptions options;
  options.max_chunk_bytes = 256;
  WeightsAssembler assembler;
  ASSERT_OK(PullWeights(*stub_, 3, options, assembler));
  EXPECT_EQ(assembler.version(), 3);
  ASSERT_OK(assembler.ApplyTo(*target));
  for (size_t i = 0; i < target->named_parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(target->named_parameters()[i].second,
                             source_->named_parameters()[i].second));
  }
}

TEST_F(WeightsRpcTest, CorruptedChunkFailsThePull) {
  trainer_->CorruptMessage(4);
  PullWeightsOptions options;
  options.max_chunk_bytes = 256;
  WeightsAssembler assembler;
  EXPECT_THAT(
      PullWeights(*stub_, 3, options, assembler),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32C")));
  EXPECT_FALSE(assembler.finished());
}

TEST_F(WeightsRpcTest, ServerErrorsAndDeadlinesComeBack) {
  WeightsAssembler assembler;
  EXPECT_THAT(PullWeights(*stub_, 9, {}, assembler),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no such version")));
  ASSERT_OK_AND_ASSIGN(auto channel, rpc::MakeChannel("127.0.0.1:1", {}));
  auto nowhere = v1::Trainer::NewStub(channel);
  PullWeightsOptions options;
  options.timeout = absl::Milliseconds(500);
  WeightsAssembler other;
  EXPECT_FALSE(PullWeights(*nowhere, 1, options, other).ok());
}

}  // namespace
}  // namespace fapo::engine
