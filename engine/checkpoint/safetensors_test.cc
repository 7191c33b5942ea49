// Reading .safetensors files and checkpoint directories: the Hugging Face
// fixtures in testdata/hf (expected values pinned from a listing made once
// with the Python safetensors package), and hand-made broken files, each of
// which must fail with an error naming the file (and the tensor).
#include "engine/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::string TestData(const std::string& relative) {
  return ::fapo::testing::SourcePath("engine/checkpoint/testdata/" + relative);
}

// sum over i of byte[i] * (i + 1), mod 2^64: the checksum the pinned values
// were computed with (numpy, uint64 wrap-around).
uint64_t Checksum(absl::Span<const uint8_t> bytes) {
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); ++i) sum += bytes[i] * uint64_t{i + 1};
  return sum;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A .safetensors file image from a raw header text and data bytes.
std::string FileImage(const std::string& header, const std::string& data) {
  std::string image(8, '\0');
  uint64_t size = header.size();
  for (int i = 0; i < 8; ++i) image[i] = static_cast<char>(size >> (8 * i));
  return image + header + data;
}

struct ExpectedTensor {
  const char* name;
  const char* dtype;
  std::vector<int64_t> shape;
};

const ExpectedTensor kQwen2Tensors[] = {
    {"lm_head.weight", "F32", {1024, 64}},
    {"model.embed_tokens.weight", "F32", {1024, 64}},
    {"model.layers.0.input_layernorm.weight", "F32", {64}},
    {"model.layers.0.mlp.down_proj.weight", "F32", {64, 160}},
    {"model.layers.0.mlp.gate_proj.weight", "F32", {160, 64}},
    {"model.layers.0.mlp.up_proj.weight", "F32", {160, 64}},
    {"model.layers.0.post_attention_layernorm.weight", "F32", {64}},
    {"model.layers.0.self_attn.k_proj.bias", "F32", {32}},
    {"model.layers.0.self_attn.k_proj.weight", "F32", {32, 64}},
    {"model.layers.0.self_attn.o_proj.weight", "F32", {64, 64}},
    {"model.layers.0.self_attn.q_proj.bias", "F32", {64}},
    {"model.layers.0.self_attn.q_proj.weight", "F32", {64, 64}},
    {"model.layers.0.self_attn.v_proj.bias", "F32", {32}},
    {"model.layers.0.self_attn.v_proj.weight", "F32", {32, 64}},
    {"model.layers.1.input_layernorm.weight", "F32", {64}},
    {"model.layers.1.mlp.down_proj.weight", "F32", {64, 160}},
    {"model.layers.1.mlp.gate_proj.weight", "F32", {160, 64}},
    {"model.layers.1.mlp.up_proj.weight", "F32", {160, 64}},
    {"model.layers.1.post_attention_layernorm.weight", "F32", {64}},
    {"model.layers.1.self_attn.k_proj.bias", "F32", {32}},
    {"model.layers.1.self_attn.k_proj.weight", "F32", {32, 64}},
    {"model.layers.1.self_attn.o_proj.weight", "F32", {64, 64}},
    {"model.layers.1.self_attn.q_proj.bias", "F32", {64}},
    {"model.layers.1.self_attn.q_proj.weight", "F32", {64, 64}},
    {"model.layers.1.self_attn.v_proj.bias", "F32", {32}},
    {"model.layers.1.self_attn.v_proj.weight", "F32", {32, 64}},
    {"model.norm.weight", "F32", {64}},
};
const ExpectedTensor kQwen3Tensors[] = {
    {"model.embed_tokens.weight", "F32", {1024, 64}},
    {"model.layers.0.input_layernorm.weight", "F32", {64}},
    {"model.layers.0.mlp.down_proj.weight", "F32", {64, 160}},
    {"model.layers.0.mlp.gate_proj.weight", "F32", {160, 64}},
    {"model.layers.0.mlp.up_proj.weight", "F32", {160, 64}},
    {"model.layers.0.post_attention_layernorm.weight", "F32", {64}},
    {"model.layers.0.self_attn.k_norm.weight", "F32", {32}},
    {"model.layers.0.self_attn.k_proj.weight", "F32", {64, 64}},
    {"model.layers.0.self_attn.o_proj.weight", "F32", {64, 128}},
    {"model.layers.0.self_attn.q_norm.weight", "F32", {32}},
    {"model.layers.0.self_attn.q_proj.weight", "F32", {128, 64}},
    {"model.layers.0.self_attn.v_proj.weight", "F32", {64, 64}},
    {"model.layers.1.input_layernorm.weight", "F32", {64}},
    {"model.layers.1.mlp.down_proj.weight", "F32", {64, 160}},
    {"model.layers.1.mlp.gate_proj.weight", "F32", {160, 64}},
    {"model.layers.1.mlp.up_proj.weight", "F32", {160, 64}},
    {"model.layers.1.post_attention_layernorm.weight", "F32", {64}},
    {"model.layers.1.self_attn.k_norm.weight", "F32", {32}},
    {"model.layers.1.self_attn.k_proj.weight", "F32", {64, 64}},
    {"model.layers.1.self_attn.o_proj.weight", "F32", {64, 128}},
    {"model.layers.1.self_attn.q_norm.weight", "F32", {32}},
    {"model.layers.1.self_attn.q_proj.weight", "F32", {128, 64}},
    {"model.layers.1.self_attn.v_proj.weight", "F32", {64, 64}},
    {"model.norm.weight", "F32", {64}},
};

