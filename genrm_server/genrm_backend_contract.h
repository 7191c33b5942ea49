// Test only: the GenrmBackend contract (genrm_backend.h) as a parameterized
// gtest suite, so that every backend runs the same checks (docs/style.md,
// practice 8). Include this header in exactly one file of a test
// executable and instantiate the suite there with that executable's
// backends:
//
//   INSTANTIATE_TEST_SUITE_P(AllBackends, GenrmBackendContractTest,
//                            ::testing::ValuesIn(MyCases()), BackendCaseName);
//
// genrm_backend_contract_test.cc runs rule, fake, latency and openai;
// model/model_backend_contract_test.cc runs the LibTorch model backend.
#ifndef FAPO_GENRM_SERVER_GENRM_BACKEND_CONTRACT_H_
#define FAPO_GENRM_SERVER_GENRM_BACKEND_CONTRACT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "genrm_server/genrm_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo::genrm::contract {

struct BackendCase {
  std::string name;
  std::function<std::unique_ptr<GenrmBackend>()> make;
  // Whether every verdict of the contract's requests has status OK. False
  // for a backend whose verdicts depend on what a model writes (an untrained
  // model's text is UNPARSABLE); its verdicts must still carry a status.
  bool verdicts_ok = true;
  // ConcurrentBatchesAllComplete: batches of 3 requests each of 4 threads
  // sends. Smaller for slow backends (a model generating on CPU).
  int concurrent_batches_per_thread = 25;
};

inline std::string BackendCaseName(
    const ::testing::TestParamInfo<BackendCase>& info) {
  return info.param.name;
}

// The contract's requests: alternate sound and half-slip arith traces of
// 3+7*4-2 (default arith options), trajectory_id "t<i>".
inline fapo::v1::ScoreRequest ContractRequest(int i) {
  fapo::v1::ScoreRequest request;
  request.set_request_id(absl::StrCat("r", i));
  request.set_trajectory_id(absl::StrCat("t", i));
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_solution(i % 2 == 0 ? "3+7=0\n0*4=0\n0-2=8\n#3"
                                  : "3+7=5\n5*4=0\n0-2=8\n#3");
  return request;
}

inline BatchResults ScoreAndWait(GenrmBackend& backend,
                                 std::vector<fapo::v1::ScoreRequest> requests) {
  absl::Notification done;
  BatchResults out;
  std::atomic<int> calls{0};
  backend.ScoreBatch(std::move(requests), [&](BatchResults results) {
    out = std::move(results);
    calls.fetch_add(1);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(calls.load(), 1);
  return out;
}

class GenrmBackendContractTest : public ::testing::TestWithParam<BackendCase> {
};

TEST_P(GenrmBackendContractTest, OneResultPerRequestInOrder) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  ASSERT_NE(backend, nullptr);
  EXPECT_FALSE(backend->name().empty());
  std::vector<fapo::v1::ScoreRequest> requests;
  for (int i = 0; i < 17; ++i) requests.push_back(ContractRequest(i));
  const BatchResults results = ScoreAndWait(*backend, requests);
  ASSERT_THAT(results, ::testing::SizeIs(17));
  for (int i = 0; i < 17; ++i) {
    ASSERT_THAT(results[i], ::fapo::testing::IsOk());
    EXPECT_EQ(results[i]->trajectory_id(), absl::StrCat("t", i));
    EXPECT_NE(results[i]->status(), fapo::v1::VERDICT_STATUS_UNSPECIFIED);
    if (GetParam().verdicts_ok) {
      EXPECT_EQ(results[i]->status(), fapo::v1::VERDICT_STATUS_OK);
    }
    EXPECT_GT(results[i]->num_steps(), 0);
    // Latency and server id are the batcher's to stamp.
    EXPECT_FALSE(results[i]->has_latency());
    EXPECT_EQ(results[i]->genrm_server_id(), "");
  }
}

TEST_P(GenrmBackendContractTest, EmptyBatchGetsEmptyResult) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  ASSERT_NE(backend, nullptr);
  EXPECT_THAT(ScoreAndWait(*backend, {}), ::testing::SizeIs(0));
}

TEST_P(GenrmBackendContractTest, ConcurrentBatchesAllComplete) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  ASSERT_NE(backend, nullptr);
  constexpr int kThreads = 4;
  const int kBatches = GetParam().concurrent_batches_per_thread;
  absl::BlockingCounter done(kThreads * kBatches);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const int first = (t * kBatches + b) * 3;
        backend->ScoreBatch({ContractRequest(first), ContractRequest(first + 1),
                             ContractRequest(first + 2)},
                            [&, first](BatchResults results) {
                              bool good = results.size() == 3;
                              for (int i = 0; good && i < 3; ++i) {
                                good = results[i].ok() &&
                                       results[i]->trajectory_id() ==
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

TEST_P(GenrmBackendContractTest, DoneMayScoreAnotherBatch) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  ASSERT_NE(backend, nullptr);
  absl::Notification second_done;
  backend->ScoreBatch({ContractRequest(0)}, [&](BatchResults first) {
    EXPECT_THAT(first, ::testing::SizeIs(1));
    backend->ScoreBatch({ContractRequest(1)}, [&](BatchResults second) {
      EXPECT_THAT(second, ::testing::SizeIs(1));
      second_done.Notify();
    });
  });
  EXPECT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST_P(GenrmBackendContractTest, DestructionCompletesEverythingOwed) {
  std::unique_ptr<GenrmBackend> backend = GetParam().make();
  ASSERT_NE(backend, nullptr);
  std::atomic<int> calls{0};
  for (int i = 0; i < 5; ++i) {
    backend->ScoreBatch({ContractRequest(i)}, [&](BatchResults results) {
      EXPECT_THAT(results, ::testing::SizeIs(1));
      calls.fetch_add(1);
    });
  }
  backend.reset();
  EXPECT_EQ(calls.load(), 5);
}

}  // namespace fapo::genrm::contract

#endif  // FAPO_GENRM_SERVER_GENRM_BACKEND_CONTRACT_H_
