#include "apps/service_main.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/flags/flags.h"
#include "services/logging/log.h"
#include "services/metrics/metrics_server.h"
#include "services/runtime/service_instance.h"
#include "services/runtime/spec_bridge.h"
#include "services/status/status_macros.h"

namespace fapo::apps {

using flags::ArgsOf;
using flags::FlagSet;

namespace {

struct ServiceFlags {
  std::string config;
  std::vector<std::string> overrides;
  std::string host = "0.0.0.0";
  std::string advertise_host;
  std::string scheduler;
  int64_t port = 0;
  int64_t metrics_port = -1;
  std::string ready_file;
  std::string worker_id;
  std::string log_level = "info";
  int64_t drain_timeout_ms = 10000;
};

std::string Hostname() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return "localhost";
  }
  return host;
}

// Metrics every service exports, whatever it does.
void RegisterProcessMetrics(metrics::MetricsRegistry* registry,
                            const std::string& component) {
  auto build = registry->AddGauge("fapo_build_info",
                                  "Constant 1, labelled with the build.",
                                  {"component", "version"});
  if (build.ok()) {
    (*build)
        ->WithLabels(
            {{"component", component}, {"version", runtime::kBuildVersion}})
        .Set(1);
  }
  auto start =
      registry->AddGauge("fapo_process_start_time_seconds",
                         "Start time of the process since the Unix epoch.", {});
  if (start.ok()) {
    (*start)->WithLabels({}).Set(
        absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  }
}

}  // namespace

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

std::string AdvertisedHost(const std::string& bind_host,
                           const std::string& advertise_host,
                           const std::string& hostname) {
  if (!advertise_host.empty()) return advertise_host;
  if (bind_host.empty() || bind_host == "0.0.0.0" || bind_host == "::" ||
      bind_host == "[::]") {
    return hostname;
  }
  return bind_host;
}

