// Test doubles for genrm_server (test only): a backend that holds each batch
// until the test completes it, and a settable clock.
#ifndef FAPO_GENRM_SERVER_FAKE_GENRM_BACKEND_H_
#define FAPO_GENRM_SERVER_FAKE_GENRM_BACKEND_H_

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "genrm_server/genrm_backend.h"
#include "services/clock/fake_clock.h"

namespace fapo::genrm {

// A Clock that moves only when told. Thread-safe.
// Tests move time by hand with the shared fake clock.
using ::fapo::FakeClock;

// Holds every batch until CompleteNext/CompleteAll. A held batch's verdicts
// echo its requests: trajectory_id, status OK, first_error_step = the index
// of the request in its batch, num_steps = the batch's size; requests whose
// trajectory_id starts with "error" get InvalidArgument instead.
// Destruction completes held batches with Cancelled. Thread-safe.
class FakeGenrmBackend : public GenrmBackend {
 public:
  // Shared with the test after the backend is handed to a batcher, so that
  // the test can still drive it (the state outlives the backend).
  struct State {
    absl::Mutex mu;
    std::vector<std::pair<std::vector<fapo::v1::ScoreRequest>, BatchDone>> held
        ABSL_GUARDED_BY(mu);
    std::vector<size_t> batch_sizes ABSL_GUARDED_BY(mu);
    int max_held ABSL_GUARDED_BY(mu) = 0;
    bool complete_immediately ABSL_GUARDED_BY(mu) = false;

    // Completes the oldest held batch; false when none is held.
    bool CompleteNext() {
      std::vector<fapo::v1::ScoreRequest> requests;
      BatchDone done;
      {
        absl::MutexLock lock(&mu);
        if (held.empty()) return false;
        requests = std::move(held.front().first);
        done = std::move(held.front().second);
        held.erase(held.begin());
      }
      done(Echo(requests));
      return true;
    }
    int CompleteAll() {
      int completed = 0;
      while (CompleteNext()) ++completed;
      return completed;
    }
    size_t num_held() {
      absl::MutexLock lock(&mu);
      return held.size();
    }
    std::vector<size_t> sizes() {
      absl::MutexLock lock(&mu);
      return batch_sizes;
    }
  };

  static BatchResults Echo(
      const std::vector<fapo::v1::ScoreRequest>& requests) {
    BatchResults results;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (requests[i].trajectory_id().rfind("error", 0) == 0) {
        results.push_back(
            absl::InvalidArgumentError(requests[i].trajectory_id()));
        continue;
      }
      fapo::v1::Verdict verdict;
      verdict.set_trajectory_id(requests[i].trajectory_id());
      verdict.set_status(fapo::v1::VERDICT_STATUS_OK);
      verdict.set_first_error_step(static_cast<int>(i));
      verdict.set_num_steps(static_cast<int>(requests.size()));
      results.push_back(std::move(verdict));
    }
    return results;
  }

  explicit FakeGenrmBackend(std::shared_ptr<State> state)
      : state_(std::move(state)) {}
  ~FakeGenrmBackend() override {
    std::vector<std::pair<std::vector<fapo::v1::ScoreRequest>, BatchDone>> held;
    {
      absl::MutexLock lock(&state_->mu);
      held.swap(state_->held);
    }
    for (auto& [requests, done] : held) {
      done(BatchResults(requests.size(),
                        absl::CancelledError("fake backend destroyed")));
    }
  }

  void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                  BatchDone done) override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->batch_sizes.push_back(requests.size());
      if (!state_->complete_immediately) {
        state_->held.emplace_back(std::move(requests), std::move(done));
        state_->max_held =
            std::max(state_->max_held, static_cast<int>(state_->held.size()));
        return;
      }
    }
    done(Echo(requests));
  }
  std::string name() const override { return "fake"; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_FAKE_GENRM_BACKEND_H_
