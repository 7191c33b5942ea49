#include "genrm_server/genrm_server.h"

#include <string>
#include <utility>

#include "genrm_server/backend_factory.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::genrm {

absl::StatusOr<std::unique_ptr<GenrmServer>> GenrmServer::Create(
    const runtime::ServiceContext& context) {
  const config::JobSpec& spec = *context.spec;
  ASSIGN_OR_RETURN(std::unique_ptr<GenrmBackend> backend,
                   MakeGenrmBackend(spec));
  const std::string backend_name = backend->name();
  ASSIGN_OR_RETURN(backend,
                   InstrumentBackend(std::move(backend), context.registry));
  std::unique_ptr<GenrmServer> server(new GenrmServer(context));
  ASSIGN_OR_RETURN(
      server->batcher_,
      DynamicBatcher::Create(BatcherOptionsFromSpec(spec, context.worker_id),
                             std::move(backend)));
  ASSIGN_OR_RETURN(
      server->service_,
      GenrmService::Create(server->batcher_.get(), context.registry));
  FAPO_LOG(INFO) << "GenRM backend " << backend_name << ", batches of up to "
                 << spec.genrm.max_batch_size << " within "
                 << spec.genrm.max_batch_delay_ms << " ms";
  return server;
}

std::vector<rpc::RegisteredService> GenrmServer::services() {
  return {{service_.get(), fapo::v1::GenRM::service_full_name()}};
}

std::optional<runtime::WorkerRegistration> GenrmServer::Registration() {
  runtime::WorkerRegistration registration;
  registration.role = fapo::v1::WORKER_ROLE_GENRM;
  registration.capacity = spec().genrm.max_in_flight_per_server;
  GenrmService* service = service_.get();
  registration.in_flight = [service] { return service->in_flight(); };
  return registration;
}

void GenrmServer::Drain() { batcher_->Shutdown(); }

}  // namespace fapo::genrm
