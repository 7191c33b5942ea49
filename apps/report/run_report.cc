#include "apps/report/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "apps/report/report_html.h"
#include "services/config/job_spec.h"
#include "services/files/files.h"
#include "services/status/status_macros.h"

namespace fapo::report {
namespace {

std::string Fixed(double value, int digits = 3) {
  if (std::isnan(value)) return "-";
  return absl::StrFormat("%.*f", digits, value);
}

std::string Percent(double part, double whole) {
  if (std::isnan(part) || std::isnan(whole) || whole <= 0) return "-";
  return absl::StrFormat("%.0f%%", 100 * part / whole);
}

void AddJob(const config::JobSpec& spec, std::string& out) {
  const std::string model = spec.policy.model_dir.empty()
                                ? "the embedded tiny arith policy"
                                : absl::StrCat("`", spec.policy.model_dir, "`");
  absl::StrAppend(&out, "| | |\n|---|---|\n");
  auto row = [&out](absl::string_view key, absl::string_view value) {
    absl::StrAppend(&out, "| ", key, " | ", value, " |\n");
  };
  row("task", config::EnumName(spec.data.task));
  row("reward", spec.algorithm.reward == config::RewardKind::kFapo
                    ? absl::StrCat("fapo (flawed positives lose lambda = ",
                                   spec.algorithm.flawed_penalty, ")")
                    : std::string("rlvr (the final answer only)"));
  row("policy", model);
  row("GenRM", absl::StrCat(config::EnumName(spec.genrm.backend), ", ",
                            spec.genrm.servers, " server(s)"));
  row("batch", absl::StrCat(spec.rollout.prompts_per_step, " prompts x ",
                            spec.rollout.group_size, " samples, temperature ",
                            spec.rollout.temperature));
  row("workers", absl::StrCat(spec.rollout.workers, " rollout, ",
                              spec.trainer.ranks, " trainer rank(s)"));
  row("max staleness", absl::StrCat(spec.scheduler.max_staleness));
  row("steps", absl::StrCat(spec.job.steps));
  absl::StrAppend(&out, "\n");
}

void AddCurve(const std::vector<StepMetrics>& steps, int rows,
              std::string& out) {
  absl::StrAppend(&out, "## Training curve\n\n",
                  "Means over equal spans of steps, from metrics.jsonl. ",
                  "Accuracy and alpha/beta/gamma are the batches' (sampled ",
                  "rollouts, not held out).\n\n",
                  "| steps | reward | accuracy | alpha | beta | gamma | ",
                  "flawed-positive ratio | staleness |\n",
                  "|---|---|---|---|---|---|---|---|\n");
  const size_t n = steps.size();
  const size_t spans = std::min<size_t>(static_cast<size_t>(rows), n);
  for (size_t span = 0; span < spans; ++span) {
    const size_t begin = span * n / spans;
    const size_t end = (span + 1) * n / spans;
    Mean reward, accuracy, alpha, beta, gamma, staleness;
    for (size_t i = begin; i < end; ++i) {
      reward.Add(steps[i].reward_mean);
      accuracy.Add(steps[i].accuracy);
      alpha.Add(steps[i].alpha);
      beta.Add(steps[i].beta);
      gamma.Add(steps[i].gamma);
      staleness.Add(steps[i].staleness_mean);
    }
    const int64_t first = steps[begin].step;
    const int64_t last = steps[end - 1].step;
    absl::StrAppend(
        &out, "| ",
        first == last ? absl::StrCat(first) : absl::StrCat(first, "-", last),
        " | ", Fixed(reward.value()), " | ", Fixed(accuracy.value()), " | ",
        Fixed(alpha.value()), " | ", Fixed(beta.value()), " | ",
        Fixed(gamma.value()), " | ",
        Fixed(FlawedPositiveRatio(alpha.value(), gamma.value())), " | ",
        Fixed(staleness.value(), 2), " |\n");
  }
  absl::StrAppend(&out, "\n");
}

void AddStepTime(const std::vector<StepMetrics>& steps, std::string& out) {
  const size_t from = FirstSteadyStep(steps);
  struct Part {
    Part(double StepMetrics::*field, const char* label)
        : field(field), label(label) {}
    double StepMetrics::*field;
    const char* label;
    Mean mean;
  };
  std::vector<Part> parts = {
      {&StepMetrics::step_s, "whole step"},
      {&StepMetrics::train_s, "training (TrainStep)"},
      {&StepMetrics::generation_wait_s, "waiting for generation"},
      {&StepMetrics::genrm_wait_s, "waiting for the GenRM"},
      {&StepMetrics::weight_sync_s, "weight sync to the rollout workers"},
      {&StepMetrics::checkpoint_s, "checkpoint"},
  };
  for (size_t i = from; i < steps.size(); ++i) {
    for (Part& part : parts) part.mean.Add(steps[i].*part.field);
  }
  const double whole = parts[0].mean.value();
  absl::StrAppend(&out, "## Where a step's time went\n\n", "Means over steps ",
                  from + 1, "-", steps.size(),
                  " of metrics.jsonl; generation and GenRM scoring of the "
                  "next batch overlap training, so only their waits "
                  "count.\n\n",
                  "| part | seconds | share |\n|---|---|---|\n");
  for (const Part& part : parts) {
    absl::StrAppend(&out, "| ", part.label, " | ", Fixed(part.mean.value(), 4),
                    " | ", Percent(part.mean.value(), whole), " |\n");
  }
  double sum = 0;
  for (const StepMetrics& step : steps) {
    if (!std::isnan(step.step_s)) sum += step.step_s;
  }
  absl::StrAppend(&out, "\nTraining took ", Fixed(sum, 1), " s over ",
                  steps.size(), " steps.\n\n");
}

void AddSamples(const TrajectorySummary& samples, std::string& out) {
  absl::StrAppend(&out, "## Trajectories (samples.jsonl)\n\n", samples.written,
                  " written; ", samples.trained, " trained");
  for (const auto& [reason, count] : samples.dropped_by_reason) {
    absl::StrAppend(&out, ", ", count, " dropped as ", reason);
  }
  absl::StrAppend(&out, ". GenRM verdicts by status:");
  for (const auto& [status, count] : samples.verdicts_by_status) {
    absl::StrAppend(&out, " ", status, " ", count, ";");
  }
  if (!samples.verdicts_by_status.empty()) out.pop_back();
  absl::StrAppend(&out, ".\n\n",
                  "What the trained ones were, and the reward and advantage "
                  "they trained with:\n\n",
                  "| kind | trained | share | mean reward | mean advantage |\n",
                  "|---|---|---|---|---|\n");
  const std::pair<const char*, const TrajectorySummary::Kind*> kinds[] = {
      {"sound (answer and steps right)", &samples.sound},
      {"flawed positive (answer right, a step wrong)",
       &samples.flawed_positive},
      {"wrong answer", &samples.wrong},
  };
  for (const auto& [label, kind] : kinds) {
    absl::StrAppend(&out, "| ", label, " | ", kind->count, " | ",
                    Percent(static_cast<double>(kind->count),
                            static_cast<double>(samples.trained)),
                    " | ", Fixed(kind->mean_reward), " | ",
                    Fixed(kind->mean_advantage), " |\n");
  }
  absl::StrAppend(&out, "\n");
  if (samples.torn_last_line) {
    absl::StrAppend(&out,
                    "(The last line of samples.jsonl was cut short and "
                    "is left out.)\n\n");
  }
}

void AddEvals(const std::vector<HeldOutEval>& evals, std::string& out) {
  absl::StrAppend(&out, "## Held-out evaluation\n\n");
  if (evals.empty()) {
    absl::StrAppend(&out,
                    "None yet: `fapo eval --model <run>/checkpoints/step-N/"
                    "policy --config <run>/config.yaml --json <that "
                    "dir>/eval.json` puts one here.\n\n");
    return;
  }
  absl::StrAppend(
      &out, "From `fapo eval` (eval.json beside each model).\n\n",
      "| policy | samples | temperature | accuracy | alpha | beta | "
      "gamma | flawed-positive ratio |\n",
      "|---|---|---|---|---|---|---|---|\n");
  for (const HeldOutEval& eval : evals) {
    absl::StrAppend(&out, "| ", eval.label, " | ", Fixed(eval.samples, 0),
                    " | ", Fixed(eval.temperature, 1), " | ",
                    Fixed(eval.accuracy), " ± ", Fixed(eval.accuracy_stderr),
                    " | ", Fixed(eval.alpha), " | ", Fixed(eval.beta), " | ",
                    Fixed(eval.gamma), " | ", Fixed(eval.flawed_positive_ratio),
                    " ± ", Fixed(eval.flawed_positive_ratio_stderr), " |\n");
  }
  absl::StrAppend(&out, "\n");
}

absl::Status CheckCurveRows(int curve_rows) {
  if (curve_rows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("report: curve_rows must be >= 1, got ", curve_rows));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FormatRunReport(const RunData& run, int curve_rows) {
  std::string out;
  const config::JobSpec& spec = run.spec;
  const int64_t last_step = run.steps.back().step;
  absl::StrAppend(&out, "# Run report: ", spec.job.name, "\n\n", "Step ",
                  last_step, " of ", spec.job.steps, " (",
                  last_step >= spec.job.steps ? "finished" : "not finished",
                  "). Run directory `", run.run_dir, "`.\n\n");
  AddJob(spec, out);
  AddCurve(run.steps, std::max(curve_rows, 1), out);
  AddStepTime(run.steps, out);
  if (run.metrics_torn_last_line) {
    absl::StrAppend(&out,
                    "(The last line of metrics.jsonl was cut short and "
                    "is left out.)\n\n");
  }
  if (run.trajectories.has_value()) AddSamples(*run.trajectories, out);
  AddEvals(run.evals, out);
  return out;
}

std::string HtmlReportPath(const std::string& dir) {
  return files::JoinPath(dir, "report.html");
}

absl::StatusOr<std::string> MakeRunReport(const RunReportOptions& options) {
  RETURN_IF_ERROR(CheckCurveRows(options.curve_rows));
  ASSIGN_OR_RETURN(RunData run, ReadRunData(options.run_dir));
  return FormatRunReport(run, options.curve_rows);
}

absl::StatusOr<std::string> WriteRunReport(const RunReportOptions& options,
                                           std::string* markdown,
                                           RunData* run_read) {
  RETURN_IF_ERROR(CheckCurveRows(options.curve_rows));
  ASSIGN_OR_RETURN(RunData run, ReadRunData(options.run_dir));
  std::string made = FormatRunReport(run, options.curve_rows);
  const std::string path = files::JoinPath(options.run_dir, "report.md");
  RETURN_IF_ERROR(files::WriteFileAtomically(path, made));
  if (!options.html_path.empty()) {
    RETURN_IF_ERROR(
        WriteHtmlReport(absl::MakeConstSpan(&run, 1), options.html_path));
  }
  if (markdown != nullptr) *markdown = std::move(made);
  if (run_read != nullptr) *run_read = std::move(run);
  return path;
}

}  // namespace fapo::report
