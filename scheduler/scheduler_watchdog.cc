// Scheduler (scheduler.h): progress and failures (NOTE [no progress]), the
// GenRM stall check, and the job's state changes.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/scheduler.h"
#include "scheduler/scheduler_internal.h"
#include "services/logging/log.h"

namespace fapo::scheduler {

using internal::JobStateName;
using internal::kRecentFailuresKept;

void Scheduler::NoteProgress() {
  if (consecutive_failures_.load(std::memory_order_relaxed) == 0) return;
  consecutive_failures_.store(0, std::memory_order_relaxed);
  if (metrics_->failures != nullptr) metrics_->failures->Set(0);
}

void Scheduler::NoteFailureLocked(absl::string_view what) {
  const int failures =
      consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  CountLocked("scheduler.failures");
  recent_failures_.push_back(std::string(what));
  while (recent_failures_.size() > kRecentFailuresKept) {
    recent_failures_.pop_front();
  }
  if (metrics_->failures != nullptr) metrics_->failures->Set(failures);
  FAPO_LOG(WARNING) << "failure " << failures << "/"
                    << options_.max_consecutive_failures
                    << " without progress: " << what;
  if (failures >= options_.max_consecutive_failures) {
    FailLocked(absl::StrCat(failures,
                            " consecutive failures with no progress (scheduler."
                            "max_consecutive_failures); the last: ",
                            absl::StrJoin(recent_failures_, "; ")));
  }
}

void Scheduler::FailLocked(absl::string_view error) {
  if (state_ == v1::JOB_STATE_FAILED || state_ == v1::JOB_STATE_SUCCEEDED) {
    return;
  }
  FAPO_LOG(ERROR) << "job " << options_.job_name << " FAILED: " << error;
  SetStateLocked(v1::JOB_STATE_FAILED);
  error_ = std::string(error);
}

void Scheduler::CheckGenrmStallLocked(const GenrmWaiting& genrm,
                                      absl::Time now) {
  // A GenRM-less stall: trajectories wait and no server is alive. Noted
  // once per worker timeout, so that a long one fails the job.
  const absl::Duration patience = options_.workers.worker_timeout;
  if (genrm.waiting > 0 && genrm.no_server && now - genrm.oldest > patience &&
      now - genrm_stall_noted_ > patience) {
    genrm_stall_noted_ = now;
    NoteFailureLocked(absl::StrCat(
        genrm.waiting, " trajectories have waited ",
        absl::FormatDuration(now - genrm.oldest),
        " for a GenRM server and none is alive (start fapo-genrm-server "
        "with --scheduler pointing here)"));
  }
}

void Scheduler::SetStateLocked(v1::JobState state) {
  if (state == state_) return;
  // fapo_job_state: 1 for the current state, 0 for the one it left.
  if (metrics_->job_state != nullptr) {
    metrics_->job_state->WithLabels({{"state", JobStateName(state_)}}).Set(0);
    metrics_->job_state->WithLabels({{"state", JobStateName(state)}}).Set(1);
  }
  state_ = state;
}

}  // namespace fapo::scheduler
