// apps/report/run_data.h: a run directory read once, into the typed record
// that both reports are made from (report.md: run_report.h; report.html:
// report_html.h). Which files a run directory holds, which are required and
// what the errors are: run_report.h.
#ifndef FAPO_APPS_REPORT_RUN_DATA_H_
#define FAPO_APPS_REPORT_RUN_DATA_H_

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/config/job_spec.h"

namespace fapo::report {

// What a report shows for a value a file did not have: a missing field, a
// null, another type.
inline constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// One line of metrics.jsonl (scheduler/trainer_driver.cc writes them). Every
// field but `step` may be missing (lines from older versions; no
// generation/GenRM split when the batch's generation times were unknown):
// a missing field is kMissing.
struct StepMetrics {
  int64_t step = 0;
  double reward_mean = kMissing;
  double accuracy = kMissing;
  // Shares of the batch: sound answers, wrong answers, flawed positives.
  double alpha = kMissing;
  double beta = kMissing;
  double gamma = kMissing;
  double staleness_mean = kMissing;
  // Where the step's wall time went, in seconds: NOTE [step time breakdown]
  // in scheduler/trainer_driver.cc. generation_wait_s + genrm_wait_s split
  // wait_for_batch_s when the split is known.
  double step_s = kMissing;
  double train_s = kMissing;
  double generation_wait_s = kMissing;
  double genrm_wait_s = kMissing;
  double wait_for_batch_s = kMissing;
  double weight_sync_s = kMissing;
  double checkpoint_s = kMissing;
};

// samples.jsonl summed up: what became of the trajectories written.
struct TrajectorySummary {
  // Trajectories that trained, by what they were, with the means of the
  // reward and advantage they trained with (kMissing when none).
  struct Kind {
    int64_t count = 0;
    double mean_reward = kMissing;
    double mean_advantage = kMissing;
  };

  int64_t written = 0;  // lines read (a torn last line not counted)
  int64_t trained = 0;
  // Not trained, by drop_reason (else the outcome, else "unknown").
  std::map<std::string, int64_t> dropped_by_reason;
  // Every line with a verdict_status, trained or not.
  std::map<std::string, int64_t> verdicts_by_status;
  Kind sound;                   // answer and steps right
  Kind flawed_positive;         // answer right, a step wrong
  Kind wrong;                   // answer wrong
  bool torn_last_line = false;  // the writer died mid-line; left out
};

// One eval.json (`fapo eval --json`): held-out results of one policy.
struct HeldOutEval {
  // "warm start" (<run>/warm-start), "start" (policy.model_dir) or
  // "step N" (checkpoints/step-N/policy).
  std::string label;
  std::optional<int64_t> step;  // N for a checkpoint
  double samples = kMissing;
  double temperature = kMissing;
  double accuracy = kMissing;
  double accuracy_stderr = kMissing;
  double alpha = kMissing;
  double beta = kMissing;
  double gamma = kMissing;
  double flawed_positive_ratio = kMissing;
  double flawed_positive_ratio_stderr = kMissing;
};

// A run directory, read.
struct RunData {
  std::string run_dir;
  config::JobSpec spec;  // config.yaml
  // metrics.jsonl in file order; never empty.
  std::vector<StepMetrics> steps;
  bool metrics_torn_last_line = false;
  // samples.jsonl; nullopt when the file does not exist.
  std::optional<TrajectorySummary> trajectories;
  // The policy the run started from first (when it has an eval.json), then
  // the checkpoints by step.
  std::vector<HeldOutEval> evals;
};

// Reads `run_dir`. Errors as run_report.h says: NotFound for a missing
// config.yaml or a missing or empty metrics.jsonl (naming the path);
// InvalidArgument naming FILE:LINE for a line that is not a JSON object
// (a torn last line is left out instead) or a metrics line without an
// integer "step"; InvalidArgument naming the file for an eval.json that
// is not a JSON object.
absl::StatusOr<RunData> ReadRunData(const std::string& run_dir);

// The name a report calls the run by: its job name, else the last
// component of its directory.
std::string RunName(const RunData& run);

// The flawed-positive ratio gamma / (alpha + gamma): of the answers that
// came out right, the share reached through a wrong step. kMissing when
// either is missing or alpha + gamma <= 0 (no right answers).
double FlawedPositiveRatio(double alpha, double gamma);

// Index of the first step that counts in a mean of step times: the first
// step waits for the first generation with nothing to overlap, so it is
// left out when there are others.
size_t FirstSteadyStep(const std::vector<StepMetrics>& steps);

// The mean of the values added, ignoring missing ones; kMissing when none.
class Mean {
 public:
  void Add(double value);
  double value() const;

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

}  // namespace fapo::report

#endif  // FAPO_APPS_REPORT_RUN_DATA_H_
