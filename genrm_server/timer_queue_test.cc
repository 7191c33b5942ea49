#include "genrm_server/timer_queue.h"

#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;

TEST(TimerQueueTest, RunsInDeadlineOrderNotBeforeDeadline) {
  TimerQueue queue;
  absl::Mutex mu;
  std::vector<int> order;
  absl::BlockingCounter done(4);
  const absl::Time start = absl::Now();
  for (int ms : {60, 20, 40, 20}) {
    const absl::Time deadline = start + absl::Milliseconds(ms);
    queue.RunAt(deadline, [&, ms, deadline](absl::Status status) {
      EXPECT_THAT(status, IsOk());
      EXPECT_GE(absl::Now(), deadline);
      absl::MutexLock lock(&mu);
      order.push_back(ms);
      done.DecrementCount();
    });
  }
  done.Wait();
  EXPECT_THAT(order, ElementsAre(20, 20, 40, 60));
  EXPECT_EQ(queue.pending(), 0u);
}

TEST(TimerQueueTest, EarlierTimerWakesTheThread) {
  TimerQueue queue;
  absl::Notification late, early;
  queue.RunAt(absl::Now() + absl::Seconds(30),
              [&](absl::Status) { late.Notify(); });
  const absl::Time start = absl::Now();
  queue.RunAt(absl::Now() - absl::Seconds(1), [&](absl::Status status) {
    EXPECT_THAT(status, IsOk());
    early.Notify();
  });
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_FALSE(late.HasBeenNotified());
  EXPECT_EQ(queue.pending(), 1u);
}

TEST(TimerQueueTest, ShutdownCancelsPendingAndLaterTimers) {
  int cancelled = 0;
  {
    TimerQueue queue;
    for (int i = 0; i < 5; ++i) {
      queue.RunAt(absl::Now() + absl::Hours(1), [&](absl::Status status) {
        EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
        ++cancelled;  // runs on the shutting-down thread
      });
    }
    queue.Shutdown();
    EXPECT_EQ(cancelled, 5);
    queue.RunAt(absl::Now(), [&](absl::Status status) {
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
      ++cancelled;  // at once, on this thread
    });
    EXPECT_EQ(cancelled, 6);
    queue.Shutdown();  // idempotent
  }                    // the destructor's Shutdown too
  EXPECT_EQ(cancelled, 6);
}

}  // namespace
}  // namespace fapo::genrm
