// Client channels for fapo services.
//
// Every channel gets the job's credentials and a retry policy that covers
// exactly the methods whose .proto declares idempotency_level IDEMPOTENT or
// NO_SIDE_EFFECTS (plus grpc.health.v1.Health/Check): the proto is the one
// source of truth for what may be retried. Non-idempotent calls
// (Rollout.Generate) are never retried by gRPC.
//
// Every call must carry a deadline: NewContext(timeout) gives one.
#ifndef FAPO_SERVICES_RPC_CHANNEL_H_
#define FAPO_SERVICES_RPC_CHANNEL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/rpc/security.h"

namespace fapo::rpc {

struct RetryOptions {
  // Attempts in all, first one included; gRPC caps this at 5. Default 4.
  int max_attempts = 4;
  // Backoff before retry n is random in [0, min(initial * multiplier^(n-1),
  // max)]. Defaults 100 ms, x2, at most 2 s.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  double backoff_multiplier = 2.0;
};

struct ChannelOptions {
  SecurityOptions security;
  RetryOptions retry;
  // Largest message in either direction. Default 512 MiB, as servers.
  int max_message_bytes = 512 << 20;
  // Pings an idle connection this often to notice dead peers. Default 30 s.
  absl::Duration keepalive_time = absl::Seconds(30);
};

// A channel to `target` ("host:port"). Errors: unreadable credential files,
// token without TLS. Connecting is lazy: an unreachable target shows up as
// UNAVAILABLE on the first call, after its deadline at the latest.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    absl::string_view target, const ChannelOptions& options);

// "package.Service/Method" for every fapo.v1 method that is safe to retry,
// read from the proto descriptors, sorted.
std::vector<std::string> RetryableMethods();

// The gRPC service config JSON holding the retry policy for
// RetryableMethods(). Exposed for tests and `fapo` debugging.
std::string RetryServiceConfigJson(const RetryOptions& retry);

// A ClientContext whose deadline is now + timeout.
std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout);

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_CHANNEL_H_
