#include "scheduler/scheduler_server.h"
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
  definition.factory = fapo::scheduler::SchedulerServer::Create;
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
