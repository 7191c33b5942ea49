// Clients for the two standard services every RpcServer runs: gRPC health
// checking (grpc.health.v1) and server reflection (v1alpha). Debian ships
// neither proto's generated client, so these speak the (small, stable) wire
// format directly.
#ifndef FAPO_SERVICES_RPC_INTROSPECTION_H_
#define FAPO_SERVICES_RPC_INTROSPECTION_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fapo::rpc {

enum class HealthStatus { kUnknown, kServing, kNotServing, kServiceUnknown };

// grpc.health.v1.Health/Check for `service` ("" = the whole server).
// Errors are the call's (UNAVAILABLE when nothing listens, UNAUTHENTICATED
// without the token, NOT_FOUND for a service the server does not know).
absl::StatusOr<HealthStatus> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
    absl::Duration timeout);

// The fully qualified names of the services a server exposes, from server
// reflection's list_services, sorted.
absl::StatusOr<std::vector<std::string>> ListServices(
    const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout);

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_INTROSPECTION_H_