void ExpectListing(const std::string& path,
                   const std::vector<ExpectedTensor>& expected) {
  ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  ASSERT_EQ(file->tensors().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const TensorView& view = file->tensors()[i];
    SCOPED_TRACE(expected[i].name);
    EXPECT_EQ(view.name, expected[i].name);
    EXPECT_EQ(DTypeName(view.dtype), expected[i].dtype);
    EXPECT_EQ(view.shape, expected[i].shape);
    EXPECT_EQ(view.file, path);
    EXPECT_EQ(static_cast<int64_t>(view.data.size()),
              view.num_elements() * DTypeSize(view.dtype));
  }
  EXPECT_THAT(
      file->metadata(),
      ElementsAre(std::pair<const std::string, std::string>("format", "pt")));
}

TEST(SafetensorsFixtureTest, Qwen2ModelMatchesPythonListing) {
  ExpectListing(TestData("hf/qwen2/model.safetensors"),
                std::vector<ExpectedTensor>(std::begin(kQwen2Tensors),
                                            std::end(kQwen2Tensors)));
}

TEST(SafetensorsFixtureTest, Qwen3ModelMatchesPythonListing) {
  ExpectListing(TestData("hf/qwen3/model.safetensors"),
                std::vector<ExpectedTensor>(std::begin(kQwen3Tensors),
                                            std::end(kQwen3Tensors)));
}

TEST(SafetensorsFixtureTest, TensorBytesMatchPythonChecksums) {
  ASSERT_OK_AND_ASSIGN(auto qwen2, SafetensorsFile::Open(
                                       TestData("hf/qwen2/model.safetensors")));
  const TensorView* embed = qwen2->Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(Checksum(embed->data), uint64_t{4300656713110});
  float first[3];
  std::memcpy(first, embed->data.data(), sizeof(first));
  EXPECT_FLOAT_EQ(first[0], 0.028981169685721397f);
  EXPECT_FLOAT_EQ(first[1], -0.01728520542383194f);
  EXPECT_FLOAT_EQ(first[2], -0.011274710297584534f);
  const TensorView* norm = qwen2->Find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(Checksum(norm->data), uint64_t{1580928});
  EXPECT_EQ(qwen2->Find("no.such.tensor"), nullptr);

  ASSERT_OK_AND_ASSIGN(auto qwen3, SafetensorsFile::Open(
                                       TestData("hf/qwen3/model.safetensors")));
  embed = qwen3->Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(Checksum(embed->data), uint64_t{4296144104305});
  // Qwen3 ties its embeddings: no lm_head in the file.
  EXPECT_EQ(qwen3->Find("lm_head.weight"), nullptr);
}

