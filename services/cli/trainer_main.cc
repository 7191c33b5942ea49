// fapo-trainer: the Trainer service (trainer/trainer_service.h) over a
// Trainer built from the job spec (policy.model_dir, or the newest valid
// checkpoint under <job.output_dir>/checkpoints when trainer.resume); with
// --scheduler, a WorkerLease (role TRAINER, capacity 1, reporting the
// policy version it serves) that stops the process cleanly once the job is
// over, and with exit code 1 when the scheduler is lost.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "services/cli/service_main.h"

#ifdef FAPO_HAVE_TRAINER
#include "services/cli/spec_bridge.h"
#include "services/logging/log.h"
#include "services/rpc/worker_lease.h"
#include "services/status/status_macros.h"
#include "trainer/trainer.h"
#include "trainer/trainer_service.h"

namespace fapo::cli {
namespace {

class TrainerInstance : public ServiceInstance {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceInstance>> Create(
      const ServiceContext& context) {
    const config::JobSpec& spec = *context.spec;
    if (spec.trainer.ranks > 1) {
      return absl::UnimplementedError(
          "trainer.ranks > 1 needs the data-parallel communicator, which "
          "this build does not have yet; use trainer.ranks: 1");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<trainer::Trainer> trainer,
                     trainer::Trainer::Create(spec));
    const trainer::ResumeInfo& resumed = trainer->resume_info();
    if (resumed.checkpoint_path.empty()) {
      FAPO_LOG(INFO) << "starting fresh at step 0";
    } else {
      FAPO_LOG(INFO) << "resumed at step " << resumed.step << " from "
                     << resumed.checkpoint_path;
    }
    std::unique_ptr<TrainerInstance> instance(new TrainerInstance(context));
    ASSIGN_OR_RETURN(
        instance->service_,
        trainer::TrainerService::Create(std::move(trainer), context.registry));
    return std::unique_ptr<ServiceInstance>(std::move(instance));
  }

  std::vector<rpc::RegisteredService> services() override {
    return {{service_.get(), fapo::v1::Trainer::service_full_name()}};
  }

  absl::Status OnServing(const std::string& advertised_address) override {
    WorkerRegistration registration;
    registration.role = fapo::v1::WORKER_ROLE_TRAINER;
    registration.capacity = 1;
    trainer::TrainerService* service = service_.get();
    registration.policy_version = [service] {
      return service->policy_version();
    };
    ASSIGN_OR_RETURN(
        lease_, StartWorkerLease(ServiceContext{&spec_, nullptr, worker_id_,
                                                scheduler_address_},
                                 advertised_address, std::move(registration)));
    return absl::OkStatus();
  }

  void OnStopping() override {
    if (lease_ != nullptr) lease_->Stop();
  }

 private:
  explicit TrainerInstance(const ServiceContext& context)
      : spec_(*context.spec),
        worker_id_(context.worker_id),
        scheduler_address_(context.scheduler_address) {}

  const config::JobSpec spec_;
  const std::string worker_id_;
  const std::string scheduler_address_;
  // Destroyed in reverse order: the lease first, then the service (which
  // finishes the steps it has queued).
  std::unique_ptr<trainer::TrainerService> service_;
  std::unique_ptr<rpc::WorkerLease> lease_;
};

}  // namespace
}  // namespace fapo::cli
#endif  // FAPO_HAVE_TRAINER

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-trainer";
  definition.component = "trainer";
  definition.summary =
      "Applies GRPO/FAPO policy updates (clipped-ratio loss, AdamW, "
      "gradient clipping, LR schedule) in micro-batches, writes atomic "
      "checksummed checkpoints (resuming from the newest valid one) and "
      "serves the weights to rollout workers. With --scheduler it registers "
      "and exits when the job is over.";
#ifdef FAPO_HAVE_TRAINER
  definition.factory = &fapo::cli::TrainerInstance::Create;
#else
  definition.missing_note =
      "this build has no LibTorch (FAPO_WITH_TORCH=OFF): it serves only "
      "health, reflection and /metrics";
#endif
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
