#include "services/files/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::files {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

bool IsDirectory(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

TEST(FilesTest, MakeDirectoriesCreatesParentsAndIsIdempotent) {
  testing::TempDir dir("fapo-files-");
  const std::string deep = dir.path() + "/a/b/c";
  ASSERT_THAT(MakeDirectories(deep), IsOk());
  EXPECT_TRUE(IsDirectory(dir.path() + "/a/b"));
  EXPECT_TRUE(IsDirectory(deep));
  EXPECT_THAT(MakeDirectories(deep), IsOk());
  EXPECT_THAT(MakeDirectories(deep + "/"), IsOk());
}

TEST(FilesTest, AFileInTheWayIsReported) {
  testing::TempDir dir("fapo-files-");
  const std::string file = dir.path() + "/plain";
  std::ofstream(file) << "x";
  EXPECT_THAT(MakeDirectories(file + "/sub"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("plain: exists and is not a directory")));
}

TEST(FilesTest, PathHelpers) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(ParentDirectory("a/b/c"), "a/b");
  EXPECT_EQ(ParentDirectory("/c"), "/");
  EXPECT_EQ(ParentDirectory("c"), ".");
  EXPECT_THAT(ErrnoError(ENOENT, "x").code(), absl::StatusCode::kNotFound);
}

TEST(FilesTest, WriteFileAtomicallyReplacesTheWholeFile) {
  testing::TempDir dir("fapo-files-");
  const std::string path = dir.path() + "/config.yaml";
  ASSERT_THAT(WriteFileAtomically(path, "first version, longer\n"), IsOk());
  ASSERT_THAT(WriteFileAtomically(path, "second\n"), IsOk());
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(*read, "second\n");
  // No temporary file is left beside it.
  EXPECT_EQ(testing::ReadFileOrEmpty(
                absl::StrCat(path, ".tmp.", ::getpid())),
            "");
}

TEST(FilesTest, WriteAndReadErrorsNameTheFile) {
  testing::TempDir dir("fapo-files-");
  EXPECT_THAT(WriteFileAtomically(dir.path() + "/missing/x", "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing/x")));
  EXPECT_THAT(ReadFile(dir.path() + "/nothing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nothing")));
}

}  // namespace
}  // namespace fapo::files