std::vector<int64_t> AsInt64(const TensorView& view) {
  std::vector<int64_t> values(view.num_elements());
  std::memcpy(values.data(), view.data.data(), view.data.size());
  return values;
}

TEST(SafetensorsFixtureTest, ReferenceHoldsInt64IdsAndLogits) {
  const std::vector<int64_t> expected_input_ids = {
      37,  235, 908, 72,  767, 905,  715, 645, 847, 960, 144,  129,
      972, 583, 749, 508, 390, 281,  178, 276, 254, 357, 914,  468,
      907, 252, 490, 668, 925, 398,  562, 580, 215, 983, 1001, 753,
      503, 478, 864, 86,  141, 1001, 393, 7,   319, 829, 534,  313};
  for (const char* model : {"qwen2", "qwen3"}) {
    SCOPED_TRACE(model);
    ASSERT_OK_AND_ASSIGN(
        auto file, SafetensorsFile::Open(TestData(std::string("hf/") + model +
                                                  "/reference.safetensors")));
    // File order: the Rust writer puts 8-byte-aligned dtypes first.
    std::vector<std::string> names;
    for (const TensorView& view : file->tensors()) names.push_back(view.name);
    EXPECT_THAT(names,
                ElementsAre("greedy_ids", "input_ids", "prompt_ids", "logits"));
    EXPECT_TRUE(file->metadata().empty());
    const TensorView* input_ids = file->Find("input_ids");
    ASSERT_NE(input_ids, nullptr);
    EXPECT_EQ(input_ids->dtype, DType::kI64);
    EXPECT_THAT(input_ids->shape, ElementsAre(2, 24));
    EXPECT_EQ(AsInt64(*input_ids), expected_input_ids);
    const TensorView* prompt_ids = file->Find("prompt_ids");
    ASSERT_NE(prompt_ids, nullptr);
    EXPECT_THAT(prompt_ids->shape, ElementsAre(1, 12));
    EXPECT_THAT(AsInt64(*prompt_ids),
                ElementsAreArray(expected_input_ids.begin(),
                                 expected_input_ids.begin() + 12));
    const TensorView* logits = file->Find("logits");
    ASSERT_NE(logits, nullptr);
    EXPECT_EQ(logits->dtype, DType::kF32);
    EXPECT_THAT(logits->shape, ElementsAre(2, 24, 1024));
  }
  ASSERT_OK_AND_ASSIGN(
      auto qwen2,
      SafetensorsFile::Open(TestData("hf/qwen2/reference.safetensors")));
  EXPECT_EQ(Checksum(qwen2->Find("logits")->data), uint64_t{2410136979627});
  EXPECT_EQ(Checksum(qwen2->Find("greedy_ids")->data), uint64_t{279783});
  ASSERT_OK_AND_ASSIGN(
      auto qwen3,
      SafetensorsFile::Open(TestData("hf/qwen3/reference.safetensors")));
  EXPECT_EQ(Checksum(qwen3->Find("logits")->data), uint64_t{2403197774385});
  EXPECT_EQ(Checksum(qwen3->Find("greedy_ids")->data), uint64_t{414408});
}

