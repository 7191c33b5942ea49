#include "services/rpc/server.h"

#include <grpc/support/log.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::rpc {
namespace {

void ForwardGrpcLog(gpr_log_func_args* args) {
  logging::Severity severity = logging::Severity::kInfo;
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      severity = logging::Severity::kDebug;
      break;
    case GPR_LOG_SEVERITY_INFO:
      severity = logging::Severity::kInfo;
      break;
    case GPR_LOG_SEVERITY_ERROR:
      severity = logging::Severity::kError;
      break;
  }
  logging::Write(severity, args->file ? args->file : "grpc", args->line,
                 absl::StrCat("grpc: ", args->message ? args->message : ""));
}

std::string FormatAddress(const std::string& host, int port) {
  // IPv6 literals need brackets in host:port form.
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

void InstallGrpcLogBridge() {
  static std::once_flag once;
  std::call_once(once, [] { gpr_set_log_function(ForwardGrpcLog); });
}

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Start(
    const ServerOptions& options,
    const std::vector<RegisteredService>& services) {
  InstallGrpcLogBridge();
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be in [0, 65535], got ", options.port));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   MakeServerCredentials(options.security));

  // Both are process-wide switches that only take effect for servers built
  // after they are set; setting them on every start is harmless.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  const std::string requested = FormatAddress(options.host, options.port);
  int selected_port = 0;
  builder.AddListeningPort(requested, credentials, &selected_port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // gRPC shares ports with SO_REUSEPORT by default: a second server on a
  // taken port would then start "fine" and split the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<std::string> names;
  for (const RegisteredService& entry : services) {
    builder.RegisterService(entry.service);
    names.push_back(entry.full_name);
  }

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", requested,
                     " (address in use, not local, or not permitted)"));
  }
  const std::string address = FormatAddress(options.host, selected_port);
  FAPO_LOG(INFO) << "gRPC server listening on " << address
                 << (options.security.tls ? " (TLS" : " (plaintext")
                 << (options.security.require_client_cert ? ", mutual" : "")
                 << (options.security.token_file.empty() ? ")"
                                                         : ", bearer token)");
  return std::unique_ptr<RpcServer>(
      new RpcServer(std::move(server), selected_port, address,
                    options.drain_timeout, std::move(names)));
}

RpcServer::RpcServer(std::unique_ptr<grpc::Server> server, int port,
                     std::string address, absl::Duration drain_timeout,
                     std::vector<std::string> service_names)
    : server_(std::move(server)),
      port_(port),
      address_(std::move(address)),
      drain_timeout_(drain_timeout),
      service_names_(std::move(service_names)) {
  SetServing(true);
}

RpcServer::~RpcServer() { Shutdown(); }

void RpcServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const std::string& name : service_names_) {
    health->SetServingStatus(name, serving);
  }
}

void RpcServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_started_) {
      mu_.Await(absl::Condition(&shutdown_done_));
      return;
    }
    shutdown_started_ = true;
  }
  FAPO_LOG(INFO) << "gRPC server " << address_ << " draining (up to "
                 << absl::FormatDuration(drain_timeout_) << ")";
  SetServing(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + drain_timeout_));
  server_->Wait();
  FAPO_LOG(INFO) << "gRPC server " << address_ << " stopped";
  absl::MutexLock lock(&mu_);
  shutdown_done_ = true;
}

void RpcServer::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&shutdown_done_));
}

void BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

int WaitForShutdownSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  return received;
}

}  // namespace fapo::rpc
