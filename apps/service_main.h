// The common main of every fapo service binary (fapo-scheduler,
// fapo-rollout-worker, fapo-genrm-server, fapo-trainer):
//
//   1. flags: --config JOB.yaml, --set KEY=VALUE..., --host, --port,
//      --advertise-host, --scheduler, --metrics-port, --ready-file,
//      --log-level (see --help);
//   2. the job spec, parsed once; errors are printed and exit 2;
//   3. the /metrics endpoint (metrics.*; port 0 picks a free one) and the
//      gRPC server (health, reflection, the job's TLS and token);
//   4. the service (runtime::ServiceInstance, built by the definition's
//      factory) and its OnServing(advertised address): e.g. register with
//      the scheduler given by --scheduler;
//   5. --ready-file: once serving, a JSON file with the bound addresses and
//      the advertised one, written atomically, so a launcher (or a test)
//      knows where to connect;
//   6. SIGINT/SIGTERM (or runtime::RequestShutdown): health NOT_SERVING,
//      ServiceInstance::OnStopping, calls in flight drain, exit 0.
//
// The advertised address is --advertise-host (default: --host, or the
// machine's hostname when --host is a wildcard, 0.0.0.0 or ::) with the
// bound port: what others (the scheduler) use to reach this process.
//
// Exit codes: 0 clean stop, 1 runtime failure (or RequestShutdown(1)), 2
// bad flags or config.
#ifndef FAPO_APPS_SERVICE_MAIN_H_
#define FAPO_APPS_SERVICE_MAIN_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/config/job_spec.h"
#include "services/flags/flags.h"
#include "services/runtime/service_instance.h"

namespace fapo::apps {

// "host:port", with the host bracketed when it is an IPv6 literal.
std::string JoinHostPort(const std::string& host, int port);

// The host others should dial: `advertise_host` when set, else `bind_host`
// unless it is a wildcard ("0.0.0.0", "::", "[::]", ""), else `hostname`.
std::string AdvertisedHost(const std::string& bind_host,
                           const std::string& advertise_host,
                           const std::string& hostname);

struct ServiceDefinition {
  // "fapo-genrm-server"
  std::string binary;
  // Name in logs and metrics: "genrm-server".
  std::string component;
  // The --help paragraph.
  std::string summary;
  // Builds the service from the parsed spec. May be null when this build
  // lacks the service's logic (no LibTorch): the binary then serves health,
  // reflection and /metrics only, and says so at start-up.
  std::function<absl::StatusOr<std::unique_ptr<runtime::ServiceInstance>>(
      const runtime::ServiceContext&)>
      factory;
  // Shown (as a warning) when factory is null: why.
  std::string missing_note;
  // Flags of this binary only, added after the common ones; the targets
  // must outlive RunServiceMain (the factory reads them). May be null.
  std::function<void(flags::FlagSet&)> add_flags;
  // Checks those flags against the job spec once it is loaded: an error is
  // a usage error (printed, exit code 2) rather than a failure to start
  // (logged, 1). May be null.
  std::function<absl::Status(const config::JobSpec&)> check_flags;
};

int RunServiceMain(const ServiceDefinition& definition, int argc, char** argv);

}  // namespace fapo::apps

#endif  // FAPO_APPS_SERVICE_MAIN_H_
