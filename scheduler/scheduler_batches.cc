// Scheduler (scheduler.h), batch building: complete groups scored into
// pending groups, the train step's life, and dropping a group (NOTE
// [dropping a group]).
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"
#include "scheduler/scheduler_internal.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

using internal::IsFlawed;
using internal::JobStateName;
using internal::ToAlgorithmStatus;

// NOTE [dropping a group]: a group leaves the job before training in
// three places: an open group that can no longer be fresh, or whose
// generation failed (DropAndRegenerate, from Tick and AbortGroup); a
// complete group found stale, or without learning signal, when it is
// scored (FillPendingLocked); a scored group that went stale while it
// waited for a batch to fill (TakeTrainBatch). Each takes its
// trajectories out of the queue in its own way, then FinishGroupDropLocked
// does the rest, the same for all: the admission slot is freed, the
// outcome sink hears of every trajectory, and a regenerated prompt is
// queued and counted in scheduler.groups.regenerated.<reason> and
// fapo_groups_regenerated_total{reason} alike.

void Scheduler::DropAndRegenerate(const std::string& group_id,
                                  absl::string_view reason) {
  std::vector<std::string> scoring;
  {
    absl::MutexLock lock(&mu_);
    auto it = open_groups_.find(group_id);
    if (it == open_groups_.end()) return;  // raced with another drop
    std::shared_ptr<const v1::Prompt> prompt = std::move(it->second.prompt);
    open_groups_.erase(it);
    std::vector<v1::TrajectoryRecord> records;
    absl::StatusOr<std::vector<std::string>> dropped = queue_->DropGroup(
        group_id, reason, options_.outcomes != nullptr ? &records : nullptr);
    if (dropped.ok()) scoring = *std::move(dropped);
    FinishGroupDropLocked(
        *prompt, DroppedFromRecords(std::move(records), prompt, reason), reason,
        /*regenerate=*/true);
  }
  for (const std::string& id : scoring) dispatcher_->Cancel(id);
}

std::vector<DroppedTrajectory> Scheduler::DroppedFromRecords(
    std::vector<v1::TrajectoryRecord> records,
    const std::shared_ptr<const v1::Prompt>& prompt, absl::string_view reason,
    const std::vector<double>* rewards) const {
  std::vector<DroppedTrajectory> dropped;
  if (options_.outcomes == nullptr) return dropped;
  dropped.resize(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    v1::TrajectoryRecord& record = records[i];
    DroppedTrajectory& out = dropped[i];
    out.trajectory.set_allocated_trajectory(record.release_trajectory());
    out.has_reward = rewards != nullptr;
    if (out.has_reward) {
      out.trajectory.set_flawed(IsFlawed(record.verdict()));
      out.trajectory.set_reward((*rewards)[i]);
    }
    out.has_verdict = record.has_verdict();
    if (out.has_verdict) {
      out.trajectory.set_allocated_verdict(record.release_verdict());
    }
    out.prompt = prompt;
    out.reason = std::string(reason);
  }
  return dropped;
}

void Scheduler::FinishGroupDropLocked(const v1::Prompt& prompt,
                                      std::vector<DroppedTrajectory> dropped,
                                      absl::string_view reason,
                                      bool regenerate) {
  --outstanding_groups_;
  if (options_.outcomes != nullptr && !dropped.empty()) {
    options_.outcomes->Dropped(std::move(dropped));
  }
  if (!regenerate) return;
  regenerate_.push_back(prompt);
  CountLocked(absl::StrCat("scheduler.groups.regenerated.", reason));
  if (metrics_->regenerated != nullptr) {
    metrics_->regenerated->WithLabels({{"reason", std::string(reason)}})
        .Increment();
  }
}

// ---- Trainer side ----------------------------------------------------------

bool Scheduler::IsStaleLocked(int64_t version) const {
  return policy_version_ - version > options_.max_staleness;
}

