#include "genrm_server/timer_queue.h"

#include <utility>

namespace fapo::genrm {

TimerQueue::TimerQueue() : thread_([this] { Loop(); }) {}

TimerQueue::~TimerQueue() { Shutdown(); }

void TimerQueue::RunAt(absl::Time deadline, Callback callback) {
  {
    absl::MutexLock lock(&mu_);
    if (!shutting_down_) {
      // Wake the thread only when its next deadline moved earlier.
      const bool earliest =
          timers_.empty() || deadline < timers_.top().deadline;
      timers_.push(Timer{deadline, next_sequence_++, std::move(callback)});
      if (earliest) changed_.Signal();
      return;
    }
  }
  callback(absl::CancelledError("timer queue shut down"));
}

void TimerQueue::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  std::vector<Callback> cancelled;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    changed_.Signal();
  }
  // Join first: a callback the thread is running completes before the
  // cancelled ones run, and no callback runs after Shutdown returns.
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock lock(&mu_);
    while (!timers_.empty()) {
      // priority_queue::top is const; the callback is moved out just before
      // the element is popped.
      cancelled.push_back(
          std::move(const_cast<Timer&>(timers_.top()).callback));
      timers_.pop();
    }
  }
  for (Callback& callback : cancelled) {
    callback(absl::CancelledError("timer queue shut down before the deadline"));
  }
}

size_t TimerQueue::pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

void TimerQueue::Loop() {
  absl::MutexLock lock(&mu_);
  while (!shutting_down_) {
    if (timers_.empty()) {
      changed_.Wait(&mu_);
      continue;
    }
    const absl::Time deadline = timers_.top().deadline;
    if (absl::Now() < deadline) {
      // Sleeps until the deadline, a new earlier timer, or shutdown;
      // spurious wake-ups just go round the loop again.
      changed_.WaitWithDeadline(&mu_, deadline);
      continue;
    }
    Callback callback = std::move(const_cast<Timer&>(timers_.top()).callback);
    timers_.pop();
    mu_.Unlock();
    callback(absl::OkStatus());
    mu_.Lock();
  }
}

}  // namespace fapo::genrm
