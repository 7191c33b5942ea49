#include "engine/weights/weights.h"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "engine/checkpoint/model_config.h"
#include "engine/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/crc32c/crc32c.h"
#include "services/status/status_matchers.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

// Qwen3-shaped (q/k norms, tied embeddings), small.
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

std::vector<v1::WeightsMessage> Messages(const WeightsSnapshot& snapshot,
                                         int64_t max_chunk_bytes) {
  std::vector<v1::WeightsMessage> messages;
  EXPECT_TRUE(ForEachWeightsMessage(snapshot, max_chunk_bytes,
                                    [&](const v1::WeightsMessage& message) {
                                      messages.push_back(message);
                                      return true;
                                    }));
  return messages;
}

absl::Status Assemble(const std::vector<v1::WeightsMessage>& messages,
                      WeightsAssembler& assembler) {
  for (const v1::WeightsMessage& message : messages) {
    absl::Status status = assembler.Add(message);
    if (!status.ok()) return status;
  }
  return assembler.Finish();
}

bool SameWeights(const CausalLM& a, const CausalLM& b) {
  for (size_t i = 0; i < a.named_parameters().size(); ++i) {
    if (!torch::equal(a.named_parameters()[i].second,
                      b.named_parameters()[i].second)) {
      return false;
    }
  }
  return true;
}

class WeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    ASSERT_OK_AND_ASSIGN(source_, CausalLM::FromConfig(SmallConfig(), 1));
    ASSERT_OK_AND_ASSIGN(target_, CausalLM::FromConfig(SmallConfig(), 2));
    ASSERT_OK_AND_ASSIGN(original_, CausalLM::FromConfig(SmallConfig(), 2));
    ASSERT_OK_AND_ASSIGN(snapshot_, SnapshotWeights(*source_, 7));
  }

  // The target still holds its own (seed 2) weights.
  void ExpectTargetUnchanged() {
    EXPECT_TRUE(SameWeights(*target_, *original_));
  }

  std::unique_ptr<CausalLM> source_, target_, original_;
  std::shared_ptr<const WeightsSnapshot> snapshot_;
};

TEST_F(WeightsTest, SnapshotDescribesEveryTensor) {
  const auto& params = source_->named_parameters();
  ASSERT_EQ(snapshot_->manifest.tensors_size(),
            static_cast<int>(params.size()));
  EXPECT_EQ(snapshot_->version, 7);
  EXPECT_EQ(snapshot_->manifest.version(), 7);
  EXPECT_EQ(snapshot_->manifest.total_bytes(),
            static_cast<int64_t>(snapshot_->bytes.size()));
  for (size_t i = 0; i < params.size(); ++i) {
    const v1::TensorInfo& info = snapshot_->manifest.tensors(i);
    EXPECT_EQ(info.name(), params[i].first);
    EXPECT_EQ(info.dtype(), "F32");
    EXPECT_EQ(info.num_bytes(), params[i].second.numel() * 4);
    EXPECT_EQ(info.crc32c(),
              crc32c::Value(snapshot_->bytes.data() + snapshot_->offsets[i],
                            info.num_bytes()));
  }
}

TEST_F(WeightsTest, RoundTripIsBitIdentical) {
  for (int64_t chunk : {int64_t{0}, int64_t{100}, int64_t{7}}) {
    SCOPED_TRACE(chunk);
    ASSERT_OK_AND_ASSIGN(auto target, CausalLM::FromConfig(SmallConfig(), 3));
    std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, chunk);
    for (size_t i = 1; i < messages.size(); ++i) {
      ASSERT_TRUE(messages[i].has_chunk());
      if (chunk > 0) {
        EXPECT_LE(static_cast<int64_t>(messages[i].chunk().data().size()),
                  chunk);
      }
    }
    WeightsAssembler assembler;
    ASSERT_OK(Assemble(messages, assembler));
    EXPECT_EQ(assembler.version(), 7);
    EXPECT_EQ(assembler.bytes_received(), snapshot_->manifest.total_bytes());
    ASSERT_OK(assembler.ApplyTo(*target));
    EXPECT_TRUE(SameWeights(*target, *source_));
    const at::Tensor ids = torch::tensor({{1, 2, 3, 4, 5}}, torch::kLong);
    ASSERT_OK_AND_ASSIGN(at::Tensor expected, source_->Forward(ids));
    ASSERT_OK_AND_ASSIGN(at::Tensor actual, target->Forward(ids));
    EXPECT_TRUE(torch::equal(expected, actual));
  }
}

