#include "services/clock/fake_clock.h"

#include <algorithm>

namespace fapo {
namespace {

struct DeadlineCondition {
  const absl::Condition* condition;
  FakeClock* clock;
  absl::Time deadline;
};

bool ConditionOrDeadline(DeadlineCondition* state) {
  return state->condition->Eval() || state->clock->Now() >= state->deadline;
}

}  // namespace

FakeClock::FakeClock(absl::Time start) : now_ns_(absl::ToUnixNanos(start)) {}

absl::Time FakeClock::Now() {
  return absl::FromUnixNanos(now_ns_.load(std::memory_order_seq_cst));
}

bool FakeClock::AwaitWithDeadline(absl::Mutex* mu,
                                  const absl::Condition& condition,
                                  absl::Time deadline) {
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters_.push_back(mu);
  }
  DeadlineCondition state{&condition, this, deadline};
  mu->Await(absl::Condition(&ConditionOrDeadline, &state));
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), mu));
  }
  return condition.Eval();
}

void FakeClock::Advance(absl::Duration delta) {
  if (delta <= absl::ZeroDuration()) return;
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(delta), std::memory_order_seq_cst);
  WakeWaiters();
}

void FakeClock::SetTime(absl::Time time) {
  now_ns_.store(absl::ToUnixNanos(time), std::memory_order_seq_cst);
  WakeWaiters();
}

// Why TryLock: a waiter registers itself while holding its own mutex and
// then takes waiters_mu_, so blocking on a waiter's mutex here (under
// waiters_mu_) could deadlock. absl::Mutex re-evaluates waiters' conditions
// on every Unlock, so if TryLock fails, the current holder's Unlock will
// see the new time; and a waiter that has not started awaiting yet
// evaluates its condition first, after the time was stored above.
void FakeClock::WakeWaiters() {
  absl::MutexLock lock(&waiters_mu_);
  for (absl::Mutex* mu : waiters_) {
    if (mu->TryLock()) mu->Unlock();
  }
}

void FakeClock::WaitForWaiters(int count) {
  absl::MutexLock lock(&waiters_mu_);
  auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(waiters_mu_) {
    return static_cast<int>(waiters_.size()) >= count;
  };
  waiters_mu_.Await(absl::Condition(&enough));
}

int FakeClock::NumWaiters() {
  absl::MutexLock lock(&waiters_mu_);
  return static_cast<int>(waiters_.size());
}

}  // namespace fapo
