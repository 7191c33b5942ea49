// FakeRolloutClient (test only): records Generate streams; the test feeds
// each stream trajectories and ends it (rollout_client.h's contract holds:
// callbacks run on the test's thread, outside the fake's lock).
#ifndef FAPO_SCHEDULER_CLIENTS_FAKE_ROLLOUT_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_FAKE_ROLLOUT_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "scheduler/clients/rollout_client.h"

namespace fapo::scheduler {

class FakeRolloutClient final : public RolloutClient {
 public:
  struct Stream {
    RolloutWorker worker;
    v1::GenerateRequest request;
    absl::Time deadline;
    bool cancelled = false;
    bool done = false;
  };

  std::unique_ptr<RolloutStream> Generate(const RolloutWorker& worker,
                                          const v1::GenerateRequest& request,
                                          absl::Time deadline,
                                          OnTrajectory on_trajectory,
                                          OnDone on_done) override {
    auto state = std::make_shared<State>();
    state->on_trajectory = std::move(on_trajectory);
    state->on_done = std::move(on_done);
    {
      absl::MutexLock lock(&mu_);
      streams_.push_back({worker, request, deadline, false, false});
      states_.push_back(state);
      state->index = static_cast<int>(streams_.size()) - 1;
    }
    return std::make_unique<Handle>(this, state);
  }

  int num_streams() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(streams_.size());
  }
  Stream stream(int index) const {
    absl::MutexLock lock(&mu_);
    return streams_.at(index);
  }
  // Indices of streams not ended yet.
  std::vector<int> open_streams() const {
    absl::MutexLock lock(&mu_);
    std::vector<int> open;
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (!streams_[i].done) open.push_back(static_cast<int>(i));
    }
    return open;
  }
  // Delivers one trajectory on stream `index` (false once it ended).
  bool Send(int index, v1::Trajectory trajectory) {
    std::shared_ptr<State> state;
    {
      absl::MutexLock lock(&mu_);
      if (streams_.at(index).done) return false;
      state = states_.at(index);
    }
    state->on_trajectory(std::move(trajectory));
    return true;
  }
  // Ends stream `index` with `status` (false when it already ended).
  bool End(int index, absl::Status status) {
    OnDone on_done;
    {
      absl::MutexLock lock(&mu_);
      if (streams_.at(index).done) return false;
      streams_[index].done = true;
      on_done = std::move(states_[index]->on_done);
    }
    on_done(std::move(status));
    return true;
  }

 private:
  struct State {
    int index = -1;
    OnTrajectory on_trajectory;
    OnDone on_done;
  };
  class Handle final : public RolloutStream {
   public:
    Handle(FakeRolloutClient* client, std::shared_ptr<State> state)
        : client_(client), state_(std::move(state)) {}
    void Cancel() override {
      {
        absl::MutexLock lock(&client_->mu_);
        Stream& stream = client_->streams_.at(state_->index);
        if (stream.done) return;
        stream.cancelled = true;
      }
      client_->End(state_->index, absl::CancelledError("stream cancelled"));
    }

   private:
    FakeRolloutClient* client_;
    std::shared_ptr<State> state_;
  };

  mutable absl::Mutex mu_;
  std::vector<Stream> streams_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<State>> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_FAKE_ROLLOUT_CLIENT_H_