TEST_F(WeightsTest, ChunksInAnyOrder) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 64);
  std::reverse(messages.begin() + 1, messages.end());
  WeightsAssembler assembler;
  ASSERT_OK(Assemble(messages, assembler));
  ASSERT_OK(assembler.ApplyTo(*target_));
  EXPECT_TRUE(SameWeights(*target_, *source_));
}

TEST_F(WeightsTest, EmitReturningFalseStopsEarly) {
  int calls = 0;
  EXPECT_FALSE(ForEachWeightsMessage(
      *snapshot_, 64, [&](const v1::WeightsMessage&) { return ++calls < 3; }));
  EXPECT_EQ(calls, 3);
}

TEST_F(WeightsTest, CorruptedChunkIsRejectedAndOldWeightsStay) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 100);
  v1::WeightChunk* chunk = messages[5].mutable_chunk();
  (*chunk->mutable_data())[3] ^= 0x01;
  const std::string name =
      snapshot_->manifest.tensors(chunk->tensor_index()).name();
  WeightsAssembler assembler;
  absl::Status status;
  for (const auto& message : messages) {
    status = assembler.Add(message);
    if (!status.ok()) break;
  }
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(name), HasSubstr("CRC-32C"),
                                        HasSubstr(absl::StrCat(
                                            "offset ", chunk->offset())))));
  EXPECT_FALSE(assembler.Finish().ok());
  EXPECT_THAT(assembler.ApplyTo(*target_),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpectTargetUnchanged();
}

TEST_F(WeightsTest, CorruptionWithAMatchingChunkCrcIsCaughtAtFinish) {
  // A chunk whose CRC was recomputed over bad data (a sender bug) passes
  // the chunk check; the tensor CRC of the manifest catches it.
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 100);
  v1::WeightChunk* chunk = messages[2].mutable_chunk();
  (*chunk->mutable_data())[0] ^= 0x40;
  chunk->set_crc32c(crc32c::Value(chunk->data().data(), chunk->data().size()));
  WeightsAssembler assembler;
  EXPECT_THAT(
      Assemble(messages, assembler),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(
                   snapshot_->manifest.tensors(chunk->tensor_index()).name())));
  ExpectTargetUnchanged();
}

TEST_F(WeightsTest, MissingChunkIsReportedAtFinish) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 100);
  const v1::WeightChunk dropped = messages[4].chunk();
  messages.erase(messages.begin() + 4);
  WeightsAssembler assembler;
  EXPECT_THAT(
      Assemble(messages, assembler),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          ::testing::AllOf(
              HasSubstr(
                  snapshot_->manifest.tensors(dropped.tensor_index()).name()),
              HasSubstr(absl::StrCat("offset ", dropped.offset())))));
  EXPECT_THAT(assembler.ApplyTo(*target_),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpectTargetUnchanged();
}

TEST_F(WeightsTest, TruncatedStreamIsReported) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 0);
  messages.pop_back();
  WeightsAssembler assembler;
  EXPECT_THAT(
      Assemble(messages, assembler),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("incomplete")));
  WeightsAssembler empty;
  EXPECT_THAT(empty.Finish(), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("without a manifest")));
}

TEST_F(WeightsTest, DuplicateAndOverlappingChunksAreRejected) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 100);
  {
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    ASSERT_OK(assembler.Add(messages[1]));
    EXPECT_THAT(
        assembler.Add(messages[1]),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
  }
  {
    // Same tensor, starting inside the first chunk.
    v1::WeightsMessage overlapping = messages[2];
    ASSERT_EQ(overlapping.chunk().tensor_index(),
              messages[1].chunk().tensor_index());
    overlapping.mutable_chunk()->set_offset(50);
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    ASSERT_OK(assembler.Add(messages[1]));
    EXPECT_THAT(
        assembler.Add(overlapping),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("offset 50")));
  }
}

