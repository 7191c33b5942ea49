#include "genrm_server/latency_backend.h"

#include <time.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "genrm_server/fake_genrm_backend.h"
#include "genrm_server/rule_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

fapo::v1::ScoreRequest SoundArith(const std::string& id) {
  fapo::v1::ScoreRequest request;
  request.set_trajectory_id(id);
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_solution("3+7=0\n0*4=0\n0-2=8\n#3");
  return request;
}

absl::Duration ProcessCpuTime() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

std::unique_ptr<GenrmBackend> Rule() { return *RuleBackend::Create({}); }

std::unique_ptr<LatencyBackend> Latency(LatencyDistribution distribution,
                                        std::unique_ptr<GenrmBackend> inner) {
  auto backend = LatencyBackend::Create({distribution, 7}, std::move(inner));
  EXPECT_THAT(backend.status(), IsOk());
  return *std::move(backend);
}

TEST(LatencyKindTest, NamesRoundTrip) {
  for (LatencyKind kind : {LatencyKind::kConstant, LatencyKind::kUniform,
                           LatencyKind::kNormal, LatencyKind::kLogNormal}) {
    EXPECT_THAT(ParseLatencyKind(LatencyKindName(kind)), IsOkAndHolds(kind));
  }
  EXPECT_THAT(ParseLatencyKind("gamma"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gamma")));
}

TEST(LatencySamplerTest, RejectsBadDistributions) {
  EXPECT_THAT(
      LatencySampler::Create({LatencyKind::kNormal, -1, 0}, 1).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mean_ms")));
  EXPECT_THAT(
      LatencySampler::Create({LatencyKind::kNormal, 1, NAN}, 1).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stddev_ms")));
  EXPECT_THAT(
      LatencySampler::Create({LatencyKind::kLogNormal, 0, 1}, 1).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lognormal")));
  EXPECT_THAT(LatencyBackend::Create({}, nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

struct Moments {
  double mean = 0;
  double stddev = 0;
  double min = 1e300;
};

Moments Sample(LatencyDistribution distribution, uint64_t seed, int n) {
  auto sampler = LatencySampler::Create(distribution, seed);
  EXPECT_THAT(sampler.status(), IsOk());
  double sum = 0, sum_sq = 0;
  Moments moments;
  for (int i = 0; i < n; ++i) {
    const double x = sampler->NextMs();
    sum += x;
    sum_sq += x * x;
    moments.min = std::min(moments.min, x);
  }
  moments.mean = sum / n;
  moments.stddev =
      std::sqrt(std::max(0.0, sum_sq / n - moments.mean * moments.mean));
  return moments;
}

TEST(LatencySamplerTest, MeansAndSpreadsMatchTheDistribution) {
  constexpr int kDraws = 50000;
  const Moments constant = Sample({LatencyKind::kConstant, 42, 10}, 1, 100);
  EXPECT_EQ(constant.mean, 42);
  EXPECT_EQ(constant.stddev, 0);
  for (LatencyKind kind :
       {LatencyKind::kUniform, LatencyKind::kNormal, LatencyKind::kLogNormal}) {
    SCOPED_TRACE(LatencyKindName(kind));
    const Moments m = Sample({kind, 50, 10}, /*seed=*/3, kDraws);
    // Standard error of the mean is 10 / sqrt(50000) ~ 0.045 ms.
    EXPECT_NEAR(m.mean, 50, 0.5);
    EXPECT_NEAR(m.stddev, 10, 0.5);
    EXPECT_GE(m.min, 0);
  }
  // The uniform's support is mean +- sqrt(3) stddev.
  EXPECT_GE(Sample({LatencyKind::kUniform, 50, 10}, 3, kDraws).min,
            50 - std::sqrt(3.0) * 10 - 1e-9);
  // A long-tailed lognormal keeps its mean too.
  const Moments tail = Sample({LatencyKind::kLogNormal, 100, 200}, 4, 400000);
  EXPECT_NEAR(tail.mean, 100, 5);
}

TEST(LatencySamplerTest, ClampsAtZeroAndIsSeeded) {
  const Moments clamped = Sample({LatencyKind::kNormal, 0, 10}, 5, 20000);
  EXPECT_EQ(clamped.min, 0);
  // E[max(0, N(0, 10))] = 10 / sqrt(2 pi) ~ 3.99.
  EXPECT_NEAR(clamped.mean, 10 / std::sqrt(2 * 3.14159265358979323846), 0.3);

  auto a = *LatencySampler::Create({LatencyKind::kLogNormal, 30, 20}, 9);
  auto b = *LatencySampler::Create({LatencyKind::kLogNormal, 30, 20}, 9);
  auto c = *LatencySampler::Create({LatencyKind::kLogNormal, 30, 20}, 10);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a.NextMs();
    EXPECT_EQ(x, b.NextMs());
    differs |= x != c.NextMs();
  }
  EXPECT_TRUE(differs);
}

TEST(LatencyBackendTest, DelaysEachBatchByTheConfiguredTime) {
  auto backend = Latency({LatencyKind::kConstant, 100, 0}, Rule());
  EXPECT_EQ(backend->name(), "latency(rule)");
  absl::Notification done;
  BatchResults results;
  absl::Duration elapsed;
  const absl::Time start = absl::Now();
  backend->ScoreBatch({SoundArith("a"), SoundArith("b")}, [&](BatchResults r) {
    elapsed = absl::Now() - start;
    results = std::move(r);
    done.Notify();
  });
  EXPECT_FALSE(done.HasBeenNotified());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(elapsed, absl::Milliseconds(100));
  EXPECT_LT(elapsed, absl::Milliseconds(1000));  // generous: a loaded CI box
  ASSERT_THAT(results, SizeIs(2));
  ASSERT_THAT(results[0], IsOk());
  EXPECT_EQ(results[0]->trajectory_id(), "a");
  EXPECT_EQ(results[0]->first_error_step(), -1);
  ASSERT_THAT(results[1], IsOk());
  EXPECT_EQ(results[1]->trajectory_id(), "b");
}

TEST(LatencyBackendTest, WaitingUsesNoCpu) {
  constexpr int kRequests = 1000;
  auto backend = Latency({LatencyKind::kConstant, 300, 0}, Rule());
  absl::BlockingCounter done(kRequests);
  std::atomic<int> ok{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < kRequests; ++i) {
    backend->ScoreBatch({SoundArith(absl::StrCat(i))}, [&](BatchResults r) {
      if (r.size() == 1 && r[0].ok()) ok.fetch_add(1);
      done.DecrementCount();
    });
  }
  EXPECT_EQ(backend->pending_batches(), static_cast<size_t>(kRequests));
  const absl::Duration cpu_before = ProcessCpuTime();
  done.Wait();
  const absl::Duration cpu = ProcessCpuTime() - cpu_before;
  const absl::Duration wall = absl::Now() - start;
  RecordProperty("cpu_us", static_cast<int>(absl::ToInt64Microseconds(cpu)));
  RecordProperty("wall_us", static_cast<int>(absl::ToInt64Microseconds(wall)));
  EXPECT_EQ(ok.load(), kRequests);
  EXPECT_GE(wall, absl::Milliseconds(300));
  // Waiting ~300 ms with 1,000 timers pending, then running 1,000
  // completions: a busy-waiting or thread-per-request design would burn far
  // more.
  EXPECT_LT(cpu, absl::Milliseconds(50)) << "wall " << wall;
}

TEST(LatencyBackendTest, DestructionCancelsPendingDelays) {
  auto state = std::make_shared<FakeGenrmBackend::State>();
  {
    absl::MutexLock lock(&state->mu);
    state->complete_immediately = true;
  }
  auto backend = Latency({LatencyKind::kConstant, 3600 * 1000, 0},
                         std::make_unique<FakeGenrmBackend>(state));
  std::vector<BatchResults> completed;
  for (int i = 0; i < 3; ++i) {
    backend->ScoreBatch(
        {SoundArith("x"), SoundArith("y")},
        [&](BatchResults r) { completed.push_back(std::move(r)); });
  }
  EXPECT_EQ(backend->pending_batches(), 3u);
  EXPECT_TRUE(completed.empty());
  const absl::Time start = absl::Now();
  backend.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  ASSERT_THAT(completed, SizeIs(3));
  for (const BatchResults& results : completed) {
    ASSERT_THAT(results, SizeIs(2));
    for (const auto& result : results) {
      EXPECT_THAT(result.status(), StatusIs(absl::StatusCode::kCancelled));
    }
  }
}

TEST(LatencyBackendTest, DestructionCancelsWorkStillAtTheInnerBackend) {
  auto state = std::make_shared<FakeGenrmBackend::State>();  // holds batches
  auto backend = Latency({LatencyKind::kConstant, 10, 0},
                         std::make_unique<FakeGenrmBackend>(state));
  int calls = 0;
  backend->ScoreBatch({SoundArith("x")}, [&](BatchResults r) {
    ++calls;
    ASSERT_THAT(r, SizeIs(1));
    EXPECT_THAT(r[0].status(), StatusIs(absl::StatusCode::kCancelled));
  });
  EXPECT_EQ(state->num_held(), 1u);
  backend.reset();
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace fapo::genrm
