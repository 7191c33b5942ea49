// engine/weights over gRPC: both ends of Trainer.GetWeights
// (trainer.proto), shared by the trainer (serving) and the rollout workers
// (pulling).
//
//   NewWeightsStreamReactor   server: streams a WeightsSnapshot
//   PullWeights               client: a GetWeights stream into an assembler
//
// No LibTorch in this header.
#ifndef FAPO_ENGINE_WEIGHTS_WEIGHTS_RPC_H_
#define FAPO_ENGINE_WEIGHTS_WEIGHTS_RPC_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/weights/weights.h"
#include "fapo/v1/trainer.grpc.pb.h"

namespace fapo::engine {

// A reactor for a Trainer.GetWeights handler that streams `snapshot`
// (manifest, then chunks of at most max_chunk_bytes, <= 0 = 4 MiB), one
// write in flight at a time, and finishes OK; a cancelled call stops it.
// The reactor owns a reference to the snapshot and deletes itself when
// done. Optional `corrupt` (tests, fault injection) may alter each message
// before it is written. Returned to gRPC from the handler:
//
//   grpc::ServerWriteReactor<v1::WeightsMessage>* GetWeights(
//       grpc::CallbackServerContext* context,
//       const v1::GetWeightsRequest* request) override {
//     return NewWeightsStreamReactor(snapshot, request->max_chunk_bytes());
//   }
grpc::ServerWriteReactor<v1::WeightsMessage>* NewWeightsStreamReactor(
    std::shared_ptr<const WeightsSnapshot> snapshot, int64_t max_chunk_bytes,
    std::function<void(v1::WeightsMessage&)> corrupt = nullptr);

// A reactor that finishes at once with `status` (a handler with nothing to
// stream: no weights of the requested version yet).
grpc::ServerWriteReactor<v1::WeightsMessage>* NewWeightsErrorReactor(
    const absl::Status& status);

struct PullWeightsOptions {
  // Deadline of the whole GetWeights call. Default 300 s (trainer.proto).
  absl::Duration timeout = absl::Seconds(300);
  // GetWeightsRequest.max_chunk_bytes; 0 = the server's default (4 MiB).
  int64_t max_chunk_bytes = 0;
  // Optional: called with the call's context before the call starts (so
  // another thread may TryCancel() it: a worker shutting down), and with
  // nullptr once the call is over, before the context is destroyed.
  std::function<void(grpc::ClientContext*)> on_context;
};

// Calls GetWeights(min_version) on `stub` and feeds the stream into
// `assembler`, then Finish()es it. Blocking (a synchronous stream): call it
// from a thread of your own, never from a reactor. Errors: the call's
// status (UNAVAILABLE, DEADLINE_EXCEEDED, ...) annotated with what was
// pulled, the assembler's errors (a corrupted chunk cancels the call at
// once), a version below min_version (FailedPrecondition).
absl::Status PullWeights(v1::Trainer::StubInterface& stub, int64_t min_version,
                         const PullWeightsOptions& options,
                         WeightsAssembler& assembler);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_WEIGHTS_WEIGHTS_RPC_H_
