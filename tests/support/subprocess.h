// tests/support: helpers for tests that run real processes.
//
// Subprocess starts a program with stdout and stderr going to a log file,
// and always reaps it: a child still running when the Subprocess is
// destroyed gets SIGKILL, so a failing test never leaves servers behind.
#ifndef FAPO_TESTS_SUPPORT_SUBPROCESS_H_
#define FAPO_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fapo::testing {

class Subprocess {
 public:
  // Starts argv[0] (searched in PATH when it has no '/'), with stdout and
  // stderr appended to `log_path` (or /dev/null when empty).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const std::string& log_path = "");

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();  // SIGKILL if still running, then reap

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int signal_number);

  // Waits up to `timeout`. Returns the exit code, or 128 + signal number
  // when killed by a signal (as shells report it); DeadlineExceeded when
  // still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  bool Reap(int flags);

  pid_t pid_;
  bool exited_ = false;
  int exit_code_ = 0;
};

struct CommandResult {
  int exit_code = 0;
  std::string stdout_text;
  std::string stderr_text;
};

// Runs a command to completion (killing it after `timeout`), capturing
// stdout and stderr separately. `stdin_text` is fed to its standard input.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::string& stdin_text = "");

// Polls `path` until it exists and is non-empty, up to `timeout`; returns
// its contents.
absl::StatusOr<std::string> WaitForFile(const std::string& path,
                                        absl::Duration timeout);

// Reads a whole file ("" when it cannot be read).
std::string ReadFileOrEmpty(const std::string& path);

// The last `max_bytes` of a log file, for failure messages.
std::string TailOfFile(const std::string& path, size_t max_bytes = 4000);

// $FAPO_BINARY_DIR/bin/<name>: the project's built binaries.
std::string BinaryPath(const std::string& name);
// $FAPO_SOURCE_DIR/<relative>.
std::string SourcePath(const std::string& relative);

}  // namespace fapo::testing

#endif  // FAPO_TESTS_SUPPORT_SUBPROCESS_H_
