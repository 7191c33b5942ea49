// SchedulerService: the thin gRPC adapter of fapo.v1.Scheduler over the
// Scheduler logic (docs/style.md, practice 5). Each handler unpacks the request,
// calls the logic and converts the Status (services/rpc/status_conversion.h);
// none blocks (the logic's methods only take short locks), so they run on
// gRPC's callback threads.
#ifndef FAPO_SCHEDULER_SCHEDULER_SERVICE_H_
#define FAPO_SCHEDULER_SCHEDULER_SERVICE_H_

#include "fapo/v1/scheduler.grpc.pb.h"
#include "scheduler/scheduler.h"

namespace fapo::scheduler {

class SchedulerService final : public v1::Scheduler::CallbackService {
 public:
  // `scheduler` is not owned and must outlive the service.
  explicit SchedulerService(Scheduler* scheduler) : scheduler_(scheduler) {}
  SchedulerService(const SchedulerService&) = delete;
  SchedulerService& operator=(const SchedulerService&) = delete;

  grpc::ServerUnaryReactor* RegisterWorker(
      grpc::CallbackServerContext* context,
      const v1::RegisterWorkerRequest* request,
      v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* GetJobStatus(
      grpc::CallbackServerContext* context,
      const v1::GetJobStatusRequest* request,
      v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* StopJob(grpc::CallbackServerContext* context,
                                    const v1::StopJobRequest* request,
                                    v1::StopJobResponse* response) override;

 private:
  Scheduler* const scheduler_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_SCHEDULER_SERVICE_H_
