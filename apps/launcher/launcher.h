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
//
// The parts: topology.h plans the processes, progress.h draws the progress
// line, launcher.cc starts and supervises them.
#ifndef FAPO_APPS_LAUNCHER_LAUNCHER_H_
#define FAPO_APPS_LAUNCHER_LAUNCHER_H_

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "apps/launcher/progress.h"
#include "apps/launcher/topology.h"
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

// Runs the job; returns the process exit code (0 success, 1 failure, 2 bad
// arguments or spec, 130 stopped by Ctrl-C). `out` gets progress and the
// summary, `err` the errors.
int Launch(const LaunchOptions& options, std::ostream& out, std::ostream& err);

// `fapo launch` flags -> Launch.
int RunLaunchCommand(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err);

}  // namespace fapo::launcher

#endif  // FAPO_APPS_LAUNCHER_LAUNCHER_H_
