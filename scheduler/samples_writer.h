// SamplesWriter: <job.output_dir>/samples.jsonl, one JSON line per
// trajectory once it is trained or dropped (a TrajectoryOutcomeSink; see
// trajectory_outcome_sink.h). fapo-scheduler writes it when job.output_dir
// is set and job.sample_fraction > 0.
//
// A line (keys always present; null where the scheduler did not get that
// far, e.g. no verdict for a trajectory dropped while it was scoring):
//
//   {"trajectory_id":"g12/3","group_id":"g12","sample_index":3,
//    "prompt_id":"arith-12","prompt":"...","response":"...",
//    "ground_truth":"4","answer_correct":true,"flawed":false,
//    "first_error_step":-1,"verdict_status":"ok","reward":1.0,
//    "advantage":0.5,"policy_version":7,"outcome":"trained","step":8,
//    "drop_reason":null}
//
// verdict_status is "ok", "unparsable", "timeout", "skipped" (a wrong
// answer, never sent to the GenRM) or "invalid"; step is the train step
// for trained trajectories; drop_reason is "stale", "aborted", "no_signal",
// "interrupted" (resume) for dropped ones.
//
// Sampling: job.sample_fraction of the prompt groups are written, whole:
// a group is kept when a hash of (job.seed, group_id) falls below the
// fraction (KeepsGroup), so every run of the same job keeps the same
// groups, and 0 writes nothing (no file either).
//
// Cost: Trained and Dropped only queue the work (a shared batch pointer,
// the dropped records) under the writer's lock; a background thread
// formats and appends, and flushes after each trained step. The file is
// created (with its directory) at the first line and appended to, so a
// resumed job continues it. Write errors are logged once and counted, and
// do not stop the job (samples are diagnostics).
//
// Thread-safety: every method is thread-safe.
#ifndef FAPO_SCHEDULER_SAMPLES_WRITER_H_
#define FAPO_SCHEDULER_SAMPLES_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "fapo/v1/common.pb.h"
#include "scheduler/scheduler.h"
#include "scheduler/trajectory_outcome_sink.h"

namespace fapo::scheduler {

struct SamplesWriterOptions {
  // The file to append to. Required.
  std::string path;
  // job.sample_fraction: share of groups written, in [0, 1]. No default
  // here (NOTE [one default]: SamplesWriterOptionsFromSpec fills it).
  double sample_fraction = 0;
  // job.seed: picks the groups (with their ids).
  uint64_t seed = 0;
  // The step of the checkpoint the job resumed from; -1 for a fresh job.
  // NOTE [samples after a resume]: at the first write, lines the previous
  // process wrote after that checkpoint are dropped from the file: steps
  // after it, and drops of samples generated with its weights or newer.
  // They are lived again (and written again) by this process.
  int64_t resumed_step = -1;
};

class SamplesWriter final : public TrajectoryOutcomeSink {
 public:
  // InvalidArgument for an empty path or a fraction outside [0, 1]. Starts
  // the writing thread; touches no file yet.
  static absl::StatusOr<std::unique_ptr<SamplesWriter>> Create(
      SamplesWriterOptions options);

  SamplesWriter(const SamplesWriter&) = delete;
  SamplesWriter& operator=(const SamplesWriter&) = delete;
  // Close().
  ~SamplesWriter() override;

  void Trained(std::shared_ptr<const TrainBatch> batch) override;
  void Dropped(std::vector<DroppedTrajectory> dropped) override;

  // Waits until everything queued so far is written and flushed. Returns
  // the first write error since the writer started (OK when none).
  absl::Status Flush();
  // Flush, then stops the thread and closes the file. Later Trained and
  // Dropped calls are ignored. Idempotent.
  void Close();

  // Whether the group `group_id` is among the `fraction` kept for `seed`:
  // a fixed 64-bit hash (FNV-1a of the id, mixed with the seed), stable
  // across runs, builds and machines.
  static bool KeepsGroup(uint64_t seed, double fraction,
                         absl::string_view group_id);

  // The line for one trajectory, without the newline (exposed for tests).
  // `step` is the train step (trained) and ignored for drops.
  struct Line {
    const v1::Trajectory* trajectory = nullptr;
    const v1::Verdict* verdict = nullptr;  // null: none yet
    const v1::Prompt* prompt = nullptr;    // null: unknown
    bool has_reward = false;
    bool flawed = false;
    double reward = 0;
    bool has_advantage = false;
    double advantage = 0;
    bool trained = false;
    int64_t step = 0;
    absl::string_view drop_reason;
  };
  static std::string FormatLine(const Line& line);
  // The same, appended to `out` (no allocation beyond out's growth).
  static void AppendLine(const Line& line, std::string& out);

 private:
  // One unit of queued work: a trained batch or a set of drops.
  struct Work {
    std::shared_ptr<const TrainBatch> batch;
    std::vector<DroppedTrajectory> dropped;
  };

  explicit SamplesWriter(SamplesWriterOptions options);
  void Loop();
  // Formats the kept lines of `work` into `text`.
  void Format(const Work& work, std::string& text) const;
  // Appends to the file (opening it first); errors as Status.
  absl::Status Append(const std::string& text, bool flush);
  // NOTE [samples after a resume] (at SamplesWriterOptions::resumed_step).
  absl::Status PruneAfterResume();

  const SamplesWriterOptions options_;
  std::FILE* file_ = nullptr;  // only the writing thread touches it

  absl::Mutex mu_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  // Work items taken by the thread and not yet written.
  int64_t writing_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_SAMPLES_WRITER_H_
