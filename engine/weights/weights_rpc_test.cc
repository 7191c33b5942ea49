#include "engine/weights/weights_rpc.h"

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

// Serves one snapshot the way TrainerService does: raw.
class RawTestTrainer : public v1::Trainer::WithRawCallbackMethod_GetWeights<
                           v1::Trainer::CallbackService> {
 public:
  explicit RawTestTrainer(std::shared_ptr<const WeightsSnapshot> snapshot)
      : snapshot_(std::move(snapshot)) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetWeights(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* raw_request) override {
    absl::StatusOr<v1::GetWeightsRequest> request =
        ParseGetWeightsRequest(*raw_request);
    if (!request.ok()) return NewRawWeightsErrorReactor(request.status());
    if (request->min_version() > snapshot_->version) {
      return NewRawWeightsErrorReactor(
          absl::FailedPreconditionError("no such version yet"));
    }
    return NewRawWeightsStreamReactor(snapshot_, request->max_chunk_bytes());
  }

 private:
  std::shared_ptr<const WeightsSnapshot> snapshot_;
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
    ASSERT_OK_AND_ASSIGN(channel_, rpc::MakeChannel(server_->address(), {}));
    stub_ = v1::Trainer::NewStub(channel_);
    raw_trainer_ = std::make_unique<RawTestTrainer>(snapshot);
    ASSERT_OK_AND_ASSIGN(
        raw_server_,
        rpc::RpcServer::Start(
            options, {{raw_trainer_.get(), v1::Trainer::service_full_name()}}));
    ASSERT_OK_AND_ASSIGN(raw_channel_,
                         rpc::MakeChannel(raw_server_->address(), {}));
    raw_stub_ = v1::Trainer::NewStub(raw_channel_);
  }
  void TearDown() override {
    server_->Shutdown();
    raw_server_->Shutdown();
  }

  void ExpectSameAsSource(CausalLM& target) {
    for (size_t i = 0; i < target.named_parameters().size(); ++i) {
      EXPECT_TRUE(torch::equal(target.named_parameters()[i].second,
                               source_->named_parameters()[i].second));
    }
  }

  std::unique_ptr<CausalLM> source_;
  std::unique_ptr<TestTrainer> trainer_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
  // The same snapshot served raw (NOTE [zero-copy weights]).
  std::unique_ptr<RawTestTrainer> raw_trainer_;
  std::unique_ptr<rpc::RpcServer> raw_server_;
  std::shared_ptr<grpc::Channel> raw_channel_;
  std::unique_ptr<v1::Trainer::Stub> raw_stub_;
};

