#include "tasks/task_source.h"

#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::tasks {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

config::JobSpec Arith() {
  config::JobSpec spec;
  spec.data.task = config::Task::kArith;
  spec.job.seed = 11;
  return spec;
}

TEST(ArithPromptSourceTest, PromptsAreSeededAndResumeAtTheirPosition) {
  auto a = MakePromptSource(Arith());
  ASSERT_THAT(a.status(), IsOk());
  std::vector<v1::Prompt> first;
  for (int i = 0; i < 10; ++i) first.push_back(*(*a)->Next());
  EXPECT_EQ((*a)->position(), 10);
  EXPECT_EQ(first[0].prompt_id(), "arith-0");
  EXPECT_EQ(first[0].task(), "arith");
  EXPECT_FALSE(first[0].ground_truth().empty());
  auto resumed = MakePromptSource(Arith(), 6);
  ASSERT_THAT(resumed.status(), IsOk());
  v1::Prompt p = *(*resumed)->Next();
  EXPECT_EQ(p.prompt_id(), "arith-6");
  EXPECT_EQ(p.text(), first[6].text());
  EXPECT_EQ(p.ground_truth(), first[6].ground_truth());
  config::JobSpec other = Arith();
  other.job.seed = 12;
  auto different = MakePromptSource(other);
  std::string joined_a, joined_b;
  for (int i = 0; i < 10; ++i) {
    joined_a += first[i].text();
    joined_b += (*(*different)->Next()).text();
  }
  EXPECT_NE(joined_a, joined_b);
}

TEST(ArithPromptSourceTest, TheExactModeBoundIsCheckedWithTheSpecKey) {
  config::JobSpec spec = Arith();
  spec.data.arith.value_modulus = 0;
  spec.data.arith.max_ops = 40;  // 9^40 overflows int64
  EXPECT_THAT(
      MakePromptSource(spec).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.arith")));
  EXPECT_THAT(
      ValidateTaskOptions(spec),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.arith")));
  EXPECT_THAT(ValidateTaskOptions(Arith()), IsOk());
}

TEST(ArithVerifierTest, ReadsTheFinalAnswerLine) {
  auto source = MakePromptSource(Arith());
  auto verifier = MakeAnswerVerifier(Arith());
  ASSERT_THAT(verifier.status(), IsOk());
  v1::Prompt prompt = *(*source)->Next();
  EXPECT_TRUE(
      (*verifier)->IsCorrect(prompt, "junk\n#" + prompt.ground_truth()));
  EXPECT_FALSE((*verifier)->IsCorrect(
      prompt, "#" + prompt.ground_truth() + "\ntrailing"));
  EXPECT_FALSE((*verifier)->IsCorrect(prompt, ""));
}

// The per-group form answers as IsCorrect does, including for a prompt
// whose text does not parse (never correct).
TEST(ArithVerifierTest, ForPromptAgreesWithIsCorrect) {
  auto source = MakePromptSource(Arith());
  auto verifier = MakeAnswerVerifier(Arith());
  ASSERT_THAT(verifier.status(), IsOk());
  auto prompt = std::make_shared<const v1::Prompt>(*(*source)->Next());
  std::shared_ptr<const PromptVerifier> bound = (*verifier)->ForPrompt(prompt);
  for (const std::string& response :
       {"junk\n#" + prompt->ground_truth(),
        "#" + prompt->ground_truth() + "\ntrailing", std::string("#x"),
        std::string()}) {
    EXPECT_EQ(bound->IsCorrect(response),
              (*verifier)->IsCorrect(*prompt, response))
        << response;
  }
  v1::Prompt garbled = *prompt;
  garbled.set_text("not a problem");
  auto unparsable = std::make_shared<const v1::Prompt>(garbled);
  EXPECT_FALSE((*verifier)
                   ->ForPrompt(unparsable)
                   ->IsCorrect("#" + prompt->ground_truth()));
}

class MathSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<fapo::testing::TempDir>("math-source-");
    path_ = dir_->path() + "/train.jsonl";
    std::ofstream out(path_);
    for (int i = 0; i < 5; ++i) {
      out << "{\"id\": \"q" << i << "\", \"prompt\": \"What is " << i
          << "+1?\", \"reward_model\": {\"ground_truth\": \"" << i + 1
          << "\"}}\n";
    }
  }
  config::JobSpec Spec(bool shuffle) {
    config::JobSpec spec;
    spec.data.task = config::Task::kMath;
    spec.data.shuffle = shuffle;
    spec.data.math.path = path_;
    spec.job.seed = 3;
    return spec;
  }
  std::unique_ptr<fapo::testing::TempDir> dir_;
  std::string path_;
};

TEST_F(MathSourceTest, CyclesThroughEpochsWithUniqueIds) {
  auto source = MakePromptSource(Spec(/*shuffle=*/true));
  ASSERT_THAT(source.status(), IsOk());
  std::set<std::string> ids, first_epoch;
  std::vector<std::string> order;
  for (int i = 0; i < 15; ++i) {
    v1::Prompt p = *(*source)->Next();
    EXPECT_TRUE(ids.insert(p.prompt_id()).second) << p.prompt_id();
    if (i < 5) first_epoch.insert(p.text());
    order.push_back(p.text());
  }
  EXPECT_EQ(first_epoch.size(), 5u);  // each problem once per epoch
  auto resumed = MakePromptSource(Spec(true), 7);
  EXPECT_EQ((*(*resumed)->Next()).text(), order[7]);
  auto plain = MakePromptSource(Spec(false));
  EXPECT_EQ((*(*plain)->Next()).prompt_id(), "q0");
}

TEST_F(MathSourceTest, AMissingFileNamesTheKey) {
  config::JobSpec spec = Spec(false);
  spec.data.math.path = dir_->path() + "/missing.jsonl";
  EXPECT_THAT(ValidateTaskOptions(spec), StatusIs(absl::StatusCode::kNotFound,
                                                  HasSubstr("data.math.path")));
}

TEST_F(MathSourceTest, VerifierComparesBoxedAnswers) {
  auto verifier = MakeAnswerVerifier(Spec(false));
  v1::Prompt prompt;
  prompt.set_ground_truth("3");
  EXPECT_TRUE((*verifier)->IsCorrect(prompt, "so \\boxed{3}"));
  EXPECT_FALSE((*verifier)->IsCorrect(prompt, "so \\boxed{4}"));
  // The default ForPrompt: the same check, bound to the prompt.
  auto bound =
      (*verifier)->ForPrompt(std::make_shared<const v1::Prompt>(prompt));
  EXPECT_TRUE(bound->IsCorrect("so \\boxed{3}"));
  EXPECT_FALSE(bound->IsCorrect("so \\boxed{4}"));
}

}  // namespace
}  // namespace fapo::tasks
