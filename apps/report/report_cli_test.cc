// `fapo report` as a user runs it: where report.md and report.html go with
// one run and with several, and what it says when a run cannot be read.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "apps/report/html_elements_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::report {
namespace {

using ::fapo::report::html_testing::FindElements;
using ::fapo::report::html_testing::Having;
using ::fapo::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// What a job spec must say besides its job section.
constexpr char kConfig[] = "data:\n  task: arith\n";

class ReportCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(root_.status(), IsOk());
    fapo_ = fapo::testing::BinaryPath("fapo");
    ASSERT_EQ(access(fapo_.c_str(), X_OK), 0)
        << fapo_ << " is not built (cmake --build ... --target fapo)";
  }

  // A run directory `dir` of job `name` with two steps.
  std::string MakeRun(const std::string& dir, const std::string& name) {
    const std::string run = files::JoinPath(root_.path(), dir);
    EXPECT_THAT(files::MakeDirectories(run), IsOk());
    EXPECT_THAT(
        files::WriteFileAtomically(
            files::JoinPath(run, "config.yaml"),
            absl::StrCat(kConfig, "job:\n  name: ", name, "\n  steps: 2\n")),
        IsOk());
    EXPECT_THAT(files::WriteFileAtomically(
                    files::JoinPath(run, "metrics.jsonl"),
                    "{\"step\":1,\"accuracy\":0.5,\"step_s\":1}\n"
                    "{\"step\":2,\"accuracy\":0.75,\"step_s\":1}\n"),
                IsOk());
    return run;
  }

  // `fapo report ARGS...` run in `cwd` (the test's directory by default).
  fapo::testing::CommandResult Report(const std::vector<std::string>& args,
                                      std::string cwd = "") {
    if (cwd.empty()) cwd = root_.path();
    std::vector<std::string> argv = {"env", "-C", cwd, fapo_, "report"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<fapo::testing::CommandResult> result =
        fapo::testing::RunCommand(argv, absl::Seconds(60));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *result : fapo::testing::CommandResult{-1, "", ""};
  }

  std::string Path(const std::string& name) {
    return files::JoinPath(root_.path(), name);
  }

  fapo::testing::TempDir root_{"fapo-report-cli-test-"};
  std::string fapo_;
};

TEST_F(ReportCliTest, OneRunGetsItsPageBesideReportMd) {
  const std::string run = MakeRun("run", "tiny");
  fapo::testing::CommandResult result = Report({run});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_THAT(result.stdout_text, HasSubstr("# Run report: tiny"));
  EXPECT_THAT(result.stdout_text,
              HasSubstr(files::JoinPath(run, "report.html")));
  EXPECT_TRUE(files::PathExists(files::JoinPath(run, "report.md")));
  ASSERT_OK_AND_ASSIGN(std::string page,
                       files::ReadFile(files::JoinPath(run, "report.html")));
  EXPECT_THAT(Having(FindElements(page, "path"),
                     {{"data-chart", "accuracy"}, {"data-run", "tiny"}}),
              SizeIs(1));
  EXPECT_FALSE(files::PathExists(Path("report.html")));  // not in the cwd
}

TEST_F(ReportCliTest, SeveralRunsOverlayOnOnePageInTheCurrentDirectory) {
  const std::string a = MakeRun("a", "first");
  const std::string b = MakeRun("b", "second");
  const std::string cwd = Path("here");
  ASSERT_THAT(files::MakeDirectories(cwd), IsOk());
  fapo::testing::CommandResult result = Report({a, b}, cwd);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  // The paths written, not the reports.
  EXPECT_THAT(result.stdout_text, Not(HasSubstr("# Run report")));
  EXPECT_THAT(result.stdout_text, HasSubstr(files::JoinPath(a, "report.md")));
  EXPECT_THAT(result.stdout_text, HasSubstr(files::JoinPath(b, "report.md")));
  EXPECT_THAT(result.stdout_text, HasSubstr("./report.html"));
  ASSERT_OK_AND_ASSIGN(std::string page,
                       files::ReadFile(files::JoinPath(cwd, "report.html")));
  for (const char* run : {"first", "second"}) {
    EXPECT_THAT(Having(FindElements(page, "path"),
                       {{"data-chart", "accuracy"}, {"data-run", run}}),
                SizeIs(1))
        << run;
  }
  // Each run its report.md; no page of its own.
  for (const std::string& run : {a, b}) {
    EXPECT_TRUE(files::PathExists(files::JoinPath(run, "report.md")));
    EXPECT_FALSE(files::PathExists(files::JoinPath(run, "report.html")));
  }
}

TEST_F(ReportCliTest, HtmlSaysWhereThePageGoes) {
  const std::string a = MakeRun("a", "first");
  const std::string b = MakeRun("b", "second");
  // Flags anywhere among the run directories, either spelling.
  fapo::testing::CommandResult result =
      Report({a, "--html", Path("both.html"), "--rows", "1", b, "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_TRUE(files::PathExists(Path("both.html")));
  result = Report({absl::StrCat("--html=", Path("one.html")), a});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_TRUE(files::PathExists(Path("one.html")));
  EXPECT_FALSE(files::PathExists(files::JoinPath(a, "report.html")));
}

TEST_F(ReportCliTest, ARunThatCannotBeReadFailsWithoutAPage) {
  const std::string good = MakeRun("good", "tiny");
  const std::string empty = Path("empty");
  ASSERT_THAT(files::MakeDirectories(empty), IsOk());
  ASSERT_THAT(files::WriteFileAtomically(
                  files::JoinPath(empty, "config.yaml"),
                  absl::StrCat(kConfig, "job:\n  name: empty\n")),
              IsOk());
  fapo::testing::CommandResult result = Report({good, empty});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text,
              HasSubstr(files::JoinPath(empty, "metrics.jsonl")));
  EXPECT_THAT(result.stderr_text, HasSubstr("no page written"));
  EXPECT_FALSE(files::PathExists(Path("report.html")));

  result = Report({good, "--html"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.stderr_text, HasSubstr("--html needs a value"));
  result = Report({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.stderr_text, HasSubstr("missing argument RUN_DIR"));
  EXPECT_THAT(Report({"--help"}).stdout_text, HasSubstr("--html PATH"));
  EXPECT_THAT(Report({"--help"}).stderr_text, IsEmpty());
}

}  // namespace
}  // namespace fapo::report
