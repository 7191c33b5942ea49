#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/files/files.h"

namespace fapo::testing {
absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  process::SpawnOptions options;
  options.log_path = log_path;
  options.parent_death_signal = SIGKILL;
  absl::StatusOr<std::unique_ptr<process::ChildProcess>> child =
      process::ChildProcess::Start(argv, options);
  if (!child.ok()) return child.status();
  return std::unique_ptr<Subprocess>(new Subprocess(std::move(*child)));
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::string& stdin_text) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  absl::StatusOr<std::string> program = process::ResolveProgram(argv[0]);
  if (!program.ok()) return program.status();
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe failed");
  }
  absl::StatusOr<pid_t> pid = process::ForkExec(
      *program, argv, {in_pipe[0], out_pipe[1], err_pipe[1]}, {});
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (!pid.ok()) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return pid.status();
  }

  CommandResult result;
  size_t written = 0;
  int stdin_fd = in_pipe[1];
  if (stdin_text.empty()) {
    close(stdin_fd);
    stdin_fd = -1;
  } else {
    fcntl(stdin_fd, F_SETFL, O_NONBLOCK);
  }
  const absl::Time deadline = absl::Now() + timeout;
  struct pollfd fds[3] = {{out_pipe[0], POLLIN, 0},
                          {err_pipe[0], POLLIN, 0},
                          {stdin_fd, POLLOUT, 0}};
  bool timed_out = false;
  char buffer[4096];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (wait_ms <= 0) {
      timed_out = true;
      break;
    }
    int ready = poll(fds, 3, static_cast<int>(std::min<int64_t>(wait_ms, 100)));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
      } else {
        (i == 0 ? result.stdout_text : result.stderr_text).append(buffer, n);
      }
    }
    // Feed stdin as the child reads it, so large inputs cannot deadlock.
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(fds[2].fd, stdin_text.data() + written,
                        stdin_text.size() - written);
      if (n > 0) written += n;
      if (n < 0 || written == stdin_text.size()) {
        close(fds[2].fd);
        fds[2].fd = -1;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  if (timed_out) kill(*pid, SIGKILL);
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "'", argv[0], "' did not finish within ", absl::FormatDuration(timeout),
        "; output so far: ", result.stdout_text, result.stderr_text));
  }
  result.exit_code = process::DecodeWaitStatus(status);
  return result;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<std::string> WaitForFile(const std::string& path,
                                        absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::string contents = ReadFileOrEmpty(path);
    if (!contents.empty()) return contents;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("'", path, "' did not appear within ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

std::string TailOfFile(const std::string& path, size_t max_bytes) {
  std::string contents = ReadFileOrEmpty(path);
  if (contents.size() <= max_bytes) return contents;
  return "..." + contents.substr(contents.size() - max_bytes);
}

absl::StatusOr<std::string> MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/", prefix, "XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", pattern, " failed: ", std::strerror(errno)));
  }
  return pattern;
}

TempDir::TempDir(const std::string& prefix) {
  absl::StatusOr<std::string> made = MakeTempDir(prefix);
  if (made.ok()) {
    path_ = *made;
  } else {
    status_ = made.status();
  }
}

// files::RemoveRecursively, not std::filesystem::remove_all: tests link
// LibTorch (NOTE [no std::filesystem] in services/files/files.h).
TempDir::~TempDir() {
  if (path_.empty()) return;
  files::RemoveRecursively(path_).IgnoreError();
}

std::string BinaryPath(const std::string& name) {
  const char* dir = std::getenv("FAPO_BINARY_DIR");
  return absl::StrCat(dir ? dir : ".", "/bin/", name);
}

std::string SourcePath(const std::string& relative) {
  const char* dir = std::getenv("FAPO_SOURCE_DIR");
  return absl::StrCat(dir ? dir : ".", "/", relative);
}

}  // namespace fapo::testing
