// The common main of every fapo service binary (fapo-scheduler,
// fapo-rollout-worker, fapo-genrm-server, fapo-trainer):
//
//   1. flags: --config JOB.yaml, --set KEY=VALUE..., --host, --port,
//      --advertise-host, --scheduler, --metrics-port, --ready-file,
//      --log-level (see --help);
//   2. the job spec, parsed once; errors are printed and exit 2;
//   3. the /metrics endpoint (metrics.*; port 0 picks a free one) and the
//      gRPC server (health, reflection, the job's TLS and token);
//   4. ServiceInstance::OnServing(advertised address): e.g. register with
//      the scheduler given by --scheduler;
//   5. --ready-file: once serving, a JSON file with the bound addresses and
//      the advertised one, written atomically, so a launcher (or a test)
//      knows where to connect;
//   6. SIGINT/SIGTERM (or RequestShutdown): health NOT_SERVING,
//      ServiceInstance::OnStopping, calls in flight drain, exit 0.
//
// The advertised address is --advertise-host (default: --host, or the
// machine's hostname when --host is a wildcard, 0.0.0.0 or ::) with the
// bound port: what others (the scheduler) use to reach this process.
//
// Exit codes: 0 clean stop, 1 runtime failure (or RequestShutdown(1)), 2 bad
// flags or config.
#ifndef FAPO_SERVICES_CLI_SERVICE_MAIN_H_
#define FAPO_SERVICES_CLI_SERVICE_MAIN_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/cli/flags.h"
#include "services/config/job_spec.h"
#include "services/metrics/metrics_registry.h"
#include "services/rpc/server.h"
#include "services/rpc/worker_lease.h"

namespace fapo::cli {

// The version every service reports (fapo_build_info, WorkerInfo).
inline constexpr char kBuildVersion[] = "0.1.0";

// What a service binary runs: owns its logic and its gRPC adapters.
class ServiceInstance {
 public:
  virtual ~ServiceInstance() = default;
  // The gRPC services to register; they live as long as the instance.
  virtual std::vector<rpc::RegisteredService> services() = 0;

  // Called once, after the gRPC server is up, with "host:port" where others
  // reach it (see the file comment). An error stops the process: it is
  // logged and the exit code is 1. Default: OK.
  virtual absl::Status OnServing(const std::string& advertised_address) {
    return absl::OkStatus();
  }
  // Called once on SIGINT/SIGTERM (or RequestShutdown), after health turns
  // NOT_SERVING and before the gRPC server drains and shuts down: stop
  // background work (leases) and drain the instance's own queues here.
  // Default: nothing.
  virtual void OnStopping() {}
};

// Asks RunServiceMain to stop the process as SIGTERM would (OnStopping,
// drain, exit), from any thread, e.g. from a lease callback once the job is
// over. The process exits with the largest exit_code requested (0 = clean).
void RequestShutdown(int exit_code = 0);

// "host:port", with the host bracketed when it is an IPv6 literal.
std::string JoinHostPort(const std::string& host, int port);

// The host others should dial: `advertise_host` when set, else `bind_host`
// unless it is a wildcard ("0.0.0.0", "::", "[::]", ""), else `hostname`.
std::string AdvertisedHost(const std::string& bind_host,
                           const std::string& advertise_host,
                           const std::string& hostname);

struct ServiceContext {
  const config::JobSpec* spec;
  metrics::MetricsRegistry* registry;
  std::string worker_id;
  // --scheduler: the scheduler to register with, "host:port"; "" = do not
  // register.
  std::string scheduler_address;
};

struct ServiceDefinition {
  // "fapo-genrm-server"
  std::string binary;
  // Name in logs and metrics: "genrm-server".
  std::string component;
  // The --help paragraph.
  std::string summary;
  // Builds the service from the parsed spec. May be null while the
  // service's logic is not built yet: the binary then serves health,
  // reflection and /metrics only, and says so at start-up.
  std::function<absl::StatusOr<std::unique_ptr<ServiceInstance>>(
      const ServiceContext&)>
      factory;
  // Shown (as a warning) when factory is null: which stage brings it.
  std::string missing_note;
  // Flags of this binary only, added after the common ones; the targets
  // must outlive RunServiceMain (the factory reads them). May be null.
  std::function<void(FlagSet&)> add_flags;
  // Checks those flags against the job spec once it is loaded: an error is
  // a usage error (printed, exit code 2) rather than a failure to start
  // (logged, 1). May be null.
  std::function<absl::Status(const config::JobSpec&)> check_flags;
};

int RunServiceMain(const ServiceDefinition& definition, int argc, char** argv);

// What a worker binary registers with the scheduler (role, capacity, load).
struct WorkerRegistration {
  fapo::v1::WorkerRole role = fapo::v1::WORKER_ROLE_UNSPECIFIED;
  int capacity = 1;
  // Reported in heartbeats; null = 0 / the registered version.
  std::function<int()> in_flight;
  std::function<int64_t()> policy_version;
};

// The lease every worker binary keeps with the scheduler at
// context.scheduler_address (null, with a log line, when there is none):
// registered under context.worker_id at `advertised_address` with the
// job's security; the process stops cleanly (exit 0) once the job is over
// and exits 1 when the scheduler stays unreachable (rpc::WorkerLease).
absl::StatusOr<std::unique_ptr<rpc::WorkerLease>> StartWorkerLease(
    const ServiceContext& context, const std::string& advertised_address,
    WorkerRegistration registration);

}  // namespace fapo::cli

#endif  // FAPO_SERVICES_CLI_SERVICE_MAIN_H_