TEST(SafetensorsFixtureTest, CheckpointReaderReadsSingleFileDirectory) {
  ASSERT_OK_AND_ASSIGN(auto reader,
                       CheckpointReader::Open(TestData("hf/qwen3")));
  std::vector<std::string> expected;
  for (const ExpectedTensor& tensor : kQwen3Tensors) {
    expected.push_back(tensor.name);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(reader->names(), expected);
  ASSERT_OK_AND_ASSIGN(const TensorView* norm,
                       reader->Get("model.layers.1.self_attn.q_norm.weight"));
  EXPECT_THAT(norm->shape, ElementsAre(32));
  EXPECT_EQ(reader->Find("lm_head.weight"), nullptr);
  EXPECT_THAT(
      reader->Get("lm_head.weight"),
      StatusIs(absl::StatusCode::kNotFound,
               AllOf(HasSubstr("lm_head.weight"), HasSubstr("hf/qwen3"))));
}

TEST(SafetensorsDTypeTest, NamesSizesAndParsing) {
  const std::vector<std::pair<DType, int64_t>> all = {
      {DType::kF64, 8}, {DType::kF32, 4}, {DType::kBF16, 2}, {DType::kF16, 2},
      {DType::kI64, 8}, {DType::kI32, 4}, {DType::kI16, 2},  {DType::kI8, 1},
      {DType::kU8, 1},  {DType::kBool, 1}};
  for (const auto& [dtype, size] : all) {
    EXPECT_EQ(DTypeSize(dtype), size) << DTypeName(dtype);
    EXPECT_THAT(ParseDType(DTypeName(dtype)),
                ::fapo::testing::IsOkAndHolds(dtype));
  }
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeName(DType::kBool), "BOOL");
  EXPECT_THAT(
      ParseDType("F8_E4M3"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("F8_E4M3")));
  EXPECT_THAT(ParseDType("f32"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------
// Broken files.

class BrokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(dir_.status(), IsOk()); }

  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_.path() + "/" + name;
    WriteAll(path, bytes);
    return path;
  }
  // Opens a file with this header and 16 data bytes; expects an error whose
  // message names the file and contains every one of `parts`.
  void ExpectRejected(const std::string& header,
                      const std::vector<std::string>& parts,
                      const std::string& data = std::string(16, 'x')) {
    std::string path = Write("broken.safetensors", FileImage(header, data));
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << header;
    EXPECT_TRUE(file.status().code() == absl::StatusCode::kInvalidArgument ||
                file.status().code() == absl::StatusCode::kDataLoss)
        << file.status();
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
    for (const std::string& part : parts) {
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(part))
          << header;
    }
  }

  ::fapo::testing::TempDir dir_{"fapo-checkpoint-test-"};
};

TEST_F(BrokenFileTest, ValidHandMadeFileOpens) {
  // The happy path of the helper, so the rejections below mean something.
  std::string path = Write(
      "ok.safetensors",
      FileImage(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"U8","shape":[2,4],"data_offsets":[8,16]},)"
          R"("empty":{"dtype":"F32","shape":[0,3],"data_offsets":[16,16]}})",
          std::string(16, 'x')));
  ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  ASSERT_EQ(file->tensors().size(), 3u);
  EXPECT_EQ(file->tensors()[2].name, "empty");
  EXPECT_EQ(file->tensors()[2].num_elements(), 0);
  EXPECT_EQ(file->path(), path);
}

TEST_F(BrokenFileTest, MissingFileIsNotFound) {
  std::string path = dir_.path() + "/absent.safetensors";
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST_F(BrokenFileTest, TruncatedFiles) {
  for (size_t size : {0, 1, 7}) {
    std::string path = Write("short.safetensors", std::string(size, '\0'));
    EXPECT_THAT(SafetensorsFile::Open(path),
                StatusIs(absl::StatusCode::kDataLoss,
                         AllOf(HasSubstr(path), HasSubstr("shorter"))))
        << size;
  }
  // A valid file cut short in its data: the last tensor's offsets now reach
  // beyond the end.
  std::string image = ReadAll(TestData("hf/qwen3/model.safetensors"));
  ASSERT_GT(image.size(), 100u);
  std::string path =
      Write("cut.safetensors", image.substr(0, image.size() - 4));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("model.norm.weight"),
                             HasSubstr("beyond"))));
  // Cut inside the header.
  path = Write("cut_header.safetensors", image.substr(0, 100));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path), HasSubstr("header length"))));
}

TEST_F(BrokenFileTest, HeaderLengthBeyondFile) {
  std::string image = FileImage("{}", "");
  image[0] = static_cast<char>(200);
  std::string path = Write("long.safetensors", image);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path), HasSubstr("200"))));
  image = FileImage("{}", "");
  for (int i = 0; i < 8; ++i) image[i] = static_cast<char>(0xff);
  path = Write("huge.safetensors", image);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
}

TEST_F(BrokenFileTest, HeaderNotJson) {
  ExpectRejected(R"({"a": {"dtype": "F32", )", {"not JSON"});
  ExpectRejected("\xff\xfe garbage", {"not JSON"});
}

