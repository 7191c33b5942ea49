// RolloutDriver: keeps the registered rollout workers busy with the prompt
// groups the Scheduler admits (NOTE [staleness] in scheduler.h), one
// Generate stream per group, and feeds what streams back into the
// Scheduler, one trajectory at a time as each sample finishes.
//
// Placement: a worker runs at most `capacity` groups at once (its
// WorkerInfo); a new group goes to the live worker with the most free
// slots among those whose known policy version (registration, heartbeats,
// weight updates) is at least Scheduler::min_policy_version(). A stream that
// ends early (error, cancel, a worker that died or was declared dead, fewer
// samples than asked, a malformed trajectory) aborts its group: the Scheduler
// drops the group, counts a failure and generates the prompt again (NOTE [no
// progress]).
//
// Seeds: NOTE [sampling seeds] at GroupSamplingSeed.
//
// Threads: Start() runs Pump on the driver's own thread every
// poll_interval and whenever a stream ends; the client's callbacks run on
// its threads and only take the driver's lock briefly. Scheduler calls are
// made without the driver's lock held.
#ifndef FAPO_SCHEDULER_ROLLOUT_DRIVER_H_
#define FAPO_SCHEDULER_ROLLOUT_DRIVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "scheduler/clients/rollout_client.h"
#include "scheduler/scheduler.h"

namespace fapo::scheduler {

struct RolloutDriverOptions {
  // temperature, top_p, top_k, max_new_tokens, stop ids for every group
  // (the seed is set per group). Job spec: rollout.*.
  v1::SamplingParams sampling;
  // job.seed.
  uint64_t seed = 0;
  // Deadline of one Generate stream. Default 600 s.
  absl::Duration generate_timeout = absl::Seconds(600);
  // How often the driver looks for free slots and admissible groups.
  // Default 20 ms.
  absl::Duration poll_interval = absl::Milliseconds(20);
};

// NOTE [sampling seeds]
// A group samples with GroupSamplingSeed(job.seed, its prompt's id): its
// samples do not depend on which worker draws them, nor on the process:
// the hash is fixed here (FNV-1a, then SplitMix64's finalizer), unlike
// absl::Hash, which is salted per process. A prompt generated again (its
// group aborted, or dropped as stale) draws the same seed; with the same
// weights it gets the same samples, which is what makes a resumed
// deterministic job (scheduler.deterministic) repeat an uninterrupted one.
uint64_t GroupSamplingSeed(uint64_t job_seed, absl::string_view prompt_id);

class RolloutDriver {
 public:
  // `scheduler` and `client` are not owned and must outlive the driver.
  static absl::StatusOr<std::unique_ptr<RolloutDriver>> Create(
      RolloutDriverOptions options, Scheduler* scheduler,
      RolloutClient* client);

  RolloutDriver(const RolloutDriver&) = delete;
  RolloutDriver& operator=(const RolloutDriver&) = delete;
  ~RolloutDriver();  // Shutdown()

  // Starts the driver thread.
  void Start();
  // One round: syncs the live workers, cancels the streams of dead ones,
  // and starts streams while a worker has a free slot and the scheduler
  // admits a group. Tests call it directly instead of Start().
  void Pump();
  // Cancels every stream, waits for their on_done, stops the thread.
  // Idempotent.
  void Shutdown();

  int active_streams() const;

 private:
  struct Stream {
    std::string worker_id;
    std::string group_id;
    int32_t group_size = 0;
    int32_t received = 0;
    bool failed = false;  // a trajectory was refused: abort on done
    std::string failure;
    // Shared: cancelled outside the lock while on_done may erase the entry.
    std::shared_ptr<RolloutStream> handle;
  };
  struct Worker {
    RolloutWorker info;
    int active = 0;
    // Holds weights new groups may use (its known policy version).
    bool fresh_enough = true;
  };

  RolloutDriver(RolloutDriverOptions options, Scheduler* scheduler,
                RolloutClient* client)
      : options_(std::move(options)), scheduler_(scheduler), client_(client) {}

  void Loop();
  void StartStream(const std::string& worker_id, const PromptGroup& group);
  void OnTrajectory(int64_t stream_id, v1::Trajectory trajectory);
  void OnDone(int64_t stream_id, absl::Status status);

  const RolloutDriverOptions options_;
  Scheduler* const scheduler_;
  RolloutClient* const client_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, Stream> streams_ ABSL_GUARDED_BY(mu_);
  int64_t next_stream_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex pump_mu_;  // one Pump at a time; taken before mu_
  std::thread thread_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_ROLLOUT_DRIVER_H_
