#include "genrm_server/dynamic_batcher.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "genrm_server/fake_genrm_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::Eventually;

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fapo::v1::ScoreRequest Request(const std::string& trajectory_id) {
  fapo::v1::ScoreRequest request;
  request.set_trajectory_id(trajectory_id);
  request.set_task("arith");
  return request;
}

struct Fixture {
  std::shared_ptr<FakeGenrmBackend::State> state =
      std::make_shared<FakeGenrmBackend::State>();
  std::unique_ptr<DynamicBatcher> batcher;

  explicit Fixture(DynamicBatcherOptions options, bool complete_immediately,
                   Clock* clock = nullptr) {
    {
      absl::MutexLock lock(&state->mu);
      state->complete_immediately = complete_immediately;
    }
    auto created = DynamicBatcher::Create(
        options, std::make_unique<FakeGenrmBackend>(state), clock);
    EXPECT_THAT(created.status(), IsOk());
    batcher = *std::move(created);
  }
};

DynamicBatcherOptions Options(int max_batch_size, int max_batch_delay_ms,
                              int max_in_flight_batches = 4) {
  DynamicBatcherOptions options;
  options.max_batch_size = max_batch_size;
  options.max_batch_delay_ms = max_batch_delay_ms;
  options.max_in_flight_batches = max_in_flight_batches;
  options.genrm_server_id = "genrm-test-0";
  return options;
}

