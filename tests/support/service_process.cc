#include "tests/support/service_process.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fapo::testing {

absl::StatusOr<StartedService> StartService(std::vector<std::string> argv,
                                            const std::string& dir,
                                            const std::string& name,
                                            absl::Duration timeout) {
  const std::string ready_file = absl::StrCat(dir, "/", name, ".ready");
  argv.insert(argv.end(), {"--ready-file", ready_file, "--worker-id", name});
  StartedService started;
  started.log = absl::StrCat(dir, "/", name, ".log");
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(argv, started.log);
  if (!process.ok()) return process.status();
  started.process = *std::move(process);
  // Poll for the file, but give up at once when the process has died: a
  // service that cannot start says why in its log.
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    struct stat info;
    if (::stat(ready_file.c_str(), &info) == 0 && info.st_size > 0) break;
    if (!started.process->Running()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " exited before it was ready; its log:\n",
                       TailOfFile(started.log)));
    }
    if (absl::Now() > deadline) {
      started.process->Stop(absl::Seconds(5));
      return absl::DeadlineExceededError(
          absl::StrCat(name, " not ready within ", absl::FormatDuration(timeout),
                       "; its log:\n", TailOfFile(started.log)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  // The ready file is written atomically (rename), so it is whole.
  absl::StatusOr<std::string> contents = WaitForFile(ready_file, timeout);
  if (!contents.ok()) return contents.status();
  started.ready = nlohmann::json::parse(*contents, nullptr, false);
  if (started.ready.is_discarded()) {
    return absl::InternalError(
        absl::StrCat(ready_file, " is not JSON: ", *contents));
  }
  return started;
}

absl::StatusOr<std::vector<StartedService>> StartServices(
    std::vector<ServiceLaunch> launches, const std::string& dir,
    absl::Duration timeout) {
  std::vector<StartedService> started(launches.size());
  std::vector<std::string> ready_files(launches.size());
  auto stop_all = [&] {
    for (StartedService& service : started) {
      if (service.process != nullptr) service.process->Stop(absl::Seconds(5));
    }
  };
  for (size_t i = 0; i < launches.size(); ++i) {
    const std::string& name = launches[i].name;
    ready_files[i] = absl::StrCat(dir, "/", name, ".ready");
    std::vector<std::string> argv = launches[i].argv;
    argv.insert(argv.end(),
                {"--ready-file", ready_files[i], "--worker-id", name});
    started[i].log = absl::StrCat(dir, "/", name, ".log");
    absl::StatusOr<std::unique_ptr<Subprocess>> process =
        Subprocess::Start(argv, started[i].log);
    if (!process.ok()) {
      stop_all();
      return process.status();
    }
    started[i].process = *std::move(process);
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t i = 0; i < launches.size(); ++i) {
    const std::string& name = launches[i].name;
    while (true) {
      struct stat info;
      if (::stat(ready_files[i].c_str(), &info) == 0 && info.st_size > 0) {
        break;
      }
      // Any of them dying means the rest may never be ready.
      for (size_t j = 0; j < launches.size(); ++j) {
        if (!started[j].process->Running()) {
          absl::Status status = absl::FailedPreconditionError(absl::StrCat(
              launches[j].name, " exited before ", name,
              " was ready; its log:\n", TailOfFile(started[j].log)));
          stop_all();
          return status;
        }
      }
      if (absl::Now() > deadline) {
        absl::Status status = absl::DeadlineExceededError(absl::StrCat(
            name, " not ready within ", absl::FormatDuration(timeout),
            "; its log:\n", TailOfFile(started[i].log)));
        stop_all();
        return status;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    // Written atomically (rename), so whole once it is there.
    const std::string contents = ReadFileOrEmpty(ready_files[i]);
    started[i].ready = nlohmann::json::parse(contents, nullptr, false);
    if (started[i].ready.is_discarded()) {
      stop_all();
      return absl::InternalError(
          absl::StrCat(ready_files[i], " is not JSON: ", contents));
    }
  }
  return started;
}

}  // namespace fapo::testing
