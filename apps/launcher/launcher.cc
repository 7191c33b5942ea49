#include "apps/launcher/launcher.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "apps/report/run_report.h"
#include "fapo/v1/scheduler.grpc.pb.h"
#include "services/files/files.h"
#include "services/flags/flags.h"
#include "services/process/child_process.h"
#include "services/rpc/channel.h"
#include "services/rpc/introspection.h"
#include "services/runtime/spec_bridge.h"
#include "services/status/status_macros.h"
#include "tasks/task_source.h"

namespace fapo::launcher {
namespace {

// Ctrl-C and SIGTERM while launching: counted here, acted on by the
// supervision loop (NOTE [launcher shutdown]).
std::atomic<int> g_interrupts{0};
void CountInterrupt(int /*signal_number*/) { g_interrupts.fetch_add(1); }

// Installs CountInterrupt for SIGINT and SIGTERM while alive; restores the
// previous handlers after.
class InterruptScope {
 public:
  InterruptScope() {
    g_interrupts.store(0);
    struct sigaction action {};
    action.sa_handler = CountInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// The last `count` lines of `text`.
std::string LastLines(const std::string& text, int count) {
  size_t start = text.size();
  if (start > 0 && text[start - 1] == '\n') --start;
  for (int i = 0; i < count && start > 0; ++i) {
    const size_t newline = text.rfind('\n', start - 1);
    if (newline == std::string::npos) return text;
    start = newline;
  }
  return text.substr(start == 0 ? 0 : start + 1);
}

// One started process.
struct Process {
  ServicePlan plan;
  std::string log_path;
  std::string ready_path;
  std::unique_ptr<process::ChildProcess> child;
  nlohmann::json ready;  // the ready file, once it is there
  bool serving = false;
};

// A string field of a process's ready file ("" before it is there).
std::string ReadyField(const Process& process, const char* key) {
  if (!process.ready.is_object()) return "";
  auto it = process.ready.find(key);
  return it != process.ready.end() && it->is_string() ? it->get<std::string>()
                                                      : "";
}

class Launcher {
 public:
  Launcher(LaunchOptions options, std::ostream& out, std::ostream& err)
      : options_(std::move(options)), out_(out), err_(err) {}
  ~Launcher() { StopAll(absl::Seconds(10)); }

  int Run();

 private:
  absl::Status Prepare();
  absl::Status WarmStart();
  absl::Status StartPhase(const std::vector<ServicePlan>& plans, int phase);
  int Supervise();
  int Finish(int code);

  absl::Status StartProcess(const ServicePlan& plan);
  // A process that exited while it should not have: the reason, with the
  // tail of its log.
  std::string DescribeFailure(const Process& process) const;
  void WriteLaunchFiles() const;
  void StopAll(absl::Duration grace);
  void ShowProgress(bool force);
  absl::StatusOr<v1::JobStatus> JobStatus();
  void RequestStop(const std::string& reason);
  void Say(const std::string& line);

  const LaunchOptions options_;
  std::ostream& out_;
  std::ostream& err_;

  config::JobSpec spec_;
  std::string run_dir_;
  std::string logs_dir_;
  std::string bin_dir_;
  std::string config_snapshot_;
  rpc::ChannelOptions channel_options_;
  std::vector<std::unique_ptr<Process>> processes_;  // in start order
  std::unique_ptr<v1::Scheduler::Stub> scheduler_;
  std::unique_ptr<MetricsTail> metrics_;

  absl::Time started_ = absl::Now();
  // The first new metrics line's time and step, and the newest one's:
  // seconds per step between them.
  absl::Time first_step_time_ = absl::InfinitePast();
  int64_t first_step_ = 0;
  absl::Time last_step_time_ = absl::InfinitePast();
  int64_t last_step_ = 0;
  absl::Time last_progress_ = absl::InfinitePast();
  int64_t printed_step_ = -1;
  int64_t step_ = 0;
  bool progress_drawn_ = false;
};

void Launcher::Say(const std::string& line) {
  if (progress_drawn_) {
    out_ << "\r\033[K";
    progress_drawn_ = false;
  }
  out_ << line << "\n" << std::flush;
}

absl::Status Launcher::Prepare() {
  ASSIGN_OR_RETURN(
      spec_, config::LoadJobSpecFile(options_.config_path, options_.overrides));
  absl::Status task = tasks::ValidateTaskOptions(spec_);
  if (!task.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options_.config_path, ": ", task.message()));
  }
  if (options_.bin_dir.empty()) {
    ASSIGN_OR_RETURN(bin_dir_, process::ExecutableDirectory());
  } else {
    bin_dir_ = options_.bin_dir;
  }
  for (const char* binary : {"fapo-scheduler", "fapo-trainer",
                             "fapo-rollout-worker", "fapo-genrm-server"}) {
    const std::string path = files::JoinPath(bin_dir_, binary);
    if (access(path.c_str(), X_OK) != 0) {
      return absl::NotFoundError(absl::StrCat(
          path,
          " is missing: build it, or point --bin-dir at the directory "
          "holding the service binaries"));
    }
  }
  run_dir_ = spec_.job.output_dir;
  logs_dir_ = files::JoinPath(run_dir_, "logs");
  RETURN_IF_ERROR(files::MakeDirectories(logs_dir_));
  channel_options_.security = runtime::RpcSecurityFromSpec(spec_.security);
  metrics_ =
      std::make_unique<MetricsTail>(files::JoinPath(run_dir_, "metrics.jsonl"));
  return absl::OkStatus();
}

// The embedded default's policy is the SFT warm start (docs/arith-testbed.md),
// made once per run directory and reused when the job is launched again.
absl::Status Launcher::WarmStart() {
  if (!spec_.policy.model_dir.empty()) return absl::OkStatus();
  if (spec_.data.task != config::Task::kArith) {
    return absl::InvalidArgumentError(
        "policy.model_dir is empty, and only the arith task has an embedded "
        "policy to warm-start: set policy.model_dir to a Hugging Face "
        "checkpoint");
  }
  const std::string warm_start = files::JoinPath(run_dir_, "warm-start");
  // `fapo sft` writes the checkpoint at the end; a run cut short leaves a
  // part of it, which does not count.
  bool complete = true;
  for (const char* name :
       {"config.json", "model.safetensors", "tokenizer.json"}) {
    complete = complete &&
               access(files::JoinPath(warm_start, name).c_str(), R_OK) == 0;
  }
  if (!complete) {
    const std::string log = files::JoinPath(logs_dir_, "sft.log");
    std::vector<std::string> argv = {
        files::JoinPath(bin_dir_, "fapo"), "sft", "--out", warm_start, "--seed",
        std::to_string(spec_.job.seed)};
    argv.insert(argv.end(), options_.sft_args.begin(), options_.sft_args.end());
    Say(absl::StrCat("warm start: fapo sft into ", warm_start, " (log: ", log,
                     ")"));
    process::SpawnOptions spawn;
    spawn.log_path = log;
    spawn.own_process_group = true;
    spawn.parent_death_signal = SIGTERM;
    ASSIGN_OR_RETURN(std::unique_ptr<process::ChildProcess> sft,
                     process::ChildProcess::Start(argv, spawn));
    const absl::Time begun = absl::Now();
    while (sft->Running()) {
      if (g_interrupts.load() > 0) {
        sft->Stop(absl::Seconds(5));
        return absl::CancelledError("interrupted during the warm start");
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    const int code = *sft->exit_code();
    if (code != 0) {
      return absl::InternalError(
          absl::StrCat("the warm start (fapo sft) ",
                       process::DescribeExit(code), "; the end of ", log, ":\n",
                       LastLines(files::ReadFile(log).value_or(""), 15)));
    }
    Say(absl::StrCat(
        "warm start: done in ",
        FormatDuration(absl::ToDoubleSeconds(absl::Now() - begun))));
  } else {
    Say(absl::StrCat("warm start: reusing ", warm_start));
  }
  spec_.policy.model_dir = warm_start;
  spec_.policy.tokenizer_path = files::JoinPath(warm_start, "tokenizer.json");
  return absl::OkStatus();
}

absl::Status Launcher::StartProcess(const ServicePlan& plan) {
  auto process = std::make_unique<Process>();
  process->plan = plan;
  process->log_path = files::JoinPath(logs_dir_, plan.name + ".log");
  process->ready_path = files::JoinPath(logs_dir_, plan.name + ".ready");
  unlink(process->ready_path.c_str());
  std::vector<std::string> argv = {files::JoinPath(bin_dir_, plan.binary)};
  argv.insert(argv.end(), plan.args.begin(), plan.args.end());
  argv.insert(argv.end(), {"--ready-file", process->ready_path});
  if (plan.binary == "fapo-scheduler" && !processes_.empty()) {
    // NOTE [launch order]: trainer-0 serves by now.
    for (const auto& started : processes_) {
      if (started->plan.name == "trainer-0") {
        argv.insert(argv.end(),
                    {"--trainer", ReadyField(*started, "advertised_address")});
      }
    }
  }
  process::SpawnOptions spawn;
  spawn.log_path = process->log_path;
  // Ctrl-C reaches the launcher alone, which stops the job in order; a
  // launcher that dies takes its processes with it (SIGTERM: they drain).
  spawn.own_process_group = true;
  spawn.parent_death_signal = SIGTERM;
  {
    std::ofstream log(process->log_path, std::ios::app);
    log << "==== fapo launch, " << absl::FormatTime(absl::Now()) << ": "
        << absl::StrJoin(argv, " ") << "\n";
  }
  ASSIGN_OR_RETURN(process->child, process::ChildProcess::Start(argv, spawn));
  processes_.push_back(std::move(process));
  return absl::OkStatus();
}

std::string Launcher::DescribeFailure(const Process& process) const {
  const std::string tail =
      LastLines(files::ReadFile(process.log_path).value_or(""), 15);
  const std::optional<int> code = process.child->exit_code();
  return absl::StrCat(process.plan.name, " (", process.plan.binary, ", pid ",
                      process.child->pid(), ") ",
                      code ? process::DescribeExit(*code) : "is still running",
                      "; the end of ", process.log_path, ":\n", tail);
}

absl::Status Launcher::StartPhase(const std::vector<ServicePlan>& plans,
                                  int phase) {
  const size_t first = processes_.size();
  for (const ServicePlan& plan : plans) {
    if (plan.phase == phase) RETURN_IF_ERROR(StartProcess(plan));
  }
  const absl::Time deadline = absl::Now() + options_.startup_timeout;
  while (true) {
    bool all_serving = true;
    for (size_t i = first; i < processes_.size(); ++i) {
      Process& process = *processes_[i];
      if (process.serving) continue;
      all_serving = false;
      if (!process.child->Running()) {
        return absl::UnavailableError(
            absl::StrCat("could not start ", DescribeFailure(process)));
      }
      absl::StatusOr<std::string> ready = files::ReadFile(process.ready_path);
      if (!ready.ok() || ready->empty()) continue;
      process.ready = nlohmann::json::parse(*ready, nullptr, false);
      const std::string address = ReadyField(process, "grpc_address");
      ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       rpc::MakeChannel(address, channel_options_));
      absl::StatusOr<rpc::HealthStatus> health =
          rpc::CheckHealth(channel, "", absl::Seconds(2));
      if (health.ok() && *health == rpc::HealthStatus::kServing) {
        process.serving = true;
        Say(absl::StrFormat("  %-12s pid %-7d gRPC %-21s %s", process.plan.name,
                            process.child->pid(), address,
                            ReadyField(process, "metrics_url")));
      }
    }
    if (all_serving) return absl::OkStatus();
    if (g_interrupts.load() > 0) {
      return absl::CancelledError("interrupted while starting the services");
    }
    if (absl::Now() >= deadline) {
      std::vector<std::string> waiting;
      for (size_t i = first; i < processes_.size(); ++i) {
        if (!processes_[i]->serving)
          waiting.push_back(processes_[i]->plan.name);
      }
      return absl::DeadlineExceededError(absl::StrCat(
          absl::StrJoin(waiting, ", "), " did not become SERVING within ",
          absl::FormatDuration(options_.startup_timeout), "; see ", logs_dir_));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

void Launcher::WriteLaunchFiles() const {
  nlohmann::json launch = {{"job", spec_.job.name},
                           {"run_dir", run_dir_},
                           {"config", config_snapshot_},
                           {"launcher_pid", getpid()},
                           {"processes", nlohmann::json::array()}};
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& process : processes_) {
    launch["processes"].push_back(
        {{"name", process->plan.name},
         {"binary", process->plan.binary},
         {"pid", process->child->pid()},
         {"grpc_address", ReadyField(*process, "grpc_address")},
         {"metrics_url", ReadyField(*process, "metrics_url")},
         {"log", process->log_path}});
    // Prometheus file_sd: scrape every /metrics of the run.
    std::string url = ReadyField(*process, "metrics_url");
    const size_t scheme = url.find("://");
    if (scheme == std::string::npos) continue;
    url = url.substr(scheme + 3);
    const std::string target = url.substr(0, url.find('/'));
    targets.push_back({{"targets", {target}},
                       {"labels",
                        {{"job", "fapo"},
                         {"fapo_job", spec_.job.name},
                         {"fapo_process", process->plan.name}}}});
  }
  for (const auto& [name, contents] :
       std::vector<std::pair<std::string, std::string>>{
           {"launch.json", launch.dump(2) + "\n"},
           {"prometheus_targets.json", targets.dump(2) + "\n"}}) {
    absl::Status written =
        files::WriteFileAtomically(files::JoinPath(run_dir_, name), contents);
    if (!written.ok()) err_ << "fapo launch: " << written.message() << "\n";
  }
}

void Launcher::StopAll(absl::Duration grace) {
  // Workers first, the scheduler, then the trainer ranks: the reverse of
  // the start order, so nobody loses a peer it is still talking to.
  for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) {
    if ((*it)->child->Running()) (*it)->child->Signal(SIGTERM);
  }
  const absl::Time deadline = absl::Now() + grace;
  for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) {
    process::ChildProcess& child = *(*it)->child;
    if (child.Wait(std::max(deadline - absl::Now(), absl::ZeroDuration()))
            .ok()) {
      continue;
    }
    child.Signal(SIGKILL);
    (void)child.Wait(absl::Seconds(5));
  }
}

absl::StatusOr<v1::JobStatus> Launcher::JobStatus() {
  v1::JobStatus status;
  auto context = rpc::NewContext(absl::Seconds(2));
  grpc::Status result = scheduler_->GetJobStatus(
      context.get(), v1::GetJobStatusRequest(), &status);
  if (!result.ok()) {
    return absl::UnavailableError(
        absl::StrCat("GetJobStatus: ", result.error_message()));
  }
  return status;
}

void Launcher::RequestStop(const std::string& reason) {
  v1::StopJobRequest request;
  request.set_reason(reason);
  v1::StopJobResponse response;
  auto context = rpc::NewContext(absl::Seconds(5));
  grpc::Status result = scheduler_->StopJob(context.get(), request, &response);
  if (!result.ok()) {
    err_ << "fapo launch: StopJob: " << result.error_message() << "\n";
  }
}

void Launcher::ShowProgress(bool force) {
  const absl::Time now = absl::Now();
  if (!force && !options_.interactive &&
      now - last_progress_ < options_.progress_every) {
    return;
  }
  if (force && printed_step_ == step_) return;  // said already
  const nlohmann::json& metrics = metrics_->last();
  double seconds_per_step = 0;
  if (last_step_ > first_step_) {
    seconds_per_step =
        absl::ToDoubleSeconds(last_step_time_ - first_step_time_) /
        static_cast<double>(last_step_ - first_step_);
  }
  const std::string line =
      FormatProgress(step_, spec_.job.steps, metrics, seconds_per_step);
  if (options_.interactive) {
    out_ << "\r\033[K" << line << std::flush;
    progress_drawn_ = true;
  } else {
    out_ << line << "\n" << std::flush;
  }
  last_progress_ = now;
  printed_step_ = step_;
}

// NOTE [launcher shutdown]
// The job ends in the scheduler: at job.steps (or after StopJob, once the
// in-flight work has drained and a checkpoint is written) its state becomes
// SUCCEEDED, every worker learns it from its next heartbeat and exits 0,
// and the scheduler exits a moment later. The launcher only watches: a
// process that exits before the job is over is a failure (the others are
// stopped, the exit is 1), and processes still running `stop_timeout`
// after the end get SIGTERM. Ctrl-C becomes StopJob, so an interrupted run
// keeps its last step's checkpoint and resumes from it; a second Ctrl-C
// (or a drain longer than stop_timeout) stops every process with SIGTERM
// at once, in reverse start order.
int Launcher::Supervise() {
  Process* scheduler_process = nullptr;
  for (const auto& process : processes_) {
    if (process->plan.name == "scheduler") scheduler_process = process.get();
  }
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string job_error;
  bool stop_requested = false;
  // A process exited cleanly while the scheduler was STOPPING.
  bool winding_down = false;
  absl::Time finished = absl::InfiniteFuture();
  int seen_interrupts = 0;
  while (true) {
    const int interrupts = g_interrupts.load();
    if (interrupts > seen_interrupts) {
      seen_interrupts = interrupts;
      if (interrupts >= 2) {
        Say("interrupted again: stopping every process now");
        StopAll(absl::Seconds(10));
        return 130;
      }
      Say(absl::StrCat("interrupted: stopping the job at step ", step_,
                       " (draining, then a checkpoint; Ctrl-C again to stop "
                       "at once)"));
      RequestStop("interrupted (fapo launch got Ctrl-C or SIGTERM)");
      stop_requested = true;
      finished = std::min(finished, absl::Now());
    }

    const bool over =
        state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED;
    // Reap: an exit before the job is over is a failure.
    bool all_exited = true;
    for (const auto& process : processes_) {
      if (process->child->Running()) {
        all_exited = false;
        continue;
      }
      const int code = *process->child->exit_code();
      if (over || stop_requested || winding_down) {
        if (code != 0 && state != v1::JOB_STATE_FAILED && job_error.empty()) {
          job_error = DescribeFailure(*process);
        }
        continue;
      }
      if (code == 0) {
        // A clean exit means the process learnt that the job is over,
        // possibly between two polls: ask the scheduler (or, when it is
        // the one that exited, take its word).
        absl::StatusOr<v1::JobStatus> status =
            process.get() == scheduler_process
                ? absl::UnavailableError("the scheduler exited")
                : JobStatus();
        const v1::JobState now_state =
            status.ok() ? status->state() : v1::JOB_STATE_SUCCEEDED;
        if (now_state == v1::JOB_STATE_SUCCEEDED ||
            now_state == v1::JOB_STATE_FAILED ||
            now_state == v1::JOB_STATE_STOPPING) {
          if (now_state == v1::JOB_STATE_FAILED && job_error.empty()) {
            job_error = absl::StrCat("the job failed: ", status->error());
          }
          // STOPPING: the scheduler is winding down (its state still
          // moves on to SUCCEEDED or FAILED, which the polls below read).
          if (now_state == v1::JOB_STATE_STOPPING) {
            winding_down = true;
          } else {
            state = now_state;
            finished = std::min(finished, absl::Now());
          }
          continue;
        }
      }
      Say(absl::StrCat("fapo launch: ", DescribeFailure(*process)));
      err_ << "fapo launch: failed: " << process->plan.name << " "
           << process::DescribeExit(code) << " (log: " << process->log_path
           << ")\n";
      StopAll(absl::Seconds(15));
      return 1;
    }
    if (all_exited) break;

    if (scheduler_process->child->Running()) {
      absl::StatusOr<v1::JobStatus> status = JobStatus();
      if (status.ok()) {
        step_ = status->step();
        if (!(state == v1::JOB_STATE_SUCCEEDED ||
              state == v1::JOB_STATE_FAILED)) {
          state = status->state();
        }
        if (state == v1::JOB_STATE_FAILED && job_error.empty()) {
          job_error = absl::StrCat("the job failed: ", status->error());
        }
        if ((state == v1::JOB_STATE_SUCCEEDED ||
             state == v1::JOB_STATE_FAILED) &&
            finished == absl::InfiniteFuture()) {
          finished = absl::Now();
        }
      }
    }
    if (metrics_->Poll()) {
      const int64_t step = metrics_->last().value("step", int64_t{0});
      if (first_step_time_ == absl::InfinitePast()) {
        first_step_time_ = absl::Now();
        first_step_ = step;
      }
      last_step_time_ = absl::Now();
      last_step_ = step;
      step_ = std::max(step_, step);
      ShowProgress(/*force=*/false);
    } else if (options_.interactive) {
      ShowProgress(/*force=*/false);
    }
    if (finished != absl::InfiniteFuture() &&
        absl::Now() - finished > options_.stop_timeout) {
      std::vector<std::string> running;
      for (const auto& process : processes_) {
        if (process->child->Running()) running.push_back(process->plan.name);
      }
      Say(absl::StrCat("still running ",
                       absl::FormatDuration(options_.stop_timeout),
                       " after the end of the job, stopping them: ",
                       absl::StrJoin(running, ", ")));
      StopAll(absl::Seconds(10));
      break;
    }
    absl::SleepFor(options_.poll_interval);
  }
  metrics_->Poll();
  ShowProgress(/*force=*/true);
  if (progress_drawn_) Say("");
  if (state == v1::JOB_STATE_FAILED) {
    err_ << "fapo launch: " << job_error << "\n";
    return 1;
  }
  if (!job_error.empty()) {
    err_ << "fapo launch: the job ended, but " << job_error << "\n";
    return 1;
  }
  if (stop_requested) {
    Say(absl::StrCat("stopped at step ", step_,
                     "; run the same command to resume from its checkpoint"));
    return 130;
  }
  return 0;
}

int Launcher::Finish(int code) {
  {
    // The run so far as one page (`fapo report`), whether it finished,
    // was stopped or failed: a failed run's curve is often what explains
    // it. A run that ended before its first step has nothing to report,
    // which is not worth a word.
    report::RunReportOptions options;
    options.run_dir = run_dir_;
    options.html_path = report::HtmlReportPath(run_dir_);
    absl::StatusOr<std::string> report = report::WriteRunReport(options);
    if (!report.ok() && !absl::IsNotFound(report.status())) {
      Say(absl::StrCat("could not write the report: ",
                       report.status().message()));
    }
  }
  Say(absl::StrCat("\nrun directory: ", run_dir_));
  for (const char* name : {"report.md", "report.html", "config.yaml",
                           "metrics.jsonl", "samples.jsonl", "checkpoints",
                           "logs", "launch.json", "prometheus_targets.json"}) {
    const std::string path = files::JoinPath(run_dir_, name);
    if (access(path.c_str(), F_OK) == 0) Say(absl::StrCat("  ", path));
  }
  Say(absl::StrCat(
      "took ", FormatDuration(absl::ToDoubleSeconds(absl::Now() - started_))));
  return code;
}

int Launcher::Run() {
  InterruptScope interrupts;
  absl::Status prepared = Prepare();
  if (!prepared.ok()) {
    err_ << "fapo launch: " << prepared.message() << "\n";
    return 2;
  }
  Say(absl::StrCat("job ", spec_.job.name, ": ", spec_.job.steps,
                   " steps; run directory ", run_dir_));
  absl::Status warm = WarmStart();
  if (!warm.ok()) {
    err_ << "fapo launch: " << warm.message() << "\n";
    return absl::IsCancelled(warm) ? 130 : 1;
  }
  config_snapshot_ = files::JoinPath(run_dir_, "config.yaml");
  absl::Status written = files::WriteFileAtomically(
      config_snapshot_,
      absl::StrCat("# the effective config of ", options_.config_path,
                   ", written by fapo launch; every service reads it\n",
                   config::JobSpecToYaml(spec_)));
  if (!written.ok()) {
    err_ << "fapo launch: " << written.message() << "\n";
    return 1;
  }

  TopologyPorts ports;
  absl::StatusOr<int> port = process::FreeLoopbackPort();
  if (port.ok()) ports.scheduler = *port;
  absl::StatusOr<int> rendezvous = process::FreeLoopbackPort();
  if (rendezvous.ok()) ports.rendezvous = *rendezvous;
  if (!port.ok() || !rendezvous.ok()) {
    err_ << "fapo launch: no free loopback port: "
         << (port.ok() ? rendezvous.status() : port.status()).message() << "\n";
    return 1;
  }
  const std::vector<ServicePlan> plans =
      PlanTopology(spec_, config_snapshot_, ports);
  Say("starting the services (logs in " + logs_dir_ + ")");
  for (int phase = 0; phase < 3; ++phase) {
    absl::Status started = StartPhase(plans, phase);
    WriteLaunchFiles();
    // Once the scheduler serves, the job may be training already (workers
    // register as they come): a Ctrl-C then stops it as during the run,
    // with a checkpoint (Supervise sees the interrupt).
    const bool stop_in_supervise = phase == 2 && absl::IsCancelled(started);
    if (!started.ok() && !stop_in_supervise) {
      StopAll(absl::Seconds(10));
      err_ << "fapo launch: " << started.message() << "\n";
      return absl::IsCancelled(started) ? 130 : 1;
    }
    if (phase == 1) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(
          absl::StrCat("127.0.0.1:", ports.scheduler), channel_options_);
      if (!channel.ok()) {
        StopAll(absl::Seconds(10));
        err_ << "fapo launch: " << channel.status().message() << "\n";
        return 1;
      }
      scheduler_ = v1::Scheduler::NewStub(*channel);
    }
  }
  Say(absl::StrCat("all ", processes_.size(), " processes serving; training"));
  return Finish(Supervise());
}

}  // namespace

int Launch(const LaunchOptions& options, std::ostream& out, std::ostream& err) {
  Launcher launcher(options, out, err);
  return launcher.Run();
}

int RunLaunchCommand(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err) {
  LaunchOptions options;
  int64_t startup_timeout_s = 120;
  int64_t stop_timeout_s = 60;
  int64_t progress_every_s = 10;
  std::string progress = "auto";
  flags::FlagSet flags(
      "fapo launch",
      "Runs a job on this machine: the trainer ranks, the scheduler, the "
      "GenRM servers and the rollout workers as local processes on free "
      "ports. Writes the run directory (job.output_dir): config.yaml, "
      "metrics.jsonl, samples.jsonl, checkpoints, logs/. Ctrl-C stops the "
      "job with a checkpoint; the same command resumes it.");
  flags.Positional("JOB.yaml", &options.config_path, "the job spec");
  flags.Repeated("set", &options.overrides, "KEY=VALUE",
                 "override a key, e.g. --set job.steps=10");
  flags.String("bin-dir", &options.bin_dir, "DIR",
               "where the service binaries are (default: next to fapo)");
  flags.Int("startup-timeout-s", &startup_timeout_s,
            "longest wait for the services to serve");
  flags.Int("stop-timeout-s", &stop_timeout_s,
            "longest wait for the services to exit once the job is over");
  flags.String("progress", &progress, "MODE",
               "auto (a live line on a terminal), line (a line every "
               "--progress-every-s) or live");
  flags.Int("progress-every-s", &progress_every_s,
            "seconds between progress lines when not live");
  flags.Repeated("sft-arg", &options.sft_args, "ARG",
                 "an extra argument for the warm start's `fapo sft`");
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    out << flags.Usage();
    return 0;
  }
  if (parsed.ok() && progress != "auto" && progress != "line" &&
      progress != "live") {
    parsed = absl::InvalidArgumentError(absl::StrCat(
        "--progress: expected auto, line or live, got '", progress, "'"));
  }
  if (parsed.ok() && (startup_timeout_s <= 0 || stop_timeout_s <= 0 ||
                      progress_every_s <= 0)) {
    parsed = absl::InvalidArgumentError(
        "--startup-timeout-s, --stop-timeout-s and --progress-every-s must "
        "be positive");
  }
  if (!parsed.ok()) {
    err << "fapo launch: " << parsed.message() << "\n";
    return 2;
  }
  options.startup_timeout = absl::Seconds(startup_timeout_s);
  options.stop_timeout = absl::Seconds(stop_timeout_s);
  options.progress_every = absl::Seconds(progress_every_s);
  options.interactive =
      progress == "live" || (progress == "auto" && isatty(STDOUT_FILENO));
  return Launch(options, out, err);
}

}  // namespace fapo::launcher
