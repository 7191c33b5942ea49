// apps/report/report_html.h: report.html, one run or several overlaid on the
// same charts, as one self-contained page: inline CSS and inline SVG, no
// script, nothing loaded from anywhere (a Content-Security-Policy of
// default-src 'none' says so to the browser), so it opens from a file, a
// CI artifact or a mail attachment alike.
//
//   ASSIGN_OR_RETURN(std::string page, MakeHtmlReport({run_a, run_b}));
//
// What it shows, from the files run_data.h reads:
//   the runs        one row each: job, reward, batch, steps, training time,
//                   accuracy and flawed-positive ratio over the last tenth
//                   of the steps;
//   training        by step, from metrics.jsonl: reward mean, accuracy, the
//                   flawed-positive ratio gamma / (alpha + gamma) of each
//                   step, and the alpha / beta / gamma shares (sound, wrong,
//                   flawed-positive answers). A run of more than 500 steps
//                   is drawn as the means of 500 equal spans of steps;
//   step time       where a step's time went (NOTE [step time breakdown]
//                   in scheduler/trainer_driver.cc): the mean step of each
//                   run stacked by part, and each run's steps over time;
//   trajectories    from samples.jsonl where a run has one: GenRM verdicts
//                   by status, trajectories by outcome, the mean advantage
//                   of sound answers, flawed positives and wrong answers;
//   held out        each run's eval.json results.
//
// Each run has one colour, named in every legend by its job name (made
// unique with its directory where two runs share one). Every plotted series
// is one SVG element carrying its chart, series and run, so tests (and
// people) can find it:
//   <path class="series" data-chart="accuracy" data-series="accuracy"
//         data-run="NAME" data-points="N" d="...">
//   <rect class="bar" data-chart="verdicts" data-category="ok"
//         data-run="NAME" data-value="12" ...>
// Missing values (older metrics lines, NaN) leave gaps; a series with a
// single point is drawn as a dot (<circle class="point" ...>). Every name
// and path on the page is HTML-escaped.
#ifndef FAPO_APPS_REPORT_REPORT_HTML_H_
#define FAPO_APPS_REPORT_REPORT_HTML_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "apps/report/run_data.h"

namespace fapo::report {

// The page of `runs`, overlaid in the order given. With no runs, a page
// that says so.
std::string FormatHtmlReport(absl::Span<const RunData> runs);

// Reads every directory (ReadRunData, with its errors: NotFound naming a
// missing config.yaml or metrics.jsonl, ...) and formats their page.
// InvalidArgument when `run_dirs` is empty.
absl::StatusOr<std::string> MakeHtmlReport(
    const std::vector<std::string>& run_dirs);

// FormatHtmlReport(runs), written to `path` atomically (its directory must
// exist). InvalidArgument when `runs` is empty.
absl::Status WriteHtmlReport(absl::Span<const RunData> runs,
                             const std::string& path);

}  // namespace fapo::report

#endif  // FAPO_APPS_REPORT_REPORT_HTML_H_
