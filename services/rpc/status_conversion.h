// The one place where absl::Status and grpc::Status convert (docs/style.md,
// practice 4). Handlers never build a grpc::Status by hand.
//
// Codes map one to one (gRPC and absl share the canonical codes); the
// message is carried unchanged.
#ifndef FAPO_SERVICES_RPC_STATUS_CONVERSION_H_
#define FAPO_SERVICES_RPC_STATUS_CONVERSION_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace fapo::rpc {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_STATUS_CONVERSION_H_
