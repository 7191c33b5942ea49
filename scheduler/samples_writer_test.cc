// The samples.jsonl writer alone: line format and escaping, sampling by
// whole groups, fraction 0, appending on resume. (scheduler_test checks
// that a run reports every trajectory exactly once.)
#include "scheduler/samples_writer.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/options_from_spec.h"
#include "services/files/files.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::SizeIs;

std::vector<nlohmann::json> ReadLines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  absl::StatusOr<std::string> text = files::ReadFile(path);
  if (!text.ok()) return lines;
  for (absl::string_view line :
       absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

v1::Prompt MakePrompt(const std::string& group_id) {
  v1::Prompt prompt;
  prompt.set_prompt_id(absl::StrCat("p-", group_id));
  prompt.set_text(absl::StrCat("What is 2+2? (", group_id, ")"));
  prompt.set_ground_truth("4");
  return prompt;
}

v1::ScoredTrajectory Member(const std::string& group_id, int index,
                            double reward, double advantage) {
  v1::ScoredTrajectory member;
  v1::Trajectory& t = *member.mutable_trajectory();
  t.set_trajectory_id(absl::StrCat(group_id, "/", index));
  t.set_group_id(group_id);
  t.set_sample_index(index);
  t.set_prompt_id(absl::StrCat("p-", group_id));
  t.set_response_text(absl::StrCat("2+2=4\n#4 (", index, ")"));
  t.set_policy_version(3);
  v1::Verdict& v = *member.mutable_verdict();
  v.set_answer_correct(true);
  v.set_first_error_step(index == 0 ? 0 : -1);
  v.set_status(v1::VERDICT_STATUS_OK);
  member.set_flawed(index == 0);
  member.set_reward(reward);
  member.set_advantage(advantage);
  return member;
}

// A batch of `groups` groups of `size`.
std::shared_ptr<const TrainBatch> Batch(int64_t step, int first_group,
                                        int groups, int size) {
  auto batch = std::make_shared<TrainBatch>();
  batch->step = step;
  batch->policy_version = step - 1;
  for (int g = first_group; g < first_group + groups; ++g) {
    const std::string group_id = absl::StrCat("g", g);
    batch->group_sizes.push_back(size);
    batch->group_prompts.push_back(MakePrompt(group_id));
    for (int i = 0; i < size; ++i) {
      batch->trajectories.push_back(Member(group_id, i, i, 0.5 * i));
    }
  }
  return batch;
}

class SamplesWriterTest : public ::testing::Test {
 protected:
  std::unique_ptr<SamplesWriter> Writer(double fraction, uint64_t seed = 7) {
    SamplesWriterOptions options =
        SamplesWriterOptionsFromSpec(config::JobSpec());
    options.path = path_;
    options.sample_fraction = fraction;
    options.seed = seed;
    absl::StatusOr<std::unique_ptr<SamplesWriter>> writer =
        SamplesWriter::Create(options);
    EXPECT_THAT(writer.status(), IsOk());
    return *std::move(writer);
  }

  testing::TempDir dir_;
  // In a directory that does not exist yet: the writer makes it.
  std::string path_ = dir_.path() + "/run/samples.jsonl";
};

TEST_F(SamplesWriterTest, CreateChecksItsOptions) {
  SamplesWriterOptions options =
      SamplesWriterOptionsFromSpec(config::JobSpec());
  EXPECT_THAT(SamplesWriter::Create(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options.path = path_;
  options.sample_fraction = 1.5;
  EXPECT_THAT(SamplesWriter::Create(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(SamplesWriterTest, FromSpecUsesTheRunDirectory) {
  config::JobSpec spec;
  spec.job.output_dir = "runs/demo";
  spec.job.seed = 9;
  spec.job.sample_fraction = 0.5;
  SamplesWriterOptions options = SamplesWriterOptionsFromSpec(spec);
  EXPECT_EQ(options.path, "runs/demo/samples.jsonl");
  EXPECT_EQ(options.seed, 9u);
  EXPECT_EQ(options.sample_fraction, 0.5);
  spec.job.output_dir = "";
  EXPECT_EQ(SamplesWriterOptionsFromSpec(spec).path, "");
}

TEST_F(SamplesWriterTest, TrainedLinesCarryEveryField) {
  std::unique_ptr<SamplesWriter> writer = Writer(1.0);
  writer->Trained(Batch(/*step=*/4, 0, 1, 2));
  ASSERT_THAT(writer->Flush(), IsOk());
  std::vector<nlohmann::json> lines = ReadLines(path_);
  ASSERT_THAT(lines, SizeIs(2));
  const nlohmann::json& first = lines[0];
  EXPECT_EQ(first["trajectory_id"], "g0/0");
  EXPECT_EQ(first["group_id"], "g0");
  EXPECT_EQ(first["sample_index"], 0);
  EXPECT_EQ(first["prompt_id"], "p-g0");
  EXPECT_EQ(first["prompt"], "What is 2+2? (g0)");
  EXPECT_EQ(first["response"], "2+2=4\n#4 (0)");
  EXPECT_EQ(first["ground_truth"], "4");
  EXPECT_EQ(first["answer_correct"], true);
  EXPECT_EQ(first["flawed"], true);
  EXPECT_EQ(first["first_error_step"], 0);
  EXPECT_EQ(first["verdict_status"], "ok");
  EXPECT_EQ(first["reward"], 0.0);
  EXPECT_EQ(first["advantage"], 0.0);
  EXPECT_EQ(first["policy_version"], 3);
  EXPECT_EQ(first["outcome"], "trained");
  EXPECT_EQ(first["step"], 4);
  EXPECT_TRUE(first["drop_reason"].is_null());
  EXPECT_EQ(lines[1]["trajectory_id"], "g0/1");
  EXPECT_EQ(lines[1]["flawed"], false);
  EXPECT_EQ(lines[1]["first_error_step"], -1);
  EXPECT_EQ(lines[1]["reward"], 1.0);
  EXPECT_EQ(lines[1]["advantage"], 0.5);
}

TEST_F(SamplesWriterTest, DroppedLinesSayWhyAndLeaveUnknownsNull) {
  std::unique_ptr<SamplesWriter> writer = Writer(1.0);
  std::vector<DroppedTrajectory> dropped(2);
  // Dropped while scoring: no verdict, no reward.
  dropped[0].trajectory = Member("g5", 0, 0, 0);
  dropped[0].trajectory.clear_verdict();
  dropped[0].prompt = std::make_shared<const v1::Prompt>(MakePrompt("g5"));
  dropped[0].reason = "aborted";
  // Scored and rewarded, then filtered by dynamic sampling.
  dropped[1].trajectory = Member("g5", 1, -1, 0);
  dropped[1].has_verdict = true;
  dropped[1].has_reward = true;
  dropped[1].prompt = dropped[0].prompt;
  dropped[1].reason = "no_signal";
  writer->Dropped(std::move(dropped));
  ASSERT_THAT(writer->Flush(), IsOk());
  std::vector<nlohmann::json> lines = ReadLines(path_);
  ASSERT_THAT(lines, SizeIs(2));
  EXPECT_EQ(lines[0]["outcome"], "dropped");
  EXPECT_EQ(lines[0]["drop_reason"], "aborted");
  EXPECT_TRUE(lines[0]["answer_correct"].is_null());
  EXPECT_TRUE(lines[0]["verdict_status"].is_null());
  EXPECT_TRUE(lines[0]["first_error_step"].is_null());
  EXPECT_TRUE(lines[0]["flawed"].is_null());
  EXPECT_TRUE(lines[0]["reward"].is_null());
  EXPECT_TRUE(lines[0]["advantage"].is_null());
  EXPECT_TRUE(lines[0]["step"].is_null());
  EXPECT_EQ(lines[0]["prompt"], "What is 2+2? (g5)");
  EXPECT_EQ(lines[1]["drop_reason"], "no_signal");
  EXPECT_EQ(lines[1]["verdict_status"], "ok");
  EXPECT_EQ(lines[1]["reward"], -1.0);
  EXPECT_TRUE(lines[1]["advantage"].is_null());
}

TEST_F(SamplesWriterTest, TextIsEscapedIntoOneValidLine) {
  v1::Trajectory trajectory;
  trajectory.set_trajectory_id("g0/0");
  trajectory.set_group_id("g0");
  // Quotes, backslashes, control characters, non-ASCII, invalid UTF-8.
  const std::string response = "say \"hi\"\\\n\t\x01 caf\xc3\xa9 \xff end";
  trajectory.set_response_text(response);
  v1::Prompt prompt;
  prompt.set_text("line1\nline2 \"q\"");
  SamplesWriter::Line line;
  line.trajectory = &trajectory;
  line.prompt = &prompt;
  line.drop_reason = "stale";
  const std::string text = SamplesWriter::FormatLine(line);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["prompt"], "line1\nline2 \"q\"");
  // The invalid byte becomes U+FFFD; everything else survives.
  EXPECT_EQ(json["response"],
            "say \"hi\"\\\n\t\x01 caf\xc3\xa9 \xef\xbf\xbd end");
  EXPECT_EQ(json["drop_reason"], "stale");

  // Four-byte characters pass; overlong forms, surrogates and a sequence
  // cut short become one U+FFFD per byte.
  trajectory.set_response_text(
      "\xf0\x9f\x99\x82|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
  json = nlohmann::json::parse(SamplesWriter::FormatLine(line));
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(json["response"], "\xf0\x9f\x99\x82|" + fffd + fffd + "|" + fffd +
                                  fffd + fffd + "|" + fffd + fffd);
}

TEST_F(SamplesWriterTest, SamplingKeepsWholeGroupsTheSameWayEachRun) {
  constexpr int kGroups = 200;
  constexpr int kSize = 4;
  std::set<std::string> kept_groups;
  for (int run = 0; run < 2; ++run) {
    std::filesystem::remove(path_);
    std::unique_ptr<SamplesWriter> writer = Writer(0.25, /*seed=*/11);
    writer->Trained(Batch(1, 0, kGroups / 2, kSize));
    writer->Trained(Batch(2, kGroups / 2, kGroups / 2, kSize));
    ASSERT_THAT(writer->Flush(), IsOk());
    std::map<std::string, int> members;
    for (const nlohmann::json& line : ReadLines(path_)) {
      ++members[line["group_id"].get<std::string>()];
    }
    std::set<std::string> groups;
    for (const auto& [group, count] : members) {
      EXPECT_EQ(count, kSize) << group;  // whole groups only
      groups.insert(group);
      EXPECT_TRUE(SamplesWriter::KeepsGroup(11, 0.25, group));
    }
    // About a quarter (binomial: mean 50, sd ~6).
    EXPECT_GT(groups.size(), 25u);
    EXPECT_LT(groups.size(), 75u);
    if (run == 0) kept_groups = groups;
    EXPECT_EQ(groups, kept_groups);  // deterministic
  }
  // Another seed keeps other groups.
  int same = 0;
  for (int g = 0; g < kGroups; ++g) {
    const std::string id = absl::StrCat("g", g);
    same += SamplesWriter::KeepsGroup(11, 0.25, id) ==
            SamplesWriter::KeepsGroup(12, 0.25, id);
  }
  EXPECT_LT(same, kGroups);
  EXPECT_TRUE(SamplesWriter::KeepsGroup(11, 1.0, "g0"));
  EXPECT_FALSE(SamplesWriter::KeepsGroup(11, 0.0, "g0"));
}

TEST_F(SamplesWriterTest, FractionZeroWritesNothing) {
  std::unique_ptr<SamplesWriter> writer = Writer(0.0);
  writer->Trained(Batch(1, 0, 4, 2));
  std::vector<DroppedTrajectory> dropped(1);
  dropped[0].trajectory = Member("g9", 0, 0, 0);
  dropped[0].reason = "stale";
  writer->Dropped(std::move(dropped));
  ASSERT_THAT(writer->Flush(), IsOk());
  writer->Close();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(SamplesWriterTest, AResumedJobAppends) {
  {
    std::unique_ptr<SamplesWriter> writer = Writer(1.0);
    writer->Trained(Batch(1, 0, 1, 2));
    // Close (in the destructor) writes what is queued.
  }
  {
    std::unique_ptr<SamplesWriter> writer = Writer(1.0);
    writer->Trained(Batch(2, 1, 1, 2));
    ASSERT_THAT(writer->Flush(), IsOk());
  }
  std::vector<nlohmann::json> lines = ReadLines(path_);
  ASSERT_THAT(lines, SizeIs(4));
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_EQ(lines[3]["step"], 2);
}

TEST_F(SamplesWriterTest, AResumeDropsWhatCameAfterItsCheckpoint) {
  // NOTE [samples after a resume]: the previous process trained steps 1-3
  // and dropped groups sampled with versions 0 and 2; the job resumes from
  // the checkpoint of step 2.
  ASSERT_THAT(files::MakeDirectories(dir_.path() + "/run"), IsOk());
  {
    std::ofstream old(path_);
    for (int step = 1; step <= 3; ++step) {
      old << nlohmann::json({{"outcome", "trained"},
                             {"step", step},
                             {"policy_version", step - 1}})
                 .dump()
          << "\n";
    }
    for (int version : {0, 2}) {
      old << nlohmann::json({{"outcome", "dropped"},
                             {"step", nullptr},
                             {"policy_version", version}})
                 .dump()
          << "\n";
    }
  }
  SamplesWriterOptions options =
      SamplesWriterOptionsFromSpec(config::JobSpec());
  options.path = path_;
  options.resumed_step = 2;
  absl::StatusOr<std::unique_ptr<SamplesWriter>> writer =
      SamplesWriter::Create(options);
  ASSERT_THAT(writer.status(), IsOk());
  (*writer)->Trained(Batch(3, 5, 1, 2));
  ASSERT_THAT((*writer)->Flush(), IsOk());
  std::vector<nlohmann::json> lines = ReadLines(path_);
  ASSERT_THAT(lines, SizeIs(5));
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_EQ(lines[1]["step"], 2);
  EXPECT_EQ(lines[2]["outcome"], "dropped");
  EXPECT_EQ(lines[2]["policy_version"], 0);
  // Then this process's step 3, once.
  EXPECT_EQ(lines[3]["step"], 3);
  EXPECT_EQ(lines[3]["group_id"], "g5");
  EXPECT_EQ(lines[4]["step"], 3);
}

TEST_F(SamplesWriterTest, AnUnwritableFileIsReportedNotFatal) {
  // A directory where the file should be.
  ASSERT_THAT(files::MakeDirectories(path_), IsOk());
  std::unique_ptr<SamplesWriter> writer = Writer(1.0);
  writer->Trained(Batch(1, 0, 1, 2));
  EXPECT_FALSE(writer->Flush().ok());
  writer->Trained(Batch(2, 1, 1, 2));  // still accepted
  writer->Close();
}

}  // namespace
}  // namespace fapo::scheduler