TEST(DynamicBatcherTest, RejectsBadOptions) {
  auto backend = [] {
    return std::make_unique<FakeGenrmBackend>(
        std::make_shared<FakeGenrmBackend::State>());
  };
  EXPECT_THAT(DynamicBatcher::Create(Options(0, 5), backend()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_batch_size")));
  EXPECT_THAT(DynamicBatcher::Create(Options(4, -1), backend()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_batch_delay_ms")));
  EXPECT_THAT(DynamicBatcher::Create(Options(4, 5, 0), backend()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_in_flight_batches")));
  EXPECT_THAT(DynamicBatcher::Create(Options(4, 5), nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DynamicBatcherTest, FlushesWhenTheBatchIsFull) {
  // A delay of an hour: only the size can trigger these flushes.
  Fixture f(Options(4, 3600 * 1000), /*complete_immediately=*/true);
  absl::BlockingCounter done(8);
  for (int i = 0; i < 8; ++i) {
    f.batcher->Score(Request(absl::StrCat(i)), [&](auto result) {
      EXPECT_THAT(result, IsOk());
      done.DecrementCount();
    });
  }
  done.Wait();
  EXPECT_THAT(f.state->sizes(), ElementsAre(4, 4));
  EXPECT_EQ(f.batcher->stats().full_batches, 2);
  // A ninth request waits for company (or the hour).
  f.batcher->Score(Request("9"), [](auto) {});
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(f.batcher->waiting(), 1u);
  EXPECT_THAT(f.state->sizes(), ElementsAre(4, 4));
}

TEST(DynamicBatcherTest, FlushesWhenTheOldestRequestHasWaitedTheDelay) {
  Fixture f(Options(100, 80), /*complete_immediately=*/true);
  absl::BlockingCounter done(3);
  std::vector<absl::Duration> waited(3);
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) {
    f.batcher->Score(Request(absl::StrCat(i)), [&, i](auto result) {
      EXPECT_THAT(result, IsOk());
      waited[i] = absl::Now() - start;
      done.DecrementCount();
    });
  }
  done.Wait();
  EXPECT_THAT(f.state->sizes(), ElementsAre(3));
  for (absl::Duration d : waited) {
    EXPECT_GE(d, absl::Milliseconds(80));
    EXPECT_LT(d, absl::Milliseconds(2000));  // generous bound
  }
}

TEST(DynamicBatcherTest, RoutesEachResultToItsCallbackAndStampsIt) {
  FakeClock clock;
  Fixture f(Options(5, 3600 * 1000), /*complete_immediately=*/false, &clock);
  constexpr int kRequests = 10;
  std::vector<absl::StatusOr<fapo::v1::Verdict>> got(kRequests);
  std::atomic<int> calls{0};
  for (int i = 0; i < kRequests; ++i) {
    const std::string id = i == 3 ? "error-3" : absl::StrCat("t", i);
    f.batcher->Score(Request(id), [&, i](auto result) {
      got[i] = std::move(result);
      calls.fetch_add(1);
    });
  }
  ASSERT_TRUE(Eventually([&] { return f.state->num_held() == 2; }));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(f.state->CompleteAll(), 2);
  ASSERT_EQ(calls.load(), kRequests);
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE(i);
    if (i == 3) {
      EXPECT_THAT(got[i].status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("error-3")));
      continue;
    }
    ASSERT_THAT(got[i], IsOk());
    EXPECT_EQ(got[i]->trajectory_id(), absl::StrCat("t", i));
    // The fake answers with the request's position in its batch.
    EXPECT_EQ(got[i]->first_error_step(), i % 5);
    EXPECT_EQ(got[i]->genrm_server_id(), "genrm-test-0");
    EXPECT_EQ(got[i]->latency().seconds(), 0);
    EXPECT_EQ(got[i]->latency().nanos(), 250000000);
  }
}

TEST(DynamicBatcherTest, ManyThreadsEveryCallbackExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  Fixture f(Options(8, 1, 2), /*complete_immediately=*/true);
  std::vector<std::atomic<int>> calls(kThreads * kPerThread);
  std::atomic<int> mismatched{0};
  absl::BlockingCounter done(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int index = t * kPerThread + i;
        const std::string id = absl::StrCat("t", index);
        f.batcher->Score(Request(id), [&, index, id](auto result) {
          if (!result.ok() || result->trajectory_id() != id) {
            mismatched.fetch_add(1);
          }
          calls[index].fetch_add(1);
          done.DecrementCount();
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done.Wait();
  f.batcher->Shutdown();
  EXPECT_EQ(mismatched.load(), 0);
  for (const auto& count : calls) ASSERT_EQ(count.load(), 1);
  const DynamicBatcher::Stats stats = f.batcher->stats();
  EXPECT_EQ(stats.requests, kThreads * kPerThread);
  EXPECT_LE(stats.max_in_flight_batches_seen, 2);
  size_t total = 0;
  for (size_t size : f.state->sizes()) {
    EXPECT_GE(size, 1u);
    EXPECT_LE(size, 8u);
    total += size;
  }
  EXPECT_EQ(total, static_cast<size_t>(kThreads * kPerThread));
}

TEST(DynamicBatcherTest, RespectsTheInFlightCap) {
  Fixture f(Options(2, 0, /*max_in_flight_batches=*/2),
            /*complete_immediately=*/false);
  std::atomic<int> calls{0};
  for (int i = 0; i < 10; ++i) {
    f.batcher->Score(Request(absl::StrCat(i)),
                     [&](auto result) { calls.fetch_add(1); });
  }
  ASSERT_TRUE(Eventually([&] { return f.state->num_held() == 2; }));
  absl::SleepFor(absl::Milliseconds(30));  // nothing more may leave
  EXPECT_EQ(f.state->num_held(), 2u);
  EXPECT_EQ(f.batcher->in_flight_batches(), 2);
  EXPECT_EQ(f.batcher->waiting(), 6u);
  // Each completion frees one slot for one more batch.
  while (calls.load() < 10) {
    ASSERT_TRUE(Eventually([&] { return f.state->num_held() > 0; }));
    EXPECT_LE(f.state->num_held(), 2u);
    f.state->CompleteNext();
  }
  {
    absl::MutexLock lock(&f.state->mu);
    EXPECT_EQ(f.state->max_held, 2);
  }
  EXPECT_EQ(f.batcher->stats().max_in_flight_batches_seen, 2);
  EXPECT_THAT(f.state->sizes(), ElementsAre(2, 2, 2, 2, 2));
}

TEST(DynamicBatcherTest, ShutdownDrainsThenRefuses) {
  Fixture f(Options(100, 3600 * 1000), /*complete_immediately=*/false);
  std::vector<absl::StatusOr<fapo::v1::Verdict>> got(3);
  for (int i = 0; i < 3; ++i) {
    f.batcher->Score(Request(absl::StrCat(i)),
                     [&, i](auto result) { got[i] = std::move(result); });
  }
  absl::Notification shut_down;
  std::thread stopper([&] {
    f.batcher->Shutdown();
    shut_down.Notify();
  });
  // Shutdown flushes without waiting out the hour, then waits for the batch.
  ASSERT_TRUE(Eventually([&] { return f.state->num_held() == 1; }));
  EXPECT_FALSE(shut_down.HasBeenNotified());
  f.state->CompleteAll();
  stopper.join();
  for (const auto& result : got) EXPECT_THAT(result, IsOk());
  EXPECT_THAT(f.state->sizes(), ElementsAre(3));

  absl::StatusOr<fapo::v1::Verdict> late;
  f.batcher->Score(Request("late"), [&](auto result) { late = result; });
  EXPECT_THAT(late.status(), StatusIs(absl::StatusCode::kUnavailable));
  f.batcher->Shutdown();  // idempotent
}

TEST(DynamicBatcherTest, CallbacksMayScoreAgain) {
  // The fake completes inline, so callbacks run on the dispatch thread.
  Fixture f(Options(1, 0), /*complete_immediately=*/true);
  absl::Notification second_done;
  f.batcher->Score(Request("first"), [&](auto result) {
    EXPECT_THAT(result, IsOk());
    f.batcher->Score(Request("second"), [&](auto again) {
      EXPECT_THAT(again, IsOk());
      second_done.Notify();
    });
  });
  EXPECT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

// A broken backend that answers with the wrong number of results.
class ShortBackend : public GenrmBackend {
 public:
  void ScoreBatch(std::vector<fapo::v1::ScoreRequest>,
                  BatchDone done) override {
    done({});
  }
  std::string name() const override { return "short"; }
};

TEST(DynamicBatcherTest, WrongResultCountFailsTheBatch) {
  auto batcher =
      *DynamicBatcher::Create(Options(2, 0), std::make_unique<ShortBackend>());
  absl::BlockingCounter done(2);
  for (int i = 0; i < 2; ++i) {
    batcher->Score(Request("x"), [&](auto result) {
      EXPECT_THAT(result.status(), StatusIs(absl::StatusCode::kInternal,
                                            HasSubstr("0 results")));
      done.DecrementCount();
    });
  }
  done.Wait();
}

}  // namespace
}  // namespace fapo::genrm
