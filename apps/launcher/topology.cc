#include "apps/launcher/topology.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace fapo::launcher {

std::vector<ServicePlan> PlanTopology(const config::JobSpec& spec,
                                      const std::string& config_path,
                                      const TopologyPorts& ports) {
  const std::string scheduler = absl::StrCat("127.0.0.1:", ports.scheduler);
  auto common = [&](const std::string& name) {
    return std::vector<std::string>{
        "--config", config_path, "--host", "127.0.0.1", "--port", "0",
        "--worker-id", name,
        // Every process its own /metrics port (metrics.port is for one
        // process run by hand); launch.json lists them.
        "--metrics-port", "0"};
  };
  std::vector<ServicePlan> plans;
  for (int rank = 0; rank < spec.trainer.ranks; ++rank) {
    ServicePlan plan{absl::StrCat("trainer-", rank), "fapo-trainer",
                     common(absl::StrCat("trainer-", rank)), 0};
    plan.args.insert(plan.args.end(), {"--scheduler", scheduler});
    if (spec.trainer.ranks > 1) {
      plan.args.insert(plan.args.end(),
                       {"--rank", std::to_string(rank), "--rendezvous",
                        absl::StrCat("127.0.0.1:", ports.rendezvous)});
    }
    plans.push_back(std::move(plan));
  }
  ServicePlan scheduler_plan{"scheduler", "fapo-scheduler", common("scheduler"),
                             1};
  // The scheduler binds the port the workers were told.
  for (size_t i = 0; i + 1 < scheduler_plan.args.size(); ++i) {
    if (scheduler_plan.args[i] == "--port") {
      scheduler_plan.args[i + 1] = std::to_string(ports.scheduler);
    }
  }
  plans.push_back(std::move(scheduler_plan));
  for (int i = 0; i < spec.genrm.servers; ++i) {
    const std::string name = absl::StrCat("genrm-", i);
    ServicePlan plan{name, "fapo-genrm-server", common(name), 2};
    plan.args.insert(plan.args.end(), {"--scheduler", scheduler});
    plans.push_back(std::move(plan));
  }
  for (int i = 0; i < spec.rollout.workers; ++i) {
    const std::string name = absl::StrCat("rollout-", i);
    ServicePlan plan{name, "fapo-rollout-worker", common(name), 2};
    plan.args.insert(plan.args.end(), {"--scheduler", scheduler});
    plans.push_back(std::move(plan));
  }
  return plans;
}

}  // namespace fapo::launcher
