// ChildProcess: starts a program and keeps track of it until it is reaped,
// for supervisors (`fapo launch`) and for tests that span processes.
//
//   - stdout and stderr are appended to a log file (or /dev/null), stdin is
//     /dev/null;
//   - the child dies with its parent (PR_SET_PDEATHSIG), so a supervisor
//     that crashes or is SIGKILLed never leaves servers behind;
//   - optionally in a process group of its own, so a Ctrl-C at the terminal
//     reaches the supervisor alone, which then stops its children in order
//     (NOTE [launcher shutdown] in apps/launcher/launcher.h);
//   - the child starts with no signal blocked, whatever the parent blocked
//     (servers block SIGTERM for sigwait);
//   - a ChildProcess still running when destroyed gets SIGTERM, then SIGKILL
//     after a grace period, and is reaped.
//
// Exit codes are reported as shells do: the exit status, or 128 + the
// signal number when a signal killed it. DescribeExit words one.
//
// Not thread-safe: one owner polls and signals it.
#ifndef FAPO_SERVICES_PROCESS_CHILD_PROCESS_H_
#define FAPO_SERVICES_PROCESS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fapo::process {

struct SpawnOptions {
  // stdout and stderr are appended here (created 0644); "" = /dev/null.
  std::string log_path;
  // true: the child leads a new process group (setpgid), out of reach of
  // the terminal's SIGINT. Default false.
  bool own_process_group = false;
  // Sent to the child when the thread that started it exits. Default
  // SIGKILL; 0 = none.
  int parent_death_signal = SIGKILL;
};

class ChildProcess {
 public:
  // Starts argv[0] (a path, or a name searched on PATH). NotFound when the
  // program does not exist or is not executable; Internal when the log
  // cannot be opened (naming it) or fork fails.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const SpawnOptions& options = {});

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // Stop(5 s) when still running

  pid_t pid() const { return pid_; }

  // Reaps the child if it has exited (never blocks).
  bool Running();
  // The exit code once reaped (Running() false), else nullopt.
  std::optional<int> exit_code() const;

  // Sends a signal while the child has not been reaped.
  void Signal(int signal_number);
  // SIGTERM, then SIGKILL when still running after `grace`; reaps.
  void Stop(absl::Duration grace);
  // Waits up to `timeout`: the exit code, or DeadlineExceeded when it is
  // still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  bool Reap(int flags);

  const pid_t pid_;
  bool exited_ = false;
  int exit_code_ = 0;
};

// "exited with code 3", "exited cleanly", "was killed by SIGKILL".
std::string DescribeExit(int exit_code);

// The full path of `program` on $PATH, or "" when it is not there.
std::string FindOnPath(const std::string& program);

// `name` itself when it contains a '/' (and is executable), else its PATH
// entry. NotFound naming it otherwise.
absl::StatusOr<std::string> ResolveProgram(const std::string& name);

// The exit code of a waitpid status, as shells report it.
int DecodeWaitStatus(int status);

// Forks and execs `program` (a full path) with the given standard streams.
// In the child, every descriptor in `close_fds` is closed and the signal
// mask cleared; see SpawnOptions for the rest. The fds are prepared before
// the fork: only async-signal-safe calls run between fork and exec (the
// parent has threads).
struct StandardStreams {
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
};
absl::StatusOr<pid_t> ForkExec(const std::string& program,
                               const std::vector<std::string>& argv,
                               const StandardStreams& streams,
                               const SpawnOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, closed):
// for a peer that must be told a port before it binds it (a rendezvous
// store, a server others are configured with). Another process may take it
// in between; the caller's bind then fails loudly.
absl::StatusOr<int> FreeLoopbackPort();

// The directory holding the running executable (/proc/self/exe).
absl::StatusOr<std::string> ExecutableDirectory();

}  // namespace fapo::process

#endif  // FAPO_SERVICES_PROCESS_CHILD_PROCESS_H_
