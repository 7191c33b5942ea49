#include "tasks/math/dataset.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/math/verifier.h"

namespace fapo::tasks::math {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

std::string SourceDir() {
  const char* dir = std::getenv("FAPO_SOURCE_DIR");
  return dir == nullptr ? "." : dir;
}

std::string SamplePath() {
  return SourceDir() + "/tasks/math/testdata/dapo_math_sample.jsonl";
}

MathProblem Problem(std::string id, std::string prompt, std::string answer) {
  return MathProblem{std::move(id), std::move(prompt), std::move(answer)};
}

// A DAPO-layout line with a chat prompt and a string ground truth.
std::string DapoLine(absl::string_view question, absl::string_view answer) {
  return absl::StrCat(R"({"prompt": [{"role": "user", "content": ")", question,
                      R"("}], "reward_model": {"ground_truth": ")", answer,
                      R"(", "style": "rule"}})");
}

absl::StatusOr<std::vector<MathProblem>> Parse(
    absl::string_view jsonl, const MathDataOptions& options = {}) {
  return ParseMathProblems(jsonl, "data/train.jsonl", options);
}

absl::Status ParseError(absl::string_view jsonl,
                        const MathDataOptions& options = {}) {
  return Parse(jsonl, options).status();
}

TEST(LoadMathProblemsTest, LoadsTheSample) {
  MathDataOptions options;
  options.path = SamplePath();
  ASSERT_OK_AND_ASSIGN(const std::vector<MathProblem> problems,
                       LoadMathProblems(options));
  ASSERT_THAT(problems, SizeIs(10));
  const std::string prefix =
      "Solve the following math problem step by step. Put your final answer "
      "in \\boxed{}.\n\n";
  EXPECT_EQ(problems[0],
            Problem("sample-0001", prefix + "What is $17 + 17$?", "34"));
  EXPECT_EQ(problems[2].answer, "2");
  EXPECT_EQ(problems[2].id, "sample-0003");
  // No extra_info.index: the fallback id names the file and the line.
  EXPECT_EQ(problems[8].id, "dapo_math_sample.jsonl:9");
  // A top-level "id" wins over extra_info.index.
  EXPECT_EQ(problems[9],
            Problem("made-up-10",
                    prefix + "Let $f(n) = n^2 - n$. Compute $f(11)$.", "110"));
  for (const MathProblem& problem : problems) {
    EXPECT_THAT(problem.prompt, StartsWith(prefix));
    // Every ground truth is a plain number the verifier accepts.
    EXPECT_TRUE(AnswersEqual(absl::StrCat("\\boxed{", problem.answer, "}"),
                             problem.answer));
  }
}

TEST(LoadMathProblemsTest, MissingFileIsNotFoundNamingIt) {
  MathDataOptions options;
  options.path = "/nonexistent/dir/train.jsonl";
  EXPECT_THAT(LoadMathProblems(options),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/dir/train.jsonl")));
}

TEST(LoadMathProblemsTest, EmptyPathIsInvalid) {
  EXPECT_THAT(
      LoadMathProblems(MathDataOptions{}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("path is empty")));
}

TEST(LoadMathProblemsTest, EmptyFileIsAnErrorNamingIt) {
  const std::string path = ::testing::TempDir() + "/empty_math.jsonl";
  { std::ofstream file(path, std::ios::trunc); }
  MathDataOptions options;
  options.path = path;
  EXPECT_THAT(LoadMathProblems(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat(path, ": no records (empty file)")));
}

TEST(LoadMathProblemsTest, BadLinesInAFileNameTheFile) {
  const std::string path = ::testing::TempDir() + "/bad_math.jsonl";
  {
    std::ofstream file(path, std::ios::trunc);
    file << DapoLine("1+1?", "2") << "\n"
         << "{oops\n";
  }
  MathDataOptions options;
  options.path = path;
  EXPECT_THAT(
      LoadMathProblems(options),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat(path,
                            ": 1 bad line: line 2: not valid JSON (error at "
                            "column 2)")));
}

TEST(LoadMathEvalProblemsTest, ReadsEvalPathOrNothing) {
  MathDataOptions options;
  ASSERT_OK_AND_ASSIGN(std::vector<MathProblem> none,
                       LoadMathEvalProblems(options));
  EXPECT_THAT(none, SizeIs(0));
  options.eval_path = SamplePath();
  ASSERT_OK_AND_ASSIGN(std::vector<MathProblem> eval,
                       LoadMathEvalProblems(options));
  EXPECT_THAT(eval, SizeIs(10));
}

TEST(ParseMathProblemsTest, PlainStringPrompt) {
  ASSERT_OK_AND_ASSIGN(
      const std::vector<MathProblem> problems,
      Parse(
          R"({"prompt": "What is 2+2?", "reward_model": {"ground_truth": "4"}})"));
  EXPECT_THAT(problems,
              ElementsAre(Problem("train.jsonl:1", "What is 2+2?", "4")));
}

