#include "apps/report/report_html.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "apps/report/html_elements_testing.h"
#include "apps/report/run_data.h"
#include "apps/report/run_report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::report {
namespace {

using ::fapo::report::html_testing::Element;
using ::fapo::report::html_testing::FindElements;
using ::fapo::report::html_testing::Having;
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

std::string Config(const std::string& name, const std::string& reward) {
  return absl::StrCat("job:\n  name: ", name,
                      "\n  steps: 4\ndata:\n  task: arith\nalgorithm:\n"
                      "  reward: ",
                      reward,
                      "\nrollout:\n  group_size: 2\n"
                      "  prompts_per_step: 2\n");
}

// A metrics.jsonl line as the trainer writes it (with the generation/GenRM
// split), for step `step`.
nlohmann::json MetricsLine(int64_t step, double accuracy = 0.5) {
  return {{"step", step},
          {"reward_mean", accuracy - 0.1},
          {"accuracy", accuracy},
          {"alpha", accuracy * 0.75},
          {"beta", 1 - accuracy},
          {"gamma", accuracy * 0.25},
          {"staleness_mean", 1.0},
          {"step_s", 2.0},
          {"train_s", 1.0},
          {"wait_for_batch_s", 0.5},
          {"generation_wait_s", 0.3},
          {"genrm_wait_s", 0.2},
          {"weight_sync_s", 0.25},
          {"checkpoint_s", 0.0}};
}

std::string Lines(const std::vector<nlohmann::json>& lines) {
  std::string text;
  for (const nlohmann::json& line : lines) {
    absl::StrAppend(&text, line.dump(), "\n");
  }
  return text;
}

std::string Sample(bool correct, bool flawed, const std::string& status,
                   double advantage, const std::string& drop_reason = "") {
  nlohmann::json sample = {
      {"answer_correct", correct},
      {"flawed", flawed},
      {"verdict_status", status},
      {"reward", correct ? 1.0 : 0.0},
      {"advantage", advantage},
      {"outcome", drop_reason.empty() ? "trained" : "dropped"},
      {"drop_reason", nullptr}};
  if (!drop_reason.empty()) sample["drop_reason"] = drop_reason;
  return sample.dump() + "\n";
}

class ReportHtmlTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(root_.status(), IsOk()); }

  // Writes `name` (a path under the test's directory) and returns its path.
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = files::JoinPath(root_.path(), name);
    EXPECT_THAT(files::MakeDirectories(files::ParentDirectory(path)), IsOk());
    EXPECT_THAT(files::WriteFileAtomically(path, text), IsOk());
    return path;
  }

  // A run directory `dir` of job `name`: four steps, six trajectories.
  std::string MakeRun(const std::string& dir, const std::string& name,
                      const std::string& reward = "fapo") {
    Write(dir + "/config.yaml", Config(name, reward));
    Write(dir + "/metrics.jsonl",
          Lines({MetricsLine(1, 0.25), MetricsLine(2, 0.5),
                 MetricsLine(3, 0.75), MetricsLine(4, 1.0)}));
    Write(dir + "/samples.jsonl",
          Sample(true, false, "ok", 1.0) + Sample(true, false, "ok", 0.5) +
              Sample(true, true, "ok", -2.0) +
              Sample(false, false, "skipped", -1.0) +
              Sample(true, false, "ok", 0.0, "stale") +
              Sample(false, false, "timeout", 0.0, "stale"));
    return files::JoinPath(root_.path(), dir);
  }

  absl::StatusOr<std::string> Page(const std::vector<std::string>& dirs) {
    return MakeHtmlReport(dirs);
  }

  fapo::testing::TempDir root_{"fapo-report-html-test-"};
};

// The plotted series of `chart` for `run`: its paths and dots.
std::vector<Element> Series(const std::string& page, const std::string& chart,
                            const std::string& series, const std::string& run) {
  return Having(FindElements(page, "path"), {{"class", "series"},
                                             {"data-chart", chart},
                                             {"data-series", series},
                                             {"data-run", run}});
}

// The y coordinates of a path's points (its "M x y" and "L x y").
std::vector<double> PathYs(const std::string& d) {
  std::vector<double> ys;
  for (absl::string_view point :
       absl::StrSplit(d, absl::ByAnyChar("ML"), absl::SkipEmpty())) {
    std::vector<absl::string_view> xy = absl::StrSplit(point, ' ');
    double y;
    if (xy.size() == 2 && absl::SimpleAtod(xy[1], &y)) ys.push_back(y);
  }
  return ys;
}

