#include "services/files/files.h"

#include <sys/stat.h>

#include <fstream>

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

}  // namespace
}  // namespace fapo::files
