// scheduler/clients/fake_genrm_client.h: a GenrmClient for tests (test-only).
//
// Records every Score call (server, request, deadline) and leaves it open
// until the test finishes it with Complete(); or, with an auto-responder,
// finishes it inline before Score returns. GenrmCall::Cancel on an open call
// finishes it at once with CANCELLED (as gRPC does), on the cancelling
// thread, and is counted.
//
//   FakeGenrmClient client;
//   ... dispatcher.Submit(request) ...
//   ASSERT_EQ(client.num_calls(), 1);
//   EXPECT_EQ(client.call(0).server.worker_id, "genrm-0");
//   client.Complete(0, verdict);                // runs the call's `done`
//
// Honours the GenrmClient contract (genrm_client.h): `done` runs exactly
// once, never under the fake's lock. Thread-safe.
#ifndef FAPO_SCHEDULER_CLIENTS_FAKE_GENRM_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_FAKE_GENRM_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/clients/genrm_client.h"

namespace fapo::scheduler {

class FakeGenrmClient final : public GenrmClient {
 public:
  // What the fake saw of one Score call.
  struct RecordedCall {
    GenrmServer server;
    v1::ScoreRequest request;
    absl::Time deadline;
    bool cancelled = false;  // Cancel() was called while it was open
    bool completed = false;  // its `done` has run (or is running)
  };

  // Decides, inside Score, whether to finish the call inline: a value means
  // "finish now with this", nullopt leaves it open.
  using AutoResponder =
      std::function<std::optional<absl::StatusOr<v1::Verdict>>(
          const GenrmServer& server, const v1::ScoreRequest& request)>;

  FakeGenrmClient() = default;
  FakeGenrmClient(const FakeGenrmClient&) = delete;
  FakeGenrmClient& operator=(const FakeGenrmClient&) = delete;

  void SetAutoResponder(AutoResponder responder) {
    auto shared =
        responder ? std::make_shared<const AutoResponder>(std::move(responder))
                  : nullptr;
    absl::MutexLock lock(&mu_);
    responder_ = std::move(shared);
  }

  // When false, Cancel() only marks and counts the call and leaves it open
  // for the test to finish (to play a result that races a cancel).
  // Default true.
  void set_complete_on_cancel(bool complete) {
    absl::MutexLock lock(&mu_);
    complete_on_cancel_ = complete;
  }

  // Also records nothing when `record` is false (benchmarks: no memory
  // growth). Default true.
  void set_record(bool record) {
    absl::MutexLock lock(&mu_);
    record_ = record;
  }

  std::unique_ptr<GenrmCall> Score(const GenrmServer& server,
                                   const v1::ScoreRequest& request,
                                   absl::Time deadline, Done done) override {
    std::shared_ptr<const AutoResponder> responder;
    bool record;
    {
      absl::MutexLock lock(&mu_);
      ++num_calls_;
      record = record_;
      responder = responder_;  // shared: no copy of the function
    }
    std::optional<absl::StatusOr<v1::Verdict>> result;
    if (!record && responder != nullptr) {
      // Unrecorded and answered inline (benchmarks): nothing can refer to
      // the call afterwards, so it needs no state and no second lock.
      result = (*responder)(server, request);
      if (result.has_value()) {
        done(*std::move(result));
        return std::make_unique<FinishedHandle>();
      }
    }
    std::shared_ptr<State> state = std::make_shared<State>();
    state->done = std::move(done);
    if (record) {
      absl::MutexLock lock(&mu_);
      state->index = static_cast<int>(calls_.size());
      calls_.push_back({server, request, deadline, false, false});
      states_.push_back(state);
    }
    if (record && responder != nullptr) result = (*responder)(server, request);
    if (result.has_value()) Finish(state, *std::move(result));
    return std::make_unique<Handle>(this, state);
  }

  // Score calls so far (recorded or not).
  int num_calls() const {
    absl::MutexLock lock(&mu_);
    return num_calls_;
  }
  // Copy of the `index`-th recorded call (in Score order).
  RecordedCall call(int index) const {
    absl::MutexLock lock(&mu_);
    return calls_.at(index);
  }
  std::vector<RecordedCall> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Indices of recorded calls whose `done` has not run, in Score order.
  std::vector<int> open_calls() const {
    absl::MutexLock lock(&mu_);
    std::vector<int> open;
    for (size_t i = 0; i < calls_.size(); ++i) {
      if (!calls_[i].completed) open.push_back(static_cast<int>(i));
    }
    return open;
  }
  // Index of the newest open call for `trajectory_id`, or -1.
  int OpenCallFor(absl::string_view trajectory_id) const {
    absl::MutexLock lock(&mu_);
    for (int i = static_cast<int>(calls_.size()) - 1; i >= 0; --i) {
      if (!calls_[i].completed &&
          calls_[i].request.trajectory_id() == trajectory_id) {
        return i;
      }
    }
    return -1;
  }
  // Cancel() calls that hit an open call.
  int cancels() const {
    absl::MutexLock lock(&mu_);
    return cancels_;
  }

  // Finishes the `index`-th recorded call with `result`, running its `done`
  // on this thread. False when it already finished.
  bool Complete(int index, absl::StatusOr<v1::Verdict> result) {
    std::shared_ptr<State> state;
    {
      absl::MutexLock lock(&mu_);
      state = states_.at(index);
    }
    return Finish(state, std::move(result));
  }

  // Blocks (real time) until at least `count` Score calls were made.
  void WaitForCalls(int count) const {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return num_calls_ >= count;
    };
    mu_.Await(absl::Condition(&enough));
  }

 private:
  struct State {
    int index = -1;         // into calls_, or -1 when not recorded
    bool finished = false;  // guarded by the client's mu_
    Done done;
  };

  // A call finished before Score returned: Cancel has nothing to do.
  class FinishedHandle final : public GenrmCall {
   public:
    void Cancel() override {}
  };

  class Handle final : public GenrmCall {
   public:
    Handle(FakeGenrmClient* client, std::shared_ptr<State> state)
        : client_(client), state_(std::move(state)) {}
    void Cancel() override {
      {
        absl::MutexLock lock(&client_->mu_);
        if (state_->finished) return;
        ++client_->cancels_;
        if (state_->index >= 0) client_->calls_[state_->index].cancelled = true;
        if (!client_->complete_on_cancel_) return;
      }
      client_->Finish(state_, absl::CancelledError("call cancelled"));
    }

   private:
    FakeGenrmClient* client_;
    std::shared_ptr<State> state_;
  };

  bool Finish(const std::shared_ptr<State>& state,
              absl::StatusOr<v1::Verdict> result) {
    Done done;
    {
      absl::MutexLock lock(&mu_);
      if (state->finished) return false;
      state->finished = true;
      if (state->index >= 0) calls_[state->index].completed = true;
      done = std::move(state->done);
    }
    done(std::move(result));
    return true;
  }

  mutable absl::Mutex mu_;
  std::shared_ptr<const AutoResponder> responder_ ABSL_GUARDED_BY(mu_);
  bool record_ ABSL_GUARDED_BY(mu_) = true;
  bool complete_on_cancel_ ABSL_GUARDED_BY(mu_) = true;
  int num_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int cancels_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<RecordedCall> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<State>> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_FAKE_GENRM_CLIENT_H_
