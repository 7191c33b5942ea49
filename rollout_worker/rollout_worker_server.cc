#include "rollout_worker/rollout_worker_server.h"

#include <ATen/Parallel.h>

#include <string>
#include <utility>

#include "engine/model/model.h"
#include "engine/model/policy_options.h"
#include "engine/tokenizer/tokenizer.h"
#include "services/logging/log.h"
#include "services/runtime/spec_bridge.h"
#include "services/status/status_macros.h"

namespace fapo::rollout {

absl::StatusOr<std::unique_ptr<RolloutWorkerServer>>
RolloutWorkerServer::Create(const runtime::ServiceContext& context) {
  const config::JobSpec& spec = *context.spec;
  if (spec.policy.model_dir.empty()) {
    return absl::FailedPreconditionError(
        "policy.model_dir is empty: the rollout worker needs a checkpoint "
        "in the Hugging Face layout. Write one with `fapo init-model --out "
        "DIR` (or the SFT warm start) and set policy.model_dir: DIR in the "
        "job spec (or --set policy.model_dir=DIR)");
  }
  at::set_num_threads(spec.rollout.threads_per_worker);
  ASSIGN_OR_RETURN(
      std::unique_ptr<engine::CausalLM> model,
      engine::CausalLM::Load(spec.policy.model_dir,
                             engine::PolicyLoadOptions(spec.policy)));
  const std::string tokenizer_path =
      spec.policy.tokenizer_path.empty()
          ? spec.policy.model_dir + "/tokenizer.json"
          : spec.policy.tokenizer_path;
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Tokenizer> tokenizer,
                   engine::Tokenizer::FromFile(tokenizer_path));
  rpc::ChannelOptions channel;
  channel.security = runtime::RpcSecurityFromSpec(spec.security);
  engine::PullWeightsOptions pull;  // 300 s: trainer.proto's default
  RolloutWorkerOptions options;
  options.worker_id = context.worker_id;
  options.chatml = spec.policy.chat_format == config::ChatFormat::kChatml;
  options.registry = context.registry;
  std::unique_ptr<RolloutWorkerServer> server(new RolloutWorkerServer(context));
  ASSIGN_OR_RETURN(
      server->worker_,
      RolloutWorker::Create(std::move(model), std::move(tokenizer),
                            std::make_unique<GrpcWeightsFetcher>(channel, pull),
                            options));
  server->service_ = std::make_unique<RolloutService>(server->worker_.get());
  FAPO_LOG(INFO) << "policy " << spec.policy.model_dir << " loaded, serving "
                 << "policy version " << server->worker_->policy_version();
  return server;
}

std::vector<rpc::RegisteredService> RolloutWorkerServer::services() {
  return {{service_.get(), fapo::v1::Rollout::service_full_name()}};
}

std::optional<runtime::WorkerRegistration> RolloutWorkerServer::Registration() {
  runtime::WorkerRegistration registration;
  registration.role = fapo::v1::WORKER_ROLE_ROLLOUT;
  registration.capacity = kRolloutCapacity;
  RolloutWorker* worker = worker_.get();
  registration.in_flight = [worker] { return worker->in_flight(); };
  registration.policy_version = [worker] { return worker->policy_version(); };
  return registration;
}

void RolloutWorkerServer::Drain() { worker_->Shutdown(); }

}  // namespace fapo::rollout
