// apps/report/run_report.h: `fapo report RUN_DIR...`, a run directory
// read back as one page of Markdown (the README's table of the run
// directory says what each file is).
//
//   RunReportOptions options;
//   options.run_dir = dir;
//   ASSIGN_OR_RETURN(std::string markdown, MakeRunReport(options));
//   // or, as `fapo launch` does when a job ends (<dir>/report.md, and
//   // with html_path set the same run as an HTML page):
//   ASSIGN_OR_RETURN(std::string path, WriteRunReport(options));
//
// The folder: run_data.h reads a run directory once into a typed record;
// this file makes report.md of it, report_html.h a self-contained HTML page
// of one run or of several overlaid (report.html).
//
// What it reads, and what it makes of it:
//   config.yaml     the job in one table (task, reward, lambda, group size,
//                   ...); required.
//   metrics.jsonl   required (a run that never trained has nothing to
//                   report): the training curve in `curve_rows` equal spans
//                   of steps (reward, accuracy, alpha/beta/gamma, the
//                   flawed-positive ratio, staleness) and where a step's
//                   time went (NOTE [step time breakdown] in
//                   scheduler/trainer_driver.cc).
//   samples.jsonl   optional: what became of the trajectories (trained,
//                   dropped by reason), GenRM verdicts by status, and the
//                   mean advantage that sound answers, flawed positives and
//                   wrong answers trained with: under FAPO flawed positives
//                   should train with a negative one once sound answers
//                   outnumber wrong ones, under RLVR with a positive one.
//   eval.json       optional, beside warm-start/ (or else the model the
//                   run started from, policy.model_dir) and any
//                   checkpoints/step-N/policy/ (`fapo eval --json`): the
//                   held-out results by step.
//
// The flawed-positive ratio of a span is the span's mean gamma over its
// mean alpha + gamma (each step weighs the same, as each trains the same
// number of trajectories).
//
// Errors: NotFound for a missing config.yaml or metrics.jsonl (naming the
// path); InvalidArgument naming FILE:LINE for a line that is not a JSON
// object, or a metrics line without "step". A last line cut short (the
// writer died mid-line) is left out and said so in the report.
#ifndef FAPO_APPS_REPORT_RUN_REPORT_H_
#define FAPO_APPS_REPORT_RUN_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "apps/report/run_data.h"

namespace fapo::report {

struct RunReportOptions {
  // The run directory (job.output_dir).
  std::string run_dir;
  // Rows of the training-curve table; must be >= 1. Default 10.
  int curve_rows = 10;
  // Where WriteRunReport also writes this run's HTML page (report_html.h),
  // e.g. HtmlReportPath(run_dir). Default "": no page.
  std::string html_path;
};

// <dir>/report.html: where `fapo launch` and `fapo report` put a run's
// HTML page (and `fapo report` a page of several runs, with dir ".").
std::string HtmlReportPath(const std::string& dir);

// The Markdown report of `options.run_dir` (read with ReadRunData).
absl::StatusOr<std::string> MakeRunReport(const RunReportOptions& options);

// The Markdown report of a run already read. A curve_rows below 1 counts
// as 1.
std::string FormatRunReport(const RunData& run, int curve_rows);

// MakeRunReport, written to <run_dir>/report.md (atomically), then, when
// options.html_path is set, the run's HTML page there (atomically; an error
// writing it is returned after report.md was written). Returns the path of
// report.md; with `markdown`, also what was written there; with `run`, the
// run as read (to overlay several runs on one page without reading them
// again).
absl::StatusOr<std::string> WriteRunReport(const RunReportOptions& options,
                                           std::string* markdown = nullptr,
                                           RunData* run = nullptr);

}  // namespace fapo::report

#endif  // FAPO_APPS_REPORT_RUN_REPORT_H_
