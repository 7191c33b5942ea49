// StartService: runs a fapo service binary as a child process and waits for
// its --ready-file, for tests that span processes.
#ifndef FAPO_TESTS_SUPPORT_SERVICE_PROCESS_H_
#define FAPO_TESTS_SUPPORT_SERVICE_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"

namespace fapo::testing {

struct StartedService {
  std::unique_ptr<Subprocess> process;
  // The ready file's JSON (grpc_address, metrics_url, ...).
  nlohmann::json ready;
  // <dir>/<name>.log: the process's stdout and stderr.
  std::string log;
};

// Runs `argv` plus `--ready-file <dir>/<name>.ready --worker-id <name>`,
// logging to <dir>/<name>.log, and waits until the ready file appears. An
// error (with the log's tail) when the process exits first or `timeout`
// passes; it is then stopped.
absl::StatusOr<StartedService> StartService(
    std::vector<std::string> argv, const std::string& dir,
    const std::string& name, absl::Duration timeout = absl::Seconds(60));

// One service of StartServices: its name (log, ready file and worker id as
// in StartService) and argv.
struct ServiceLaunch {
  std::string name;
  std::vector<std::string> argv;
};

// Starts every service at once, then waits until all are ready: for
// services that only become ready together (data-parallel trainer ranks
// wait for each other). Results in `launches` order. An error (naming the
// service, with its log's tail) as soon as one exits before it is ready,
// or when `timeout` passes; every started process is then stopped.
absl::StatusOr<std::vector<StartedService>> StartServices(
    std::vector<ServiceLaunch> launches, const std::string& dir,
    absl::Duration timeout = absl::Seconds(60));

}  // namespace fapo::testing

#endif  // FAPO_TESTS_SUPPORT_SERVICE_PROCESS_H_