TEST_F(ReportHtmlTest, OneRunHasEveryChartWithItsSeries) {
  ASSERT_OK_AND_ASSIGN(std::string page, Page({MakeRun("run", "tiny")}));
  EXPECT_THAT(page, HasSubstr("<h1>Run report: tiny</h1>"));
  EXPECT_THAT(page, HasSubstr("Step 4 of 4 (finished)"));
  const std::pair<const char*, const char*> curves[] = {
      {"reward", "reward"},
      {"accuracy", "accuracy"},
      {"flawed-positive-ratio", "flawed-positive-ratio"},
      {"shares", "alpha"},
      {"shares", "beta"},
      {"shares", "gamma"},
  };
  for (const auto& [chart, series] : curves) {
    std::vector<Element> paths = Series(page, chart, series, "tiny");
    ASSERT_THAT(paths, SizeIs(1)) << chart << " " << series;
    EXPECT_EQ(paths[0].Get("data-points"), "4") << chart << " " << series;
  }
  // Every chart has a title, tick labels and a legend.
  for (const Element& svg : FindElements(page, "svg")) {
    EXPECT_EQ(svg.Get("class"), "chart");
    EXPECT_THAT(svg.Get("aria-label"), Not(""));
  }
  EXPECT_THAT(FindElements(page, "svg"), SizeIs(9));
  EXPECT_THAT(Having(FindElements(page, "text"), {{"class", "title"}}),
              SizeIs(9));
  EXPECT_THAT(Having(FindElements(page, "g"), {{"class", "legend"}}),
              SizeIs(9));
  EXPECT_GE(Having(FindElements(page, "text"), {{"class", "tick"}}).size(),
            9u * 3);

  // Accuracy rises 0.25 -> 1 on a 0..1 axis: each point higher on the page
  // (a smaller y) than the one before.
  const std::vector<double> ys =
      PathYs(Series(page, "accuracy", "accuracy", "tiny")[0].Get("d"));
  ASSERT_THAT(ys, SizeIs(4));
  for (size_t i = 1; i < ys.size(); ++i) EXPECT_LT(ys[i], ys[i - 1]);

  // The ratio is gamma / (alpha + gamma) per step: 0.25 each step, as high
  // on its 0..1 axis as the first step's accuracy (0.25) on the same axis.
  const std::vector<double> ratio = PathYs(
      Series(page, "flawed-positive-ratio", "flawed-positive-ratio", "tiny")[0]
          .Get("d"));
  ASSERT_THAT(ratio, SizeIs(4));
  for (double y : ratio) EXPECT_DOUBLE_EQ(y, ys[0]);

  // Step time: the parts of step_s, and what of it no part names.
  for (const char* part : {"train_s", "generation_wait_s", "genrm_wait_s",
                           "weight_sync_s", "other_s"}) {
    EXPECT_THAT(Series(page, "step-time", part, "tiny"), SizeIs(1)) << part;
  }
  // A line with the split does not count the unsplit wait again; no
  // checkpoint time, no checkpoint bar.
  EXPECT_THAT(Series(page, "step-time", "wait_for_batch_s", "tiny"), SizeIs(0));
  EXPECT_THAT(Series(page, "step-time", "checkpoint_s", "tiny"), SizeIs(0));
  const std::vector<Element> bars = FindElements(page, "rect");
  // Mean step (steps 2-4): train 1 s; the rest 2 - 1 - 0.3 - 0.2 - 0.25.
  EXPECT_THAT(Having(bars, {{"data-chart", "step-time-mean"},
                            {"data-category", "train_s"},
                            {"data-value", "1"}}),
              SizeIs(1));
  EXPECT_THAT(Having(bars, {{"data-chart", "step-time-mean"},
                            {"data-category", "other_s"},
                            {"data-value", "0.25"}}),
              SizeIs(1));

  // Verdicts: 4 ok, 1 skipped, 1 timeout of 6.
  EXPECT_THAT(Having(bars, {{"data-chart", "verdicts"},
                            {"data-category", "ok"},
                            {"data-run", "tiny"},
                            {"data-value", "0.666667"}}),
              SizeIs(1));
  EXPECT_THAT(Having(bars, {{"data-chart", "verdicts"},
                            {"data-category", "timeout"},
                            {"data-value", "0.166667"}}),
              SizeIs(1));
  // Outcomes: 2 sound, 1 flawed positive, 1 wrong, 2 dropped as stale.
  EXPECT_THAT(Having(bars, {{"data-chart", "outcomes"},
                            {"data-category", "dropped:stale"},
                            {"data-value", "0.333333"}}),
              SizeIs(1));
  // Mean advantages: sound 0.75, flawed positive -2, wrong -1.
  for (const auto& [kind, value] :
       std::vector<std::pair<std::string, std::string>>{
           {"sound", "0.75"}, {"flawed_positive", "-2"}, {"wrong", "-1"}}) {
    EXPECT_THAT(Having(bars, {{"data-chart", "advantage"},
                              {"data-category", kind},
                              {"data-value", value}}),
                SizeIs(1))
        << kind;
  }
  EXPECT_THAT(page, HasSubstr("flawed positive (answer right, a step wrong)"));
}

