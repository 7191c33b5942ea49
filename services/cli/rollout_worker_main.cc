#include "services/cli/service_main.h"

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-rollout-worker";
  definition.component = "rollout-worker";
  definition.summary =
      "Samples G responses per prompt with the current policy (KV-cache "
      "generation), streams each trajectory back as it finishes with its "
      "per-token log-probs and policy version, and pulls new weights from "
      "the trainer between generation batches.";
  definition.missing_note =
      "the Rollout service arrives in stage 5 (issue #6); this build serves "
      "only health, reflection and /metrics";
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
