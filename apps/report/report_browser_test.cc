// report.html as a real browser renders it: Debian's chromium, headless,
// dumps the DOM it built from the page (the charts' SVG elements must have
// survived parsing) and takes a screenshot, decoded with libpng, that must
// show the page's header and each run's curves in that run's colour.
//
// chromium comes with scripts/install-deps.sh; a missing one fails the test
// rather than skipping it, so the check cannot silently stop running.
#include <png.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "apps/report/html_elements_testing.h"
#include "apps/report/report_html.h"
#include "apps/report/run_data.h"
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
using ::testing::SizeIs;

// Each chromium run; a cold start takes about a second.
constexpr absl::Duration kBrowserTimeout = absl::Seconds(50);

// The runs' colours on the page (report_html.cc, in page order).
constexpr uint32_t kFirstRunColor = 0x4e79a7;
constexpr uint32_t kSecondRunColor = 0xf28e2b;
constexpr uint32_t kHeaderColor = 0x24292f;

std::string Config(const std::string& name, const std::string& reward) {
  return absl::StrCat("job:\n  name: ", name,
                      "\n  steps: 60\ndata:\n  task: arith\nalgorithm:\n"
                      "  reward: ",
                      reward, "\n");
}

// Sixty steps of a run learning: accuracy from `start` up.
std::string Metrics(double start) {
  std::string text;
  for (int step = 1; step <= 60; ++step) {
    const double accuracy = start + (0.9 - start) * step / 60.0;
    const double gamma = accuracy * (0.3 - 0.2 * step / 60.0);
    absl::StrAppendFormat(
        &text,
        "{\"step\":%d,\"reward_mean\":%f,\"accuracy\":%f,\"alpha\":%f,"
        "\"beta\":%f,\"gamma\":%f,\"step_s\":1.5,\"train_s\":0.8,"
        "\"generation_wait_s\":0.3,\"genrm_wait_s\":0.1,"
        "\"weight_sync_s\":0.1,\"checkpoint_s\":0.0}\n",
        step, accuracy - gamma, accuracy, accuracy - gamma, 1 - accuracy,
        gamma);
  }
  return text;
}

std::string Samples() {
  std::string text;
  for (int i = 0; i < 40; ++i) {
    const bool correct = i % 3 != 0;
    const bool flawed = correct && i % 5 == 0;
    absl::StrAppendFormat(
        &text,
        "{\"answer_correct\":%s,\"flawed\":%s,\"verdict_status\":\"%s\","
        "\"reward\":%d,\"advantage\":%f,\"outcome\":\"trained\","
        "\"drop_reason\":null}\n",
        correct ? "true" : "false", flawed ? "true" : "false",
        i % 10 == 0 ? "timeout" : "ok", correct ? 1 : 0,
        flawed ? -0.5 : (correct ? 0.8 : -1.0));
  }
  return text;
}

struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgba;

  uint32_t Rgb(uint32_t x, uint32_t y) const {
    const uint8_t* pixel = &rgba[(static_cast<size_t>(y) * width + x) * 4];
    return (uint32_t{pixel[0]} << 16) | (uint32_t{pixel[1]} << 8) | pixel[2];
  }
};

// Decodes a PNG file with libpng's simplified API, as 8-bit RGBA.
absl::StatusOr<Image> ReadPng(const std::string& path) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a PNG: ", png.message));
  }
  png.format = PNG_FORMAT_RGBA;
  Image image;
  image.width = png.width;
  image.height = png.height;
  image.rgba.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.rgba.data(), 0, nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", message));
  }
  return image;
}

// Whether `rgb` is `color` blended over white with an opacity of at least
// a half: the pixels of a line of that colour, its anti-aliased edges
// included, and no other colour's.
bool TintOf(uint32_t rgb, uint32_t color) {
  double low = 1, high = 0;
  for (int shift : {0, 8, 16}) {
    const double pixel = (rgb >> shift) & 0xff;
    const double ink = (color >> shift) & 0xff;
    if (ink > 250) continue;
    const double opacity = (255 - pixel) / (255 - ink);
    low = std::min(low, opacity);
    high = std::max(high, opacity);
  }
  return low >= 0.5 && high <= 1.05 && high - low <= 0.1;
}

bool Near(uint32_t a, uint32_t b, int tolerance) {
  for (int shift : {0, 8, 16}) {
    const int da = static_cast<int>((a >> shift) & 0xff);
    const int db = static_cast<int>((b >> shift) & 0xff);
    if (std::abs(da - db) > tolerance) return false;
  }
  return true;
}

class ReportBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(root_.status(), IsOk());
    chromium_ = fapo::testing::FindOnPath("chromium");
    const char* path = std::getenv("PATH");
    ASSERT_FALSE(chromium_.empty())
        << "chromium is not on PATH (" << (path != nullptr ? path : "unset")
        << "). It is Debian's `chromium` package, which the install script "
           "installs: apt-get install chromium";
    // Two runs, overlaid on one page.
    for (const auto& [dir, name, reward, start] :
         {std::make_tuple("a", "fapo-run", "fapo", 0.2),
          std::make_tuple("b", "rlvr-run", "rlvr", 0.5)}) {
      const std::string run = files::JoinPath(root_.path(), dir);
      ASSERT_THAT(files::MakeDirectories(run), IsOk());
      ASSERT_THAT(
          files::WriteFileAtomically(files::JoinPath(run, "config.yaml"),
                                     Config(name, reward)),
          IsOk());
      ASSERT_THAT(files::WriteFileAtomically(
                      files::JoinPath(run, "metrics.jsonl"), Metrics(start)),
                  IsOk());
      ASSERT_THAT(files::WriteFileAtomically(
                      files::JoinPath(run, "samples.jsonl"), Samples()),
                  IsOk());
      ASSERT_OK_AND_ASSIGN(RunData data, ReadRunData(run));
      runs_.push_back(std::move(data));
    }
    page_ = files::JoinPath(root_.path(), "report.html");
    ASSERT_THAT(WriteHtmlReport(runs_, page_), IsOk());
  }

  // Runs headless chromium on the page with `flags`; its own profile and
  // HOME in the test's directory (it writes there, and must not touch the
  // user's).
  absl::StatusOr<fapo::testing::CommandResult> Chromium(
      const std::vector<std::string>& flags) {
    const std::string home = files::JoinPath(root_.path(), "home");
    std::vector<std::string> argv = {
        "env",
        absl::StrCat("HOME=", home),
        absl::StrCat("XDG_CONFIG_HOME=", home, "/.config"),
        absl::StrCat("XDG_CACHE_HOME=", home, "/.cache"),
        chromium_,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        absl::StrCat("--user-data-dir=",
                     files::JoinPath(root_.path(), "profile"))};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(absl::StrCat("file://", page_));
    const absl::Time start = absl::Now();
    absl::StatusOr<fapo::testing::CommandResult> result =
        fapo::testing::RunCommand(argv, kBrowserTimeout);
    std::cout << "chromium " << flags[0] << " took "
              << absl::FormatDuration(absl::Now() - start) << "\n";
    return result;
  }

  fapo::testing::TempDir root_{"fapo-report-browser-test-"};
  std::string chromium_;
  std::vector<RunData> runs_;
  std::string page_;
};

TEST_F(ReportBrowserTest, TheDomHasEveryChartAndSeries) {
  ASSERT_OK_AND_ASSIGN(fapo::testing::CommandResult result,
                       Chromium({"--dump-dom"}));
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  const std::string& dom = result.stdout_text;
  ASSERT_THAT(dom, HasSubstr("<svg")) << result.stderr_text;
  EXPECT_THAT(Having(FindElements(dom, "svg"), {{"class", "chart"}}),
              SizeIs(10));  // 4 curves, 3 step time, 3 trajectories
  for (const char* run : {"fapo-run", "rlvr-run"}) {
    for (const auto& [chart, series] :
         std::vector<std::pair<std::string, std::string>>{
             {"reward", "reward"},
             {"accuracy", "accuracy"},
             {"flawed-positive-ratio", "flawed-positive-ratio"},
             {"shares", "alpha"},
             {"shares", "beta"},
             {"shares", "gamma"},
             {"step-time", "train_s"}}) {
      EXPECT_THAT(Having(FindElements(dom, "path"), {{"class", "series"},
                                                     {"data-chart", chart},
                                                     {"data-series", series},
                                                     {"data-run", run}}),
                  SizeIs(1))
          << chart << " " << series << " " << run;
    }
    EXPECT_THAT(Having(FindElements(dom, "rect"), {{"class", "bar"},
                                                   {"data-chart", "verdicts"},
                                                   {"data-category", "ok"},
                                                   {"data-run", run}}),
                SizeIs(1));
  }
  EXPECT_THAT(dom, HasSubstr("Runs compared: "));
}

TEST_F(ReportBrowserTest, TheScreenshotShowsTheHeaderAndEachRunsCurves) {
  const std::string png = files::JoinPath(root_.path(), "page.png");
  ASSERT_OK_AND_ASSIGN(fapo::testing::CommandResult result,
                       Chromium({absl::StrCat("--screenshot=", png),
                                 "--window-size=1200,2000"}));
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  ASSERT_OK_AND_ASSIGN(Image image, ReadPng(png));
  ASSERT_EQ(image.width, 1200u);
  ASSERT_EQ(image.height, 2000u);

  // Not one colour: a page, its text and charts. The pixels of each run's
  // colour are counted where the page puts the training curves first
  // (above y = 1100 at this window size: the header, the runs table and
  // two rows of line charts); further down, the bars of the verdict charts
  // share the runs' colours.
  constexpr uint32_t kCurvesEnd = 1100;
  std::vector<uint32_t> colours;
  int64_t first_run = 0, second_run = 0, white = 0;
  for (uint32_t y = 0; y < image.height; ++y) {
    for (uint32_t x = 0; x < image.width; ++x) {
      const uint32_t rgb = image.Rgb(x, y);
      if (y < kCurvesEnd && TintOf(rgb, kFirstRunColor)) ++first_run;
      if (y < kCurvesEnd && TintOf(rgb, kSecondRunColor)) ++second_run;
      if (rgb == 0xffffff) ++white;
      if (colours.size() < 64 &&
          std::find(colours.begin(), colours.end(), rgb) == colours.end()) {
        colours.push_back(rgb);
      }
    }
  }
  std::cout << "pixels above y = " << kCurvesEnd << ": " << first_run
            << " of the first run's colour, " << second_run
            << " of the second's; " << white << " white in all\n";
  EXPECT_GE(colours.size(), 64u);
  // The inline stylesheet applied (the Content-Security-Policy lets it):
  // the dark header band, and white chart cards on the grey page.
  EXPECT_TRUE(Near(image.Rgb(10, 10), kHeaderColor, 2))
      << std::hex << image.Rgb(10, 10);
  EXPECT_GT(white, int64_t{200000});
  // Each run's curves in its colour: four charts of sixty steps draw ~4000
  // such pixels a run; the table's and legends' swatches without the
  // curves, ~400.
  EXPECT_GT(first_run, 2000) << "pixels of the first run's colour";
  EXPECT_GT(second_run, 2000) << "pixels of the second run's colour";
}

}  // namespace
}  // namespace fapo::report
