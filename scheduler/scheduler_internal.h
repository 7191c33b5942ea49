// Private to scheduler/scheduler*.cc, the parts of the Scheduler
// (scheduler.h): what they share. Not included from anywhere else.
//
//   scheduler.cc           creation, admission and intake, verdicts,
//                          workers, the job's state and counters
//   scheduler_batches.cc   batch building: scoring complete groups, the
//                          train step's life, and dropping a group
//   scheduler_snapshot.cc  the checkpointed snapshot and its restore
//   scheduler_metrics.cc   the metrics the scheduler registers
//   scheduler_watchdog.cc  progress, failures and stalls (NOTE [no
//                          progress])
#ifndef FAPO_SCHEDULER_SCHEDULER_INTERNAL_H_
#define FAPO_SCHEDULER_SCHEDULER_INTERNAL_H_

#include <array>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "algorithm/verdict.h"
#include "fapo/v1/common.pb.h"
#include "scheduler/scheduler.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::scheduler {
namespace internal {

inline constexpr absl::string_view kCounterPrefix = "scheduler.";
inline constexpr int kRecentFailuresKept = 3;
// The next group's number (survives a resume).
inline constexpr absl::string_view kNextGroupCounter = "scheduler.next_group";

inline algorithm::VerdictStatus ToAlgorithmStatus(v1::VerdictStatus status) {
  switch (status) {
    case v1::VERDICT_STATUS_UNPARSABLE:
      return algorithm::VerdictStatus::kUnparsable;
    case v1::VERDICT_STATUS_TIMEOUT:
      return algorithm::VerdictStatus::kTimeout;
    case v1::VERDICT_STATUS_SKIPPED:
      return algorithm::VerdictStatus::kSkipped;
    case v1::VERDICT_STATUS_INVALID:
      return algorithm::VerdictStatus::kInvalid;
    default:
      return algorithm::VerdictStatus::kOk;
  }
}

// A correct answer with a usable flagged step. Unparsable, invalid and
// timed-out verdicts count as not flawed (proto VerdictStatus).
inline bool IsFlawed(const v1::Verdict& verdict) {
  return verdict.answer_correct() &&
         verdict.status() == v1::VERDICT_STATUS_OK &&
         verdict.first_error_step() >= 0;
}

// Outcomes of fapo_genrm_verdicts_total and the "scheduler.verdicts.*"
// counters, indexed by Scheduler::Outcome.
inline constexpr const char* kOutcomeNames[] = {
    "flawed", "sound", "unparsable", "invalid", "timeout", "skipped"};

inline int VerdictOutcome(const v1::Verdict& verdict) {
  switch (verdict.status()) {
    case v1::VERDICT_STATUS_OK:
      return IsFlawed(verdict) ? 0 : 1;
    case v1::VERDICT_STATUS_UNPARSABLE:
      return 2;
    case v1::VERDICT_STATUS_INVALID:
      return 3;
    case v1::VERDICT_STATUS_TIMEOUT:
      return 4;
    case v1::VERDICT_STATUS_SKIPPED:
      return 5;
    default:
      return 2;  // an unknown status is unusable: counted as unparsable
  }
}

inline std::string OutcomeCounter(int outcome) {
  return absl::StrCat(kCounterPrefix, "verdicts.", kOutcomeNames[outcome]);
}

inline const char* JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_STARTING:
      return "starting";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_STOPPING:
      return "stopping";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    default:
      return "unspecified";
  }
}

}  // namespace internal

// Metrics the scheduler itself owns (the queue, registry and dispatcher
// export theirs). Hot-path children are looked up once.
struct Scheduler::Metrics {
  metrics::CounterFamily* verdicts = nullptr;
  std::array<metrics::Counter*, kNumOutcomes> verdict_children = {};
  metrics::Gauge* policy_version = nullptr;
  metrics::Counter* train_steps = nullptr;
  metrics::Histogram* staleness = nullptr;
  metrics::Gauge* alpha = nullptr;
  metrics::Gauge* beta = nullptr;
  metrics::Gauge* gamma = nullptr;
  metrics::Gauge* flawed_ratio = nullptr;
  metrics::Gauge* reward_mean = nullptr;
  metrics::Counter* trajectories = nullptr;
  metrics::Counter* tokens = nullptr;
  metrics::CounterFamily* regenerated = nullptr;
  metrics::Gauge* failures = nullptr;
  metrics::GaugeFamily* job_state = nullptr;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_SCHEDULER_INTERNAL_H_
