#include "services/cli/service_main.h"

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-trainer";
  definition.component = "trainer";
  definition.summary =
      "Applies GRPO/FAPO policy updates (clipped-ratio loss, AdamW, "
      "gradient clipping, LR schedule), data-parallel over c10d (Gloo on "
      "CPU, NCCL on GPU), writes checkpoints and serves weights to rollout "
      "workers.";
  definition.missing_note =
      "the Trainer service arrives in stage 5 (issue #6); this build serves "
      "only health, reflection and /metrics";
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
