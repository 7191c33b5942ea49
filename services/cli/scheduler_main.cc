#include "services/cli/service_main.h"

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-scheduler";
  definition.component = "scheduler";
  definition.summary =
      "The single controller of a FAPO job: hands prompt groups to rollout "
      "workers, queues their trajectories, sends each correct one to the "
      "least-loaded GenRM server at once, computes FAPO rewards and GRPO "
      "advantages, and feeds complete groups to the trainer.";
  definition.missing_note =
      "the Scheduler service arrives in stage 4 (issue #5); this build "
      "serves only health, reflection and /metrics";
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