TEST(ParseMathProblemsTest, ChatPromptTakesTheLastUserMessage) {
  ASSERT_OK_AND_ASSIGN(
      const std::vector<MathProblem> problems,
      Parse(R"({"prompt": [{"role": "system", "content": "Be brief."},)"
            R"( {"role": "user", "content": "first"},)"
            R"( {"role": "assistant", "content": "?"},)"
            R"( {"role": "user", "content": "What is 3+3?"},)"
            R"( {"role": "assistant"}],)"
            R"( "reward_model": {"ground_truth": "6"}})"));
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_EQ(problems[0].prompt, "What is 3+3?");
}

TEST(ParseMathProblemsTest, NumericGroundTruthIsItsJsonText) {
  ASSERT_OK_AND_ASSIGN(
      const std::vector<MathProblem> problems,
      Parse(
          R"({"prompt": "a", "reward_model": {"ground_truth": 34}})"
          "\n"
          R"({"prompt": "b", "reward_model": {"ground_truth": -7}})"
          "\n"
          R"({"prompt": "c", "reward_model": {"ground_truth": 0.5}})"
          "\n"
          R"({"prompt": "d", "reward_model": {"ground_truth": 3.0}})"
          "\n"
          R"({"prompt": "e", "reward_model": {"ground_truth": 18446744073709551615}})"));
  ASSERT_THAT(problems, SizeIs(5));
  EXPECT_EQ(problems[0].answer, "34");
  EXPECT_EQ(problems[1].answer, "-7");
  EXPECT_EQ(problems[2].answer, "0.5");
  EXPECT_EQ(problems[3].answer, "3.0");
  EXPECT_TRUE(AnswersEqual("3", problems[3].answer));
  EXPECT_EQ(problems[4].answer, "18446744073709551615");
}

TEST(ParseMathProblemsTest, Ids) {
  ASSERT_OK_AND_ASSIGN(
      const std::vector<MathProblem> problems,
      Parse(
          R"({"prompt": "a", "reward_model": {"ground_truth": "1"}})"
          "\n"
          R"({"prompt": "b", "reward_model": {"ground_truth": "1"}, "id": "q-2"})"
          "\n"
          R"({"prompt": "c", "reward_model": {"ground_truth": "1"}, "id": 77})"
          "\n"
          R"({"prompt": "d", "reward_model": {"ground_truth": "1"}, "extra_info": {"index": 5}})"
          "\n"
          R"({"prompt": "e", "reward_model": {"ground_truth": "1"}, "id": null, "extra_info": {"index": "u-5"}})"
          "\n"
          R"({"prompt": "f", "reward_model": {"ground_truth": "1"}, "extra_info": null})"
          "\n"
          R"({"prompt": "g", "reward_model": {"ground_truth": "1"}, "extra_info": {"split": "train"}})"));
  std::vector<std::string> ids;
  for (const MathProblem& problem : problems) ids.push_back(problem.id);
  EXPECT_THAT(ids, ElementsAre("train.jsonl:1", "q-2", "77", "5", "u-5",
                               "train.jsonl:6", "train.jsonl:7"));
}

TEST(ParseMathProblemsTest, BlankLinesAreSkippedButCounted) {
  const std::string jsonl = absl::StrCat("\n  \n", DapoLine("a", "1"), "\r\n",
                                         "\t\r\n", DapoLine("b", "2"), "\n\n");
  ASSERT_OK_AND_ASSIGN(const std::vector<MathProblem> problems, Parse(jsonl));
  ASSERT_THAT(problems, SizeIs(2));
  EXPECT_EQ(problems[0].id, "train.jsonl:3");
  EXPECT_EQ(problems[1].id, "train.jsonl:5");
  EXPECT_EQ(problems[1].answer, "2");
}

TEST(ParseMathProblemsTest, ByteOrderMarkIsIgnored) {
  ASSERT_OK_AND_ASSIGN(const std::vector<MathProblem> problems,
                       Parse(absl::StrCat("\xEF\xBB\xBF", DapoLine("a", "1"))));
  EXPECT_THAT(problems, SizeIs(1));
}

