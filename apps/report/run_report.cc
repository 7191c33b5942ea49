#include "apps/report/run_report.h"

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "services/config/job_spec.h"
#include "services/files/files.h"
#include "services/status/status_macros.h"

namespace fapo::report {
namespace {

constexpr double kNone = std::numeric_limits<double>::quiet_NaN();

// One JSONL file's objects, with the line each came from.
struct JsonLines {
  std::vector<std::pair<int, nlohmann::json>> objects;
  bool torn_last_line = false;  // left out: the writer died mid-line
};

absl::StatusOr<JsonLines> ReadJsonLines(const std::string& path,
                                        const std::string& shown_name) {
  ASSIGN_OR_RETURN(std::string text, files::ReadFile(path));
  JsonLines lines;
  const bool ends_in_newline = !text.empty() && text.back() == '\n';
  std::vector<absl::string_view> raw = absl::StrSplit(text, '\n');
  if (!raw.empty() && raw.back().empty()) raw.pop_back();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i].empty()) continue;
    nlohmann::json object =
        nlohmann::json::parse(raw[i], nullptr, /*allow_exceptions=*/false);
    if (object.is_discarded() || !object.is_object()) {
      if (i + 1 == raw.size() && !ends_in_newline) {
        lines.torn_last_line = true;
        break;
      }
      return absl::InvalidArgumentError(
          absl::StrCat(shown_name, ":", i + 1, ": not a JSON object"));
    }
    lines.objects.emplace_back(static_cast<int>(i + 1), std::move(object));
  }
  return lines;
}