TEST_F(BrokenFileTest, HeaderNotObject) {
  ExpectRejected("[1, 2, 3]", {"not a JSON object"});
  ExpectRejected("42      ", {"not a JSON object"});
  ExpectRejected(R"({"a": [1, 2]})", {"\"a\"", "not an object"});
  ExpectRejected(R"({"__metadata__": {"format": 1}})", {"__metadata__"});
  ExpectRejected(R"({"__metadata__": [1]})", {"__metadata__"});
  // Deep nesting must not exhaust the stack (parsing or destroying).
  ExpectRejected(std::string(200000, '[') + std::string(200000, ']'),
                 {"not a JSON object"});
  ExpectRejected(
      "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}",
      {"\"a\"", "not an object"});
}

TEST_F(BrokenFileTest, UnknownDtype) {
  ExpectRejected(R"({"w":{"dtype":"F7","shape":[4],"data_offsets":[0,16]}})",
                 {"\"w\"", "unknown dtype", "F7"});
  ExpectRejected(R"({"w":{"shape":[4],"data_offsets":[0,16]}})",
                 {"\"w\"", "dtype"});
}

TEST_F(BrokenFileTest, BadOffsets) {
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
                 {"\"w\"", "out of order"});
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                 {"\"w\"", "beyond the data"});
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}})",
                 {"\"w\"", "data_offsets"});
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[-4,12]}})",
                 {"\"w\"", "data_offsets"});
  ExpectRejected(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                 {"\"b\"", "overlaps", "\"a\""});
  ExpectRejected(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 {"overlaps"});
}

TEST_F(BrokenFileTest, ShapeNotMatchingBytes) {
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})",
                 {"\"w\"", "needs 12 bytes"});
  ExpectRejected(
      R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})",
      {"\"w\"", "needs 8 bytes"});
  // A product that overflows int64 must not wrap around to 16.
  ExpectRejected(
      R"({"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,16]}})",
      {"\"w\"", "overflow"});
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,16]}})",
                 {"\"w\"", "non-integer"});
}

TEST_F(BrokenFileTest, NegativeDims) {
  ExpectRejected(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})",
                 {"\"w\"", "negative dimension -4"});
  ExpectRejected(
      R"({"w":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}})",
      {"\"w\"", "negative dimension"});
}

// Random byte flips of a valid file: every open either succeeds (and then
// every view lies inside the file) or fails with a clean status.
TEST_F(BrokenFileTest, RandomByteFlipsNeverCrash) {
  std::string original = ReadAll(TestData("hf/qwen3/reference.safetensors"));
  ASSERT_GT(original.size(), 300u);
  std::mt19937_64 random(20261126);
  int opened = 0, failed = 0;
  const std::string path = dir_.path() + "/fuzz.safetensors";
  for (int round = 0; round < 2000; ++round) {
    std::string image = original;
    int flips = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < flips; ++i) {
      // Mostly the length prefix and the header, where the parsing is.
      size_t limit = (random() % 8 == 0) ? image.size() : 8 + 280;
      size_t at = random() % limit;
      image[at] = static_cast<char>(image[at] ^ (1u << (random() % 8)));
    }
    if (round % 10 == 0) image.resize(random() % image.size());
    WriteAll(path, image);
    auto file = SafetensorsFile::Open(path);
    if (file.ok()) {
      ++opened;
      for (const TensorView& view : (*file)->tensors()) {
        EXPECT_EQ(static_cast<int64_t>(view.data.size()),
                  view.num_elements() * DTypeSize(view.dtype));
        // Touch every byte: a view outside the mapping would fault here.
        volatile uint64_t sum = Checksum(view.data);
        (void)sum;
      }
    } else {
      ++failed;
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
    }
  }
  // Both outcomes occur, else the flips are not exercising anything.
  EXPECT_GT(opened, 0);
  EXPECT_GT(failed, 0);
}

// ---------------------------------------------------------------------------
// Sharded directories written by hand.

