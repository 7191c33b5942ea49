// The launcher's progress display: the newest metrics.jsonl line, and the
// one-line summary drawn from it while a job runs.
#ifndef FAPO_APPS_LAUNCHER_PROGRESS_H_
#define FAPO_APPS_LAUNCHER_PROGRESS_H_

#include <cstdint>
#include <ios>
#include <string>
#include <utility>

#include "nlohmann/json.hpp"

namespace fapo::launcher {

// One progress line: "step 12/300 | reward 0.41 | acc 0.88 | flawed 0.21 |
// stale 0.45 | genrm wait 3% | 1.4 s/step | ETA 6m32s". `metrics` is the
// newest metrics.jsonl line (null before the first step); `seconds_per_step`
// is 0 when unknown.
std::string FormatProgress(int64_t step, int64_t total_steps,
                           const nlohmann::json& metrics,
                           double seconds_per_step);

// "42s", "6m32s", "1h05m"; "?" for a negative or infinite time.
std::string FormatDuration(double seconds);

// The newest complete line of metrics.jsonl, read incrementally. Not
// thread-safe.
class MetricsTail {
 public:
  // Lines already in the file (a resumed run) are read at once: they show
  // in the progress line but do not count as new.
  explicit MetricsTail(std::string path) : path_(std::move(path)) { Poll(); }

  // Reads what was appended since the last call; true when a new line
  // arrived.
  bool Poll();
  const nlohmann::json& last() const { return last_; }

 private:
  const std::string path_;
  std::streamoff offset_ = 0;
  nlohmann::json last_;
};

}  // namespace fapo::launcher

#endif  // FAPO_APPS_LAUNCHER_PROGRESS_H_
