#include "apps/report/run_data.h"

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/status/status_macros.h"

namespace fapo::report {
namespace {

// One JSONL file's objects, with the line each came from.
struct JsonLines {
  std::vector<std::pair<int, nlohmann::json>> objects;
  bool torn_last_line = false;  // left out: the writer died mid-line
};

absl::StatusOr<JsonLines> ReadJsonLines(const std::string& path) {
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
          absl::StrCat(path, ":", i + 1, ": not a JSON object"));
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
  if (it == object.end() || !it->is_number()) return kMissing;
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

absl::StatusOr<std::vector<StepMetrics>> ReadMetrics(const std::string& path,
                                                     bool& torn_last_line) {
  absl::StatusOr<JsonLines> lines = ReadJsonLines(path);
  if (absl::IsNotFound(lines.status())) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     " does not exist: the run has not finished a "
                     "step yet"));
  }
  RETURN_IF_ERROR(lines.status());
  std::vector<StepMetrics> steps;
  steps.reserve(lines->objects.size());
  for (const auto& [line_number, line] : lines->objects) {
    auto step = line.find("step");
    if (step == line.end() || !step->is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": no integer \"step\""));
    }
    StepMetrics& metrics = steps.emplace_back();
    metrics.step = step->get<int64_t>();
    metrics.reward_mean = Number(line, "reward_mean");
    metrics.accuracy = Number(line, "accuracy");
    metrics.alpha = Number(line, "alpha");
    metrics.beta = Number(line, "beta");
    metrics.gamma = Number(line, "gamma");
    metrics.staleness_mean = Number(line, "staleness_mean");
    metrics.step_s = Number(line, "step_s");
    metrics.train_s = Number(line, "train_s");
    metrics.generation_wait_s = Number(line, "generation_wait_s");
    metrics.genrm_wait_s = Number(line, "genrm_wait_s");
    metrics.wait_for_batch_s = Number(line, "wait_for_batch_s");
    metrics.weight_sync_s = Number(line, "weight_sync_s");
    metrics.checkpoint_s = Number(line, "checkpoint_s");
  }
  if (steps.empty()) {
    return absl::NotFoundError(
        absl::StrCat(path, " is empty: the run has not finished a step yet"));
  }
  torn_last_line = lines->torn_last_line;
  return steps;
}

// samples.jsonl holds every trajectory of the sampled groups: summed up as
// it is read rather than kept, so a long run's report stays small.
absl::StatusOr<std::optional<TrajectorySummary>> ReadSamples(
    const std::string& path) {
  absl::StatusOr<JsonLines> lines = ReadJsonLines(path);
  if (absl::IsNotFound(lines.status())) return std::nullopt;
  RETURN_IF_ERROR(lines.status());
  TrajectorySummary summary;
  summary.written = static_cast<int64_t>(lines->objects.size());
  summary.torn_last_line = lines->torn_last_line;
  Mean reward[3], advantage[3];
  TrajectorySummary::Kind* kinds[3] = {&summary.sound, &summary.flawed_positive,
                                       &summary.wrong};
  for (const auto& [line_number, sample] : lines->objects) {
    const std::string outcome = String(sample, "outcome");
    const std::string status = String(sample, "verdict_status");
    if (!status.empty()) ++summary.verdicts_by_status[status];
    if (outcome != "trained") {
      const std::string reason = String(sample, "drop_reason");
      ++summary
            .dropped_by_reason[!reason.empty()
                                   ? reason
                                   : (!outcome.empty() ? outcome : "unknown")];
      continue;
    }
    ++summary.trained;
    const int kind =
        !Bool(sample, "answer_correct") ? 2 : (Bool(sample, "flawed") ? 1 : 0);
    ++kinds[kind]->count;
    reward[kind].Add(Number(sample, "reward"));
    advantage[kind].Add(Number(sample, "advantage"));
  }
  for (int kind = 0; kind < 3; ++kind) {
    kinds[kind]->mean_reward = reward[kind].value();
    kinds[kind]->mean_advantage = advantage[kind].value();
  }
  return summary;
}

