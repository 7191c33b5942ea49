// Eventually: polls `condition` until it holds or `timeout` passes (real
// time), for tests that wait on other threads or processes. Returns the
// condition's last value, so `ASSERT_TRUE(Eventually(...))` fails loudly
// rather than hanging.
#ifndef FAPO_TESTS_SUPPORT_EVENTUALLY_H_
#define FAPO_TESTS_SUPPORT_EVENTUALLY_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fapo::testing {

template <typename Condition>
bool Eventually(Condition condition, absl::Duration timeout = absl::Seconds(10),
                absl::Duration poll = absl::Milliseconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(poll);
  }
  return condition();
}

}  // namespace fapo::testing

#endif  // FAPO_TESTS_SUPPORT_EVENTUALLY_H_
