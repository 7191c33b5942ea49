// The processes of one job and the order they start in (NOTE [launch
// order]): what `fapo launch` runs, as arguments, before anything starts.
#ifndef FAPO_APPS_LAUNCHER_TOPOLOGY_H_
#define FAPO_APPS_LAUNCHER_TOPOLOGY_H_

#include <string>
#include <vector>

#include "services/config/job_spec.h"

namespace fapo::launcher {

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

}  // namespace fapo::launcher

#endif  // FAPO_APPS_LAUNCHER_TOPOLOGY_H_