void Scheduler::FillPendingLocked() {
  const size_t want = static_cast<size_t>(options_.groups_per_step);
  while (pending_groups_.size() < want) {
    std::vector<CompleteGroup> taken = queue_->TakeCompleteGroups(
        static_cast<int>(want - pending_groups_.size()));
    if (taken.empty()) return;
    for (CompleteGroup& group : taken) {
      auto info = open_groups_.find(group.group_id);
      v1::Prompt prompt;
      std::shared_ptr<const v1::Prompt> shared_prompt;  // for drop reports
      if (info != open_groups_.end()) {
        prompt = *info->second.prompt;
        shared_prompt = std::move(info->second.prompt);
        open_groups_.erase(info);
      } else if (!group.records.empty()) {
        prompt = group.records.front().prompt();
      }
      NoteProgress();
      int64_t min_version = INT64_MAX;
      for (const v1::TrajectoryRecord& record : group.records) {
        min_version =
            std::min(min_version, record.trajectory().policy_version());
      }
      // NOTE [dropping a group]. `rewards`: the group's, when it was
      // scored before the drop.
      auto drop = [&](absl::string_view reason,
                      const std::vector<double>* rewards, bool regenerate) {
        for (const v1::TrajectoryRecord& record : group.records) {
          (void)queue_->Drop(record.trajectory().trajectory_id(), reason);
        }
        if (shared_prompt == nullptr && options_.outcomes != nullptr) {
          shared_prompt = std::make_shared<const v1::Prompt>(prompt);
        }
        FinishGroupDropLocked(
            prompt,
            DroppedFromRecords(std::move(group.records), shared_prompt, reason,
                               rewards),
            reason, regenerate);
      };
      if (IsStaleLocked(min_version)) {
        drop("stale", nullptr, /*regenerate=*/true);
        continue;
      }
      // FAPO rewards, then GRPO advantages over the group's scored members.
      const size_t n = group.records.size();
      std::vector<double> rewards(n);
      std::vector<algorithm::RolloutJudgement> judgements(n);
      for (size_t i = 0; i < n; ++i) {
        const v1::TrajectoryRecord& record = group.records[i];
        judgements[i].answer_correct = record.verdict().answer_correct();
        judgements[i].flawed = IsFlawed(record.verdict());
        judgements[i].response_tokens =
            record.trajectory().response_token_ids_size();
        rewards[i] = algorithm::ComputeReward(judgements[i], options_.rewards);
      }
      if (options_.dynamic_sampling && !algorithm::HasLearningSignal(rewards)) {
        // DAPO draws a new prompt rather than this one again.
        drop("no_signal", &rewards, /*regenerate=*/false);
        CountLocked("scheduler.groups.no_signal");
        continue;
      }
      std::vector<double> advantages =
          algorithm::ComputeGroupAdvantages(rewards, options_.advantages);
      ScoredGroup scored;
      scored.group_id = group.group_id;
      scored.prompt = std::move(prompt);
      scored.min_version = min_version;
      scored.members.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        v1::TrajectoryRecord& record = group.records[i];
        v1::ScoredTrajectory& member = scored.members.emplace_back();
        // The bodies change hands by pointer: no allocation, no copy.
        member.set_allocated_trajectory(record.release_trajectory());
        member.set_allocated_verdict(record.release_verdict());
        member.set_flawed(judgements[i].flawed);
        member.set_reward(rewards[i]);
        member.set_advantage(advantages[i]);
      }
      pending_groups_.push_back(std::move(scored));
    }
  }
}

std::shared_ptr<const TrainBatch> Scheduler::TakeTrainBatch() {
  absl::MutexLock lock(&mu_);
  if (state_ != v1::JOB_STATE_RUNNING) return nullptr;
  if (in_flight_ != nullptr) {
    if (!in_flight_failed_) return nullptr;
    in_flight_failed_ = false;
    return in_flight_;
  }
  if (steps_done_ >= options_.total_steps) return nullptr;
  // Groups scored before the last step may have gone stale since.
  for (auto it = pending_groups_.begin(); it != pending_groups_.end();) {
    if (!IsStaleLocked(it->min_version)) {
      ++it;
      continue;
    }
    // NOTE [dropping a group]: scored, rewarded and with advantages.
    for (const v1::ScoredTrajectory& member : it->members) {
      (void)queue_->Drop(member.trajectory().trajectory_id(), "stale");
    }
    std::vector<DroppedTrajectory> dropped;
    if (options_.outcomes != nullptr) {
      auto prompt = std::make_shared<const v1::Prompt>(it->prompt);
      dropped.resize(it->members.size());
      for (size_t i = 0; i < dropped.size(); ++i) {
        dropped[i].trajectory = std::move(it->members[i]);
        dropped[i].has_verdict = true;
        dropped[i].has_reward = true;
        dropped[i].has_advantage = true;
        dropped[i].prompt = prompt;
        dropped[i].reason = "stale";
      }
    }
    FinishGroupDropLocked(it->prompt, std::move(dropped), "stale",
                          /*regenerate=*/true);
    it = pending_groups_.erase(it);
  }
  FillPendingLocked();
  if (pending_groups_.size() < static_cast<size_t>(options_.groups_per_step)) {
    return nullptr;
  }
  if (options_.deterministic) {
    // NOTE [deterministic mode]: the batch's groups in the order of their
    // prompt ids, not in the order their last verdicts happened to arrive.
    // Not by group id: a group generated again after a restore gets a new
    // one, and the resumed run would order its batch differently.
    std::sort(pending_groups_.begin(),
              pending_groups_.begin() + options_.groups_per_step,
              [](const ScoredGroup& a, const ScoredGroup& b) {
                return a.prompt.prompt_id() < b.prompt.prompt_id();
              });
  }
  auto made = std::make_shared<TrainBatch>();
  TrainBatch& batch = *made;
  batch.step = steps_done_ + 1;
  batch.policy_version = policy_version_;
  size_t batch_size = 0;
  for (int g = 0; g < options_.groups_per_step; ++g) {
    batch_size += pending_groups_[g].members.size();
  }
  batch.trajectories.reserve(batch_size);
  batch.group_sizes.reserve(options_.groups_per_step);
  batch.group_prompts.reserve(options_.groups_per_step);
  double reward_sum = 0;
  for (int g = 0; g < options_.groups_per_step; ++g) {
    ScoredGroup& group = pending_groups_.front();
    batch.group_sizes.push_back(static_cast<int>(group.members.size()));
    batch.group_prompts.push_back(std::move(group.prompt));
    for (v1::ScoredTrajectory& member : group.members) {
      algorithm::RolloutJudgement judgement;
      judgement.answer_correct = member.verdict().answer_correct();
      judgement.flawed = member.flawed();
      batch.counts.AddRollout(judgement,
                              ToAlgorithmStatus(member.verdict().status()));
      reward_sum += member.reward();
      if (metrics_->staleness != nullptr) {
        metrics_->staleness->Observe(static_cast<double>(
            policy_version_ - member.trajectory().policy_version()));
      }
      batch.trajectories.push_back(std::move(member));
    }
    pending_groups_.pop_front();
  }
  if (!batch.trajectories.empty()) {
    batch.reward_mean =
        reward_sum / static_cast<double>(batch.trajectories.size());
  }
  run_counts_ += batch.counts;
  if (metrics_->alpha != nullptr) {
    metrics_->alpha->Set(batch.counts.alpha());
    metrics_->beta->Set(batch.counts.beta());
    metrics_->gamma->Set(batch.counts.gamma());
    metrics_->flawed_ratio->Set(batch.counts.flawed_positive_ratio());
    metrics_->reward_mean->Set(batch.reward_mean);
  }
  in_flight_ = std::move(made);
  in_flight_failed_ = false;
  return in_flight_;
}

