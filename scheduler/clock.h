// scheduler/clock.h: the scheduler's seam for time.
//
// Everything in the scheduler that reads the time or waits with a deadline
// goes through a Clock, so tests swap RealClock() for a FakeClock
// (fake_clock.h) and move time by hand (STYLE.md, practice 8).
#ifndef FAPO_SCHEDULER_CLOCK_H_
#define FAPO_SCHEDULER_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fapo::scheduler {

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

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLOCK_H_
