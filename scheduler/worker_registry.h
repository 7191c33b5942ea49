// scheduler/worker_registry.h: which workers (rollout, GenRM, trainer) the
// scheduler knows, and which of them are alive: a registry of workers with
// heartbeats (docs/architecture.md, "The processes").
//
//   Register ──► ALIVE ──(silent > worker_timeout, Sweep)──► DEAD
//                  ▲  └──(Remove: deregistered)──► forgotten  │
//                  └────────────(Register again)──────────────┘
//
// A worker registers with its WorkerInfo, then heartbeats every
// heartbeat_interval. Sweep(), which the scheduler calls periodically,
// declares dead every alive worker whose last register or heartbeat is more
// than worker_timeout old by the clock. A dead worker's heartbeats are
// refused (Heartbeat returns false) until it registers again; its record
// stays (Statuses shows it) until it re-registers or is removed.
//
// Listener: told of every change the scheduler must act on, in the order
// the changes happened:
//   ALIVE  a worker registered, came back from the dead, or re-registered
//          with a different role, address or capacity (same worker_id: a
//          restarted process; its old calls are lost);
//   DEAD   Sweep declared it dead, or Remove deregistered an alive worker,
//          or it re-registered in another role (DEAD with the old info,
//          then ALIVE with the new).
// Listener calls run with no registry lock held, one at a time; a listener
// may call back into the registry (its own events are then delivered after
// it returns). A call into the registry returns after its events have been
// delivered, unless another thread is delivering at that moment (that
// thread delivers them, in order).
//
// Thread-safety: every method is thread-safe.
#ifndef FAPO_SCHEDULER_WORKER_REGISTRY_H_
#define FAPO_SCHEDULER_WORKER_REGISTRY_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "services/clock/clock.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::scheduler {

struct WorkerRegistryOptions {
  // scheduler.heartbeat_interval_ms: how often workers heartbeat (told to
  // them at registration); > 0. No default here (NOTE [one default]:
  // SchedulerOptionsFromSpec fills it, and worker_timeout).
  absl::Duration heartbeat_interval;
  // scheduler.worker_timeout_ms: silence after which a worker is dead;
  // must exceed heartbeat_interval.
  absl::Duration worker_timeout;
  // Not owned; null = RealClock().
  Clock* clock = nullptr;
  // Not owned; null = no metrics. Registers fapo_workers{role,state}
  // (gauge), fapo_worker_deaths_total{role} and
  // fapo_worker_heartbeat_age_max_seconds{role} (gauge, updated by Sweep:
  // the oldest heartbeat among alive workers).
  metrics::MetricsRegistry* metrics = nullptr;
};

class WorkerRegistry {
 public:
  using Listener =
      std::function<void(const v1::WorkerInfo& info, v1::WorkerState state)>;

  // InvalidArgument: heartbeat_interval <= 0, worker_timeout <=
  // heartbeat_interval; errors from metric registration.
  static absl::StatusOr<std::unique_ptr<WorkerRegistry>> Create(
      WorkerRegistryOptions options);

  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;
  ~WorkerRegistry();

  // Replaces the listener (none at first). Changes that happen while no
  // listener is set are not reported later.
  void SetListener(Listener listener);

  // Registers (or re-registers) a worker; it is alive from now on.
  // InvalidArgument, naming the field: empty worker_id or address, role
  // UNSPECIFIED, capacity <= 0.
  absl::Status Register(v1::WorkerInfo info);

  // Records a heartbeat. False when the worker is unknown or dead: it must
  // register again.
  bool Heartbeat(absl::string_view worker_id, int32_t in_flight,
                 int64_t policy_version);

  // Declares dead every alive worker silent for more than worker_timeout,
  // and returns them (sorted by worker_id).
  std::vector<v1::WorkerInfo> Sweep();

  // Deregisters a worker and forgets it. False when unknown.
  bool Remove(absl::string_view worker_id);

  // Records that an alive worker now holds `policy_version` (known before
  // its next heartbeat says so, e.g. from an UpdateWeights answer). Versions
  // only move forward: an older one is ignored. False for an unknown or
  // dead worker.
  bool NotePolicyVersion(absl::string_view worker_id, int64_t policy_version);

  // Alive workers of `role`, sorted by worker_id.
  std::vector<v1::WorkerInfo> Alive(v1::WorkerRole role) const;
  int AliveCount(v1::WorkerRole role) const;
  // Every known worker, alive and dead, sorted by worker_id.
  std::vector<v1::WorkerStatus> Statuses() const;

  absl::Duration heartbeat_interval() const {
    return options_.heartbeat_interval;
  }
  absl::Duration worker_timeout() const { return options_.worker_timeout; }

 private:
  struct Record {
    v1::WorkerInfo info;
    v1::WorkerState state = v1::WORKER_STATE_ALIVE;
    int32_t in_flight = 0;
    absl::Time last_heartbeat;
  };
  struct Event {
    v1::WorkerInfo info;
    v1::WorkerState state;
  };

  explicit WorkerRegistry(WorkerRegistryOptions options);
  absl::Status InitMetrics();
  void CountLocked(const Record& record, int delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Delivers queued events unless another thread already is.
  void Deliver() ABSL_LOCKS_EXCLUDED(mu_);

  const WorkerRegistryOptions options_;
  Clock* const clock_;

  // Metrics; null when options.metrics is null. Indexed by role, state.
  metrics::Gauge* workers_[4][3] = {};
  metrics::Counter* deaths_[4] = {};
  metrics::Gauge* heartbeat_age_[4] = {};

  mutable absl::Mutex mu_;
  std::map<std::string, Record, std::less<>> records_ ABSL_GUARDED_BY(mu_);
  Listener listener_ ABSL_GUARDED_BY(mu_);
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_WORKER_REGISTRY_H_
