#include "services/runtime/service_harness.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace fapo::runtime::testing {

ServiceHarness::ServiceHarness() : registry_(metrics::NewMetricsRegistry()) {
  rpc::ServerOptions options;
  options.host = "127.0.0.1";
  absl::StatusOr<std::unique_ptr<rpc::RpcServer>> server =
      rpc::RpcServer::Start(
          options, {{&scheduler_, fapo::v1::Scheduler::service_full_name()}});
  if (!server.ok()) {
    std::fprintf(stderr,
                 "ServiceHarness: cannot serve the fake scheduler: %s\n",
                 server.status().ToString().c_str());
    std::abort();
  }
  scheduler_server_ = *std::move(server);
}

ServiceHarness::~ServiceHarness() {
  Stop();
  scheduler_server_->Shutdown();
}

ServiceContext ServiceHarness::Context(const config::JobSpec& spec,
                                       const std::string& worker_id,
                                       bool with_scheduler) {
  spec_ = std::make_unique<config::JobSpec>(spec);
  ServiceContext context;
  context.spec = spec_.get();
  context.registry = registry_.get();
  context.worker_id = worker_id;
  if (with_scheduler) context.scheduler_address = scheduler_server_->address();
  context.request_shutdown = [this](int exit_code) {
    absl::MutexLock lock(&mu_);
    shutdown_requests_.push_back(exit_code);
  };
  return context;
}

absl::Status ServiceHarness::ServeOwned(
    std::unique_ptr<ServiceInstance> instance) {
  Stop();
  instance_ = std::move(instance);
  rpc::ServerOptions options;
  options.host = "127.0.0.1";
  options.drain_timeout = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<rpc::RpcServer>> server =
      rpc::RpcServer::Start(options, instance_->services());
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  absl::Status serving = instance_->OnServing(server_->address());
  if (!serving.ok()) {
    // As the program does: no OnStopping after a failed OnServing.
    server_->Shutdown();
    server_.reset();
    instance_.reset();
  }
  return serving;
}

void ServiceHarness::Stop() {
  if (server_ != nullptr) {
    server_->SetServing(false);
    instance_->OnStopping();
    server_->Shutdown();
    server_.reset();
  }
  instance_.reset();
}

std::string ServiceHarness::address() const {
  return server_ != nullptr ? server_->address() : "";
}

std::vector<int> ServiceHarness::shutdown_requests() const {
  absl::MutexLock lock(&mu_);
  return shutdown_requests_;
}

}  // namespace fapo::runtime::testing
