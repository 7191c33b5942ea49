// services/rpc: gRPC plumbing every service shares.
//
//   status_conversion.h  absl::Status <-> grpc::Status, in one place
//   security.h           TLS / mutual TLS credentials and the bearer token
//   server.h             RpcServer: bootstrap on port 0, health, reflection,
//                        graceful drain; shutdown on SIGINT/SIGTERM
//   channel.h            client channels: credentials, retries for
//                        idempotent methods only, deadlines
#ifndef FAPO_SERVICES_RPC_SERVER_H_
#define FAPO_SERVICES_RPC_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/rpc/security.h"

namespace fapo::rpc {

struct ServerOptions {
  // Address to bind. Default "0.0.0.0" (all interfaces); tests use
  // "127.0.0.1".
  std::string host = "0.0.0.0";
  // TCP port; 0 = pick a free port (RpcServer::port() tells which).
  int port = 0;
  SecurityOptions security;
  // On shutdown, calls in flight get this long to finish before they are
  // cancelled. Default 10 s.
  absl::Duration drain_timeout = absl::Seconds(10);
  // Largest message in either direction. Default 512 MiB (train batches and
  // weight manifests of real models are large; chunks are 4 MiB).
  int max_message_bytes = 512 << 20;
};

// A started gRPC server with the standard health service (grpc.health.v1,
// one entry per registered service plus "" for the whole server) and server
// reflection on every instance.
//
// Thread-safe. Shutdown() may be called from any thread, more than once.
// A service to serve and the name it has in the health service, e.g.
// {&genrm_service, fapo::v1::GenRM::service_full_name()}.
struct RegisteredService {
  grpc::Service* service;  // not owned; must outlive the server
  std::string full_name;
};

class RpcServer {
 public:
  // Builds and starts a server for `services`. Errors: bad credentials
  // files (naming the file), or the address cannot be bound (naming
  // host:port). The port is bound exclusively (no SO_REUSEPORT sharing).
  static absl::StatusOr<std::unique_ptr<RpcServer>> Start(
      const ServerOptions& options,
      const std::vector<RegisteredService>& services);

  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;
  ~RpcServer();  // Shutdown(), then waits.

  int port() const { return port_; }
  // "host:port" as bound, e.g. "127.0.0.1:43121".
  const std::string& address() const { return address_; }

  // Sets the health status (SERVING or NOT_SERVING) of the server ("") and
  // of every registered service. Servers start SERVING.
  void SetServing(bool serving);

  // Stops accepting calls, marks the health service NOT_SERVING, lets calls
  // in flight finish for up to options.drain_timeout, then cancels the rest.
  // Returns when the server has stopped, which for the callback API means
  // once every reactor has called Finish: handlers must honour cancellation
  // (OnCancel, CallbackServerContext::IsCancelled) to stop promptly.
  void Shutdown();

  // Blocks until Shutdown() has finished (from any thread).
  void Wait();

 private:
  RpcServer(std::unique_ptr<grpc::Server> server, int port, std::string address,
            absl::Duration drain_timeout,
            std::vector<std::string> service_names);

  std::unique_ptr<grpc::Server> server_;
  const int port_;
  const std::string address_;
  const absl::Duration drain_timeout_;
  const std::vector<std::string> service_names_;
  absl::Mutex mu_;
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
};

// Shutdown signals. Call BlockShutdownSignals() first thing in main, before
// any thread starts, so SIGINT/SIGTERM are delivered only to
// WaitForShutdownSignal(). Returns the signal received.
void BlockShutdownSignals();
int WaitForShutdownSignal();

// Routes gRPC's own log lines into the fapo log format. Idempotent; called
// by RpcServer::Start and MakeChannel.
void InstallGrpcLogBridge();

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_SERVER_H_