TEST_F(ReportHtmlTest, PageIsSelfContained) {
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({MakeRun("a", "first"), MakeRun("b", "second")}));
  EXPECT_TRUE(absl::StartsWith(page, "<!DOCTYPE html>"));
  EXPECT_THAT(page, HasSubstr("<style>"));
  EXPECT_THAT(page, HasSubstr("default-src 'none'"));
  for (const char* outside :
       {"<script", "http://", "https://", "<link", "<img", "<iframe", "<object",
        "<embed", "@import", "url(", "src=", "href=", " onload", " onclick",
        " onerror"}) {
    EXPECT_THAT(page, Not(HasSubstr(outside))) << outside;
  }
}

TEST_F(ReportHtmlTest, SeveralRunsAreOverlaidOneColourEach) {
  ASSERT_OK_AND_ASSIGN(std::string page, Page({MakeRun("a", "fapo-run"),
                                               MakeRun("b", "rlvr-run", "rlvr"),
                                               MakeRun("c", "third")}));
  EXPECT_THAT(page, HasSubstr("Runs compared: "));
  std::vector<std::string> colours;
  for (const char* run : {"fapo-run", "rlvr-run", "third"}) {
    for (const char* chart : {"reward", "accuracy", "flawed-positive-ratio"}) {
      std::vector<Element> paths = Series(page, chart, chart, run);
      ASSERT_THAT(paths, SizeIs(1)) << chart << " " << run;
      if (absl::string_view(chart) == "accuracy") {
        colours.push_back(paths[0].Get("stroke"));
      }
    }
    EXPECT_THAT(Series(page, "shares", "gamma", run), SizeIs(1));
    EXPECT_THAT(Series(page, "step-time", "train_s", run), SizeIs(1));
    EXPECT_THAT(Having(FindElements(page, "rect"), {{"data-chart", "verdicts"},
                                                    {"data-category", "ok"},
                                                    {"data-run", run}}),
                SizeIs(1));
    EXPECT_THAT(Having(FindElements(page, "tr"), {{"data-run", run}}),
                SizeIs(1));
  }
  ASSERT_THAT(colours, SizeIs(3));
  EXPECT_NE(colours[0], colours[1]);
  EXPECT_NE(colours[1], colours[2]);
  EXPECT_NE(colours[0], colours[2]);
  // One line chart holds every run: three accuracy paths in one svg.
  const size_t chart = page.find("data-chart=\"accuracy\" viewBox");
  ASSERT_NE(chart, std::string::npos);
  const std::string accuracy_svg =
      page.substr(chart, page.find("</svg>", chart) - chart);
  EXPECT_THAT(Having(FindElements(accuracy_svg, "path"), {{"class", "series"}}),
              SizeIs(3));
  // The legend names each run.
  for (const char* run : {"fapo-run", "rlvr-run", "third"}) {
    EXPECT_THAT(accuracy_svg, HasSubstr(absl::StrCat(">", run, "</text>")));
  }
}

TEST_F(ReportHtmlTest, RunsSharingAJobNameAreToldApartByDirectory) {
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({MakeRun("a", "same"), MakeRun("b", "same")}));
  EXPECT_THAT(Series(page, "accuracy", "accuracy", "same (a)"), SizeIs(1));
  EXPECT_THAT(Series(page, "accuracy", "accuracy", "same (b)"), SizeIs(1));
}