// Field readers that never throw: a missing field, a null (samples.jsonl
// writes null for what a dropped trajectory never had) or another type
// reads as absent. nlohmann's value() throws on a null.
double Number(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return kNone;
  return it->get<double>();
}
std::string String(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}
bool Bool(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

std::string Fixed(double value, int digits = 3) {
  if (std::isnan(value)) return "-";
  return absl::StrFormat("%.*f", digits, value);
}

std::string Percent(double part, double whole) {
  if (std::isnan(part) || std::isnan(whole) || whole <= 0) return "-";
  return absl::StrFormat("%.0f%%", 100 * part / whole);
}

// Mean of the non-missing values.
class Mean {
 public:
  void Add(double value) {
    if (std::isnan(value)) return;
    sum_ += value;
    ++count_;
  }
  double value() const { return count_ == 0 ? kNone : sum_ / count_; }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

double Ratio(double gamma, double alpha) {
  if (std::isnan(gamma) || std::isnan(alpha) || alpha + gamma <= 0) {
    return kNone;
  }
  return gamma / (alpha + gamma);
}

void AddJob(const config::JobSpec& spec, std::string& out) {
  const std::string model =
      spec.policy.model_dir.empty() ? "the embedded tiny arith policy"
                                    : absl::StrCat("`", spec.policy.model_dir,
                                                   "`");
  absl::StrAppend(&out, "| | |\n|---|---|\n");
  auto row = [&out](absl::string_view key, absl::string_view value) {
    absl::StrAppend(&out, "| ", key, " | ", value, " |\n");
  };
  row("task", config::EnumName(spec.data.task));
  row("reward",
      spec.algorithm.reward == config::RewardKind::kFapo
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

void AddCurve(const std::vector<std::pair<int, nlohmann::json>>& steps,
              int rows, std::string& out) {
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
      const nlohmann::json& line = steps[i].second;
      reward.Add(Number(line, "reward_mean"));
      accuracy.Add(Number(line, "accuracy"));
      alpha.Add(Number(line, "alpha"));
      beta.Add(Number(line, "beta"));
      gamma.Add(Number(line, "gamma"));
      staleness.Add(Number(line, "staleness_mean"));
    }
    const int64_t first = steps[begin].second["step"].get<int64_t>();
    const int64_t last = steps[end - 1].second["step"].get<int64_t>();
    absl::StrAppend(
        &out, "| ", first == last ? absl::StrCat(first)
                                  : absl::StrCat(first, "-", last),
        " | ", Fixed(reward.value()), " | ", Fixed(accuracy.value()), " | ",
        Fixed(alpha.value()), " | ", Fixed(beta.value()), " | ",
        Fixed(gamma.value()), " | ",
        Fixed(Ratio(gamma.value(), alpha.value())), " | ",
        Fixed(staleness.value(), 2), " |\n");
  }
  absl::StrAppend(&out, "\n");
}

void AddStepTime(const std::vector<std::pair<int, nlohmann::json>>& steps,
                 std::string& out) {
  // The first step waits for the first generation, with nothing to overlap:
  // left out of the means when there are others.
  const size_t from = steps.size() > 1 ? 1 : 0;
  struct Part {
    Part(const char* key, const char* label) : key(key), label(label) {}
    const char* key;
    const char* label;
    Mean mean;
  };
  std::vector<Part> parts = {
      {"step_s", "whole step"},
      {"train_s", "training (TrainStep)"},
      {"generation_wait_s", "waiting for generation"},
      {"genrm_wait_s", "waiting for the GenRM"},
      {"weight_sync_s", "weight sync to the rollout workers"},
      {"checkpoint_s", "checkpoint"},
  };
  for (size_t i = from; i < steps.size(); ++i) {
    for (Part& part : parts) part.mean.Add(Number(steps[i].second, part.key));
  }
  const double whole = parts[0].mean.value();
  absl::StrAppend(&out, "## Where a step's time went\n\n",
                  "Means over steps ", from + 1, "-", steps.size(),
                  " of metrics.jsonl; generation and GenRM scoring of the "
                  "next batch overlap training, so only their waits "
                  "count.\n\n",
                  "| part | seconds | share |\n|---|---|---|\n");
  for (const Part& part : parts) {
    absl::StrAppend(&out, "| ", part.label, " | ", Fixed(part.mean.value(), 4),
                    " | ", Percent(part.mean.value(), whole), " |\n");
  }
  double sum = 0;
  for (const auto& [line_number, line] : steps) {
    const double step_s = Number(line, "step_s");
    if (!std::isnan(step_s)) sum += step_s;
  }
  absl::StrAppend(&out, "\nTraining took ", Fixed(sum, 1), " s over ",
                  steps.size(), " steps.\n\n");
}

void AddSamples(const JsonLines& samples, std::string& out) {
  int64_t trained = 0;
  std::map<std::string, int64_t> dropped;  // by reason
  std::map<std::string, int64_t> verdicts;
  struct Class {
    explicit Class(const char* label) : label(label) {}
    const char* label;
    int64_t count = 0;
    Mean advantage;
    Mean reward;
  };
  Class sound("sound (answer and steps right)");
  Class flawed("flawed positive (answer right, a step wrong)");
  Class wrong("wrong answer");
  for (const auto& [line_number, sample] : samples.objects) {
    const std::string outcome = String(sample, "outcome");
    const std::string status = String(sample, "verdict_status");
    if (!status.empty()) ++verdicts[status];
    if (outcome != "trained") {
      const std::string reason = String(sample, "drop_reason");
      ++dropped[!reason.empty() ? reason
                                : (!outcome.empty() ? outcome : "unknown")];
      continue;
    }
    ++trained;
    Class& kind = !Bool(sample, "answer_correct")
                      ? wrong
                      : (Bool(sample, "flawed") ? flawed : sound);
    ++kind.count;
    kind.advantage.Add(Number(sample, "advantage"));
    kind.reward.Add(Number(sample, "reward"));
  }
  absl::StrAppend(&out, "## Trajectories (samples.jsonl)\n\n",
                  samples.objects.size(), " written; ", trained, " trained");
  for (const auto& [reason, count] : dropped) {
    absl::StrAppend(&out, ", ", count, " dropped as ", reason);
  }
  absl::StrAppend(&out, ". GenRM verdicts by status:");
  for (const auto& [status, count] : verdicts) {
    absl::StrAppend(&out, " ", status, " ", count, ";");
  }
  if (!verdicts.empty()) out.pop_back();
  absl::StrAppend(&out, ".\n\n",
                  "What the trained ones were, and the reward and advantage "
                  "they trained with:\n\n",
                  "| kind | trained | share | mean reward | mean advantage |\n",
                  "|---|---|---|---|---|\n");
  for (const Class* kind : {&sound, &flawed, &wrong}) {
    absl::StrAppend(&out, "| ", kind->label, " | ", kind->count, " | ",
                    Percent(static_cast<double>(kind->count),
                            static_cast<double>(trained)),
                    " | ", Fixed(kind->reward.value()), " | ",
                    Fixed(kind->advantage.value()), " |\n");
  }
  absl::StrAppend(&out, "\n");
  if (samples.torn_last_line) {
    absl::StrAppend(&out, "(The last line of samples.jsonl was cut short and "
                          "is left out.)\n\n");
  }
}

// <dir>/eval.json when it exists; a null JSON value when it does not.
absl::StatusOr<nlohmann::json> ReadEval(const std::string& dir,
                                        const std::string& shown_name) {
  absl::StatusOr<std::string> text =
      files::ReadFile(files::JoinPath(dir, "eval.json"));
  if (absl::IsNotFound(text.status())) return nlohmann::json();
  if (!text.ok()) return text.status();
  nlohmann::json eval =
      nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (eval.is_discarded() || !eval.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown_name, ": not a JSON object"));
  }
  return eval;
}

