// GenrmServer: what fapo-genrm-server runs (a runtime::WorkerService). The
// GenRM service (genrm_service.h) over the backend the job spec names
// (backend_factory.h), instrumented, behind a DynamicBatcher; registered
// with the scheduler as role GENRM with capacity
// genrm.max_in_flight_per_server, reporting the requests in flight.
//
// On stopping, the lease stops first, then the batcher drains: what waits is
// scored and answered before the server shuts down, and calls arriving from
// then on get UNAVAILABLE and go elsewhere.
#ifndef FAPO_GENRM_SERVER_GENRM_SERVER_H_
#define FAPO_GENRM_SERVER_GENRM_SERVER_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "genrm_server/dynamic_batcher.h"
#include "genrm_server/genrm_service.h"
#include "services/runtime/service_instance.h"

namespace fapo::genrm {

class GenrmServer final : public runtime::WorkerService {
 public:
  // Errors: the backend's (a bad spec, an unloadable model), and the
  // metrics registry's.
  static absl::StatusOr<std::unique_ptr<GenrmServer>> Create(
      const runtime::ServiceContext& context);

  std::vector<rpc::RegisteredService> services() override;

  GenrmService* service() { return service_.get(); }

 private:
  explicit GenrmServer(const runtime::ServiceContext& context)
      : WorkerService(context) {}

  std::optional<runtime::WorkerRegistration> Registration() override;
  void Drain() override;

  // Destroyed in reverse order: the batcher (whose drain still runs the
  // service's callbacks) before the service.
  std::unique_ptr<GenrmService> service_;
  std::unique_ptr<DynamicBatcher> batcher_;
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_GENRM_SERVER_H_
