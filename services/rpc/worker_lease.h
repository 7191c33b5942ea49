// WorkerLease: a worker's registration with the scheduler (fapo.v1.Scheduler
// RegisterWorker + Heartbeat), kept alive on a thread of its own.
//
//   - Start registers (RegisterWorker, deadline register_timeout) and then
//     heartbeats every heartbeat_interval the scheduler returned (the
//     default_heartbeat_interval when it returns none), reporting in_flight()
//     and policy_version().
//   - Heartbeat answered registered=false (the scheduler declared the worker
//     dead, or restarted): registers again at once.
//   - The scheduler unreachable (a failed RegisterWorker or Heartbeat):
//     registration is retried with exponential backoff (initial_backoff,
//     doubling, at most max_backoff), each attempt on a fresh channel so
//     that gRPC's own reconnect backoff (up to 2 minutes) does not delay
//     the return. One WARNING per failure streak, one INFO when it ends.
//   - A heartbeat response whose job_state is SUCCEEDED or FAILED:
//     on_job_finished(state) runs once and the lease stops heartbeating.
//   - No successful RPC for lost_after (default 60 s): on_lost(last error)
//     runs once and the lease stops, so the process can exit loudly rather
//     than serve a job that is gone.
//
// Stop() returns promptly (it cancels the RPC in flight and wakes the
// thread): it never waits for a deadline or a backoff.
//
// Callbacks (in_flight, policy_version, on_job_finished, on_lost) run on the
// lease's thread, without any lock of the lease held. They may call Stop()
// (it then does not wait for the thread); they must not destroy the lease.
//
// Thread-safe. Copying deleted. The destructor calls Stop().
#ifndef FAPO_SERVICES_RPC_WORKER_LEASE_H_
#define FAPO_SERVICES_RPC_WORKER_LEASE_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/scheduler.grpc.pb.h"
#include "services/rpc/channel.h"

namespace fapo::rpc {

struct WorkerLeaseOptions {
  // The scheduler, "host:port". Required.
  std::string scheduler_address;
  // Credentials and retries of the channel to it (the job's security, see
  // services/runtime/spec_bridge.h). Default: plaintext.
  ChannelOptions channel;
  // What is registered. worker_id, role and address are required; capacity
  // >= 0. policy_version is overridden by policy_version() when that is set.
  fapo::v1::WorkerInfo worker;

  // Deadline of RegisterWorker. Default 5 s (the proto's client default).
  absl::Duration register_timeout = absl::Seconds(5);
  // Deadline of Heartbeat; at most the heartbeat interval is used. Default
  // 1 s.
  absl::Duration heartbeat_timeout = absl::Seconds(1);
  // Heartbeat period when the scheduler's response names none. Default 1 s.
  absl::Duration default_heartbeat_interval = absl::Seconds(1);
  // Registration retry backoff. Defaults 100 ms, doubling up to 5 s.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Without a successful RPC this long, on_lost runs. Default 60 s; > 0.
  absl::Duration lost_after = absl::Seconds(60);

  // Reported in each heartbeat. Default (null): 0.
  std::function<int()> in_flight;
  // Reported in registrations and heartbeats. Default (null):
  // worker.policy_version.
  std::function<int64_t()> policy_version;
  // The job reached SUCCEEDED or FAILED. Called at most once. May be null.
  std::function<void(fapo::v1::JobState)> on_job_finished;
  // The scheduler was unreachable for lost_after; the argument is the last
  // RPC error. Called at most once. May be null.
  std::function<void(const absl::Status&)> on_lost;
};

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateWorkerLeaseOptions(const WorkerLeaseOptions& options);

class WorkerLease {
 public:
  // Validates the options, checks that a channel can be built (credentials
  // files readable) and starts the lease thread; the first registration
  // happens on that thread, so Start does not wait for the scheduler.
  static absl::StatusOr<std::unique_ptr<WorkerLease>> Start(
      WorkerLeaseOptions options);

  ~WorkerLease();
  WorkerLease(const WorkerLease&) = delete;
  WorkerLease& operator=(const WorkerLease&) = delete;

  // Stops heartbeating (idempotent, prompt; see the file comment). The
  // scheduler is not told: it declares the worker dead after its
  // worker_timeout, or the job is over anyway.
  void Stop();

  // Whether the last RegisterWorker/Heartbeat left the worker registered.
  bool registered() const;
  // Successful RegisterWorker calls and Heartbeat calls so far.
  int64_t registrations() const;
  int64_t heartbeats() const;
  // The interval the scheduler asked for (0 before the first registration).
  absl::Duration heartbeat_interval() const;

 private:
  explicit WorkerLease(WorkerLeaseOptions options);

  void Run();
  // One RPC each; run on the lease thread.
  absl::Status Register();
  absl::Status Heartbeat(fapo::v1::HeartbeatResponse* response);
  // Runs `call` with a context whose deadline is now + timeout, exposed to
  // Stop() for cancellation. Cancelled when stopping.
  template <typename Call>
  grpc::Status CallWithContext(absl::Duration timeout, Call call);
  // Sleeps up to `duration`; false when Stop() was called.
  bool SleepUnlessStopped(absl::Duration duration);
  bool stopping() const;
  int64_t CurrentPolicyVersion() const;

  const WorkerLeaseOptions options_;

  // Lease thread only.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<fapo::v1::Scheduler::Stub> stub_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* current_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  int64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;  // last: started once everything above exists
};

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_WORKER_LEASE_H_
