// fapo-rollout-worker: the Rollout service (rollout_worker/rollout_service.h)
// over a RolloutWorker holding policy.model_dir; with --scheduler, a
// WorkerLease (role ROLLOUT, reporting the policy version held) that stops
// the process cleanly once the job is over, and with exit code 1 when the
// scheduler is lost.
#include "services/cli/service_main.h"

#if FAPO_HAVE_ROLLOUT_WORKER
#include <ATen/Parallel.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/model.h"
#include "engine/model/policy_options.h"
#include "engine/tokenizer/tokenizer.h"
#include "rollout_worker/rollout_service.h"
#include "rollout_worker/rollout_worker.h"
#include "services/cli/spec_bridge.h"
#include "services/logging/log.h"
#include "services/rpc/worker_lease.h"
#include "services/status/status_macros.h"

namespace fapo::cli {
namespace {

// Generate streams the scheduler may keep open on one worker: one group
// generating and one queued behind it, so the worker never waits for the
// scheduler between groups (groups run one at a time: NOTE [one model, one
// thread] in rollout_worker.h).
constexpr int kRolloutCapacity = 2;


class RolloutWorkerInstance : public ServiceInstance {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceInstance>> Create(
      const ServiceContext& context) {
    const config::JobSpec& spec = *context.spec;
    if (spec.policy.model_dir.empty()) {
      return absl::FailedPreconditionError(
          "policy.model_dir is empty: the rollout worker needs a checkpoint "
          "in the Hugging Face layout. Write one with `fapo init-model --out "
          "DIR` (or the SFT warm start) and set policy.model_dir: DIR in the "
          "job spec (or --set policy.model_dir=DIR)");
    }
    at::set_num_threads(spec.rollout.threads_per_worker);
    ASSIGN_OR_RETURN(std::unique_ptr<engine::CausalLM> model,
                     engine::CausalLM::Load(spec.policy.model_dir,
                                            engine::PolicyLoadOptions(spec.policy)));
    const std::string tokenizer_path =
        spec.policy.tokenizer_path.empty()
            ? spec.policy.model_dir + "/tokenizer.json"
            : spec.policy.tokenizer_path;
    ASSIGN_OR_RETURN(std::unique_ptr<engine::Tokenizer> tokenizer,
                     engine::Tokenizer::FromFile(tokenizer_path));
    rpc::ChannelOptions channel;
    channel.security = RpcSecurityFromSpec(spec.security);
    engine::PullWeightsOptions pull;  // 300 s: trainer.proto's default
    rollout::RolloutWorkerOptions options;
    options.worker_id = context.worker_id;
    options.chatml = spec.policy.chat_format == config::ChatFormat::kChatml;
    options.registry = context.registry;
    std::unique_ptr<RolloutWorkerInstance> instance(
        new RolloutWorkerInstance(context));
    ASSIGN_OR_RETURN(
        instance->worker_,
        rollout::RolloutWorker::Create(
            std::move(model), std::move(tokenizer),
            std::make_unique<rollout::GrpcWeightsFetcher>(channel, pull),
            options));
    instance->service_ =
        std::make_unique<rollout::RolloutService>(instance->worker_.get());
    FAPO_LOG(INFO) << "policy " << spec.policy.model_dir << " loaded, serving "
                   << "policy version " << instance->worker_->policy_version();
    return std::unique_ptr<ServiceInstance>(std::move(instance));
  }

  std::vector<rpc::RegisteredService> services() override {
    return {{service_.get(), fapo::v1::Rollout::service_full_name()}};
  }

  absl::Status OnServing(const std::string& advertised_address) override {
    WorkerRegistration registration;
    registration.role = fapo::v1::WORKER_ROLE_ROLLOUT;
    registration.capacity = kRolloutCapacity;
    rollout::RolloutWorker* worker = worker_.get();
    registration.in_flight = [worker] { return worker->in_flight(); };
    registration.policy_version = [worker] { return worker->policy_version(); };
    ASSIGN_OR_RETURN(
        lease_, StartWorkerLease(ServiceContext{&spec_, nullptr, worker_id_,
                                                scheduler_address_},
                                 advertised_address, std::move(registration)));
    return absl::OkStatus();
  }

  void OnStopping() override {
    if (lease_ != nullptr) lease_->Stop();
    // Open Generate streams end UNAVAILABLE now (the scheduler retries the
    // group elsewhere) rather than after the drain timeout.
    worker_->Shutdown();
  }

 private:
  explicit RolloutWorkerInstance(const ServiceContext& context)
      : spec_(*context.spec),
        worker_id_(context.worker_id),
        scheduler_address_(context.scheduler_address) {}

  const config::JobSpec spec_;
  const std::string worker_id_;
  const std::string scheduler_address_;
  // Destroyed in reverse order: the lease, then the worker (whose
  // callbacks reach the service's reactors), then the service.
  std::unique_ptr<rollout::RolloutService> service_;
  std::unique_ptr<rollout::RolloutWorker> worker_;
  std::unique_ptr<rpc::WorkerLease> lease_;
};

}  // namespace
}  // namespace fapo::cli

#endif  // FAPO_HAVE_ROLLOUT_WORKER

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-rollout-worker";
  definition.component = "rollout-worker";
  definition.summary =
      "Samples G responses per prompt with the current policy (KV-cache "
      "generation), streams each trajectory back as it finishes with its "
      "per-token log-probs and policy version, and pulls new weights from "
      "the trainer between generation batches.";
#if FAPO_HAVE_ROLLOUT_WORKER
  definition.factory = &fapo::cli::RolloutWorkerInstance::Create;
#else
  definition.missing_note =
      "this build has no LibTorch (FAPO_WITH_TORCH=OFF), so no Rollout "
      "service; it serves only health, reflection and /metrics";
#endif
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
