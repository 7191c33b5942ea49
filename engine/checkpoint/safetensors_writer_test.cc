// WriteSafetensors and WriteCheckpointTensors: byte-identical round trips
// through the readers for every dtype, sharding with an index, and atomic
// writes that leave nothing behind when they fail.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/checkpoint/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Owns the bytes that TensorToWrite spans point to.
struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  TensorToWrite View() const {
    return TensorToWrite{name, dtype, shape, absl::Span<const uint8_t>(bytes)};
  }
};

OwnedTensor RandomTensor(std::mt19937_64& random, std::string name, DType dtype,
                         std::vector<int64_t> shape) {
  OwnedTensor tensor{std::move(name), dtype, std::move(shape), {}};
  int64_t count = 1;
  for (int64_t dim : tensor.shape) count *= dim;
  tensor.bytes.resize(count * DTypeSize(dtype));
  for (uint8_t& byte : tensor.bytes) byte = static_cast<uint8_t>(random());
  if (dtype == DType::kBool) {
    for (uint8_t& byte : tensor.bytes) byte &= 1;
  }
  return tensor;
}

std::vector<TensorToWrite> Views(const std::vector<OwnedTensor>& tensors) {
  std::vector<TensorToWrite> views;
  for (const OwnedTensor& tensor : tensors) views.push_back(tensor.View());
  return views;
}

std::vector<OwnedTensor> OneOfEachDType(std::mt19937_64& random) {
  return {
      RandomTensor(random, "f64", DType::kF64, {3, 2}),
      RandomTensor(random, "f32", DType::kF32, {5}),
      RandomTensor(random, "bf16", DType::kBF16, {2, 3, 4}),
      RandomTensor(random, "f16", DType::kF16, {7}),
      RandomTensor(random, "i64", DType::kI64, {2, 24}),
      RandomTensor(random, "i32", DType::kI32, {1}),
      RandomTensor(random, "i16", DType::kI16, {3, 3}),
      RandomTensor(random, "i8", DType::kI8, {9}),
      RandomTensor(random, "u8", DType::kU8, {11}),
      RandomTensor(random, "bool", DType::kBool, {2, 5}),
      RandomTensor(random, "scalar", DType::kF32, {}),
      RandomTensor(random, "empty", DType::kF32, {0, 3}),
  };
}

std::vector<std::string> ListDirectory(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void ExpectSameTensor(const TensorView& view, const OwnedTensor& tensor) {
  SCOPED_TRACE(tensor.name);
  EXPECT_EQ(view.name, tensor.name);
  EXPECT_EQ(view.dtype, tensor.dtype);
  EXPECT_EQ(view.shape, tensor.shape);
  EXPECT_EQ(std::vector<uint8_t>(view.data.begin(), view.data.end()),
            tensor.bytes);
}

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(dir_.status(), IsOk()); }
  std::string Path(const std::string& name) const {
    return dir_.path() + "/" + name;
  }
  std::mt19937_64 random_{42};
  ::fapo::testing::TempDir dir_{"fapo-checkpoint-writer-test-"};
};

TEST_F(WriterTest, RoundTripsEveryDTypeByteIdentical) {
  std::vector<OwnedTensor> tensors = OneOfEachDType(random_);
  const std::string path = Path("all.safetensors");
  ASSERT_OK(WriteSafetensors(path, Views(tensors)));
  ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (const OwnedTensor& tensor : tensors) {
    const TensorView* view = file->Find(tensor.name);
    ASSERT_NE(view, nullptr) << tensor.name;
    ExpectSameTensor(*view, tensor);
  }
  // In the file: widest dtypes first, then by name (NOTE [tensor order]), so
  // every tensor is aligned to its element size; default metadata.
  std::vector<std::string> file_order;
  for (const TensorView& view : file->tensors()) {
    if (!view.data.empty()) file_order.push_back(view.name);
    EXPECT_EQ(
        reinterpret_cast<uintptr_t>(view.data.data()) % DTypeSize(view.dtype),
        0u)
        << view.name;
  }
  EXPECT_THAT(file_order,
              ElementsAre("i64", "f64", "f32", "scalar", "i32", "bf16", "f16",
                          "i16", "i8", "u8", "bool"));
  EXPECT_THAT(
      file->metadata(),
      ElementsAre(std::pair<const std::string, std::string>("format", "pt")));
  // The header is padded to a multiple of 8, so data starts aligned.
  std::string image = ReadAll(path);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) {
    header_size = (header_size << 8) | static_cast<uint8_t>(image[i]);
  }
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(image.substr(8, 16), "{\"__metadata__\":");
  // File mode is not mkstemp's 0600.
  struct stat info;
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_NE(info.st_mode & 0044, 0u);
}

