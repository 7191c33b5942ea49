// trainer/comm/communicator.h: collectives between trainer ranks.
//
//   communicator.h          the Communicator interface, LocalCommunicator
//                           (one rank), and the DDP-style helpers built on
//                           it: AllReduceGradients (bucketed, averaging) and
//                           AllReduceScalars (metric sums)
//   gloo_communicator.h     the real one over c10d::ProcessGroupGloo with a
//                           c10d::TCPStore rendezvous; MakeCommunicator picks
//                           a backend (Gloo; NCCL only with a CUDA build)
//   fake_communicator.h     N in-process ranks (threads) for unit tests
//
// A Communicator is a GradientSync (trainer/comm/gradient_sync.h), so the
// Trainer takes one wherever it takes its data-parallel seam.
//
// Contract, shared by every implementation (communicator_contract_test.cc):
//  - Every rank calls the same collectives in the same order, with tensors
//    of the same number, shapes and dtypes. Tensors are dense, contiguous
//    and on the device the backend serves (CPU for Gloo); each one is
//    reduced on its own (a vector is a batch of independent tensors, not
//    c10d's "one tensor per local device").
//  - Argument errors (a bad root, an undefined or non-contiguous tensor, an
//    integer tensor for a mean) are found locally, before any rank sends
//    anything: INVALID_ARGUMENT.
//  - Nothing blocks forever: every collective is bounded by the options'
//    timeout. A peer that does not show up in time gives DEADLINE_EXCEEDED;
//    a peer whose connection is lost gives UNAVAILABLE. Messages name this
//    rank, the world size and the operation.
//  - After a collective has failed the group is out of step, so the
//    communicator is broken: every later call returns FAILED_PRECONDITION
//    quoting the first error. Recovery is a new communicator (all ranks).
//  - Thread-safety: one thread at a time per communicator (a rank is a
//    sequence of collectives); different communicators are independent.
#ifndef FAPO_TRAINER_COMM_COMMUNICATOR_H_
#define FAPO_TRAINER_COMM_COMMUNICATOR_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "trainer/comm/gradient_sync.h"

namespace fapo::trainer {

// The default bound on one collective (and on the rendezvous).
inline constexpr absl::Duration kDefaultCollectiveTimeout = absl::Minutes(5);

class Communicator : public GradientSync {
 public:
  ~Communicator() override = default;

  // rank() in [0, world_size()).
  int rank() const override = 0;
  int world_size() const override = 0;
  // "gloo", "fake", "local": for logs and error messages.
  virtual std::string backend_name() const = 0;

  // Replaces every tensor by its element-wise sum over all ranks.
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override = 0;

  // AllReduceSum, then divides by world_size(). Floating-point tensors only
  // (INVALID_ARGUMENT otherwise, before communicating).
  absl::Status AllReduceMean(std::vector<at::Tensor>& tensors);

  // Replaces every tensor by root's. INVALID_ARGUMENT when root is not a
  // rank.
  virtual absl::Status Broadcast(std::vector<at::Tensor>& tensors,
                                 int root) = 0;

  // Returns once every rank has called Barrier (or fails within timeout).
  virtual absl::Status Barrier() = 0;

  // Every rank contributes `input` (same shape and dtype on every rank);
  // on return (*outputs)[r] is rank r's, for every r (fresh tensors).
  virtual absl::Status AllGather(const at::Tensor& input,
                                 std::vector<at::Tensor>* outputs) = 0;

 protected:
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // "<backend> rank r/n: <operation>", the prefix of every error message.
  std::string Where(const char* operation) const;
};

// Checks a collective's tensors: defined, dense (strided), contiguous, and
// (when `require_floating`) floating point. INVALID_ARGUMENT naming the
// index and where.
absl::Status ValidateTensors(const Communicator& communicator,
                             const char* operation,
                             const std::vector<at::Tensor>& tensors,
                             bool require_floating = false);

// world_size 1: every collective is the identity, after the same argument
// checks the others make, so single-process code runs the same path.
class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator() = default;
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend_name() const override { return "local"; }
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override;
  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override;
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::Status AllGather(const at::Tensor& input,
                         std::vector<at::Tensor>* outputs) override;
};

struct GradientBucketOptions {
  // Gradients are packed, in order, into flat buckets of at most this many
  // bytes (a larger gradient gets a bucket of its own), one all-reduce per
  // bucket. Default 25 MiB, as torch DDP's bucket_cap_mb.
  int64_t bucket_bytes = 25 * 1024 * 1024;
  // true: the mean over ranks (floating-point tensors only); false: the
  // sum (any dtype), for callers that divide by global counts themselves.
  // Default true.
  bool average = true;
};

// DDP-style gradient averaging: packs `grads` (floating point, any layout;
// a bucket holds one dtype and device) into flat buffers, all-reduces each
// buffer once, divides by world_size and copies the averages back into
// `grads` in place. Equal to AllReduceMean on each tensor, with far fewer
// collectives. A no-op on world_size 1. Every rank passes the same list
// (shapes, dtypes, order); an undefined entry is INVALID_ARGUMENT (give
// unused parameters a zero gradient on every rank instead).
//
// GradientAverager keeps its buckets between calls, as DDP's Reducer does,
// so a training loop's steady-state steps allocate nothing (a fresh 25 MB
// buffer costs about as much as its all-reduce on loopback: page faults).
// Not thread-safe; one per communicator.
class GradientAverager {
 public:
  explicit GradientAverager(GradientBucketOptions options = {})
      : options_(options) {}
  absl::Status AllReduce(Communicator& communicator,
                         std::vector<at::Tensor>& grads);

 private:
  GradientBucketOptions options_;
  std::vector<at::Tensor> buckets_;  // reused while dtype and size match
};

// One-shot GradientAverager (allocates its buckets each call).
absl::Status AllReduceGradients(Communicator& communicator,
                                std::vector<at::Tensor>& grads,
                                const GradientBucketOptions& options = {});

// The GradientSync to hand the Trainer: AllReduceSum through a
// GradientAverager with average = false, so N tensors cost one collective
// per bucket instead of one each. Does not own the communicator. Not
// thread-safe.
class BucketedGradientSync : public GradientSync {
 public:
  explicit BucketedGradientSync(Communicator* communicator,
                                int64_t bucket_bytes = 25 * 1024 * 1024);
  int rank() const override { return communicator_->rank(); }
  int world_size() const override { return communicator_->world_size(); }
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override;

 private:
  Communicator* const communicator_;
  GradientAverager averager_;
};

// Sums a few scalars (metric sums, token counts) over ranks, in double, in
// one collective.
absl::Status AllReduceScalars(Communicator& communicator,
                              std::vector<double>& values);

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_COMM_COMMUNICATOR_H_
