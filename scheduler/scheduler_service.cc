#include "scheduler/scheduler_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/rpc/status_conversion.h"

namespace fapo::scheduler {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(rpc::ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* SchedulerService::RegisterWorker(
    grpc::CallbackServerContext* context,
    const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  absl::StatusOr<v1::RegisterWorkerResponse> registered =
      scheduler_->RegisterWorker(request->worker());
  if (registered.ok()) *response = *std::move(registered);
  return Finish(context, registered.status());
}

grpc::ServerUnaryReactor* SchedulerService::Heartbeat(
    grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  if (request->worker_id().empty()) {
    return Finish(context, absl::InvalidArgumentError(
                               "HeartbeatRequest.worker_id is empty"));
  }
  *response = scheduler_->Heartbeat(*request);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* SchedulerService::GetJobStatus(
    grpc::CallbackServerContext* context, const v1::GetJobStatusRequest*,
    v1::JobStatus* response) {
  *response = scheduler_->GetJobStatus();
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* SchedulerService::StopJob(
    grpc::CallbackServerContext* context, const v1::StopJobRequest* request,
    v1::StopJobResponse* response) {
  response->set_job_state(scheduler_->StopJob(
      request->reason().empty() ? "StopJob RPC" : request->reason()));
  return Finish(context, absl::OkStatus());
}

}  // namespace fapo::scheduler
