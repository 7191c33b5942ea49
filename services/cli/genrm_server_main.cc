// fapo-genrm-server: the GenRM service (genrm_server/genrm_service.h) over
// the backend the job spec names (genrm_server/backend_factory.h) and a
// DynamicBatcher; with --scheduler, a WorkerLease (role GENRM, capacity
// genrm.max_in_flight_per_server) that stops the process cleanly once the
// job is over, and with exit code 1 when the scheduler is lost.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "genrm_server/backend_factory.h"
#include "genrm_server/dynamic_batcher.h"
#include "genrm_server/genrm_service.h"
#include "services/cli/service_main.h"
#include "services/cli/spec_bridge.h"
#include "services/logging/log.h"
#include "services/rpc/worker_lease.h"
#include "services/status/status_macros.h"

namespace fapo::cli {
namespace {

class GenrmServerInstance : public ServiceInstance {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceInstance>> Create(
      const ServiceContext& context) {
    const config::JobSpec& spec = *context.spec;
    ASSIGN_OR_RETURN(std::unique_ptr<genrm::GenrmBackend> backend,
                     genrm::MakeGenrmBackend(spec));
    const std::string backend_name = backend->name();
    ASSIGN_OR_RETURN(backend, genrm::InstrumentBackend(std::move(backend),
                                                       context.registry));
    std::unique_ptr<GenrmServerInstance> instance(
        new GenrmServerInstance(context));
    ASSIGN_OR_RETURN(instance->batcher_,
                     genrm::DynamicBatcher::Create(
                         genrm::BatcherOptionsFromSpec(spec, context.worker_id),
                         std::move(backend)));
    ASSIGN_OR_RETURN(instance->service_,
                     genrm::GenrmService::Create(instance->batcher_.get(),
                                                 context.registry));
    FAPO_LOG(INFO) << "GenRM backend " << backend_name << ", batches of up to "
                   << spec.genrm.max_batch_size << " within "
                   << spec.genrm.max_batch_delay_ms << " ms";
    return std::unique_ptr<ServiceInstance>(std::move(instance));
  }

  std::vector<rpc::RegisteredService> services() override {
    return {{service_.get(), fapo::v1::GenRM::service_full_name()}};
  }

  absl::Status OnServing(const std::string& advertised_address) override {
    WorkerRegistration registration;
    registration.role = fapo::v1::WORKER_ROLE_GENRM;
    registration.capacity = spec_.genrm.max_in_flight_per_server;
    genrm::GenrmService* service = service_.get();
    registration.in_flight = [service] { return service->in_flight(); };
    ASSIGN_OR_RETURN(
        lease_, StartWorkerLease(ServiceContext{&spec_, nullptr, worker_id_,
                                                scheduler_address_},
                                 advertised_address, std::move(registration)));
    return absl::OkStatus();
  }

  void OnStopping() override {
    if (lease_ != nullptr) lease_->Stop();
    // Drain: what waits is scored and answered before the server shuts
    // down; calls arriving from now on get UNAVAILABLE and go elsewhere.
    batcher_->Shutdown();
  }

 private:
  explicit GenrmServerInstance(const ServiceContext& context)
      : spec_(*context.spec),
        worker_id_(context.worker_id),
        scheduler_address_(context.scheduler_address) {}

  const config::JobSpec spec_;
  const std::string worker_id_;
  const std::string scheduler_address_;
  // Destroyed in reverse order: the lease first, then the batcher (whose
  // drain still runs the service's callbacks), then the service.
  std::unique_ptr<genrm::GenrmService> service_;
  std::unique_ptr<genrm::DynamicBatcher> batcher_;
  std::unique_ptr<rpc::WorkerLease> lease_;
};

}  // namespace
}  // namespace fapo::cli

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-genrm-server";
  definition.component = "genrm-server";
  definition.summary =
      "Generative process reward model server: finds the first wrong step "
      "of each correct solution (backends: rule, model, openai, latency), "
      "batching concurrent requests. Start more to add capacity; with "
      "--scheduler it registers and exits when the job is over.";
  definition.factory = &fapo::cli::GenrmServerInstance::Create;
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
