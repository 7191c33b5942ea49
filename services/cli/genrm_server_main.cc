#include "services/cli/service_main.h"

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-genrm-server";
  definition.component = "genrm-server";
  definition.summary =
      "Generative process reward model server: finds the first wrong step "
      "of each correct solution (backends: rule, model, openai, latency), "
      "batching concurrent requests. Start more to add capacity.";
  definition.missing_note =
      "the GenRM service arrives in stage 4 (issue #5); this build serves "
      "only health, reflection and /metrics";
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
