// `fapo launch JOB.yaml`: one job, every service a local process.
//
//   1. The spec is parsed (with --set overrides) and checked as `fapo
//      validate` does. The run directory is job.output_dir; what it holds:
//
//        config.yaml          the effective spec every service reads (the
//                             warm-start policy filled in)
//        launch.json          the processes: name, pid, argv, addresses, log
//        prometheus_targets.json   file_sd targets for every /metrics
//        logs/<name>.log      one per process (and logs/sft.log)
//        warm-start/          the SFT policy, when the launcher made it
//        metrics.jsonl        one line per step (the scheduler)
//        samples.jsonl        one line per trajectory (the scheduler)
//        checkpoints/step-N   (the trainer)
//
//   2. Warm start: with policy.model_dir empty and the arith task, the
//      policy is `fapo sft`'s (into <run>/warm-start, run once and reused).
//   3. The topology, in order (NOTE [launch order]): the trainer ranks, the
//      scheduler, then the GenRM servers and the rollout workers. Each gets
//      --ready-file and counts as started once that file is there and gRPC
//      health says SERVING; a process that exits first, or a start that
//      takes longer than --startup-timeout-s, fails the launch naming it,
//      with the tail of its log.
//   4. While the job runs: a progress line from GetJobStatus and
//      metrics.jsonl (step, reward, accuracy, flawed-positive ratio,
//      staleness, share of the step spent waiting for the GenRM, ETA),
//      redrawn in place on a terminal, a line every few seconds otherwise.
//   5. The end (NOTE [launcher shutdown]): the scheduler finishes the job
//      and every service exits on its own; the launcher waits for them.
//      Any process that exits while the job is still running is a failure:
//      the others are stopped and the exit is non-zero, naming the process,
//      how it exited and the tail of its log. A failed job (the scheduler's
//      FAILED state) exits 1 with the scheduler's reason. Ctrl-C (or
//      SIGTERM) asks the scheduler to stop (drain, checkpoint) and waits;
//      a second Ctrl-C stops every process at once. Exit 130 after Ctrl-C.
//
// Running the same command again resumes from the newest checkpoint in the
// run directory (trainer.resume, the scheduler's snapshot).
#ifndef FAPO_SERVICES_LAUNCHER_LAUNCHER_H_
#define FAPO_SERVICES_LAUNCHER_LAUNCHER_H_

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "services/config/job_spec.h"

namespace fapo::launcher {

struct LaunchOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  // Where fapo-scheduler & co. live. Default "" = next to the running
  // executable.
  std::string bin_dir;
  // Longest wait for one phase of the topology to become SERVING.
  absl::Duration startup_timeout = absl::Seconds(120);
  // Longest wait for the services to exit on their own once the job is
  // over (or after Ctrl-C, for the drain and checkpoint); then they get
  // SIGTERM.
  absl::Duration stop_timeout = absl::Seconds(60);
  // How often the scheduler is asked for the job's status.
  absl::Duration poll_interval = absl::Milliseconds(250);
  // true: the progress line is redrawn in place (a terminal); false: a
  // progress line every `progress_every`.
  bool interactive = false;
  absl::Duration progress_every = absl::Seconds(10);
  // Arguments after `fapo sft --out DIR --seed S` for the warm start.
  std::vector<std::string> sft_args;
};

// One process of the topology.
struct ServicePlan {
  // "trainer-0", "scheduler", "genrm-1", "rollout-0": its worker id, log
  // and ready file name.
  std::string name;
  // "fapo-trainer"
  std::string binary;
  // Everything after the binary except --ready-file and, for the
  // scheduler, --trainer (known once trainer-0 serves).
  std::vector<std::string> args;
  // Started after every process of a lower phase serves.
  int phase = 0;
};

struct TopologyPorts {
  int scheduler = 0;   // the scheduler's gRPC port (told to workers first)
  int rendezvous = 0;  // trainer rank 0's c10d store (trainer.ranks > 1)
};

// NOTE [launch order]: the trainer ranks start first, told the scheduler's
// port in advance (their leases retry until it serves), so that the
// scheduler can start with --trainer: a resumed job restores the queue
// snapshot of the trainer's newest checkpoint before any worker registers.
std::vector<ServicePlan> PlanTopology(const config::JobSpec& spec,
                                      const std::string& config_path,
                                      const TopologyPorts& ports);

// One progress line: "step 12/300 | reward 0.41 | acc 0.88 | flawed 0.21 |
// stale 0.45 | genrm wait 3% | 1.4 s/step | ETA 6m32s". `metrics` is the
// newest metrics.jsonl line (null before the first step); `seconds_per_step`
// is 0 when unknown.
std::string FormatProgress(int64_t step, int64_t total_steps,
                           const nlohmann::json& metrics,
                           double seconds_per_step);

// Runs the job; returns the process exit code (0 success, 1 failure, 2 bad
// arguments or spec, 130 stopped by Ctrl-C). `out` gets progress and the
// summary, `err` the errors.
int Launch(const LaunchOptions& options, std::ostream& out, std::ostream& err);

// `fapo launch` flags -> Launch.
int RunLaunchCommand(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err);

}  // namespace fapo::launcher

#endif  // FAPO_SERVICES_LAUNCHER_LAUNCHER_H_