// <dir>/eval.json when it exists; nullopt when it does not.
absl::StatusOr<std::optional<HeldOutEval>> ReadEval(
    const std::string& dir, const std::string& shown_name, std::string label) {
  absl::StatusOr<std::string> text =
      files::ReadFile(files::JoinPath(dir, "eval.json"));
  if (absl::IsNotFound(text.status())) return std::nullopt;
  if (!text.ok()) return text.status();
  nlohmann::json json =
      nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown_name, ": not a JSON object"));
  }
  HeldOutEval eval;
  eval.label = std::move(label);
  eval.samples = Number(json, "samples");
  eval.temperature = Number(json, "temperature");
  eval.accuracy = Number(json, "accuracy");
  eval.accuracy_stderr = Number(json, "accuracy_stderr");
  eval.alpha = Number(json, "alpha");
  eval.beta = Number(json, "beta");
  eval.gamma = Number(json, "gamma");
  eval.flawed_positive_ratio = Number(json, "flawed_positive_ratio");
  eval.flawed_positive_ratio_stderr =
      Number(json, "flawed_positive_ratio_stderr");
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

absl::StatusOr<std::vector<HeldOutEval>> ReadEvals(const config::JobSpec& spec,
                                                   const std::string& run_dir) {
  std::vector<HeldOutEval> evals;
  // The policy the run started from: its own warm start (`fapo launch`
  // makes one when policy.model_dir is empty), or the one it was given.
  ASSIGN_OR_RETURN(std::optional<HeldOutEval> warm,
                   ReadEval(files::JoinPath(run_dir, "warm-start"),
                            "warm-start/eval.json", "warm start"));
  if (warm.has_value()) {
    evals.push_back(std::move(*warm));
  } else if (!spec.policy.model_dir.empty()) {
    ASSIGN_OR_RETURN(
        std::optional<HeldOutEval> start,
        ReadEval(spec.policy.model_dir,
                 files::JoinPath(spec.policy.model_dir, "eval.json"), "start"));
    if (start.has_value()) evals.push_back(std::move(*start));
  }
  for (const auto& [step, dir] : CheckpointSteps(run_dir)) {
    ASSIGN_OR_RETURN(
        std::optional<HeldOutEval> eval,
        ReadEval(files::JoinPath(dir, "policy"),
                 absl::StrCat("checkpoints/step-", step, "/policy/eval.json"),
                 absl::StrCat("step ", step)));
    if (eval.has_value()) {
      eval->step = step;
      evals.push_back(std::move(*eval));
    }
  }
  return evals;
}

absl::StatusOr<RunData> ReadRunDataOrThrow(const std::string& run_dir) {
  RunData run;
  run.run_dir = run_dir;
  ASSIGN_OR_RETURN(run.spec, config::LoadJobSpecFile(
                                 files::JoinPath(run_dir, "config.yaml")));
  ASSIGN_OR_RETURN(run.steps,
                   ReadMetrics(files::JoinPath(run_dir, "metrics.jsonl"),
                               run.metrics_torn_last_line));
  ASSIGN_OR_RETURN(run.trajectories,
                   ReadSamples(files::JoinPath(run_dir, "samples.jsonl")));
  ASSIGN_OR_RETURN(run.evals, ReadEvals(run.spec, run_dir));
  return run;
}

}  // namespace

absl::StatusOr<RunData> ReadRunData(const std::string& run_dir) {
  // The readers above do not throw; this keeps a bug in them from taking
  // `fapo launch` down with it at the end of a job.
  try {
    return ReadRunDataOrThrow(run_dir);
  } catch (const nlohmann::json::exception& error) {
    return absl::InternalError(
        absl::StrCat("report of ", run_dir, ": ", error.what()));
  }
}

std::string RunName(const RunData& run) {
  if (!run.spec.job.name.empty()) return run.spec.job.name;
  absl::string_view dir = run.run_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  const size_t slash = dir.rfind('/');
  return std::string(slash == absl::string_view::npos ? dir
                                                      : dir.substr(slash + 1));
}

double FlawedPositiveRatio(double alpha, double gamma) {
  if (std::isnan(gamma) || std::isnan(alpha) || alpha + gamma <= 0) {
    return kMissing;
  }
  return gamma / (alpha + gamma);
}

size_t FirstSteadyStep(const std::vector<StepMetrics>& steps) {
  return steps.size() > 1 ? 1 : 0;
}

void Mean::Add(double value) {
  if (std::isnan(value)) return;
  sum_ += value;
  ++count_;
}

double Mean::value() const {
  return count_ == 0 ? kMissing : sum_ / static_cast<double>(count_);
}

}  // namespace fapo::report
