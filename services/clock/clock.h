// services/clock: the seam for time.
//
// Everything that reads the time or waits with a deadline (the scheduler's
// queue, the GenRM batcher's latency stamps) goes through a Clock, so tests
// swap RealClock() for a FakeClock (fake_clock.h) and move time by hand
// (docs/style.md, practice 8).
#ifndef FAPO_SERVICES_CLOCK_CLOCK_H_
#define FAPO_SERVICES_CLOCK_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fapo {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() = 0;

  // With `*mu` held by the caller: releases it until `condition` holds or
  // Now() >= `deadline`, whichever comes first, and reacquires it. Returns
  // whether `condition` held. Like absl::Mutex::AwaitWithDeadline, but the
  // deadline is measured on this clock. `condition` must only read state
  // guarded by `*mu` (it is re-evaluated whenever `*mu` is released).
  virtual bool AwaitWithDeadline(absl::Mutex* mu,
                                 const absl::Condition& condition,
                                 absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// The wall clock (absl::Now). Process-wide, never destroyed.
Clock* RealClock();

}  // namespace fapo

#endif  // FAPO_SERVICES_CLOCK_CLOCK_H_