int RunServiceMain(const ServiceDefinition& definition, int argc, char** argv) {
  rpc::BlockShutdownSignals();
  logging::SetComponent(definition.component);
  // NOTE [mutex deadlock detection]: Debian's abseil is built with
  // absl::Mutex deadlock detection on, which records a lock graph on every
  // acquisition. Tests keep it (it finds lock-order bugs); the services turn
  // it off because it costs every lock on their hot paths.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  ServiceFlags values;
  FlagSet flags(definition.binary, definition.summary);
  flags.String("config", &values.config, "JOB.yaml", "the job spec (required)");
  flags.Repeated("set", &values.overrides, "KEY=VALUE",
                 "override a job spec key, e.g. --set rollout.temperature=0.7");
  flags.String("host", &values.host, "HOST", "address the gRPC server binds");
  flags.String("advertise-host", &values.advertise_host, "HOST",
               "address others use to reach this process (default: --host, "
               "or the hostname when --host is 0.0.0.0 or ::)");
  flags.String("scheduler", &values.scheduler, "HOST:PORT",
               "the scheduler to register with (default: none)");
  flags.Int("port", &values.port, "gRPC port; 0 picks a free port");
  flags.Int("metrics-port", &values.metrics_port,
            "port of /metrics; -1 uses metrics.port from the job spec");
  flags.String("ready-file", &values.ready_file, "PATH",
               "once serving, write the bound addresses here as JSON");
  flags.String("worker-id", &values.worker_id, "ID",
               "this process's id with the scheduler (default: HOST-PID)");
  flags.String("log-level", &values.log_level, "LEVEL",
               "debug, info, warning or error");
  flags.Int("drain-timeout-ms", &values.drain_timeout_ms,
            "on SIGTERM, how long calls in flight may finish");

  if (definition.add_flags) definition.add_flags(flags);
  absl::Status parsed = flags.Parse(ArgsOf(argc, argv));
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) {
    std::cerr << definition.binary << ": " << parsed.message() << "\n";
    return 2;
  }
  if (values.config.empty()) {
    std::cerr << definition.binary << ": --config is required (see "
              << definition.binary << " --help)\n";
    return 2;
  }
  logging::Severity severity;
  if (!logging::ParseSeverity(values.log_level, &severity)) {
    std::cerr << definition.binary << ": --log-level: unknown level '"
              << values.log_level << "'\n";
    return 2;
  }
  logging::SetMinSeverity(severity);

  absl::StatusOr<config::JobSpec> spec =
      config::LoadJobSpecFile(values.config, values.overrides);
  if (!spec.ok()) {
    std::cerr << definition.binary << ": invalid job spec:\n"
              << spec.status().message() << "\n";
    return 2;
  }
  if (definition.check_flags) {
    absl::Status checked = definition.check_flags(*spec);
    if (!checked.ok()) {
      std::cerr << definition.binary << ": " << checked.message() << "\n";
      return 2;
    }
  }
  if (values.worker_id.empty()) {
    values.worker_id = absl::StrCat(Hostname(), "-", getpid());
  }

  metrics::MetricsRegistry& registry = metrics::DefaultMetricsRegistry();
  RegisterProcessMetrics(&registry, definition.component);
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (spec->metrics.enabled) {
    metrics::MetricsServerOptions metrics_options;
    metrics_options.host = spec->metrics.host;
    metrics_options.port = values.metrics_port >= 0
                               ? static_cast<int>(values.metrics_port)
                               : spec->metrics.port;
    auto started = metrics::MetricsServer::Start(&registry, metrics_options);
    if (!started.ok()) {
      FAPO_LOG(ERROR) << "cannot start the metrics endpoint: "
                      << started.status();
      return 1;
    }
    metrics_server = *std::move(started);
  }

  std::unique_ptr<runtime::ServiceInstance> instance;
  std::vector<rpc::RegisteredService> services;
  if (definition.factory) {
    auto made = definition.factory(runtime::ServiceContext{
        &*spec, &registry, values.worker_id, values.scheduler,
        /*request_shutdown=*/nullptr});
    if (!made.ok()) {
      FAPO_LOG(ERROR) << "cannot start " << definition.component << ": "
                      << made.status();
      return 1;
    }
    instance = *std::move(made);
    services = instance->services();
  } else {
    FAPO_LOG(WARNING) << definition.missing_note;
    if (!values.scheduler.empty()) {
      FAPO_LOG(WARNING) << "--scheduler ignored: this build of "
                        << definition.binary << " does not register";
    }
  }

  rpc::ServerOptions server_options;
  server_options.host = values.host;
  server_options.port = static_cast<int>(values.port);
  server_options.security = runtime::RpcSecurityFromSpec(spec->security);
  server_options.drain_timeout = absl::Milliseconds(values.drain_timeout_ms);
  auto server = rpc::RpcServer::Start(server_options, services);
  if (!server.ok()) {
    FAPO_LOG(ERROR) << "cannot start the gRPC server: " << server.status();
    return 1;
  }

  const std::string advertised_address = JoinHostPort(
      AdvertisedHost(values.host, values.advertise_host, Hostname()),
      (*server)->port());
  if (instance != nullptr) {
    absl::Status serving = instance->OnServing(advertised_address);
    if (!serving.ok()) {
      FAPO_LOG(ERROR) << "cannot start " << definition.component << ": "
                      << serving;
      (*server)->Shutdown();
      instance.reset();
      return 1;
    }
  }

  if (!values.ready_file.empty()) {
    nlohmann::json ready = {
        {"component", definition.component},
        {"worker_id", values.worker_id},
        {"pid", getpid()},
        {"grpc_address", (*server)->address()},
        {"grpc_port", (*server)->port()},
        {"advertised_address", advertised_address},
        {"metrics_url", metrics_server ? metrics_server->url() : ""},
    };
    absl::Status written =
        files::WriteFileAtomically(values.ready_file, ready.dump() + "\n");
    if (!written.ok()) {
      FAPO_LOG(ERROR) << "--ready-file: " << written;
      return 1;
    }
  }
  FAPO_LOG(INFO) << definition.component << " ready: gRPC "
                 << (*server)->address() << ", metrics "
                 << (metrics_server ? metrics_server->url() : "off");

  int signal_number = rpc::WaitForShutdownSignal();
  const int exit_code = runtime::RequestedExitCode();
  FAPO_LOG(INFO) << "signal " << signal_number << " received; stopping"
                 << (exit_code != 0 ? absl::StrCat(" (exit code ", exit_code,
                                                   " requested)")
                                    : std::string());
  (*server)->SetServing(false);
  if (instance != nullptr) instance->OnStopping();
  (*server)->Shutdown();
  instance.reset();
  metrics_server.reset();
  FAPO_LOG(INFO) << definition.component << " stopped"
                 << (exit_code == 0 ? " cleanly" : "");
  return exit_code;
}

}  // namespace fapo::apps
