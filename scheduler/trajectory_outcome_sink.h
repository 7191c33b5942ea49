// TrajectoryOutcomeSink: where the scheduler reports each trajectory that
// reaches a terminal state (trained, or dropped with a reason), for
// <job.output_dir>/samples.jsonl (samples_writer.h) or a test.
//
//   trajectory_outcome_sink.h   the interface (this)
//   samples_writer.h            the JSONL writer fapo-scheduler uses
//
// Contract: the scheduler calls the sink under its own lock, once per
// trained step and once per dropped group (never per trajectory on the
// hot path), so an implementation must only queue the work: no I/O, no
// blocking, no calls back into the scheduler. Each trajectory that entered
// the queue is reported exactly once, trained or dropped; samples refused
// before they entered (their group was no longer open) are not.
#ifndef FAPO_SCHEDULER_TRAJECTORY_OUTCOME_SINK_H_
#define FAPO_SCHEDULER_TRAJECTORY_OUTCOME_SINK_H_

#include <memory>
#include <string>
#include <vector>

#include "fapo/v1/common.pb.h"

namespace fapo::scheduler {

struct TrainBatch;  // scheduler.h

// A trajectory the scheduler dropped, with what it knew of it then.
struct DroppedTrajectory {
  // The body; the verdict when has_verdict; flawed and reward when
  // has_reward (its group was scored); advantage when has_advantage.
  v1::ScoredTrajectory trajectory;
  bool has_verdict = false;
  bool has_reward = false;
  bool has_advantage = false;
  // Its group's prompt (shared by the group's members).
  std::shared_ptr<const v1::Prompt> prompt;
  // Why: "stale", "aborted", "no_signal", "interrupted", ...
  std::string reason;
};

class TrajectoryOutcomeSink {
 public:
  virtual ~TrajectoryOutcomeSink() = default;
  // Step batch->step trained every trajectory of `batch` (shared: the
  // batch is not copied; it lives as long as the sink keeps it).
  virtual void Trained(std::shared_ptr<const TrainBatch> batch) = 0;
  // These trajectories (one group's, or several) were dropped.
  virtual void Dropped(std::vector<DroppedTrajectory> dropped) = 0;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_TRAJECTORY_OUTCOME_SINK_H_
