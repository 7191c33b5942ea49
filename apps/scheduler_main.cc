// fapo-scheduler: SchedulerServer (scheduler/scheduler_server.h) under the
// common service main.
#include <string>

#include "apps/service_main.h"
#include "scheduler/scheduler_server.h"

int main(int argc, char** argv) {
  fapo::apps::ServiceDefinition definition;
  definition.binary = "fapo-scheduler";
  definition.component = "scheduler";
  definition.summary =
      "The single controller of a FAPO job: hands prompt groups to rollout "
      "workers, queues their trajectories, sends each correct one to the "
      "least-loaded GenRM server at once, computes FAPO rewards and GRPO "
      "advantages, and feeds complete groups to the trainer.";
  // --trainer: resume from that trainer's checkpoint (see
  // scheduler_server.h).
  static std::string trainer_address;
  definition.add_flags = [](fapo::flags::FlagSet& flags) {
    flags.String("trainer", &trainer_address, "HOST:PORT",
                 "the trainer (rank 0) to resume with: its checkpoint's "
                 "scheduler snapshot is restored");
  };
  definition.factory = [](const fapo::runtime::ServiceContext& context) {
    return fapo::scheduler::SchedulerServer::Create(context, trainer_address);
  };
  return fapo::apps::RunServiceMain(definition, argc, argv);
}