TEST(ParseMathProblemsTest, NoRecords) {
  EXPECT_THAT(ParseError(""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "data/train.jsonl: no records (empty file)"));
  EXPECT_THAT(ParseError("\n \n\t\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "data/train.jsonl: no records (only blank lines)"));
}

// One bad line of each kind, behind a good first line, so each is reported
// as line 2 with its exact message.
TEST(ParseMathProblemsTest, EachKindOfBadLine) {
  struct Case {
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"prompt": "a",)", "not valid JSON (error at column 16)"},
      {"not json", "not valid JSON (error at column 2)"},
      {R"(["prompt", "a"])", "not a JSON object (got array)"},
      {"42", "not a JSON object (got integer)"},
      {R"({"reward_model": {"ground_truth": "1"}})",
       R"(missing field "prompt")"},
      {R"({"prompt": "a", "reward_model": {"style": "rule"}})",
       R"(missing field "reward_model.ground_truth")"},
      {R"({"prompt": "a"})", R"(missing field "reward_model.ground_truth")"},
      {R"({"prompt": "a", "reward_model": "1"})",
       R"(field "reward_model" must be an object, got string)"},
      {R"({"prompt": 5, "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt" must be a string or a list of chat messages, got integer)"},
      {R"({"prompt": {"content": "a"}, "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt" must be a string or a list of chat messages, got object)"},
      {R"({"prompt": [{"role": "user", "content": "a"}, "hi"], "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt[1]" must be an object with a string "role")"},
      {R"({"prompt": [{"content": "a"}], "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt[0]" must be an object with a string "role")"},
      {R"({"prompt": [], "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt" has no message with role "user")"},
      {R"({"prompt": [{"role": "system", "content": "a"}], "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt" has no message with role "user")"},
      {R"({"prompt": [{"role": "user", "content": null}], "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt[0].content" must be a string, got null)"},
      {R"({"prompt": [{"role": "user"}], "reward_model": {"ground_truth": "1"}})",
       R"(missing field "prompt[0].content")"},
      {R"({"prompt": [{"role": "user", "content": " \n"}], "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt[0].content" is empty)"},
      {R"({"prompt": "", "reward_model": {"ground_truth": "1"}})",
       R"(field "prompt" is empty)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": "  "}})",
       R"(field "reward_model.ground_truth" is empty)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": true}})",
       R"(field "reward_model.ground_truth" must be a string or a number, got boolean)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": null}})",
       R"(field "reward_model.ground_truth" must be a string or a number, got null)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": ["1", "2"]}})",
       R"(field "reward_model.ground_truth" must be a string or a number, got array)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": "1"}, "id": 1.5})",
       R"(field "id" must be a string or an integer, got float)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": "1"}, "id": ""})",
       R"(field "id" is empty)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": "1"}, "extra_info": {"index": [1]}})",
       R"(field "extra_info.index" must be a string or an integer, got array)"},
      {R"({"prompt": "a", "reward_model": {"ground_truth": "1"}, "extra_info": 3})",
       R"(field "extra_info" must be an object, got integer)"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseError(absl::StrCat(DapoLine("ok", "1"), "\n", c.line)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("data/train.jsonl: 1 bad line: line 2: ",
                                      c.message)))
        << c.line;
  }
}

TEST(ParseMathProblemsTest, AllBadLinesAreListedInOrder) {
  const std::string jsonl =
      absl::StrCat("nope\n", DapoLine("a", "1"), "\n\n", R"({"prompt": "b"})",
                   "\n", DapoLine("c", "3"), "\n", "[]\n");
  EXPECT_THAT(ParseError(jsonl),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "data/train.jsonl: 3 bad lines: "
                       "line 1: not valid JSON (error at column 2); "
                       R"(line 4: missing field "reward_model.ground_truth"; )"
                       "line 6: not a JSON object (got array)"));
}

TEST(ParseMathProblemsTest, BadLinesBeyondTheCapAreCounted) {
  std::string jsonl;
  for (int i = 0; i < 25; ++i) absl::StrAppend(&jsonl, "x\n");
  const absl::Status status = ParseError(jsonl);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(StartsWith("data/train.jsonl: 25 bad "
                                                "lines: line 1: "),
                                     HasSubstr("; line 20: not valid JSON"),
                                     Not(HasSubstr("line 21:")),
                                     HasSubstr("; and 5 more"))));
}

TEST(ParseMathProblemsTest, CustomFieldPaths) {
  MathDataOptions options;
  options.prompt_field = "question.text";
  options.answer_field = "solution.final.value";
  ASSERT_OK_AND_ASSIGN(
      const std::vector<MathProblem> problems,
      Parse(
          R"({"question": {"text": "2*3?"}, "solution": {"final": {"value": 6}}})",
          options));
  EXPECT_THAT(problems, ElementsAre(AllOf(Field(&MathProblem::prompt, "2*3?"),
                                          Field(&MathProblem::answer, "6"))));
  // The default paths are not consulted.
  EXPECT_THAT(
      ParseError(DapoLine("a", "1"), options),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          R"(data/train.jsonl: 1 bad line: line 1: missing field "question.text")"));

  options.prompt_field = "problem";
  options.answer_field = "answer";
  ASSERT_OK_AND_ASSIGN(const std::vector<MathProblem> flat,
                       Parse(R"({"problem": "1+2?", "answer": "3"})", options));
  EXPECT_THAT(flat, ElementsAre(Problem("train.jsonl:1", "1+2?", "3")));
}

TEST(ParseMathProblemsTest, MalformedFieldPathsAreRejected) {
  MathDataOptions options;
  for (const char* path : {"", ".", "a..b", "a.", ".a"}) {
    options.answer_field = path;
    EXPECT_THAT(ParseError(DapoLine("a", "1"), options),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("math data: answer_field \"", path,
                                      "\" is not a dotted field path")));
  }
}

}  // namespace
}  // namespace fapo::tasks::math
