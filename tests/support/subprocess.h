// tests/support: helpers for tests that run real processes.
//
// Subprocess starts a program with stdout and stderr going to a log file,
// and always reaps it: a child still running when the Subprocess is
// destroyed gets SIGTERM, then SIGKILL after a grace period, and every child
// also dies with the test process itself (PR_SET_PDEATHSIG), so a failing or
// crashing test never leaves servers behind.
#ifndef FAPO_TESTS_SUPPORT_SUBPROCESS_H_
#define FAPO_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/process/child_process.h"

namespace fapo::testing {

// A child process for tests: process::ChildProcess (services/process) with
// the tests' defaults, stdout and stderr to `log_path` and death with the
// test process (SIGKILL).
class Subprocess {
 public:
  // Starts argv[0] (searched in PATH when it has no '/'), with stdout and
  // stderr appended to `log_path` (or /dev/null when empty). NotFound when
  // the program does not exist.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const std::string& log_path = "");

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess() = default;  // the child gets Stop(5 s) if still running

  pid_t pid() const { return child_->pid(); }
  bool Running() { return child_->Running(); }
  void Signal(int signal_number) { child_->Signal(signal_number); }
  // SIGTERM, then SIGKILL if still running after `grace`; reaps the child.
  void Stop(absl::Duration grace) { child_->Stop(grace); }

  // Waits up to `timeout`. Returns the exit code, or 128 + signal number
  // when killed by a signal (as shells report it); DeadlineExceeded when
  // still running.
  absl::StatusOr<int> Wait(absl::Duration timeout) {
    return child_->Wait(timeout);
  }

 private:
  explicit Subprocess(std::unique_ptr<process::ChildProcess> child)
      : child_(std::move(child)) {}

  std::unique_ptr<process::ChildProcess> child_;
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

// The full path of `program` on $PATH, or "" when it is not there.
using process::FindOnPath;

// A port that was free on 127.0.0.1 a moment ago (bind to 0, close). For
// programs that cannot pick their own port and report it.
using process::FreeLoopbackPort;

// A fresh directory under $TMPDIR (or /tmp) named <prefix>XXXXXX.
absl::StatusOr<std::string> MakeTempDir(const std::string& prefix);

// A temporary directory removed, with everything in it, on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "fapo-test-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Empty when creating the directory failed (the status says why).
  const std::string& path() const { return path_; }
  const absl::Status& status() const { return status_; }

 private:
  std::string path_;
  absl::Status status_;
};

// $FAPO_BINARY_DIR/bin/<name>: the project's built binaries.
std::string BinaryPath(const std::string& name);
// $FAPO_SOURCE_DIR/<relative>.
std::string SourcePath(const std::string& relative);

}  // namespace fapo::testing

#endif  // FAPO_TESTS_SUPPORT_SUBPROCESS_H_