TEST_F(WeightsTest, OutOfRangeChunksAreRejected) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 100);
  const v1::TensorInfo& first = snapshot_->manifest.tensors(0);
  {
    v1::WeightsMessage bad = messages[1];
    bad.mutable_chunk()->set_tensor_index(snapshot_->manifest.tensors_size());
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_THAT(assembler.Add(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("tensor_index")));
  }
  {
    v1::WeightsMessage bad = messages[1];
    bad.mutable_chunk()->set_offset(first.num_bytes() - 10);
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_THAT(assembler.Add(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(HasSubstr(first.name()),
                                          HasSubstr("do not fit"))));
  }
  {
    v1::WeightsMessage bad = messages[1];
    bad.mutable_chunk()->set_offset(-4);
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_FALSE(assembler.Add(bad).ok());
  }
}

TEST_F(WeightsTest, OrderOfCallsIsChecked) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 0);
  {
    WeightsAssembler assembler;
    EXPECT_THAT(assembler.Add(messages[1]),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("before the manifest")));
  }
  {
    WeightsAssembler assembler;
    ASSERT_OK(assembler.Add(messages[0]));
    EXPECT_THAT(assembler.Add(messages[0]),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  {
    WeightsAssembler assembler;
    ASSERT_OK(Assemble(messages, assembler));
    EXPECT_THAT(assembler.Add(messages[1]),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  {
    WeightsAssembler assembler;
    EXPECT_THAT(assembler.Add(v1::WeightsMessage()),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST_F(WeightsTest, InconsistentManifestIsRejected) {
  v1::WeightsMessage message;
  *message.mutable_manifest() = snapshot_->manifest;
  message.mutable_manifest()->mutable_tensors(1)->set_num_bytes(12);
  WeightsAssembler assembler;
  EXPECT_THAT(assembler.Add(message),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(snapshot_->manifest.tensors(1).name())));
  *message.mutable_manifest() = snapshot_->manifest;
  message.mutable_manifest()->set_total_bytes(3);
  WeightsAssembler again;
  EXPECT_THAT(again.Add(message), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("total_bytes")));
  *message.mutable_manifest() = snapshot_->manifest;
  message.mutable_manifest()->mutable_tensors(0)->set_dtype("I64");
  WeightsAssembler third;
  EXPECT_THAT(third.Add(message),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("I64")));
}

TEST_F(WeightsTest, ManifestThatDoesNotMatchTheModelIsRefusedBeforeAnyCopy) {
  // Another shape: a wider vocabulary.
  ModelConfig wider = SmallConfig();
  wider.vocab_size = 48;
  ASSERT_OK_AND_ASSIGN(auto wide, CausalLM::FromConfig(wider, 5));
  ASSERT_OK_AND_ASSIGN(auto wide_snapshot, SnapshotWeights(*wide, 1));
  WeightsAssembler assembler;
  ASSERT_OK(Assemble(Messages(*wide_snapshot, 0), assembler));
  EXPECT_THAT(assembler.ApplyTo(*target_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("embed_tokens"),
                                        HasSubstr("shape"))));
  ExpectTargetUnchanged();

  // Another name: the last tensor renamed (its shape fits, its name not).
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 0);
  v1::WeightManifest* manifest = messages[0].mutable_manifest();
  manifest->mutable_tensors(manifest->tensors_size() - 1)
      ->set_name("model.renamed.weight");
  WeightsAssembler renamed;
  ASSERT_OK(Assemble(messages, renamed));
  EXPECT_THAT(renamed.ApplyTo(*target_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model.renamed.weight")));
  ExpectTargetUnchanged();

  // Another dtype: a bfloat16 model's weights into a float32 model.
  LoadOptions bf16;
  bf16.dtype = c10::kBFloat16;
  ASSERT_OK_AND_ASSIGN(auto half, CausalLM::FromConfig(SmallConfig(), 1, bf16));
  ASSERT_OK_AND_ASSIGN(auto half_snapshot, SnapshotWeights(*half, 1));
  EXPECT_EQ(half_snapshot->manifest.tensors(0).dtype(), "BF16");
  WeightsAssembler half_assembler;
  ASSERT_OK(Assemble(Messages(*half_snapshot, 0), half_assembler));
  EXPECT_THAT(half_assembler.ApplyTo(*target_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("BF16")));
  ExpectTargetUnchanged();

  // Fewer tensors: another depth.
  ModelConfig shallow = SmallConfig();
  shallow.num_hidden_layers = 1;
  ASSERT_OK_AND_ASSIGN(auto one_layer, CausalLM::FromConfig(shallow, 1));
  ASSERT_OK_AND_ASSIGN(auto shallow_snapshot, SnapshotWeights(*one_layer, 1));
  WeightsAssembler shallow_assembler;
  ASSERT_OK(Assemble(Messages(*shallow_snapshot, 0), shallow_assembler));
  EXPECT_THAT(
      shallow_assembler.ApplyTo(*target_),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensors")));
  ExpectTargetUnchanged();
}

TEST_F(WeightsTest, Bf16RoundTrip) {
  LoadOptions bf16;
  bf16.dtype = c10::kBFloat16;
  ASSERT_OK_AND_ASSIGN(auto a, CausalLM::FromConfig(SmallConfig(), 1, bf16));
  ASSERT_OK_AND_ASSIGN(auto b, CausalLM::FromConfig(SmallConfig(), 2, bf16));
  ASSERT_OK_AND_ASSIGN(auto snapshot, SnapshotWeights(*a, 3));
  WeightsAssembler assembler;
  ASSERT_OK(Assemble(Messages(*snapshot, 33), assembler));
  ASSERT_OK(assembler.ApplyTo(*b));
  EXPECT_TRUE(SameWeights(*a, *b));
}

// Tensors of several CRC blocks (kCrcBlockBytes): chunk CRCs combined from
// the snapshot's block CRCs, or computed where a chunk is not whole blocks,
// always equal the CRC of the chunk's bytes; the whole tensor's too.
TEST_F(WeightsTest, ChunkCrcsFromBlocksMatchTheBytes) {
  ModelConfig wide = SmallConfig();
  wide.vocab_size = 9000;  // embed_tokens: 9000 x 64 x 4 B, ~2.2 blocks
  wide.hidden_size = 64;
  wide.head_dim = 16;
  ASSERT_OK_AND_ASSIGN(auto model, CausalLM::FromConfig(wide, 1));
  ASSERT_OK_AND_ASSIGN(auto snapshot, SnapshotWeights(*model, 1));
  ASSERT_GT(snapshot->manifest.tensors(0).num_bytes(), 2 * kCrcBlockBytes);
  for (int64_t max_chunk_bytes :
       {kCrcBlockBytes, 2 * kCrcBlockBytes, kCrcBlockBytes + 4096,
        kCrcBlockBytes / 2, int64_t{0}}) {
    SCOPED_TRACE(max_chunk_bytes);
    std::vector<v1::WeightsMessage> messages =
        Messages(*snapshot, max_chunk_bytes);
    for (const v1::WeightsMessage& message : messages) {
      if (!message.has_chunk()) continue;
      EXPECT_EQ(message.chunk().crc32c(),
                crc32c::Value(message.chunk().data().data(),
                              message.chunk().data().size()));
    }
    WeightsAssembler assembler;
    ASSERT_OK(Assemble(messages, assembler));
  }
  for (int i = 0; i < snapshot->manifest.tensors_size(); ++i) {
    const v1::TensorInfo& info = snapshot->manifest.tensors(i);
    EXPECT_EQ(info.crc32c(),
              crc32c::Value(snapshot->bytes.data() + snapshot->offsets[i],
                            info.num_bytes()));
  }
}

// AddChunk with the payload in pieces (a gRPC message's slices): the same
// result as Add, and the same refusals.
TEST_F(WeightsTest, ChunkInPiecesAssemblesAndIsChecked) {
  std::vector<v1::WeightsMessage> messages = Messages(*snapshot_, 100);
  WeightsAssembler assembler;
  ASSERT_OK(assembler.Add(messages[0]));
  for (size_t m = 1; m < messages.size(); ++m) {
    const v1::WeightChunk& chunk = messages[m].chunk();
    const absl::string_view data = chunk.data();
    std::vector<absl::string_view> pieces;
    for (size_t at = 0; at < data.size(); at += 13) {
      pieces.push_back(data.substr(at, 13));
    }
    ASSERT_OK(assembler.AddChunk(chunk.tensor_index(), chunk.offset(),
                                 chunk.crc32c(), pieces));
  }
  ASSERT_OK(assembler.Finish());
  ASSERT_OK(assembler.ApplyTo(*target_));
  EXPECT_TRUE(SameWeights(*target_, *source_));

  const v1::WeightChunk& chunk = messages[1].chunk();
  const absl::string_view data = chunk.data();
  const absl::string_view halves[] = {data.substr(0, 10), data.substr(10)};
  WeightsAssembler twice;
  ASSERT_OK(twice.Add(messages[0]));
  ASSERT_OK(twice.AddChunk(chunk.tensor_index(), chunk.offset(), chunk.crc32c(),
                           halves));
  EXPECT_THAT(
      twice.AddChunk(chunk.tensor_index(), chunk.offset(), chunk.crc32c(),
                     halves),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
  WeightsAssembler corrupted;
  ASSERT_OK(corrupted.Add(messages[0]));
  EXPECT_THAT(
      corrupted.AddChunk(chunk.tensor_index(), chunk.offset(),
                         chunk.crc32c() ^ 1, halves),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32C")));
  WeightsAssembler past_the_end;
  ASSERT_OK(past_the_end.Add(messages[0]));
  EXPECT_THAT(
      past_the_end.AddChunk(chunk.tensor_index(),
                            snapshot_->manifest.tensors(0).num_bytes() - 5,
                            chunk.crc32c(), halves),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("do not fit")));
}

// One buffer across assemblies (the rollout worker's): reused while the
// model's size stays, replaced when it changes; each result is exact.
TEST_F(WeightsTest, AssemblerReusesTheGivenBuffer) {
  WeightsBuffer buffer;
  {
    WeightsAssembler assembler(&buffer);
    ASSERT_OK(Assemble(Messages(*snapshot_, 100), assembler));
    ASSERT_OK(assembler.ApplyTo(*target_));
    EXPECT_TRUE(SameWeights(*target_, *source_));
  }
  const char* first = buffer.data();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(static_cast<int64_t>(buffer.size()),
            snapshot_->manifest.total_bytes());
  ASSERT_OK_AND_ASSIGN(auto other, CausalLM::FromConfig(SmallConfig(), 5));
  ASSERT_OK_AND_ASSIGN(auto other_snapshot, SnapshotWeights(*other, 8));
  {
    WeightsAssembler assembler(&buffer);
    ASSERT_OK(Assemble(Messages(*other_snapshot, 0), assembler));
    ASSERT_OK(assembler.ApplyTo(*target_));
    EXPECT_TRUE(SameWeights(*target_, *other));
  }
  EXPECT_EQ(buffer.data(), first);
  ModelConfig shallow = SmallConfig();
  shallow.num_hidden_layers = 1;
  ASSERT_OK_AND_ASSIGN(auto one_layer, CausalLM::FromConfig(shallow, 1));
  ASSERT_OK_AND_ASSIGN(auto shallow_snapshot, SnapshotWeights(*one_layer, 1));
  WeightsAssembler assembler(&buffer);
  ASSERT_OK(Assemble(Messages(*shallow_snapshot, 0), assembler));
  EXPECT_EQ(static_cast<int64_t>(buffer.size()),
            shallow_snapshot->manifest.total_bytes());
}

}  // namespace
}  // namespace fapo::engine
