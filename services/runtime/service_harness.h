// Test only: runs a ServiceInstance in this process as apps/service_main
// would (gRPC server on 127.0.0.1 port 0, OnServing with its address,
// OnStopping, shutdown), against a FakeSchedulerService to register with,
// recording the instance's shutdown requests instead of signalling the
// test process.
//
//   ServiceHarness harness;
//   ASSERT_OK_AND_ASSIGN(GenrmServer* server,
//                        harness.Serve(GenrmServer::Create(
//                            harness.Context(spec, "genrm-1"))));
//   ... harness.scheduler().registrations(), a stub on harness.address() ...
//   harness.Stop();  // or let the harness go: it stops, then destroys
//
// The harness owns the instance, so the order is always the program's:
// OnStopping, the gRPC server's shutdown, then the instance's destruction.
#ifndef FAPO_SERVICES_RUNTIME_SERVICE_HARNESS_H_
#define FAPO_SERVICES_RUNTIME_SERVICE_HARNESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/config/job_spec.h"
#include "services/metrics/metrics_registry.h"
#include "services/rpc/fake_scheduler_service.h"
#include "services/rpc/server.h"
#include "services/runtime/service_instance.h"

namespace fapo::runtime::testing {

class ServiceHarness {
 public:
  ServiceHarness();
  ~ServiceHarness();  // Stop()
  ServiceHarness(const ServiceHarness&) = delete;
  ServiceHarness& operator=(const ServiceHarness&) = delete;

  // A context for `spec` (kept here, so it outlives the instance) with the
  // harness's registry and shutdown recorder; registering with the fake
  // scheduler when `with_scheduler`.
  ServiceContext Context(const config::JobSpec& spec,
                         const std::string& worker_id,
                         bool with_scheduler = true);

  // Takes the created instance, serves its services() on 127.0.0.1 port 0
  // and calls OnServing with that address. Returns the instance (owned by
  // the harness until Stop); the creation's error, or OnServing's.
  template <typename Instance>
  absl::StatusOr<Instance*> Serve(
      absl::StatusOr<std::unique_ptr<Instance>> created) {
    if (!created.ok()) return created.status();
    Instance* instance = created->get();
    absl::Status served = ServeOwned(*std::move(created));
    if (!served.ok()) return served;
    return instance;
  }
  // OnStopping, the server's shutdown, then the instance's destruction.
  // Idempotent.
  void Stop();

  // "127.0.0.1:PORT" of the served instance ("" before Serve).
  std::string address() const;
  rpc::FakeSchedulerService& scheduler() { return scheduler_; }
  metrics::MetricsRegistry* registry() { return registry_.get(); }
  // Exit codes the instance asked its program to stop with, in order.
  std::vector<int> shutdown_requests() const;

 private:
  std::unique_ptr<metrics::MetricsRegistry> registry_;
  rpc::FakeSchedulerService scheduler_;
  std::unique_ptr<rpc::RpcServer> scheduler_server_;
  absl::Status ServeOwned(std::unique_ptr<ServiceInstance> instance);

  std::unique_ptr<config::JobSpec> spec_;
  std::unique_ptr<ServiceInstance> instance_;
  std::unique_ptr<rpc::RpcServer> server_;
  mutable absl::Mutex mu_;
  std::vector<int> shutdown_requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::runtime::testing

#endif  // FAPO_SERVICES_RUNTIME_SERVICE_HARNESS_H_
