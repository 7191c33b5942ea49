#include "tests/support/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace fapo::testing {
namespace {

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// What the child does between fork and exec; every fd is prepared before
// the fork, because only async-signal-safe calls are allowed in between
// (test processes have threads: gRPC's, civetweb's, curl's).
struct ChildSetup {
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  std::vector<int> close_fds;
};

// Forks and execs `program` (a full path). The child dies with this process.
absl::StatusOr<pid_t> ForkExec(const std::string& program,
                               const std::vector<std::string>& argv,
                               const ChildSetup& setup) {
  std::vector<char*> args;
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(
        absl::StrCat("fork failed: ", std::strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent is already gone
    dup2(setup.stdin_fd, STDIN_FILENO);
    dup2(setup.stdout_fd, STDOUT_FILENO);
    dup2(setup.stderr_fd, STDERR_FILENO);
    for (int fd : setup.close_fds) close(fd);
    // Whatever the test blocked (servers block SIGTERM for sigwait), the
    // child starts with no signal blocked.
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, nullptr);
    execv(program.c_str(), args.data());
    _exit(127);
  }
  return pid;
}

absl::StatusOr<std::string> ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("cannot run '", name, "': ", std::strerror(errno)));
    }
    return name;
  }
  std::string path = FindOnPath(name);
  if (path.empty()) {
    return absl::NotFoundError(absl::StrCat("'", name, "' is not on PATH"));
  }
  return path;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  absl::StatusOr<std::string> program = ResolveProgram(argv[0]);
  if (!program.ok()) return program.status();
  const std::string log = log_path.empty() ? "/dev/null" : log_path;
  const int log_fd =
      open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open '", log, "'"));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  absl::StatusOr<pid_t> pid =
      ForkExec(*program, argv, {null_fd, log_fd, log_fd, {}});
  close(log_fd);
  close(null_fd);
  if (!pid.ok()) return pid.status();
  return std::unique_ptr<Subprocess>(new Subprocess(*pid));
}

Subprocess::~Subprocess() { Stop(absl::Seconds(5)); }

bool Subprocess::Reap(int flags) {
  if (exited_) return true;
  int status = 0;
  pid_t result;
  do {
    result = waitpid(pid_, &status, flags);
  } while (result < 0 && errno == EINTR);
  if (result == pid_) {
    exited_ = true;
    exit_code_ = DecodeWaitStatus(status);
    return true;
  }
  return false;
}

bool Subprocess::Running() { return !Reap(WNOHANG); }

void Subprocess::Signal(int signal_number) {
  if (!exited_) kill(pid_, signal_number);
}

void Subprocess::Stop(absl::Duration grace) {
  if (!Running()) return;
  kill(pid_, SIGTERM);
  if (Wait(grace).ok()) return;
  kill(pid_, SIGKILL);
  Reap(0);
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!Reap(WNOHANG)) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return exit_code_;
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::string& stdin_text) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  absl::StatusOr<std::string> program = ResolveProgram(argv[0]);
  if (!program.ok()) return program.status();
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe failed");
  }
  absl::StatusOr<pid_t> pid =
      ForkExec(*program, argv, {in_pipe[0], out_pipe[1], err_pipe[1], {}});
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
  result.exit_code = DecodeWaitStatus(status);
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

std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok =
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!ok) return absl::InternalError("cannot bind 127.0.0.1:0");
  return static_cast<int>(ntohs(address.sin_port));
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

namespace {
int RemoveEntry(const char* path, const struct stat* /*info*/, int /*type*/,
                struct FTW* /*ftw*/) {
  return remove(path);
}
}  // namespace

// NOTE [no std::filesystem here]: the torch wheel's libtorch.so exports its
// own copies of std::filesystem symbols, and a test that links LibTorch ends
// up calling them with this library's objects (a crash in remove_all). The
// POSIX walk below has no such clash.
TempDir::~TempDir() {
  if (path_.empty()) return;
  nftw(path_.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
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
