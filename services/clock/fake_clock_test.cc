#include "services/clock/fake_clock.h"

#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "services/clock/clock.h"

namespace fapo {
namespace {

TEST(FakeClockTest, AdvanceMovesNow) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.Advance(absl::Seconds(-3));  // ignored
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.SetTime(absl::FromUnixSeconds(7));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(7));
}

TEST(FakeClockTest, AwaitReturnsAtOnceWhenConditionHolds) {
  FakeClock clock;
  absl::Mutex mu;
  bool ready = true;
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(clock.AwaitWithDeadline(&mu, absl::Condition(&ready),
                                      clock.Now() + absl::Hours(1)));
}

TEST(FakeClockTest, AwaitTimesOutOnlyWhenFakeTimePassesDeadline) {
  FakeClock clock;
  absl::Mutex mu;
  bool ready = false;
  bool result = true;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithDeadline(&mu, absl::Condition(&ready),
                                     clock.Now() + absl::Seconds(10));
  });
  clock.WaitForWaiters(1);
  clock.Advance(absl::Seconds(9));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(clock.NumWaiters(), 1);  // 9 s < 10 s: still waiting
  clock.Advance(absl::Seconds(1));
  waiter.join();
  EXPECT_FALSE(result);
  EXPECT_EQ(clock.NumWaiters(), 0);
}

TEST(FakeClockTest, AwaitWakesWhenConditionBecomesTrue) {
  FakeClock clock;
  absl::Mutex mu;
  bool ready = false;
  bool result = false;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithDeadline(&mu, absl::Condition(&ready),
                                     clock.Now() + absl::Seconds(10));
  });
  clock.WaitForWaiters(1);
  {
    absl::MutexLock lock(&mu);
    ready = true;
  }
  waiter.join();
  EXPECT_TRUE(result);
}

TEST(RealClockTest, AwaitTimesOutOnRealDeadline) {
  Clock* clock = RealClock();
  absl::Mutex mu;
  bool ready = false;
  absl::MutexLock lock(&mu);
  absl::Time start = clock->Now();
  EXPECT_FALSE(clock->AwaitWithDeadline(&mu, absl::Condition(&ready),
                                        start + absl::Milliseconds(20)));
  EXPECT_GE(clock->Now() - start, absl::Milliseconds(20));
}

}  // namespace
}  // namespace fapo