// A WeightsMessage's bytes as a ByteBuffer of slices cut at `cuts`.
grpc::ByteBuffer Buffer(const std::string& bytes, std::vector<size_t> cuts) {
  std::vector<grpc::Slice> slices;
  size_t start = 0;
  cuts.push_back(bytes.size());
  for (size_t cut : cuts) {
    slices.emplace_back(bytes.data() + start, cut - start);
    start = cut;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

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

TEST_F(WeightsRpcTest, RawAndProtobufEndsInteroperate) {
  // Every pairing of server and client, at a chunk size that splits tensors
  // and at the default: the same wire, the same weights.
  struct Pairing {
    const char* name;
    std::function<absl::Status(const PullWeightsOptions&, WeightsAssembler&)>
        pull;
  };
  const std::vector<Pairing> pairings = {
      {"raw server, raw client",
       [&](const PullWeightsOptions& o, WeightsAssembler& a) {
         return PullWeights(*raw_channel_, 3, o, a);
       }},
      {"raw server, protobuf client",
       [&](const PullWeightsOptions& o, WeightsAssembler& a) {
         return PullWeights(*raw_stub_, 3, o, a);
       }},
      {"protobuf server, raw client",
       [&](const PullWeightsOptions& o, WeightsAssembler& a) {
         return PullWeights(*channel_, 3, o, a);
       }},
  };
  for (const Pairing& pairing : pairings) {
    for (int64_t max_chunk_bytes : {int64_t{100}, int64_t{0}}) {
      SCOPED_TRACE(absl::StrCat(pairing.name, ", chunks ", max_chunk_bytes));
      ASSERT_OK_AND_ASSIGN(auto target, CausalLM::FromConfig(SmallConfig(), 2));
      PullWeightsOptions options;
      options.max_chunk_bytes = max_chunk_bytes;
      WeightsAssembler assembler;
      ASSERT_OK(pairing.pull(options, assembler));
      EXPECT_EQ(assembler.version(), 3);
      ASSERT_OK(assembler.ApplyTo(*target));
      ExpectSameAsSource(*target);
    }
  }
}

TEST_F(WeightsRpcTest, RawClientCatchesACorruptedChunk) {
  trainer_->CorruptMessage(4);
  PullWeightsOptions options;
  options.max_chunk_bytes = 256;
  WeightsAssembler assembler;
  EXPECT_THAT(
      PullWeights(*channel_, 3, options, assembler),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32C")));
  EXPECT_FALSE(assembler.finished());
}

TEST_F(WeightsRpcTest, RawClientReportsServerErrorsAndDeadlines) {
  WeightsAssembler assembler;
  EXPECT_THAT(PullWeights(*raw_channel_, 9, {}, assembler),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no such version")));
  ASSERT_OK_AND_ASSIGN(auto nowhere, rpc::MakeChannel("127.0.0.1:1", {}));
  PullWeightsOptions options;
  options.timeout = absl::Milliseconds(500);
  WeightsAssembler other;
  EXPECT_FALSE(PullWeights(*nowhere, 1, options, other).ok());
}

// The raw parser against protobuf's own encodings: a chunk split across
// slices anywhere, fields in another order, unknown and repeated fields
// (protobuf's rules, through the fallback), and bytes that are not a
// message.
TEST_F(WeightsRpcTest, RawMessagesParseAsProtobufDoes) {
  ASSERT_OK_AND_ASSIGN(auto snapshot, SnapshotWeights(*source_, 3));
  std::vector<v1::WeightsMessage> messages;
  ForEachWeightsMessage(*snapshot, 64, [&](const v1::WeightsMessage& m) {
    messages.push_back(m);
    return true;
  });
  ASSERT_GT(messages.size(), 3u);
  {
    // Protobuf's encoding, cut into slices at every few bytes.
    WeightsAssembler assembler;
    for (const v1::WeightsMessage& message : messages) {
      const std::string bytes = message.SerializeAsString();
      std::vector<size_t> cuts;
      for (size_t cut = 3; cut < bytes.size(); cut += 7) cuts.push_back(cut);
      ASSERT_OK(AddWeightsMessageBytes(Buffer(bytes, cuts), assembler));
    }
    ASSERT_OK(assembler.Finish());
    ASSERT_OK_AND_ASSIGN(auto target, CausalLM::FromConfig(SmallConfig(), 2));
    ASSERT_OK(assembler.ApplyTo(*target));
    ExpectSameAsSource(*target);
  }
  const v1::WeightChunk& chunk = messages[2].chunk();
  auto encode_chunk = [](const std::string& chunk_bytes) {
    // WeightsMessage field 2, length-delimited.
    std::string bytes = "\x12";
    for (uint64_t n = chunk_bytes.size();; n >>= 7) {
      if (n < 0x80) {
        bytes.push_back(static_cast<char>(n));
        break;
      }
      bytes.push_back(static_cast<char>(n | 0x80));
    }
    return bytes + chunk_bytes;
  };
  v1::WeightChunk only_data;
  only_data.set_data(chunk.data());
  v1::WeightChunk the_rest = chunk;
  the_rest.clear_data();
  {
    // data first, then the other fields.
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    ASSERT_OK(AddWeightsMessageBytes(
        Buffer(encode_chunk(only_data.SerializeAsString() +
                            the_rest.SerializeAsString()),
               {5}),
        assembler));
    EXPECT_EQ(assembler.bytes_received(),
              static_cast<int64_t>(chunk.data().size()));
  }
  {
    // An unknown field (number 15, varint) is skipped, as protobuf does.
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    ASSERT_OK(AddWeightsMessageBytes(
        Buffer(encode_chunk(chunk.SerializeAsString() + "\x78\x01"), {}),
        assembler));
    EXPECT_EQ(assembler.bytes_received(),
              static_cast<int64_t>(chunk.data().size()));
  }
  {
    // A repeated crc32c: the last one wins, as in protobuf, and here it is
    // wrong.
    v1::WeightChunk wrong_crc;
    wrong_crc.set_crc32c(chunk.crc32c() ^ 1);
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_THAT(
        AddWeightsMessageBytes(
            Buffer(encode_chunk(chunk.SerializeAsString() +
                                wrong_crc.SerializeAsString()),
                   {}),
            assembler),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32C")));
  }
  {
    // Truncated: the payload is shorter than its length says.
    std::string bytes = messages[2].SerializeAsString();
    bytes.resize(bytes.size() - 3);
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_THAT(AddWeightsMessageBytes(Buffer(bytes, {}), assembler),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("not a fapo.v1.WeightsMessage")));
  }
  {
    // A corrupted payload byte in the second slice.
    std::string bytes = messages[2].SerializeAsString();
    bytes[bytes.size() - 10] ^= 0x40;
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_THAT(
        AddWeightsMessageBytes(Buffer(bytes, {bytes.size() - 20}), assembler),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32C")));
  }
}

}  // namespace
}  // namespace fapo::engine
