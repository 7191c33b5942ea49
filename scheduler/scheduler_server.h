// SchedulerServer: what fapo-scheduler runs (a runtime::ServiceInstance). It
// wires the Scheduler logic to the world:
//
//   GrpcGenrmClient    -> the GenRM servers that register (dispatcher)
//   GrpcRolloutClient  -> the rollout workers that register (RolloutDriver)
//   SchedulerService   <- RegisterWorker, Heartbeat, GetJobStatus, StopJob
//   GrpcTrainerClient  -> the trainer that registers (TrainerDriver: train
//                         steps, weight sync to rollout workers,
//                         checkpoints, metrics.jsonl)
//   SamplesWriter      <- every trajectory trained or dropped, into
//                         <job.output_dir>/samples.jsonl (a
//                         job.sample_fraction of the groups)
//   a ticker thread    -> Scheduler::Tick every heartbeat interval; once the
//                         job has SUCCEEDED or FAILED it lets the workers
//                         see it for two heartbeat intervals, then stops the
//                         process (exit 1 when the job failed, naming why).
//
// Everything is built from the job spec; a bad spec or an unloadable dataset
// is an error from Create, before the server binds its port.
//
// Resume: with `trainer_address` (fapo-scheduler --trainer HOST:PORT),
// Create asks that trainer what it resumed from (GetResumeState, retried
// for up to 60 s while it starts) and, when it restored a checkpoint,
// continues from the scheduler snapshot stored in it (NOTE [scheduler
// restore] in scheduler_snapshot.cc).
#ifndef FAPO_SCHEDULER_SCHEDULER_SERVER_H_
#define FAPO_SCHEDULER_SCHEDULER_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/clients/grpc_genrm_client.h"
#include "scheduler/clients/grpc_rollout_client.h"
#include "scheduler/clients/grpc_trainer_client.h"
#include "scheduler/rollout_driver.h"
#include "scheduler/samples_writer.h"
#include "scheduler/scheduler.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/trainer_driver.h"
#include "services/runtime/service_instance.h"

namespace fapo::scheduler {

class SchedulerServer final : public runtime::ServiceInstance {
 public:
  static absl::StatusOr<std::unique_ptr<runtime::ServiceInstance>> Create(
      const runtime::ServiceContext& context,
      const std::string& trainer_address = "");

  ~SchedulerServer() override;

  std::vector<rpc::RegisteredService> services() override;
  absl::Status OnServing(const std::string& advertised_address) override;
  void OnStopping() override;

 private:
  SchedulerServer() = default;
  void TickLoop();

  std::unique_ptr<GrpcGenrmClient> genrm_client_;
  std::unique_ptr<GrpcRolloutClient> rollout_client_;
  std::unique_ptr<GrpcTrainerClient> trainer_client_;
  // Before scheduler_: the scheduler reports to it until destroyed. Null
  // without job.output_dir or with job.sample_fraction 0.
  std::unique_ptr<SamplesWriter> samples_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<SchedulerService> service_;
  std::unique_ptr<RolloutDriver> driver_;
  std::unique_ptr<TrainerDriver> trainer_driver_;
  absl::Duration tick_interval_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_SCHEDULER_SERVER_H_
