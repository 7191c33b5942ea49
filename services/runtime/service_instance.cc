#include "services/runtime/service_instance.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <utility>

#include "services/logging/log.h"
#include "services/runtime/spec_bridge.h"
#include "services/status/status_macros.h"

namespace fapo::runtime {
namespace {

std::atomic<int> requested_exit_code{0};

}  // namespace

void RequestShutdown(int exit_code) {
  int current = requested_exit_code.load();
  while (exit_code > current &&
         !requested_exit_code.compare_exchange_weak(current, exit_code)) {
  }
  // SIGTERM is blocked in every thread and awaited by
  // rpc::WaitForShutdownSignal (sigwait), so this wakes the main thread
  // exactly as an external SIGTERM would.
  kill(getpid(), SIGTERM);
}

int RequestedExitCode() { return requested_exit_code.load(); }

WorkerService::WorkerService(const ServiceContext& context)
    : spec_(*context.spec),
      worker_id_(context.worker_id),
      scheduler_address_(context.scheduler_address),
      request_shutdown_(context.request_shutdown
                            ? context.request_shutdown
                            : std::function<void(int)>(&RequestShutdown)) {}

WorkerService::~WorkerService() {
  if (lease_ != nullptr) lease_->Stop();
}

absl::Status WorkerService::OnServing(const std::string& advertised_address) {
  RETURN_IF_ERROR(StartServing());
  std::optional<WorkerRegistration> registration = Registration();
  if (!registration.has_value()) return absl::OkStatus();
  if (scheduler_address_.empty()) {
    FAPO_LOG(INFO) << "no --scheduler: serving without registering";
    return absl::OkStatus();
  }
  rpc::WorkerLeaseOptions options;
  options.scheduler_address = scheduler_address_;
  options.channel.security = RpcSecurityFromSpec(spec_.security);
  options.worker.set_worker_id(worker_id_);
  options.worker.set_role(registration->role);
  options.worker.set_address(advertised_address);
  options.worker.set_capacity(registration->capacity);
  options.worker.set_build_version(kBuildVersion);
  options.in_flight = std::move(registration->in_flight);
  options.policy_version = std::move(registration->policy_version);
  options.on_job_finished = [this](fapo::v1::JobState) { RequestStop(0); };
  options.on_lost = [this](const absl::Status&) { RequestStop(1); };
  absl::StatusOr<std::unique_ptr<rpc::WorkerLease>> lease =
      rpc::WorkerLease::Start(std::move(options));
  if (!lease.ok()) return lease.status();
  lease_ = *std::move(lease);
  return absl::OkStatus();
}

void WorkerService::OnStopping() {
  if (lease_ != nullptr) lease_->Stop();
  Drain();
}

}  // namespace fapo::runtime
