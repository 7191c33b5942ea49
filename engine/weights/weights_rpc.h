// engine/weights over gRPC: both ends of Trainer.GetWeights
// (trainer.proto), shared by the trainer (serving) and the rollout workers
// (pulling).
//
//   NewWeightsStreamReactor   server: streams a WeightsSnapshot
//   NewRawWeightsStreamReactor  the same as raw bytes, without copies
//   PullWeights               client: a GetWeights stream into an assembler
//                             (over a stub, or raw over a channel)
//
// NOTE [zero-copy weights]: the raw variants carry the very same
// fapo.v1.WeightsMessage bytes, but never copy a chunk's payload into a
// protobuf. The server writes each chunk as two gRPC slices, a few header
// bytes and a slice that references the snapshot's memory (kept alive by a
// reference the slice holds), so the kernel's socket copy is the only one;
// the client parses the chunk's fields out of the received slices and
// checksums + copies the payload straight into the assembler's buffer. At
// ~100 MB a protobuf copy is ~10 ms and a freshly allocated message
// buffer as much again in page faults, per side: about half of the
// transfer. Either end may be the protobuf one; the wire is the same.
//
// No LibTorch in this header.
#ifndef FAPO_ENGINE_WEIGHTS_WEIGHTS_RPC_H_
#define FAPO_ENGINE_WEIGHTS_WEIGHTS_RPC_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// NewWeightsStreamReactor for a raw GetWeights handler (the service derives
// from v1::Trainer::WithRawCallbackMethod_GetWeights<...>): the same
// stream, written as raw bytes (NOTE [zero-copy weights]).
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewRawWeightsStreamReactor(
    std::shared_ptr<const WeightsSnapshot> snapshot, int64_t max_chunk_bytes);

// NewWeightsErrorReactor for a raw GetWeights handler.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewRawWeightsErrorReactor(
    const absl::Status& status);

// The request of a raw GetWeights handler. Errors: bytes that are not a
// GetWeightsRequest (InvalidArgument).
absl::StatusOr<v1::GetWeightsRequest> ParseGetWeightsRequest(
    const grpc::ByteBuffer& request);

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

// Adds one received WeightsMessage, as raw bytes, to `assembler`: a chunk
// straight from the buffer's slices, anything else (a manifest; unknown,
// repeated or reordered fields) through protobuf. Errors: the assembler's,
// bytes that are not a WeightsMessage (InvalidArgument). What the raw
// PullWeights does with each message.
absl::Status AddWeightsMessageBytes(const grpc::ByteBuffer& message,
                                    WeightsAssembler& assembler);

// PullWeights over `channel` (to a Trainer service), reading the stream as
// raw bytes (NOTE [zero-copy weights]): the same call, contract and errors,
// one copy of the payload fewer. Messages it does not recognise as a plain
// chunk (a manifest, unknown or repeated fields) go through the protobuf
// parser, so any valid WeightsMessage encoding is accepted.
absl::Status PullWeights(grpc::ChannelInterface& channel, int64_t min_version,
                         const PullWeightsOptions& options,
                         WeightsAssembler& assembler);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_WEIGHTS_WEIGHTS_RPC_H_
