// fapo-genrm-server: GenrmServer (genrm_server/genrm_server.h) under the
// common service main.
#include <memory>

#include "apps/service_main.h"
#include "genrm_server/genrm_server.h"

int main(int argc, char** argv) {
  fapo::apps::ServiceDefinition definition;
  definition.binary = "fapo-genrm-server";
  definition.component = "genrm-server";
  definition.summary =
      "Generative process reward model server: finds the first wrong step "
      "of each correct solution (backends: rule, model, openai, latency), "
      "batching concurrent requests. Start more to add capacity; with "
      "--scheduler it registers and exits when the job is over.";
  definition.factory = [](const fapo::runtime::ServiceContext& context)
      -> absl::StatusOr<std::unique_ptr<fapo::runtime::ServiceInstance>> {
    return fapo::genrm::GenrmServer::Create(context);
  };
  return fapo::apps::RunServiceMain(definition, argc, argv);
}
