// Scheduler (scheduler.h): the snapshot checkpointed with the trainer, and
// its restore (NOTE [scheduler restore]).
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"
#include "scheduler/scheduler_internal.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

using internal::kCounterPrefix;
using internal::kNextGroupCounter;
using internal::OutcomeCounter;

v1::SchedulerSnapshot Scheduler::Snapshot() const {
  absl::MutexLock lock(&mu_);
  // Under mu_, so no batch is taken or trained between the two halves.
  v1::SchedulerSnapshot snapshot = queue_->Snapshot();
  // The queue holds batched records as skeletons (NOTE [batched
  // hand-over]); their bodies, scores and prompts are here.
  absl::flat_hash_map<absl::string_view,
                      std::pair<const v1::ScoredTrajectory*, const v1::Prompt*>>
      bodies;
  for (const ScoredGroup& group : pending_groups_) {
    for (const v1::ScoredTrajectory& member : group.members) {
      bodies[member.trajectory().trajectory_id()] = {&member, &group.prompt};
    }
  }
  if (in_flight_ != nullptr) {
    size_t next = 0;
    for (size_t g = 0; g < in_flight_->group_sizes.size(); ++g) {
      for (int i = 0; i < in_flight_->group_sizes[g]; ++i, ++next) {
        const v1::ScoredTrajectory& member = in_flight_->trajectories[next];
        bodies[member.trajectory().trajectory_id()] = {
            &member, &in_flight_->group_prompts[g]};
      }
    }
  }
  for (v1::TrajectoryRecord& record : *snapshot.mutable_records()) {
    if (record.state() != v1::TRAJECTORY_STATE_BATCHED) continue;
    auto it = bodies.find(record.trajectory().trajectory_id());
    if (it == bodies.end()) continue;  // cannot happen: every batch is here
    const v1::ScoredTrajectory& member = *it->second.first;
    *record.mutable_trajectory() = member.trajectory();
    *record.mutable_verdict() = member.verdict();
    record.set_flawed(member.flawed());
    record.set_reward(member.reward());
    record.set_advantage(member.advantage());
    *record.mutable_prompt() = *it->second.second;
  }
  snapshot.set_step(steps_done_);
  snapshot.set_policy_version(policy_version_);
  snapshot.set_prompt_source_position(prompts_->position());
  for (const auto& [key, value] : counters_) {
    (*snapshot.mutable_counters())[key] = value;
  }
  for (int i = 0; i < kNumOutcomes; ++i) {
    (*snapshot.mutable_counters())[OutcomeCounter(i)] =
        verdict_counts_[i].load();
  }
  for (const auto& [group_id, info] : open_groups_) {
    (*snapshot.mutable_group_prompts())[group_id] = *info.prompt;
  }
  for (const v1::Prompt& prompt : regenerate_) {
    *snapshot.add_regenerate() = prompt;
  }
  return snapshot;
}

// NOTE [scheduler restore]: the snapshot is taken between train steps.
//   - complete groups (all members scored) stay and train as if nothing
//     happened;
//   - batched records (taken for a batch that had not trained) become
//     pending groups again, with their rewards and advantages;
//   - incomplete groups are dropped ("interrupted") and their prompts
//     generated again: their generation streams ended with the old process.
// So a resumed job neither loses a prompt nor trains a sample twice.
absl::Status Scheduler::RestoreLocked(const v1::SchedulerSnapshot& snapshot,
                                      std::vector<std::string>* interrupted) {
  steps_done_ = snapshot.step();
  policy_version_ = snapshot.policy_version();
  if (prompts_->position() != snapshot.prompt_source_position()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot: the prompt source is at position ", prompts_->position(),
        " but the snapshot was taken at ", snapshot.prompt_source_position(),
        " (create it with tasks::MakePromptSource(spec, position))"));
  }
  for (const auto& [key, value] : snapshot.counters()) {
    if (!absl::StartsWith(key, kCounterPrefix)) continue;
    bool outcome = false;
    for (int i = 0; i < kNumOutcomes; ++i) {
      if (key == OutcomeCounter(i)) {
        verdict_counts_[i].store(value);
        outcome = true;
      }
    }
    if (!outcome) counters_[key] = value;
  }
  next_group_ = counters_[std::string(kNextGroupCounter)];
  for (const v1::Prompt& prompt : snapshot.regenerate()) {
    regenerate_.push_back(prompt);
  }
  std::vector<std::string> open_ids;
  for (const auto& [group_id, size] : snapshot.open_group_sizes()) {
    open_ids.push_back(group_id);
  }
  std::sort(open_ids.begin(), open_ids.end());
  for (const std::string& group_id : open_ids) {
    auto prompt = snapshot.group_prompts().find(group_id);
    if (prompt == snapshot.group_prompts().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot: open group '", group_id, "' has no prompt"));
    }
    ASSIGN_OR_RETURN(bool complete, queue_->IsGroupComplete(group_id));
    if (complete) {
      GroupInfo& info = open_groups_[group_id];
      info.prompt = std::make_shared<const v1::Prompt>(prompt->second);
      info.verifier = verifier_->ForPrompt(info.prompt);
      ++outstanding_groups_;
    } else {
      regenerate_.push_back(prompt->second);
      interrupted->push_back(group_id);
      CountLocked("scheduler.groups.interrupted");
    }
  }
  // Batched records: group them back (arrival order), scores included.
  absl::flat_hash_map<std::string, size_t> index;
  for (const v1::TrajectoryRecord& record : snapshot.records()) {
    if (record.state() != v1::TRAJECTORY_STATE_BATCHED) continue;
    const std::string& group_id = record.trajectory().group_id();
    auto [it, inserted] = index.emplace(group_id, pending_groups_.size());
    if (inserted) {
      pending_groups_.emplace_back();
      pending_groups_.back().group_id = group_id;
      pending_groups_.back().prompt = record.prompt();
      pending_groups_.back().min_version = INT64_MAX;
      ++outstanding_groups_;
    }
    ScoredGroup& group = pending_groups_[it->second];
    v1::ScoredTrajectory scored;
    *scored.mutable_trajectory() = record.trajectory();
    *scored.mutable_verdict() = record.verdict();
    scored.set_flawed(record.flawed());
    scored.set_reward(record.reward());
    scored.set_advantage(record.advantage());
    group.min_version =
        std::min(group.min_version, record.trajectory().policy_version());
    group.members.push_back(std::move(scored));
  }
  for (ScoredGroup& group : pending_groups_) {
    std::sort(group.members.begin(), group.members.end(),
              [](const v1::ScoredTrajectory& a, const v1::ScoredTrajectory& b) {
                return a.trajectory().sample_index() <
                       b.trajectory().sample_index();
              });
  }
  return absl::OkStatus();
}

}  // namespace fapo::scheduler
