// The seam data parallelism plugs into (NOTE [data-parallel seam]).
//
// The Trainer computes gradients of its own shard of the batch and, before
// clipping and the optimizer step, hands them to a GradientSync to be summed
// over ranks. It also sums a few scalars (token and sequence counts of each
// minibatch, the step's metric sums) so that every rank divides by the
// global count: with token-mean aggregation the loss of a token weighs
// 1 / (tokens of the minibatch over all ranks) wherever it is, so N ranks
// reach the same parameters as one rank on the whole batch.
//
// Sharding: every rank must run the same number of minibatches
// (trainer.minibatches_per_step; an empty local minibatch still joins the
// all-reduce) and a minibatch with no tokens on any rank is skipped by all.
// To match one process exactly, rank r's k-th minibatch must be its part of
// the single-process k-th minibatch: rank_group.h's PlanShards splits each
// minibatch and passes the sizes to TrainStep (rank_group_test); without
// sizes, striding (trajectory i to rank i % N) does it when N *
// minibatches divides the batch (trainer_test,
// TwoRanksThroughGradientSyncMatchOneRank).
//
// A communicator over c10d (Gloo, NCCL) implements this; null in the
// Trainer's settings = one process, nothing to sum. Calls come from the
// thread running Trainer::TrainStep.
#ifndef FAPO_TRAINER_COMM_GRADIENT_SYNC_H_
#define FAPO_TRAINER_COMM_GRADIENT_SYNC_H_

#include <ATen/core/Tensor.h>

#include <vector>

#include "absl/status/status.h"

namespace fapo::trainer {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // 0-based rank of this process and the number of ranks.
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Replaces every tensor by its element-wise sum over all ranks, in place.
  // Every rank calls it with tensors of the same shapes, dtypes and order.
  // Errors (a lost peer, a timeout) fail the training step.
  virtual absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) = 0;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_COMM_GRADIENT_SYNC_H_
