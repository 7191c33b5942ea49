// The GenrmBackend contract (genrm_backend.h), run against every backend so
// that fakes stay honest (STYLE.md, practice 8).
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "genrm_server/fake_genrm_backend.h"
#include "genrm_server/genrm_backend.h"
#include "genrm_server/latency_backend.h"
#include "genrm_server/rule_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::IsOk;
using ::testing::SizeIs;

struct BackendCase {
  std::string name;
  std::function<std::unique_ptr<GenrmBackend>()> make;
};

std::unique_ptr<GenrmBackend> MakeFake() {
  auto state = std::make_shared<FakeGenrmBackend::State>();
  absl::MutexLock lock(&state->mu);
  state->complete_immediately = true;
  return std::make_unique<FakeGenrmBackend>(state);
}

std::unique_ptr<GenrmBackend> WithLatency(std::unique_ptr<GenrmBackend> inner) {
  LatencyBackendOptions options;
  options.distribution = {LatencyKind::kLogNormal, 5, 3};
  return *LatencyBackend::Create(options, std::move(inner));
}

std::vector<BackendCase> Cases() {
  return {
      {"rule",
       [] { return std::unique_ptr<GenrmBackend>(*RuleBackend::Create({})); }},
      {"fake", MakeFake},
      {"latency_rule",
       [] {
         return WithLatency(
             std::unique_ptr<GenrmBackend>(*RuleBackend::Create({})));
       }},
      {"latency_fake", [] { return WithLatency(MakeFake()); }},
  };
}

class GenrmBackendContractTest : public ::testing::TestWithParam<BackendCase> {
};

fapo::v1::ScoreRequest Request(int i) {
  fapo::v1::ScoreRequest request;
  request.set_request_id(absl::StrCat("r", i));
  request.set_trajectory_id(absl::StrCat("t", i));
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  // Alternate sound and half-slip traces.
  request.set_solution(i % 2 == 0 ? "3+7=0\n0*4=0\n0-2=8\n#3"
                                  : "3+7=5\n5*4=0\n0-2=8\n#3");
  return request;
}

BatchResults ScoreAndWait(GenrmBackend& backend,
                          std::vector<fapo::v1::ScoreRequest> requests) {
  absl::Notification done;
  BatchResults out;
  std::atomic<int> calls{0};
  backend.ScoreBatch(std::move(requests), [&](BatchResults results) {
    out = std::move(results);
    calls.fetch_add(1);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(calls.load(), 1);
  return out;
}

TEST_P(GenrmBackendContractTest, OneResultPerRequestInOrder) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  EXPECT_FALSE(backend->name().empty());
  std::vector<fapo::v1::ScoreRequest> requests;
  for (int i = 0; i < 17; ++i) requests.push_back(Request(i));
  const BatchResults results = ScoreAndWait(*backend, requests);
  ASSERT_THAT(results, SizeIs(17));
  for (int i = 0; i < 17; ++i) {
    ASSERT_THAT(results[i], IsOk());
    EXPECT_EQ(results[i]->trajectory_id(), absl::StrCat("t", i));
    EXPECT_EQ(results[i]->status(), fapo::v1::VERDICT_STATUS_OK);
    // Latency and server id are the batcher's to stamp.
    EXPECT_FALSE(results[i]->has_latency());
    EXPECT_EQ(results[i]->genrm_server_id(), "");
  }
}

TEST_P(GenrmBackendContractTest, EmptyBatchGetsEmptyResult) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  EXPECT_THAT(ScoreAndWait(*backend, {}), SizeIs(0));
}

TEST_P(GenrmBackendContractTest, ConcurrentBatchesAllComplete) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  constexpr int kThreads = 4;
  constexpr int kBatches = 50;
  absl::BlockingCounter done(kThreads * kBatches);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const int first = (t * kBatches + b) * 3;
        backend->ScoreBatch(
            {Request(first), Request(first + 1), Request(first + 2)},
            [&, first](BatchResults results) {
              bool good = results.size() == 3;
              for (int i = 0; good && i < 3; ++i) {
                good = results[i].ok() && results[i]->trajectory_id() ==
                                              absl::StrCat("t", first + i);
              }
              if (!good) wrong.fetch_add(1);
              done.DecrementCount();
            });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done.Wait();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_P(GenrmBackendContractTest, DestructionCompletesEverythingOwed) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  std::atomic<int> calls{0};
  for (int i = 0; i < 5; ++i) {
    backend->ScoreBatch({Request(i)}, [&](BatchResults results) {
      EXPECT_THAT(results, SizeIs(1));
      calls.fetch_add(1);
    });
  }
  backend.reset();
  EXPECT_EQ(calls.load(), 5);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, GenrmBackendContractTest,
                         ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<BackendCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace fapo::genrm
