// services/clock/fake_clock.h: a Clock whose time moves only when told to.
//
//   FakeClock clock;                      // starts at absl::UnixEpoch()
//   ... a thread blocks in clock.AwaitWithDeadline(...) ...
//   clock.WaitForWaiters(1);              // until that thread is waiting
//   clock.Advance(absl::Seconds(5));      // wakes it if its deadline passed
#ifndef FAPO_SERVICES_CLOCK_FAKE_CLOCK_H_
#define FAPO_SERVICES_CLOCK_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/clock/clock.h"

namespace fapo {

// Thread-safe. Must outlive every call into it.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch());
  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;

  absl::Time Now() override;

  // Blocks (in real time) until `condition` holds or Advance/SetTime moves
  // Now() to `deadline` or past it.
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                         absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Moves time forward (a negative `delta` is ignored) and wakes waiters
  // whose deadline has come.
  void Advance(absl::Duration delta);
  void SetTime(absl::Time time);

  // Blocks (in real time) until at least `count` threads are inside
  // AwaitWithDeadline: lets a test advance time only once a waiter waits.
  void WaitForWaiters(int count);
  int NumWaiters();

 private:
  void WakeWaiters();

  std::atomic<int64_t> now_ns_;
  absl::Mutex waiters_mu_;
  // The mutexes that waiters wait on, one entry per waiter.
  std::vector<absl::Mutex*> waiters_ ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace fapo

#endif  // FAPO_SERVICES_CLOCK_FAKE_CLOCK_H_