TEST_F(ReportHtmlTest, NamesAndPathsAreEscaped) {
  // A job name cannot hold markup (config validation), but a directory
  // can, and the page must not trust either.
  const std::string evil = "<b>&\"x\"";
  const std::string dir = MakeRun(evil, "tiny");
  ASSERT_OK_AND_ASSIGN(RunData run, ReadRunData(dir));
  run.spec.job.name = evil + "<script>alert(1)</script>";
  const std::string page = FormatHtmlReport(absl::MakeConstSpan(&run, 1));
  EXPECT_THAT(page, Not(HasSubstr("<b>")));
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  EXPECT_THAT(page, Not(HasSubstr("\"x\"")));
  EXPECT_THAT(page, HasSubstr("&lt;b&gt;&amp;&quot;x&quot;&lt;script&gt;"));
  // Unescaped by a parser, the attribute is the name again.
  EXPECT_THAT(Series(page, "accuracy", "accuracy", run.spec.job.name),
              SizeIs(1));
  EXPECT_THAT(Having(FindElements(page, "td"), {{"class", "path"}}), SizeIs(1));
  EXPECT_THAT(page,
              HasSubstr(absl::StrCat("/&lt;b&gt;&amp;&quot;x&quot;</td>")));
}

TEST_F(ReportHtmlTest, MissingFieldsAndGapsLeaveGapsNotErrors) {
  // An older line with accuracy only; a step whose accuracy is null (how
  // nlohmann writes NaN); a step with no right answers (no ratio).
  nlohmann::json old = {{"step", 1}, {"accuracy", 0.5}};
  nlohmann::json gap = MetricsLine(2);
  gap["accuracy"] = nullptr;
  nlohmann::json none_right = MetricsLine(3, 0.0);
  Write("run/config.yaml", Config("tiny", "fapo"));
  Write("run/metrics.jsonl",
        Lines({old, gap, none_right, MetricsLine(4), MetricsLine(5)}));
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({files::JoinPath(root_.path(), "run")}));
  // Accuracy at 1, (gap), 3, 4, 5: a dot, then a line of three.
  std::vector<Element> accuracy = Series(page, "accuracy", "accuracy", "tiny");
  ASSERT_THAT(accuracy, SizeIs(1));
  EXPECT_EQ(accuracy[0].Get("data-points"), "4");
  const std::string d = accuracy[0].Get("d");
  EXPECT_EQ(std::count(d.begin(), d.end(), 'M'), 2) << d;  // two segments
  EXPECT_THAT(Having(FindElements(page, "circle"),
                     {{"data-chart", "accuracy"}, {"data-run", "tiny"}}),
              SizeIs(1));
  // The ratio: missing at 1 (no alpha/gamma) and 3 (alpha + gamma = 0).
  std::vector<Element> ratio =
      Series(page, "flawed-positive-ratio", "flawed-positive-ratio", "tiny");
  ASSERT_THAT(ratio, SizeIs(1));
  EXPECT_EQ(ratio[0].Get("data-points"), "3");
  // Nothing missing became a coordinate.
  for (const Element& path : FindElements(page, "path")) {
    EXPECT_EQ(path.Get("d").find_first_not_of("MLHVZ0123456789.- "),
              std::string::npos)
        << path.Get("d");
  }
  // No samples.jsonl: said, no verdict bars.
  EXPECT_THAT(page, HasSubstr("No samples.jsonl in the run directory"));
  EXPECT_THAT(Having(FindElements(page, "rect"), {{"data-chart", "verdicts"}}),
              SizeIs(0));
}

TEST_F(ReportHtmlTest, AMetricNoLineHasIsNoDataNotAnError) {
  Write("run/config.yaml", Config("tiny", "fapo"));
  Write("run/metrics.jsonl", Lines({{{"step", 1}}, {{"step", 2}}}));
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({files::JoinPath(root_.path(), "run")}));
  EXPECT_THAT(Having(FindElements(page, "path"), {{"class", "series"}}),
              SizeIs(0));
  EXPECT_THAT(page, HasSubstr("no data in metrics.jsonl"));
}

TEST_F(ReportHtmlTest, ASingleStepIsADot) {
  Write("run/config.yaml", Config("tiny", "fapo"));
  Write("run/metrics.jsonl", Lines({MetricsLine(1)}));
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({files::JoinPath(root_.path(), "run")}));
  ASSERT_THAT(Series(page, "accuracy", "accuracy", "tiny"), SizeIs(1));
  EXPECT_THAT(Having(FindElements(page, "circle"),
                     {{"data-chart", "accuracy"}, {"data-series", "accuracy"}}),
              SizeIs(1));
  // The step's tick is labelled.
  EXPECT_THAT(page, HasSubstr("text-anchor=\"middle\">1</text>"));
}

