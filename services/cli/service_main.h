// The common main of every fapo service binary (fapo-scheduler,
// fapo-rollout-worker, fapo-genrm-server, fapo-trainer):
//
//   1. flags: --config JOB.yaml, --set KEY=VALUE..., --host, --port,
//      --metrics-port, --ready-file, --log-level (see --help);
//   2. the job spec, parsed once; errors are printed and exit 2;
//   3. the /metrics endpoint (metrics.*; port 0 picks a free one) and the
//      gRPC server (health, reflection, the job's TLS and token);
//   4. --ready-file: once serving, a JSON file with the bound addresses,
//      written atomically, so a launcher (or a test) knows where to connect;
//   5. SIGINT/SIGTERM: health NOT_SERVING, calls in flight drain, exit 0.
//
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or config.
#ifndef FAPO_SERVICES_CLI_SERVICE_MAIN_H_
#define FAPO_SERVICES_CLI_SERVICE_MAIN_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/config/job_spec.h"
#include "services/metrics/metrics_registry.h"
#include "services/rpc/server.h"

namespace fapo::cli {

// What a service binary runs: owns its logic and its gRPC adapters.
class ServiceInstance {
 public:
  virtual ~ServiceInstance() = default;
  // The gRPC services to register; they live as long as the instance.
  virtual std::vector<rpc::RegisteredService> services() = 0;
};

struct ServiceContext {
  const config::JobSpec* spec;
  metrics::MetricsRegistry* registry;
  std::string worker_id;
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
};

int RunServiceMain(const ServiceDefinition& definition, int argc, char** argv);

}  // namespace fapo::cli

#endif  // FAPO_SERVICES_CLI_SERVICE_MAIN_H_
