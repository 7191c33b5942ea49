// trainer/comm/rank_group.h: data-parallel trainer ranks (issue #6).
//
// NOTE [trainer ranks]: N fapo-trainer processes each hold a whole Trainer
// (same policy, same optimizer state). Rank 0 is the only one the rest of
// the job sees: it serves TrainStep and SaveCheckpoint. For each step it
// checks the step and the batch (so no rank can fail a step the others
// run), splits every minibatch of the batch over the ranks (PlanShards) and
// sends each rank its share as a command over the communicator; every rank
// then runs Trainer::TrainStep on its share, with gradients and counts
// summed through the Trainer's GradientSync (NOTE [data-parallel seam] in
// gradient_sync.h), so all ranks apply the same update, equal to one
// process's step on the whole batch, and report global metrics.
//
// Commands travel as two broadcasts from rank 0: a fixed-size int64 header
// (kind, step, payload bytes per rank, minibatch sizes per rank) and, for a
// step, one uint8 tensor holding every rank's TrainStepRequest bytes back
// to back (each rank parses only its slice). Broadcasting the
// concatenation costs every rank the whole batch's bytes on the wire; the
// Communicator has no point-to-point send, and a batch is a few MB.
//
// SaveCheckpoint is rank 0's alone: every rank holds identical weights and
// optimizer state (JoinRankGroup checks the step and copies rank 0's
// weights at start), so rank 0's checkpoint is the group's; the others do
// nothing and, on resume, load the same checkpoint (a shared
// job.output_dir) or fail the join.
//
// NOTE [rank keep-alive]: between steps the followers wait in a broadcast,
// and every collective is bounded by the communicator's timeout (5 min by
// default), while the gap between steps (generation, GenRM scoring) has no
// bound. So rank 0 sends a keep-alive command whenever it has sent nothing
// for keep_alive_interval (2 s): a follower's wait is then always short, a
// follower that is asked to stop (SIGTERM) leaves within an interval, and a
// dead peer is found within an interval even while the job is idle.
// Waiting with a longer timeout instead would need a second communicator
// and would leave a dead rank 0 undetected for that long.
//
// Failures: once a command has gone out, any failure of the step (a lost
// or late peer, an error on one rank) leaves the ranks out of step, and a
// group cannot be repaired in place (communicator.h). The leader then fails
// that step (ABORTED, not retried by RPC clients) with a message naming the
// group and the cause, refuses later ones (FAILED_PRECONDITION) and calls
// on_group_lost (fapo-trainer exits 1); a follower's Run returns the error
// (fapo-trainer exits 1). Restart every rank, from the last checkpoint.
//
// Thread-safety: RankGroupLeader is thread-safe (its keep-alive thread and
// the caller of TrainStep share the communicator under its mutex);
// RankGroupFollower::Run is one thread's.
#ifndef FAPO_TRAINER_COMM_RANK_GROUP_H_
#define FAPO_TRAINER_COMM_RANK_GROUP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "services/config/job_spec.h"
#include "trainer/comm/communicator.h"
#include "trainer/trainer.h"