TEST_F(ReportHtmlTest, OldLinesWithoutTheSplitShowTheWholeBatchWait) {
  nlohmann::json old = MetricsLine(1);
  old.erase("generation_wait_s");
  old.erase("genrm_wait_s");
  Write("run/config.yaml", Config("tiny", "fapo"));
  Write("run/metrics.jsonl", Lines({old, old}));
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({files::JoinPath(root_.path(), "run")}));
  EXPECT_THAT(Series(page, "step-time", "wait_for_batch_s", "tiny"), SizeIs(1));
  EXPECT_THAT(Series(page, "step-time", "generation_wait_s", "tiny"),
              SizeIs(0));
  EXPECT_THAT(
      Having(FindElements(page, "rect"), {{"data-chart", "step-time-mean"},
                                          {"data-category", "wait_for_batch_s"},
                                          {"data-value", "0.5"}}),
      SizeIs(1));
}

TEST_F(ReportHtmlTest, TenThousandStepsMakeASmallPage) {
  std::string metrics;
  for (int step = 1; step <= 10000; ++step) {
    // Accuracy 0.2 for the first half, 0.8 after.
    absl::StrAppend(&metrics,
                    MetricsLine(step, step <= 5000 ? 0.2 : 0.8).dump(), "\n");
  }
  Write("a/config.yaml", Config("long", "fapo"));
  Write("a/metrics.jsonl", metrics);
  Write("b/config.yaml", Config("long-too", "rlvr"));
  Write("b/metrics.jsonl", metrics);
  ASSERT_OK_AND_ASSIGN(std::string page,
                       Page({files::JoinPath(root_.path(), "a"),
                             files::JoinPath(root_.path(), "b")}));
  EXPECT_LT(page.size(), 2u << 20);
  for (const Element& path :
       Having(FindElements(page, "path"), {{"class", "series"}})) {
    int64_t points = 0;
    if (path.Get("data-chart") == "step-time") continue;
    ASSERT_TRUE(absl::SimpleAtoi(path.Get("data-points"), &points));
    EXPECT_EQ(points, 500) << path.Get("data-chart");
  }
  // Each point a mean of 20 steps: two levels, nothing between.
  const std::vector<double> ys =
      PathYs(Series(page, "accuracy", "accuracy", "long")[0].Get("d"));
  ASSERT_THAT(ys, SizeIs(500));
  EXPECT_DOUBLE_EQ(ys[0], ys[249]);
  EXPECT_DOUBLE_EQ(ys[250], ys[499]);
  EXPECT_GT(ys[0], ys[250]);  // 0.2 is lower on the page than 0.8
  EXPECT_THAT(page, HasSubstr("means of 500 equal spans of steps"));
}

TEST_F(ReportHtmlTest, ErrorsNameThePath) {
  Write("empty/config.yaml", Config("tiny", "fapo"));
  const std::string empty = files::JoinPath(root_.path(), "empty");
  EXPECT_THAT(Page({empty}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(files::JoinPath(empty, "metrics.jsonl"))));
  // The second of two runs: its error, not a page without it.
  EXPECT_THAT(Page({MakeRun("good", "tiny"), empty}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(files::JoinPath(empty, "metrics.jsonl"))));
  EXPECT_THAT(Page({files::JoinPath(root_.path(), "nothing-here")}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("config.yaml")));
  EXPECT_THAT(Page({}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WriteHtmlReport({}, files::JoinPath(root_.path(), "x.html")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReportHtmlTest, WriteRunReportWritesThePageBesideReportMd) {
  const std::string dir = MakeRun("run", "tiny");
  RunReportOptions options;
  options.run_dir = dir;
  ASSERT_OK_AND_ASSIGN(const std::string markdown_only, MakeRunReport(options));
  options.html_path = HtmlReportPath(dir);
  EXPECT_EQ(options.html_path, files::JoinPath(dir, "report.html"));
  std::string markdown;
  RunData run;
  ASSERT_THAT(WriteRunReport(options, &markdown, &run), IsOk());
  EXPECT_EQ(markdown, markdown_only);  // the page changes nothing there
  EXPECT_EQ(RunName(run), "tiny");
  ASSERT_OK_AND_ASSIGN(std::string page, files::ReadFile(options.html_path));
  ASSERT_OK_AND_ASSIGN(std::string made, Page({dir}));
  EXPECT_EQ(page, made);
  EXPECT_EQ(page, FormatHtmlReport(absl::MakeConstSpan(&run, 1)));

  // A page that cannot be written is an error, after report.md.
  options.html_path = files::JoinPath(dir, "no-such-dir/report.html");
  EXPECT_THAT(WriteRunReport(options), Not(IsOk()));
}

}  // namespace
}  // namespace fapo::report