// checkpoints/step-N directories, by N.
std::vector<std::pair<int64_t, std::string>> CheckpointSteps(
    const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  const std::string root = files::JoinPath(run_dir, "checkpoints");
  DIR* dir = opendir(root.c_str());
  if (dir == nullptr) return found;
  while (const dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    int64_t step;
    if (absl::ConsumePrefix(&name, "step-") && absl::SimpleAtoi(name, &step)) {
      found.emplace_back(step, files::JoinPath(root, entry->d_name));
    }
  }
  closedir(dir);
  std::sort(found.begin(), found.end());
  return found;
}

absl::Status AddEvals(const config::JobSpec& spec, const std::string& run_dir,
                      std::string& out) {
  std::vector<std::pair<std::string, nlohmann::json>> rows;
  // The policy the run started from: its own warm start (`fapo launch`
  // makes one when policy.model_dir is empty), or the one it was given.
  ASSIGN_OR_RETURN(nlohmann::json warm,
                   ReadEval(files::JoinPath(run_dir, "warm-start"),
                            "warm-start/eval.json"));
  if (!warm.is_null()) {
    rows.emplace_back("warm start", std::move(warm));
  } else if (!spec.policy.model_dir.empty()) {
    ASSIGN_OR_RETURN(nlohmann::json start,
                     ReadEval(spec.policy.model_dir,
                              files::JoinPath(spec.policy.model_dir,
                                              "eval.json")));
    if (!start.is_null()) rows.emplace_back("start", std::move(start));
  }
  for (const auto& [step, dir] : CheckpointSteps(run_dir)) {
    ASSIGN_OR_RETURN(
        nlohmann::json eval,
        ReadEval(files::JoinPath(dir, "policy"),
                 absl::StrCat("checkpoints/step-", step, "/policy/eval.json")));
    if (!eval.is_null()) rows.emplace_back(absl::StrCat("step ", step), eval);
  }
  absl::StrAppend(&out, "## Held-out evaluation\n\n");
  if (rows.empty()) {
    absl::StrAppend(&out,
                    "None yet: `fapo eval --model <run>/checkpoints/step-N/"
                    "policy --config <run>/config.yaml --json <that "
                    "dir>/eval.json` puts one here.\n\n");
    return absl::OkStatus();
  }
  absl::StrAppend(&out,
                  "From `fapo eval` (eval.json beside each model).\n\n",
                  "| policy | samples | temperature | accuracy | alpha | beta | "
                  "gamma | flawed-positive ratio |\n",
                  "|---|---|---|---|---|---|---|---|\n");
  for (const auto& [label, eval] : rows) {
    absl::StrAppend(
        &out, "| ", label, " | ", Fixed(Number(eval, "samples"), 0), " | ",
        Fixed(Number(eval, "temperature"), 1), " | ",
        Fixed(Number(eval, "accuracy")), " ± ",
        Fixed(Number(eval, "accuracy_stderr")), " | ",
        Fixed(Number(eval, "alpha")), " | ", Fixed(Number(eval, "beta")),
        " | ", Fixed(Number(eval, "gamma")), " | ",
        Fixed(Number(eval, "flawed_positive_ratio")), " ± ",
        Fixed(Number(eval, "flawed_positive_ratio_stderr")), " |\n");
  }
  absl::StrAppend(&out, "\n");
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeRunReportOrThrow(
    const RunReportOptions& options) {
  if (options.curve_rows < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "report: curve_rows must be >= 1, got ", options.curve_rows));
  }
  const std::string& run_dir = options.run_dir;
  ASSIGN_OR_RETURN(
      config::JobSpec spec,
      config::LoadJobSpecFile(files::JoinPath(run_dir, "config.yaml")));
  const std::string metrics_path = files::JoinPath(run_dir, "metrics.jsonl");
  absl::StatusOr<JsonLines> metrics = ReadJsonLines(metrics_path, metrics_path);
  if (absl::IsNotFound(metrics.status())) {
    return absl::NotFoundError(
        absl::StrCat(metrics_path, " does not exist: the run has not "
                                   "finished a step yet"));
  }
  RETURN_IF_ERROR(metrics.status());
  std::vector<std::pair<int, nlohmann::json>> steps;
  for (auto& [line_number, line] : metrics->objects) {
    auto step = line.find("step");
    if (step == line.end() || !step->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(
          metrics_path, ":", line_number, ": no integer \"step\""));
    }
    steps.emplace_back(line_number, std::move(line));
  }
  if (steps.empty()) {
    return absl::NotFoundError(
        absl::StrCat(metrics_path, " is empty: the run has not finished a "
                                   "step yet"));
  }

  std::string out;
  const int64_t last_step = steps.back().second["step"].get<int64_t>();
  absl::StrAppend(&out, "# Run report: ", spec.job.name, "\n\n", "Step ",
                  last_step, " of ", spec.job.steps, " (",
                  last_step >= spec.job.steps ? "finished" : "not finished",
                  "). Run directory `", run_dir, "`.\n\n");
  AddJob(spec, out);
  AddCurve(steps, options.curve_rows, out);
  AddStepTime(steps, out);
  if (metrics->torn_last_line) {
    absl::StrAppend(&out, "(The last line of metrics.jsonl was cut short and "
                          "is left out.)\n\n");
  }
  const std::string samples_path = files::JoinPath(run_dir, "samples.jsonl");
  absl::StatusOr<JsonLines> samples = ReadJsonLines(samples_path, samples_path);
  if (samples.ok()) {
    AddSamples(*samples, out);
  } else if (!absl::IsNotFound(samples.status())) {
    return samples.status();
  }
  RETURN_IF_ERROR(AddEvals(spec, run_dir, out));
  return out;
}

}  // namespace

absl::StatusOr<std::string> MakeRunReport(const RunReportOptions& options) {
  // The readers above do not throw; this keeps a bug in them from taking
  // `fapo launch` down with it at the end of a job.
  try {
    return MakeRunReportOrThrow(options);
  } catch (const nlohmann::json::exception& error) {
    return absl::InternalError(
        absl::StrCat("report of ", options.run_dir, ": ", error.what()));
  }
}


absl::StatusOr<std::string> WriteRunReport(const RunReportOptions& options,
                                           std::string* markdown) {
  ASSIGN_OR_RETURN(std::string made, MakeRunReport(options));
  const std::string path = files::JoinPath(options.run_dir, "report.md");
  RETURN_IF_ERROR(files::WriteFileAtomically(path, made));
  if (markdown != nullptr) *markdown = std::move(made);
  return path;
}

}  // namespace fapo::report
