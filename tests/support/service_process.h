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

}  // namespace fapo::testing

#endif  // FAPO_TESTS_SUPPORT_SERVICE_PROCESS_H_
