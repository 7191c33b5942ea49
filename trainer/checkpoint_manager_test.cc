#include "trainer/checkpoint_manager.h"

#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/status/status_matchers.h"

namespace fapo::trainer {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class CheckpointManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/checkpoint_manager_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = absl::StrCat(pattern, "/checkpoints");
  }
  void TearDown() override {
    ASSERT_THAT(files::RemoveRecursively(root_.substr(0, root_.rfind('/'))),
                IsOk());
  }

  // Content: a.bin = `payload`, sub/b.txt = "b".
  static CheckpointManager::ContentWriter Writer(std::string payload) {
    return [payload](const std::string& dir) -> absl::Status {
      if (absl::Status s = files::WriteFile(dir + "/a.bin", payload); !s.ok()) {
        return s;
      }
      if (absl::Status s = files::MakeDirectories(dir + "/sub"); !s.ok())
        return s;
      return files::WriteFile(dir + "/sub/b.txt", "b");
    };
  }

  std::vector<int64_t> Steps(const CheckpointManager& manager) {
    std::vector<int64_t> steps;
    for (const CheckpointInfo& info : manager.List())
      steps.push_back(info.step);
    return steps;
  }

  std::string root_;
};

TEST_F(CheckpointManagerTest, SaveWritesManifestAndVerifies) {
  auto manager = CheckpointManager::Create(root_, 3);
  ASSERT_THAT(manager.status(), IsOk());
  absl::StatusOr<std::string> path = (*manager)->Save(5, Writer("hello"));
  ASSERT_THAT(path.status(), IsOk());
  EXPECT_EQ(*path, root_ + "/step-5");
  EXPECT_THAT(CheckpointManager::Verify(*path), IsOk());
  absl::StatusOr<std::string> manifest =
      files::ReadFile(*path + "/MANIFEST.json");
  ASSERT_THAT(manifest.status(), IsOk());
  EXPECT_THAT(*manifest, HasSubstr("sub/b.txt"));
  EXPECT_FALSE(files::PathExists(root_ + "/.tmp-step-5"));
}

TEST_F(CheckpointManagerTest, SameStepKeepsTheFirst) {
  auto manager = *CheckpointManager::Create(root_, 3);
  ASSERT_THAT(manager->Save(1, Writer("first")).status(), IsOk());
  ASSERT_THAT(manager->Save(1, Writer("second")).status(), IsOk());
  EXPECT_EQ(*files::ReadFile(root_ + "/step-1/a.bin"), "first");
}

TEST_F(CheckpointManagerTest, KeepsTheLastN) {
  auto manager = *CheckpointManager::Create(root_, 2);
  for (int step : {1, 2, 3, 10}) {
    ASSERT_THAT(manager->Save(step, Writer("x")).status(), IsOk());
  }
  EXPECT_THAT(Steps(*manager), ElementsAre(10, 3));
}

TEST_F(CheckpointManagerTest, LaterStepsAreRemovedWhenTheRunWentBack) {
  auto manager = *CheckpointManager::Create(root_, 1);
  for (int step : {4, 5}) {
    ASSERT_THAT(manager->Save(step, Writer("x")).status(), IsOk());
  }
  // The run went back (its later checkpoints were corrupted, or it started
  // afresh) and saves step 3 with keep_last 1: step 3 must survive and the
  // later ones must not be resumed from.
  ASSERT_THAT(manager->Save(3, Writer("y")).status(), IsOk());
  EXPECT_THAT(Steps(*manager), ElementsAre(3));
}

TEST_F(CheckpointManagerTest, CorruptedAndPartialCheckpointsAreSkipped) {
  auto manager = *CheckpointManager::Create(root_, 5);
  ASSERT_THAT(manager->Save(1, Writer("one")).status(), IsOk());
  ASSERT_THAT(manager->Save(2, Writer("two")).status(), IsOk());
  ASSERT_THAT(manager->Save(3, Writer("three")).status(), IsOk());
  // Step 3: a flipped byte, same size. Step 2: its manifest is gone, as
  // after a crash between writing and renaming by hand.
  ASSERT_THAT(files::WriteFile(root_ + "/step-3/a.bin", "thref"), IsOk());
  ASSERT_EQ(unlink((root_ + "/step-2/MANIFEST.json").c_str()), 0);
  EXPECT_THAT(CheckpointManager::Verify(root_ + "/step-3"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("step-3/a.bin fails its CRC-32C")));
  EXPECT_THAT(CheckpointManager::Verify(root_ + "/step-2"),
              StatusIs(absl::StatusCode::kNotFound));
  std::vector<std::string> skipped;
  absl::StatusOr<CheckpointInfo> newest = manager->FindNewestValid(&skipped);
  ASSERT_THAT(newest.status(), IsOk());
  EXPECT_EQ(newest->step, 1);
  EXPECT_THAT(skipped, ElementsAre(root_ + "/step-3", root_ + "/step-2"));
}

TEST_F(CheckpointManagerTest, TruncatedFileIsDataLoss) {
  auto manager = *CheckpointManager::Create(root_, 5);
  ASSERT_THAT(manager->Save(4, Writer("payload")).status(), IsOk());
  ASSERT_THAT(files::WriteFile(root_ + "/step-4/sub/b.txt", ""), IsOk());
  EXPECT_THAT(CheckpointManager::Verify(root_ + "/step-4"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("sub/b.txt")));
}

TEST_F(CheckpointManagerTest, InvalidCheckpointOfTheSameStepIsReplaced) {
  auto manager = *CheckpointManager::Create(root_, 5);
  ASSERT_THAT(manager->Save(4, Writer("payload")).status(), IsOk());
  ASSERT_THAT(files::WriteFile(root_ + "/step-4/a.bin", "garbage"), IsOk());
  ASSERT_THAT(manager->Save(4, Writer("again")).status(), IsOk());
  EXPECT_THAT(CheckpointManager::Verify(root_ + "/step-4"), IsOk());
  EXPECT_EQ(*files::ReadFile(root_ + "/step-4/a.bin"), "again");
}

TEST_F(CheckpointManagerTest, FailingWriterLeavesNothing) {
  auto manager = *CheckpointManager::Create(root_, 5);
  absl::StatusOr<std::string> path =
      manager->Save(7, [](const std::string& dir) {
        (void)files::WriteFile(dir + "/half", "x");
        return absl::InternalError("disk full");
      });
  EXPECT_THAT(path.status(), StatusIs(absl::StatusCode::kInternal));
  EXPECT_TRUE(manager->List().empty());
  EXPECT_FALSE(files::PathExists(root_ + "/.tmp-step-7"));
  EXPECT_THAT(manager->FindNewestValid().status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(CheckpointManagerTest, BadOptions) {
  EXPECT_THAT(CheckpointManager::Create(root_, 0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckpointManager::Create("", 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace fapo::trainer