namespace fapo::trainer {

// How fapo-trainer rank `rank` of a job reaches the others.
struct RankAddress {
  // --rank: in [0, trainer.ranks).
  int rank = 0;
  // --rendezvous "HOST:PORT" (IPv6 hosts in brackets): where rank 0 hosts
  // the c10d TCPStore. Required when trainer.ranks > 1.
  std::string rendezvous;
  // Bound on the rendezvous and on every collective. Default 5 minutes.
  absl::Duration timeout = kDefaultCollectiveTimeout;
};

// Checks `address` against the spec's trainer.ranks, trainer.backend and
// policy.device; InvalidArgument saying which flag or key is wrong (a rank
// outside [0, ranks), a missing or malformed --rendezvous, nccl with
// policy.device cpu). UNIMPLEMENTED for nccl in a build without NCCL.
// Touches nothing.
absl::Status ValidateRankAddress(const config::JobSpec& spec,
                                 const RankAddress& address);

// ValidateRankAddress, then joins the group of trainer.ranks processes
// (blocks until all have joined, or the timeout): the communicator of
// trainer.backend. Gloo's pairs bind to 127.0.0.1 when the rendezvous host
// is a loopback address (one machine), else to this machine's hostname.
absl::StatusOr<std::unique_ptr<Communicator>> ConnectTrainerRanks(
    const config::JobSpec& spec, const RankAddress& address);

// Which trajectories of a batch each rank trains on.
struct ShardPlan {
  // indices[r]: rank r's trajectories (indices into the batch), minibatch
  // 0's first, each minibatch's in batch order.
  std::vector<std::vector<int>> indices;
  // minibatch_sizes[r][k]: how many of indices[r] lie in minibatch k
  // (Trainer::TrainStep's minibatch_sizes).
  std::vector<std::vector<int64_t>> minibatch_sizes;
};

// Splits each of the `minibatches` contiguous minibatches of `batch` (the
// ones a single process would use) over `world_size` ranks, balancing the
// tokens (prompt + response: what a forward pass costs) of each minibatch:
// longest first to the least-loaded rank (ties: the least total so far,
// then the lowest rank). Deterministic. world_size, minibatches >= 1.
ShardPlan PlanShards(
    const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch,
    int world_size, int minibatches);

// Every rank calls this once, before anything else goes over
// `communicator`: checks that all ranks are at the same step with the same
// minibatches_per_step and parameter count (FailedPrecondition naming the
// rank that differs) and copies rank 0's weights to everyone, as torch DDP
// does at construction. The communicator's errors otherwise.
absl::Status JoinRankGroup(Trainer& trainer, Communicator& communicator);

struct RankGroupOptions {
  // NOTE [rank keep-alive]. Default 2 s; must be well below the
  // communicator's timeout.
  absl::Duration keep_alive_interval = absl::Seconds(2);
  // Called once, outside any lock, from the thread that found the group
  // broken (a TrainStep's or the keep-alive thread), with the error. May be
  // null.
  std::function<void(const absl::Status&)> on_group_lost;
};

// Rank 0.
class RankGroupLeader {
 public:
  // Joins the group (JoinRankGroup) and starts the keep-alive thread.
  // `communicator` is not owned and must outlive the leader; rank 0 of it.
  // `trainer` is used only here (TrainStep takes it again).
  static absl::StatusOr<std::unique_ptr<RankGroupLeader>> Create(
      Trainer& trainer, Communicator* communicator, RankGroupOptions options);

  // Stop(), then joins the keep-alive thread.
  ~RankGroupLeader();
  RankGroupLeader(const RankGroupLeader&) = delete;
  RankGroupLeader& operator=(const RankGroupLeader&) = delete;

  // Trainer::TrainStep over the group (NOTE [trainer ranks]): a repeat or
  // an out-of-order step, and InvalidArgument for a bad batch, are answered
  // by rank 0 alone, before anything is sent. A failure once the step went
  // out breaks the group (the file comment). FailedPrecondition after
  // Stop() or once the group is broken. `trainer` is the one given to
  // Create; call from one thread at a time.
  absl::StatusOr<TrainStepResult> TrainStep(
      Trainer& trainer, int64_t step,
      const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch);

  // Tells the other ranks to exit (they return OK from Run) and stops the
  // keep-alive. Idempotent; waits for a step in flight. An error only when
  // the stop command could not be sent (the group is already broken).
  absl::Status Stop();

  int world_size() const { return communicator_->world_size(); }

 private:
  RankGroupLeader(Communicator* communicator, RankGroupOptions options,
                  c10::Device device, int minibatches);

  void KeepAlive();
  // Records the group's first failure; returns the on_group_lost call to
  // make once the lock is released (null when already broken).
  std::function<void()> MarkLostLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  Communicator* const communicator_;
  const RankGroupOptions options_;
  const c10::Device device_;  // where command tensors live (the policy's)
  const int minibatches_;

  // Held for every command and the step it starts: one user of the
  // communicator at a time.
  absl::Mutex mutex_;
  absl::Time last_command_ ABSL_GUARDED_BY(mutex_);
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status lost_ ABSL_GUARDED_BY(mutex_);  // the first failure
  std::thread keep_alive_;  // last: starts once the rest is set
};

// Ranks > 0.
class RankGroupFollower {
 public:
  // Joins the group (JoinRankGroup). Neither argument is owned; both must
  // outlive the follower.
  static absl::StatusOr<std::unique_ptr<RankGroupFollower>> Create(
      Trainer& trainer, Communicator* communicator);

  // Runs rank 0's commands until it says stop (OK). Between commands,
  // returns Cancelled once `stop_requested` says so (rank 0 will find this
  // rank gone). Any other error (rank 0 lost, a failed step) names this
  // rank and means the group is broken.
  absl::Status Run(const std::function<bool()>& stop_requested);

 private:
  RankGroupFollower(Trainer& trainer, Communicator* communicator)
      : trainer_(trainer), communicator_(communicator) {}

  Trainer& trainer_;
  Communicator* const communicator_;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_COMM_RANK_GROUP_H_