TEST_F(WriterTest, MetadataWrittenOrOmitted) {
  std::vector<OwnedTensor> tensors = {
      RandomTensor(random_, "w", DType::kF32, {2})};
  ASSERT_OK(WriteSafetensors(Path("meta.safetensors"), Views(tensors),
                             {{"format", "pt"}, {"step", "12"}}));
  ASSERT_OK_AND_ASSIGN(auto file,
                       SafetensorsFile::Open(Path("meta.safetensors")));
  EXPECT_EQ(file->metadata().at("step"), "12");
  ASSERT_OK(WriteSafetensors(Path("bare.safetensors"), Views(tensors), {}));
  ASSERT_OK_AND_ASSIGN(file, SafetensorsFile::Open(Path("bare.safetensors")));
  EXPECT_THAT(file->metadata(), IsEmpty());
  EXPECT_EQ(ReadAll(Path("bare.safetensors")).find("__metadata__"),
            std::string::npos);
  // No tensors at all is still a valid file.
  ASSERT_OK(WriteSafetensors(Path("none.safetensors"), {}));
  ASSERT_OK_AND_ASSIGN(file, SafetensorsFile::Open(Path("none.safetensors")));
  EXPECT_THAT(file->tensors(), IsEmpty());
}

TEST_F(WriterTest, RejectsBadTensorsAndWritesNothing) {
  std::vector<uint8_t> bytes(12);
  const std::string path = Path("bad.safetensors");
  struct Case {
    std::vector<TensorToWrite> tensors;
    std::string expected;
  };
  std::vector<Case> cases = {
      {{{"w", DType::kF32, {4}, absl::MakeConstSpan(bytes)}}, "needs 16"},
      {{{"w", DType::kF32, {-3}, absl::MakeConstSpan(bytes)}}, "bad shape"},
      {{{"w", DType::kF32, {3}, absl::MakeConstSpan(bytes)},
        {"w", DType::kF32, {3}, absl::MakeConstSpan(bytes)}},
       "twice"},
      {{{"__metadata__", DType::kF32, {3}, absl::MakeConstSpan(bytes)}},
       "reserved"},
      {{{"", DType::kF32, {3}, absl::MakeConstSpan(bytes)}}, "reserved"},
      {{{"bad\xff", DType::kF32, {3}, absl::MakeConstSpan(bytes)}}, "header"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(WriteSafetensors(path, c.tensors),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(path), HasSubstr(c.expected))));
    EXPECT_THAT(ListDirectory(dir_.path()), IsEmpty()) << c.expected;
  }
}

TEST_F(WriterTest, FailedWritesLeaveNoPartialFile) {
  std::vector<OwnedTensor> tensors = OneOfEachDType(random_);
  // Into a missing directory.
  const std::string missing = Path("no/such/dir/model.safetensors");
  EXPECT_THAT(WriteSafetensors(missing, Views(tensors)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(missing)));
  EXPECT_THAT(ListDirectory(dir_.path()), IsEmpty());

  // Onto a path that is a directory: the temporary file is written in full,
  // then the rename fails; the temporary file must be gone.
  const std::string occupied = Path("occupied.safetensors");
  ASSERT_EQ(::mkdir(occupied.c_str(), 0755), 0);
  absl::Status status = WriteSafetensors(occupied, Views(tensors));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr(occupied), HasSubstr("rename")));
  EXPECT_THAT(ListDirectory(dir_.path()), ElementsAre("occupied.safetensors"));
  EXPECT_THAT(ListDirectory(occupied), IsEmpty());

  // Into a read-only directory (root ignores permissions: skip that part).
  if (::geteuid() != 0) {
    const std::string locked = Path("locked");
    ASSERT_EQ(::mkdir(locked.c_str(), 0555), 0);
    EXPECT_THAT(WriteSafetensors(locked + "/model.safetensors", Views(tensors)),
                StatusIs(absl::StatusCode::kPermissionDenied));
    EXPECT_THAT(ListDirectory(locked), IsEmpty());
    ::chmod(locked.c_str(), 0755);
  }
}

