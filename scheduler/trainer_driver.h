// TrainerDriver: the scheduler's training loop. On its own thread it takes
// each train batch the Scheduler forms, has the trainer (rank 0, a live
// TRAINER worker) apply it, tells every live rollout worker to pull the new
// weights, checkpoints the trainer with the scheduler's snapshot inside,
// and writes one line per step to metrics.jsonl:
//
//   TakeTrainBatch -> TrainStep -> CompleteTrainStep -> UpdateWeights (all
//   rollout workers, in parallel) -> SaveCheckpoint (every
//   checkpoint_every steps, the last step, and on stop) -> metrics.jsonl
//
// A failed TrainStep goes back to the Scheduler (FailTrainStep: counted,
// the same batch is retried; NOTE [no progress] fails the job if it keeps
// failing). TrainStep is keyed by step, so a retry after a lost response
// does not train twice. A rollout worker that cannot take the new weights
// is logged and counted, and gets no new group while its weights are too old
// (RolloutDriver); between steps the driver brings such workers (and ones
// that joined late) up to the current version.
//
// Stopping: once the job is STOPPING and no step is in flight, the driver
// writes a final checkpoint and calls Scheduler::FinishStop.
#ifndef FAPO_SCHEDULER_TRAINER_DRIVER_H_
#define FAPO_SCHEDULER_TRAINER_DRIVER_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/clients/trainer_client.h"
#include "scheduler/scheduler.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::scheduler {

struct TrainerDriverOptions {
  // Deadlines of the three calls. Defaults 600 s, 300 s, 300 s.
  absl::Duration train_step_timeout = absl::Seconds(600);
  absl::Duration checkpoint_timeout = absl::Seconds(300);
  absl::Duration weight_sync_timeout = absl::Seconds(300);
  // Checkpoint every N steps (and at the last step and on stop); 0 = only
  // then. trainer.checkpoint_every; no default here (NOTE [one default]:
  // TrainerDriverOptionsFromSpec fills it).
  int checkpoint_every = 0;
  // metrics.jsonl (one JSON object per step; its folder is created); "" =
  // none. Job spec: <job.output_dir>/metrics.jsonl.
  std::string metrics_path;
  // How often the thread looks for a batch. Default 20 ms.
  absl::Duration poll_interval = absl::Milliseconds(20);
  // Not owned; null = no metrics. Registers fapo_step_seconds{part}: the
  // step's wall time (part "step") and its parts, as in metrics.jsonl
  // (NOTE [step time breakdown]): generation_wait, genrm_wait, train,
  // weight_sync, checkpoint.
  metrics::MetricsRegistry* metrics = nullptr;
};

class TrainerDriver {
 public:
  // The pointers are not owned and must outlive the driver. InvalidArgument
  // for nulls or bad durations.
  static absl::StatusOr<std::unique_ptr<TrainerDriver>> Create(
      TrainerDriverOptions options, Scheduler* scheduler,
      TrainerClient* trainer, WeightSyncClient* weight_sync);

  TrainerDriver(const TrainerDriver&) = delete;
  TrainerDriver& operator=(const TrainerDriver&) = delete;
  ~TrainerDriver();  // Shutdown()

  void Start();
  // Stops the thread after the step in progress (if any). Idempotent.
  void Shutdown();

  // One round, for tests: finishes a stop when one is pending, else runs
  // one step end to end when a batch and a trainer are there. Returns
  // whether it did something; an error from the trainer is returned after
  // being handed to the Scheduler.
  absl::StatusOr<bool> RunOnce();

  int64_t weight_sync_failures() const;

 private:
  TrainerDriver(TrainerDriverOptions options, Scheduler* scheduler,
                TrainerClient* trainer, WeightSyncClient* weight_sync)
      : options_(std::move(options)),
        scheduler_(scheduler),
        trainer_(trainer),
        weight_sync_(weight_sync) {}

  absl::Status InitMetrics();
  void Loop();
  // The address of a live TRAINER worker ("" when none).
  std::string TrainerAddress() const;
  // Each of `workers` pulls `version` (in parallel); returns the failures.
  // Successes are noted in the registry at once (the RolloutDriver places
  // groups by the known version).
  int SyncWeights(const std::string& trainer_address, int64_t version,
                  std::vector<v1::WorkerInfo> workers);
  // Updates live rollout workers whose known version is behind.
  void CatchUpWorkers(const std::string& trainer_address);
  absl::Status Checkpoint(const std::string& trainer_address, int64_t step);
  // Appends the line of `step` to metrics.jsonl. NOTE [metrics after a
  // resume]: at the first append, lines of `step` or later (written after
  // the checkpoint the job resumed from, and about to be written again) are
  // dropped from the file.
  absl::Status AppendMetricsLine(int64_t step, const std::string& text);

  const TrainerDriverOptions options_;
  Scheduler* const scheduler_;
  TrainerClient* const trainer_;
  WeightSyncClient* const weight_sync_;
  std::FILE* metrics_file_ = nullptr;  // the driver's thread only
  // fapo_step_seconds children (null without metrics): step,
  // generation_wait, genrm_wait, train, weight_sync, checkpoint.
  metrics::Histogram* step_seconds_[6] = {};

  absl::Time last_step_end_ = absl::Now();
  // The driver's thread only.
  absl::flat_hash_map<std::string, absl::Time> last_catch_up_;
  int64_t last_checkpoint_step_ = -1;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t weight_sync_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_TRAINER_DRIVER_H_
