// fapo-rollout-worker: RolloutWorkerServer
// (rollout_worker/rollout_worker_server.h) under the common service main.
#include <memory>

#include "apps/service_main.h"

#if FAPO_HAVE_ROLLOUT_WORKER
#include "rollout_worker/rollout_worker_server.h"
#endif

int main(int argc, char** argv) {
  fapo::apps::ServiceDefinition definition;
  definition.binary = "fapo-rollout-worker";
  definition.component = "rollout-worker";
  definition.summary =
      "Samples G responses per prompt with the current policy (KV-cache "
      "generation), streams each trajectory back as it finishes with its "
      "per-token log-probs and policy version, and pulls new weights from "
      "the trainer between generation batches.";
#if FAPO_HAVE_ROLLOUT_WORKER
  definition.factory = [](const fapo::runtime::ServiceContext& context)
      -> absl::StatusOr<std::unique_ptr<fapo::runtime::ServiceInstance>> {
    return fapo::rollout::RolloutWorkerServer::Create(context);
  };
#else
  definition.missing_note =
      "this build has no LibTorch (FAPO_WITH_TORCH=OFF), so no Rollout "
      "service; it serves only health, reflection and /metrics";
#endif
  return fapo::apps::RunServiceMain(definition, argc, argv);
}