TEST_F(WriterTest, FailedOverwriteKeepsOldFile) {
  std::vector<OwnedTensor> old_tensors = {
      RandomTensor(random_, "w", DType::kF32, {4})};
  const std::string path = Path("model.safetensors");
  ASSERT_OK(WriteSafetensors(path, Views(old_tensors)));
  std::string before = ReadAll(path);
  std::vector<uint8_t> short_bytes(3);
  EXPECT_THAT(
      WriteSafetensors(
          path, {{"w", DType::kF32, {4}, absl::MakeConstSpan(short_bytes)}}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ReadAll(path), before);
}

TEST_F(WriterTest, OverwriteKeepsOpenReaderValid) {
  std::vector<OwnedTensor> first = {
      RandomTensor(random_, "w", DType::kF32, {64})};
  const std::string path = Path("model.safetensors");
  ASSERT_OK(WriteSafetensors(path, Views(first)));
  ASSERT_OK_AND_ASSIGN(auto reader, SafetensorsFile::Open(path));
  std::vector<OwnedTensor> second = {
      RandomTensor(random_, "w", DType::kF32, {64})};
  ASSERT_OK(WriteSafetensors(path, Views(second)));
  // The old mapping still shows the old bytes (rename, not rewrite).
  ExpectSameTensor(*reader->Find("w"), first[0]);
  ASSERT_OK_AND_ASSIGN(auto fresh, SafetensorsFile::Open(path));
  ExpectSameTensor(*fresh->Find("w"), second[0]);
}

TEST_F(WriterTest, CheckpointFitsInOneFile) {
  std::vector<OwnedTensor> tensors = OneOfEachDType(random_);
  const std::string directory = Path("nested/checkpoint");
  ASSERT_OK(WriteCheckpointTensors(directory, Views(tensors)));
  EXPECT_THAT(ListDirectory(directory), ElementsAre("model.safetensors"));
  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(directory));
  EXPECT_EQ(reader->names().size(), tensors.size());
  for (const OwnedTensor& tensor : tensors) {
    ASSERT_OK_AND_ASSIGN(const TensorView* view, reader->Get(tensor.name));
    ExpectSameTensor(*view, tensor);
  }
}

TEST_F(WriterTest, ShardsWithIndexAndReadsBack) {
  std::vector<OwnedTensor> tensors;
  // 10 tensors of 400 bytes, in a non-alphabetical order, and one of 2000
  // bytes, larger than a shard.
  for (int i = 9; i >= 0; --i) {
    tensors.push_back(RandomTensor(random_, "layer." + std::to_string(i),
                                   DType::kF32, {10, 10}));
  }
  tensors.insert(tensors.begin() + 5,
                 RandomTensor(random_, "big", DType::kBF16, {1000}));
  const std::string directory = Path("sharded");
  ASSERT_OK(WriteCheckpointTensors(directory, Views(tensors),
                                   /*max_shard_bytes=*/1000));
  // Greedy in the given order: [9,8] [7,6] [5] [big] [4,3] [2,1] [0].
  std::vector<std::string> files = ListDirectory(directory);
  EXPECT_THAT(files, ElementsAre("model-00001-of-00007.safetensors",
                                 "model-00002-of-00007.safetensors",
                                 "model-00003-of-00007.safetensors",
                                 "model-00004-of-00007.safetensors",
                                 "model-00005-of-00007.safetensors",
                                 "model-00006-of-00007.safetensors",
                                 "model-00007-of-00007.safetensors",
                                 "model.safetensors.index.json"));
  nlohmann::json index = nlohmann::json::parse(
      ReadAll(directory + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 10 * 400 + 2000);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  EXPECT_EQ(index["weight_map"]["layer.9"], "model-00001-of-00007.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.5"], "model-00003-of-00007.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00004-of-00007.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.0"], "model-00007-of-00007.safetensors");

  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(directory));
  EXPECT_EQ(reader->names().size(), tensors.size());
  for (const OwnedTensor& tensor : tensors) {
    ASSERT_OK_AND_ASSIGN(const TensorView* view, reader->Get(tensor.name));
    ExpectSameTensor(*view, tensor);
    EXPECT_THAT(view->file,
                HasSubstr(index["weight_map"][tensor.name].get<std::string>()));
  }

  // Rewriting in one file removes the stale index (shards stay, unread).
  ASSERT_OK(WriteCheckpointTensors(directory, Views(tensors)));
  EXPECT_EQ(
      ::access((directory + "/model.safetensors.index.json").c_str(), F_OK),
      -1);
  // And sharding again removes the single file, which would shadow the index.
  ASSERT_OK(WriteCheckpointTensors(directory, Views(tensors), 1000));
  EXPECT_EQ(::access((directory + "/model.safetensors").c_str(), F_OK), -1);
  ASSERT_OK_AND_ASSIGN(reader, CheckpointReader::Open(directory));
  EXPECT_EQ(reader->names().size(), tensors.size());
}

TEST_F(WriterTest, CheckpointRejectsBadArguments) {
  std::vector<OwnedTensor> tensors = {
      RandomTensor(random_, "w", DType::kF32, {4})};
  EXPECT_THAT(WriteCheckpointTensors(Path("zero"), Views(tensors), 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_shard_bytes")));
  std::vector<uint8_t> short_bytes(3);
  EXPECT_THAT(WriteCheckpointTensors(
                  Path("bad"),
                  {{"w", DType::kF32, {4}, absl::MakeConstSpan(short_bytes)}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"w\"")));
  // Nothing was created for either.
  EXPECT_THAT(ListDirectory(dir_.path()), IsEmpty());
  // A file where the directory should be.
  std::ofstream(Path("file")) << "x";
  EXPECT_THAT(
      WriteCheckpointTensors(Path("file"), Views(tensors)),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(Path("file"))));
}

}  // namespace
}  // namespace fapo::engine
