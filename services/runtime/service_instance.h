// services/runtime: what a fapo service is to the program that runs it.
//
//   service_instance.h  ServiceInstance (a service's logic and gRPC adapters,
//                       as its program starts and stops them), ServiceContext,
//                       WorkerService (a service that registers with the
//                       scheduler), RequestShutdown
//   spec_bridge.h       the job spec's security as rpc::SecurityOptions
//
// Each service is `<service>/<service>_server.{h,cc}` (SchedulerServer,
// TrainerServer, RolloutWorkerServer, GenrmServer): a ServiceInstance that
// a test can start; apps/<service>_main.cc hands it to RunServiceMain
// (apps/service_main.h), which owns flags, /metrics, the gRPC server and
// signals.
#ifndef FAPO_SERVICES_RUNTIME_SERVICE_INSTANCE_H_
#define FAPO_SERVICES_RUNTIME_SERVICE_INSTANCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fapo/v1/common.pb.h"
#include "services/config/job_spec.h"
#include "services/metrics/metrics_registry.h"
#include "services/rpc/server.h"
#include "services/rpc/worker_lease.h"

namespace fapo::runtime {

// The version every service reports (fapo_build_info, WorkerInfo).
inline constexpr char kBuildVersion[] = "0.1.0";

// What a service is built from.
struct ServiceContext {
  // The job spec, parsed once. Not owned; outlives the instance's factory
  // call (instances keep what they need).
  const config::JobSpec* spec = nullptr;
  // Where the service registers its metrics. Not owned; outlives the
  // instance.
  metrics::MetricsRegistry* registry = nullptr;
  // This process's id with the scheduler.
  std::string worker_id;
  // The scheduler to register with, "host:port"; "" = do not register.
  std::string scheduler_address;
  // How the service asks its program to stop (exit code 0 = clean). Null:
  // RequestShutdown, which signals this process; tests pass their own.
  std::function<void(int exit_code)> request_shutdown;
};

// One service as its program runs it: owns its logic and its gRPC adapters.
// The program calls, in order: services(), OnServing() once the gRPC
// server is up, and, whenever OnServing succeeded, OnStopping() before it
// destroys the instance.
class ServiceInstance {
 public:
  virtual ~ServiceInstance() = default;
  // The gRPC services to register; they live as long as the instance.
  virtual std::vector<rpc::RegisteredService> services() = 0;

  // Called once, after the gRPC server is up, with "host:port" where others
  // reach it. An error stops the process: it is logged and the exit code is
  // 1. Default: OK.
  virtual absl::Status OnServing(const std::string& advertised_address) {
    return absl::OkStatus();
  }
  // Called once on SIGINT/SIGTERM (or RequestShutdown), after health turns
  // NOT_SERVING and before the gRPC server drains and shuts down: stop
  // background work (leases) and drain the instance's own queues here.
  // Default: nothing.
  virtual void OnStopping() {}
};

// Asks the program to stop as SIGTERM would (OnStopping, drain, exit), from
// any thread, e.g. from a lease callback once the job is over. The process
// exits with the largest exit_code requested (0 = clean).
void RequestShutdown(int exit_code = 0);
// The largest exit code RequestShutdown was given; 0 when none.
int RequestedExitCode();

// What a service registers with the scheduler.
struct WorkerRegistration {
  fapo::v1::WorkerRole role = fapo::v1::WORKER_ROLE_UNSPECIFIED;
  int capacity = 1;
  // Reported in heartbeats; null = 0 / the registered version.
  std::function<int()> in_flight;
  std::function<int64_t()> policy_version;
};

// A service that registers with the scheduler (rollout worker, GenRM
// server, trainer): the lease every such process keeps. OnServing
// registers what Registration() returns under context.worker_id at the
// advertised address, with the job's security (no lease, with a log line,
// when context.scheduler_address is empty); the process stops cleanly
// (exit 0) once the job is over and exits 1 when the scheduler stays
// unreachable (rpc::WorkerLease). OnStopping stops the lease, then Drain().
//
// The lease's callbacks read the subclass's members, so OnStopping (which
// the program calls before destroying the instance, see ServiceInstance)
// must come first; the destructor stops a lease still running, as a guard.
class WorkerService : public ServiceInstance {
 public:
  ~WorkerService() override;
  absl::Status OnServing(const std::string& advertised_address) final;
  void OnStopping() final;

  // True once OnServing registered (a lease is running or retrying).
  bool registered() const { return lease_ != nullptr; }

 protected:
  explicit WorkerService(const ServiceContext& context);

  // What to register, or nullopt to serve without registering. Called once,
  // by OnServing, after StartServing.
  virtual std::optional<WorkerRegistration> Registration() = 0;
  // Background work to start once serving (before registering). Default OK.
  virtual absl::Status StartServing() { return absl::OkStatus(); }
  // Drains the service once the lease is stopped (work waiting is finished
  // or refused, so that callers go elsewhere). Default: nothing.
  virtual void Drain() {}

  const config::JobSpec& spec() const { return spec_; }
  const std::string& worker_id() const { return worker_id_; }
  const std::string& scheduler_address() const { return scheduler_address_; }
  // context.request_shutdown (RequestShutdown when it was null).
  void RequestStop(int exit_code) const { request_shutdown_(exit_code); }

 private:
  const config::JobSpec spec_;
  const std::string worker_id_;
  const std::string scheduler_address_;
  const std::function<void(int)> request_shutdown_;
  std::unique_ptr<rpc::WorkerLease> lease_;
};

}  // namespace fapo::runtime

#endif  // FAPO_SERVICES_RUNTIME_SERVICE_INSTANCE_H_