class ShardedDirectoryTest : public BrokenFileTest {
 protected:
  // Shard with one F32 tensor of 2 elements per name.
  void WriteShard(const std::string& file,
                  const std::vector<std::string>& names) {
    std::string header = "{";
    std::string data;
    for (size_t i = 0; i < names.size(); ++i) {
      if (i > 0) header += ",";
      header += "\"" + names[i] + "\":{\"dtype\":\"F32\",\"shape\":[2]," +
                "\"data_offsets\":[" + std::to_string(8 * i) + "," +
                std::to_string(8 * i + 8) + "]}";
      float values[2] = {static_cast<float>(i), static_cast<float>(i) + 0.5f};
      data.append(reinterpret_cast<const char*>(values), sizeof(values));
    }
    header += "}";
    Write(file, FileImage(header, data));
  }
  void WriteIndex(const std::string& text) {
    Write("model.safetensors.index.json", text);
  }
};

TEST_F(ShardedDirectoryTest, ReadsAllShards) {
  WriteShard("model-00001-of-00002.safetensors", {"a", "b"});
  WriteShard("model-00002-of-00002.safetensors", {"c"});
  WriteIndex(R"({"metadata": {"total_size": 24}, "weight_map": {
      "a": "model-00001-of-00002.safetensors",
      "b": "model-00001-of-00002.safetensors",
      "c": "model-00002-of-00002.safetensors"}})");
  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(dir_.path()));
  EXPECT_THAT(reader->names(), ElementsAre("a", "b", "c"));
  ASSERT_OK_AND_ASSIGN(const TensorView* c, reader->Get("c"));
  EXPECT_THAT(c->file, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_EQ(reader->directory(), dir_.path());
}

TEST_F(ShardedDirectoryTest, EmptyDirectoryIsNotFound) {
  EXPECT_THAT(CheckpointReader::Open(dir_.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir_.path())));
}

TEST_F(ShardedDirectoryTest, DuplicateNamesAcrossShards) {
  WriteShard("model-00001-of-00002.safetensors", {"a", "b"});
  WriteShard("model-00002-of-00002.safetensors", {"b"});
  WriteIndex(R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                "b": "model-00002-of-00002.safetensors"}})");
  EXPECT_THAT(CheckpointReader::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"b\""),
                             HasSubstr("model-00001-of-00002.safetensors"),
                             HasSubstr("model-00002-of-00002.safetensors"))));
}

TEST_F(ShardedDirectoryTest, IndexNamesMissingShard) {
  WriteShard("model-00001-of-00002.safetensors", {"a"});
  WriteIndex(R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                "b": "model-00002-of-00002.safetensors"}})");
  EXPECT_THAT(CheckpointReader::Open(dir_.path()),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("model.safetensors.index.json"),
                             HasSubstr("model-00002-of-00002.safetensors"))));
}

TEST_F(ShardedDirectoryTest, IndexPlacesTensorInWrongShard) {
  WriteShard("model-00001-of-00002.safetensors", {"a"});
  WriteShard("model-00002-of-00002.safetensors", {"b"});
  WriteIndex(R"({"weight_map": {"a": "model-00002-of-00002.safetensors",
                                "b": "model-00002-of-00002.safetensors"}})");
  EXPECT_THAT(CheckpointReader::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"a\""), HasSubstr("lacks it"))));
}

TEST_F(ShardedDirectoryTest, IndexNotJsonOrWrongShape) {
  WriteShard("model-00001-of-00001.safetensors", {"a"});
  for (const char* text :
       {"{\"weight_map\": {", "[]", "{\"metadata\": {}}",
        "{\"weight_map\": {\"a\": 3}}",
        "{\"weight_map\": {\"a\": \"../model-00001-of-00001.safetensors\"}}"}) {
    WriteIndex(text);
    EXPECT_THAT(CheckpointReader::Open(dir_.path()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("model.safetensors.index.json")))
        << text;
  }
}

TEST_F(ShardedDirectoryTest, BrokenShardNamesShard) {
  Write("model-00001-of-00001.safetensors", FileImage("nope", ""));
  WriteIndex(R"({"weight_map": {"a": "model-00001-of-00001.safetensors"}})");
  EXPECT_THAT(CheckpointReader::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model-00001-of-00001.safetensors")));
}

}  // namespace
}  // namespace fapo::engine
