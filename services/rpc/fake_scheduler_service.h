// Test only: a fapo.v1.Scheduler that keeps a worker table and nothing
// else, for tests of worker leases and of binaries that register. Serve it
// with rpc::RpcServer on port 0.
//
// RegisterWorker records the WorkerInfo (replacing any earlier record) and
// answers heartbeat_interval(); Heartbeat answers registered = whether the
// worker is in the table, and the job state set by SetJobState. Forget()
// drops a worker, as a scheduler that declared it dead would.
// GetJobStatus and StopJob are UNIMPLEMENTED. Thread-safe.
#ifndef FAPO_SERVICES_RPC_FAKE_SCHEDULER_SERVICE_H_
#define FAPO_SERVICES_RPC_FAKE_SCHEDULER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fapo/v1/scheduler.grpc.pb.h"

namespace fapo::rpc {

class FakeSchedulerService final : public fapo::v1::Scheduler::CallbackService {
 public:
  explicit FakeSchedulerService(
      absl::Duration heartbeat_interval = absl::Milliseconds(50))
      : heartbeat_interval_(heartbeat_interval) {}

  grpc::ServerUnaryReactor* RegisterWorker(
      grpc::CallbackServerContext* context,
      const fapo::v1::RegisterWorkerRequest* request,
      fapo::v1::RegisterWorkerResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      workers_[request->worker().worker_id()] = request->worker();
      registrations_.push_back(request->worker());
      const int64_t nanos = absl::ToInt64Nanoseconds(heartbeat_interval_);
      response->mutable_heartbeat_interval()->set_seconds(nanos / 1000000000);
      response->mutable_heartbeat_interval()->set_nanos(
          static_cast<int32_t>(nanos % 1000000000));
      response->set_job_name("fake-job");
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Heartbeat(
      grpc::CallbackServerContext* context,
      const fapo::v1::HeartbeatRequest* request,
      fapo::v1::HeartbeatResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      heartbeats_.push_back(*request);
      response->set_registered(workers_.count(request->worker_id()) > 0);
      response->set_job_state(job_state_);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  void Forget(const std::string& worker_id) {
    absl::MutexLock lock(&mu_);
    workers_.erase(worker_id);
  }
  void SetJobState(fapo::v1::JobState state) {
    absl::MutexLock lock(&mu_);
    job_state_ = state;
  }

  // Every RegisterWorker received, in order.
  std::vector<fapo::v1::WorkerInfo> registrations() const {
    absl::MutexLock lock(&mu_);
    return registrations_;
  }
  // Every Heartbeat received, in order.
  std::vector<fapo::v1::HeartbeatRequest> heartbeats() const {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  bool knows(const std::string& worker_id) const {
    absl::MutexLock lock(&mu_);
    return workers_.count(worker_id) > 0;
  }

 private:
  const absl::Duration heartbeat_interval_;
  mutable absl::Mutex mu_;
  std::map<std::string, fapo::v1::WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<fapo::v1::WorkerInfo> registrations_ ABSL_GUARDED_BY(mu_);
  std::vector<fapo::v1::HeartbeatRequest> heartbeats_ ABSL_GUARDED_BY(mu_);
  fapo::v1::JobState job_state_ ABSL_GUARDED_BY(mu_) =
      fapo::v1::JOB_STATE_RUNNING;
};

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_FAKE_SCHEDULER_SERVICE_H_
