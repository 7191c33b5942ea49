// TimerQueue: runs callbacks at deadlines on one thread, which sleeps on a
// condition variable until the earliest deadline (no thread per timer, no
// polling: a thousand pending timers cost no CPU while they wait).
//
// Callbacks run on the queue's thread, outside its lock, in deadline order
// (ties in scheduling order), with OkStatus when their deadline passed, or
// with Cancelled when the queue shut down first. A slow callback delays the
// ones after it: keep them short or hand work off.
//
// Deadlines are real time (absl::Now()).
//
// Thread-safe. Shutdown() (also run by the destructor) cancels every pending
// timer, runs its callback with Cancelled on the calling thread, and joins
// the queue's thread; RunAt after Shutdown runs the callback at once, on the
// caller's thread, with Cancelled. Do not call Shutdown or destroy the queue
// from one of its callbacks.
#ifndef FAPO_GENRM_SERVER_TIMER_QUEUE_H_
#define FAPO_GENRM_SERVER_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fapo::genrm {

class TimerQueue {
 public:
  using Callback = std::function<void(absl::Status)>;

  TimerQueue();
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `callback` once `deadline` has passed (a past deadline: soon).
  void RunAt(absl::Time deadline, Callback callback);

  // Cancels what is pending and stops the thread. Idempotent.
  void Shutdown();

  // Timers not yet run (for tests and metrics).
  size_t pending() const;

 private:
  struct Timer {
    absl::Time deadline;
    uint64_t sequence;  // breaks deadline ties in scheduling order
    Callback callback;
  };
  struct Later {
    bool operator()(const Timer& a, const Timer& b) const {
      if (a.deadline != b.deadline) return a.deadline > b.deadline;
      return a.sequence > b.sequence;
    }
  };

  void Loop();

  absl::Mutex shutdown_mu_;  // serializes Shutdown calls; taken before mu_
  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // a new earliest timer, or shutdown
  std::priority_queue<Timer, std::vector<Timer>, Later> timers_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // started last, in the constructor
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_TIMER_QUEUE_H_
