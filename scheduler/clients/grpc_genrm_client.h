// scheduler/clients/grpc_genrm_client.h: the real GenrmClient, over
// fapo.v1.GenRM/Score with the gRPC callback API.
//
// One channel per server address, made on first use with rpc::MakeChannel
// and kept (the cache only grows: GenRM fleets are small and addresses
// stable). Each call gets its own ClientContext whose deadline is the one
// passed to Score (wall clock); GenrmCall::Cancel is
// ClientContext::TryCancel. Results map through rpc::FromGrpcStatus, so a
// passed deadline is DEADLINE_EXCEEDED, an unreachable server UNAVAILABLE
// and a cancelled call CANCELLED. See genrm_client.h for the contract.
//
// `done` runs on a gRPC callback thread (or inline, when the channel cannot
// be made), never under the client's lock. Destroying the client cancels
// the calls in flight and waits until their `done` has returned, so it must
// not be destroyed from inside a `done`. Thread-safe.
//
// NOTE [grpc channel lifetime]: the client, not its calls, owns the
// channels, and they are released on the thread that destroys the client.
// gRPC 1.51 misbehaves when the last reference to a channel is dropped on
// one of its own callback threads (grpc/grpc#37858, #37198), which is what
// happened when each call kept its channel alive.
#ifndef FAPO_SCHEDULER_CLIENTS_GRPC_GENRM_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_GRPC_GENRM_CLIENT_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "scheduler/clients/genrm_client.h"
#include "services/rpc/channel.h"
#include "services/rpc/stub_cache.h"

namespace fapo::scheduler {

struct GrpcGenrmCallState;  // grpc_genrm_client.cc

// The channel options a GenRM client uses by default: the job's security
// (set by the caller) and a single transparent retry on UNAVAILABLE. The
// dispatcher retries on *another* server itself (NOTE [genrm-failures] in
// genrm_dispatcher.h), so gRPC need not hammer a dead one.
inline rpc::ChannelOptions DefaultGenrmChannelOptions() {
  rpc::ChannelOptions options;
  options.retry.max_attempts = 2;
  options.retry.initial_backoff = absl::Milliseconds(50);
  options.retry.max_backoff = absl::Milliseconds(200);
  return options;
}

struct GrpcGenrmClientOptions {
  // Security (security.* in the job spec), retries, message size.
  rpc::ChannelOptions channel = DefaultGenrmChannelOptions();
};

class GrpcGenrmClient final : public GenrmClient {
 public:
  // Errors: the credentials in options.channel.security cannot be made
  // (unreadable files, a token without TLS), naming the file.
  static absl::StatusOr<std::unique_ptr<GrpcGenrmClient>> Create(
      GrpcGenrmClientOptions options);

  GrpcGenrmClient(const GrpcGenrmClient&) = delete;
  GrpcGenrmClient& operator=(const GrpcGenrmClient&) = delete;
  ~GrpcGenrmClient() override;

  std::unique_ptr<GenrmCall> Score(const GenrmServer& server,
                                   const v1::ScoreRequest& request,
                                   absl::Time deadline, Done done) override;

 private:
  explicit GrpcGenrmClient(GrpcGenrmClientOptions options);

  friend struct GrpcGenrmCallState;
  // Called by a call's callback once its `done` has returned.
  void CallFinished(GrpcGenrmCallState* state) ABSL_LOCKS_EXCLUDED(mu_);

  const GrpcGenrmClientOptions options_;
  rpc::StubCache<v1::GenRM> stubs_;
  absl::Mutex mu_;
  // Calls whose callback has not finished.
  absl::flat_hash_map<GrpcGenrmCallState*, std::shared_ptr<GrpcGenrmCallState>>
      live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_GRPC_GENRM_CLIENT_H_