absl::Status Scheduler::CompleteTrainStep(int64_t step,
                                          int64_t new_policy_version,
                                          const v1::TrainMetrics& metrics) {
  absl::MutexLock lock(&mu_);
  if (in_flight_ == nullptr || in_flight_->step != step) {
    return absl::FailedPreconditionError(
        absl::StrCat("train step ", step, " is not in flight",
                     in_flight_ != nullptr
                         ? absl::StrCat(" (step ", in_flight_->step, " is)")
                         : std::string(" (none is)")));
  }
  if (new_policy_version <= policy_version_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train step ", step, ": policy version ", new_policy_version,
        " does not move forward from ", policy_version_));
  }
  std::vector<absl::string_view> ids;
  ids.reserve(in_flight_->trajectories.size());
  for (const v1::ScoredTrajectory& member : in_flight_->trajectories) {
    ids.push_back(member.trajectory().trajectory_id());
  }
  RETURN_IF_ERROR(queue_->MarkTrainedAll(ids));
  // The shared batch itself: nothing is copied here (samples.jsonl is
  // written from it on the sink's own thread).
  if (options_.outcomes != nullptr) options_.outcomes->Trained(in_flight_);
  outstanding_groups_ -= static_cast<int64_t>(in_flight_->group_sizes.size());
  in_flight_ = nullptr;
  steps_done_ = step;
  policy_version_ = new_policy_version;
  last_train_metrics_ = metrics;
  NoteProgress();
  CountLocked("scheduler.steps");
  if (metrics_->train_steps != nullptr) {
    metrics_->train_steps->Increment(1);
    metrics_->policy_version->Set(static_cast<double>(policy_version_));
  }
  if (steps_done_ >= options_.total_steps && state_ == v1::JOB_STATE_RUNNING) {
    // NOTE [job end]: the last step ends the job the way StopJob does:
    // STOPPING until the trainer driver has written the final checkpoint
    // and metrics line (FinishStop), so that SUCCEEDED, which sends every
    // worker home, comes when the run directory is complete.
    FAPO_LOG(INFO) << "job " << options_.job_name << ": all "
                   << options_.total_steps
                   << " steps done; the final checkpoint, then the end";
    SetStateLocked(v1::JOB_STATE_STOPPING);
  }
  return absl::OkStatus();
}

absl::Status Scheduler::FailTrainStep(int64_t step, absl::string_view error) {
  absl::MutexLock lock(&mu_);
  if (in_flight_ == nullptr || in_flight_->step != step) {
    return absl::FailedPreconditionError(
        absl::StrCat("train step ", step, " is not in flight"));
  }
  in_flight_failed_ = true;
  CountLocked("scheduler.steps.failed");
  NoteFailureLocked(absl::StrCat("train step ", step, " failed: ", error));
  return absl::OkStatus();
}

}  // namespace fapo::scheduler
