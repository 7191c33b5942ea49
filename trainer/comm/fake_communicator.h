// trainer/comm/fake_communicator.h (test only): N ranks in one process, one
// thread per rank, with communicator.h's contract, so data-parallel logic
// runs in unit tests without processes, ports or Gloo.
//
//   FakeCommunicatorGroup group(/*world_size=*/2, absl::Seconds(5));
//   std::unique_ptr<Communicator> rank0 = group.Rank(0);  // one per thread
//
// Each rank's k-th collective meets the other ranks' k-th collective. The
// last rank to arrive computes the result for everyone; the others wait for
// it up to the timeout (DEADLINE_EXCEEDED naming the ranks that did not
// come). Stricter than Gloo where that is cheap: ranks that disagree on the
// operation, the root, the number, shapes or dtypes of tensors all get
// INVALID_ARGUMENT rather than garbage. Fault injection: SetRankDown(r)
// makes every rank waiting on (or later calling) a collective that needs r
// fail with UNAVAILABLE, as a lost peer does.
#ifndef FAPO_TRAINER_COMM_FAKE_COMMUNICATOR_H_
#define FAPO_TRAINER_COMM_FAKE_COMMUNICATOR_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "trainer/comm/communicator.h"

namespace fapo::trainer {

class FakeCommunicatorGroup {
 public:
  explicit FakeCommunicatorGroup(int world_size,
                                 absl::Duration timeout = absl::Seconds(30))
      : state_(std::make_shared<State>(world_size, timeout)) {}

  // The communicator of rank `rank`; call once per rank. It keeps the
  // group's shared state alive, so the group object may go first.
  std::unique_ptr<Communicator> Rank(int rank) {
    return std::unique_ptr<Communicator>(new RankCommunicator(state_, rank));
  }

  // From now on rank `rank` counts as lost (see the header comment).
  void SetRankDown(int rank) {
    absl::MutexLock lock(&state_->mutex);
    state_->down.push_back(rank);
  }

 private:
  struct Round {
    std::string operation;  // with its root, for the agreement check
    std::vector<bool> arrived;
    int arrived_count = 0;
    int collected_count = 0;
    std::vector<std::vector<at::Tensor>> inputs;  // [rank][tensor], clones
    bool done = false;
    absl::Status status;
    std::vector<at::Tensor> result;
  };

  struct State {
    State(int world_size_in, absl::Duration timeout_in)
        : world_size(world_size_in), timeout(timeout_in) {}
    const int world_size;
    const absl::Duration timeout;
    absl::Mutex mutex;
    std::map<int64_t, Round> rounds ABSL_GUARDED_BY(mutex);
    std::vector<int> down ABSL_GUARDED_BY(mutex);
  };

  enum class Kind { kSum, kBroadcast, kBarrier, kGather };

  class RankCommunicator : public Communicator {
   public:
    RankCommunicator(std::shared_ptr<State> state, int rank)
        : state_(std::move(state)), rank_(rank) {}

    int rank() const override { return rank_; }
    int world_size() const override { return state_->world_size; }
    std::string backend_name() const override { return "fake"; }

    absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
      if (absl::Status s = ValidateTensors(*this, "AllReduceSum", tensors);
          !s.ok()) {
        return s;
      }
      return Run(Kind::kSum, "AllReduceSum", 0, tensors);
    }

    absl::Status Broadcast(std::vector<at::Tensor>& tensors,
                           int root) override {
      if (root < 0 || root >= world_size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where("Broadcast"), ": root ", root, " is not a rank"));
      }
      if (absl::Status s = ValidateTensors(*this, "Broadcast", tensors);
          !s.ok()) {
        return s;
      }
      return Run(Kind::kBroadcast, "Broadcast", root, tensors);
    }

    absl::Status Barrier() override {
      std::vector<at::Tensor> none;
      return Run(Kind::kBarrier, "Barrier", 0, none);
    }

    absl::Status AllGather(const at::Tensor& input,
                           std::vector<at::Tensor>* outputs) override {
      std::vector<at::Tensor> inputs = {input};
      if (absl::Status s = ValidateTensors(*this, "AllGather", inputs);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = Run(Kind::kGather, "AllGather", 0, inputs);
          !s.ok()) {
        return s;
      }
      *outputs = std::move(gathered_);
      return absl::OkStatus();
    }

   private:
    absl::Status Run(Kind kind, const char* operation, int root,
                     std::vector<at::Tensor>& tensors) {
      if (!first_error_.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat(Where(operation),
                         ": the communicator is broken by an earlier failure (",
                         first_error_.message(), ")"));
      }
      const int64_t sequence = next_sequence_++;
      const std::string signature = absl::StrCat(operation, "/root=", root);
      const absl::Time deadline = absl::Now() + state_->timeout;
      absl::MutexLock lock(&state_->mutex);
      Round& round = state_->rounds[sequence];
      if (round.arrived.empty()) {
        round.operation = signature;
        round.arrived.assign(world_size(), false);
        round.inputs.resize(world_size());
      }
      round.arrived[rank_] = true;
      ++round.arrived_count;
      if (round.operation != signature) {
        round.status = absl::InvalidArgumentError(absl::StrCat(
            "collective #", sequence, ": ranks disagree on the operation (",
            round.operation, " vs ", signature, ")"));
      }
      for (const at::Tensor& tensor : tensors) {
        round.inputs[rank_].push_back(tensor.clone());
      }
      if (round.arrived_count == world_size()) {
        Compute(kind, root, round);
      }
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mutex) {
        return round.done || !MissingDownRanks(round).empty();
      };
      state_->mutex.AwaitWithDeadline(absl::Condition(&ready), deadline);
      absl::Status status;
      if (round.done) {
        status = round.status;
        if (status.ok()) status = CopyOut(kind, round, tensors);
      } else if (std::vector<int> lost = MissingDownRanks(round);
                 !lost.empty()) {
        status = absl::UnavailableError(absl::StrCat("collective #", sequence,
                                                     ": lost rank(s) ",
                                                     absl::StrJoin(lost, ",")));
      } else {
        std::vector<int> missing;
        for (int r = 0; r < world_size(); ++r) {
          if (!round.arrived[r]) missing.push_back(r);
        }
        status = absl::DeadlineExceededError(
            absl::StrCat("collective #", sequence, " timed out after ",
                         absl::FormatDuration(state_->timeout),
                         " waiting for rank(s) ", absl::StrJoin(missing, ",")));
      }
      // The last rank out frees the round. A round that timed out stays for
      // late ranks to find (and to complete among themselves).
      if (round.done && ++round.collected_count == world_size()) {
        state_->rounds.erase(sequence);
      }
      if (!status.ok()) {
        status = absl::Status(
            status.code(),
            absl::StrCat(Where(operation), ": ", status.message()));
        first_error_ = status;
      }
      return status;
    }

    std::vector<int> MissingDownRanks(const Round& round) const
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mutex) {
      std::vector<int> lost;
      for (int r : state_->down) {
        if (r >= 0 && r < world_size() && !round.arrived[r]) lost.push_back(r);
      }
      return lost;
    }

    // Runs in the last rank to arrive, under the lock.
    void Compute(Kind kind, int root, Round& round) {
      round.done = true;
      if (!round.status.ok()) return;
      const std::vector<at::Tensor>& first = round.inputs[0];
      for (int r = 1; r < world_size(); ++r) {
        const std::vector<at::Tensor>& other = round.inputs[r];
        bool same = other.size() == first.size();
        for (size_t i = 0; same && i < first.size(); ++i) {
          same = other[i].sizes() == first[i].sizes() &&
                 other[i].scalar_type() == first[i].scalar_type();
        }
        if (!same) {
          round.status = absl::InvalidArgumentError(absl::StrCat(
              "ranks 0 and ", r,
              " disagree on the number, shapes or dtypes of tensors"));
          return;
        }
      }
      switch (kind) {
        case Kind::kSum:
          for (size_t i = 0; i < first.size(); ++i) {
            at::Tensor sum = first[i].clone();
            for (int r = 1; r < world_size(); ++r) {
              sum.add_(round.inputs[r][i]);
            }
            round.result.push_back(sum);
          }
          break;
        case Kind::kBroadcast:
          round.result = round.inputs[root];
          break;
        case Kind::kGather:
          for (int r = 0; r < world_size(); ++r) {
            round.result.push_back(round.inputs[r][0]);
          }
          break;
        case Kind::kBarrier:
          break;
      }
    }

    absl::Status CopyOut(Kind kind, const Round& round,
                         std::vector<at::Tensor>& tensors) {
      if (kind == Kind::kGather) {
        gathered_.clear();
        for (const at::Tensor& tensor : round.result) {
          gathered_.push_back(tensor.clone());
        }
        return absl::OkStatus();
      }
      for (size_t i = 0; i < round.result.size(); ++i) {
        tensors[i].copy_(round.result[i]);
      }
      return absl::OkStatus();
    }

    const std::shared_ptr<State> state_;
    const int rank_;
    int64_t next_sequence_ = 0;
    absl::Status first_error_;
    std::vector<at::Tensor> gathered_;
  };

  std::shared_ptr<State> state_;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_COMM_FAKE_COMMUNICATOR_H_
