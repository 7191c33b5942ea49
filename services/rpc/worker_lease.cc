#include "services/rpc/worker_lease.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/logging/log.h"
#include "services/rpc/status_conversion.h"

namespace fapo::rpc {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) +
         absl::Nanoseconds(duration.nanos());
}

bool IsFinal(fapo::v1::JobState state) {
  return state == fapo::v1::JOB_STATE_SUCCEEDED ||
         state == fapo::v1::JOB_STATE_FAILED;
}

}  // namespace

absl::Status ValidateWorkerLeaseOptions(const WorkerLeaseOptions& options) {
  auto invalid = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("WorkerLease: ", what));
  };
  if (options.scheduler_address.empty()) {
    return invalid("scheduler_address is empty");
  }
  if (options.worker.worker_id().empty()) return invalid("worker_id is empty");
  if (options.worker.role() == fapo::v1::WORKER_ROLE_UNSPECIFIED) {
    return invalid("role is unspecified");
  }
  if (options.worker.address().empty()) return invalid("address is empty");
  if (options.worker.capacity() < 0) return invalid("capacity is negative");
  if (options.register_timeout <= absl::ZeroDuration()) {
    return invalid("register_timeout must be > 0");
  }
  if (options.heartbeat_timeout <= absl::ZeroDuration()) {
    return invalid("heartbeat_timeout must be > 0");
  }
  if (options.default_heartbeat_interval <= absl::ZeroDuration()) {
    return invalid("default_heartbeat_interval must be > 0");
  }
  if (options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return invalid("backoff needs 0 < initial_backoff <= max_backoff");
  }
  if (options.lost_after <= absl::ZeroDuration()) {
    return invalid("lost_after must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WorkerLease>> WorkerLease::Start(
    WorkerLeaseOptions options) {
  absl::Status valid = ValidateWorkerLeaseOptions(options);
  if (!valid.ok()) return valid;
  // Fail now, not on the thread, for unreadable credentials.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(options.scheduler_address, options.channel);
  if (!channel.ok()) return channel.status();
  std::unique_ptr<WorkerLease> lease(new WorkerLease(std::move(options)));
  lease->channel_ = *std::move(channel);
  lease->stub_ = fapo::v1::Scheduler::NewStub(lease->channel_);
  lease->thread_ = std::thread([lease = lease.get()] { lease->Run(); });
  return lease;
}

WorkerLease::WorkerLease(WorkerLeaseOptions options)
    : options_(std::move(options)) {}

WorkerLease::~WorkerLease() {
  Stop();
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // contract violation; do not deadlock on it
    } else {
      thread_.join();
    }
  }
}

void WorkerLease::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (current_call_ != nullptr) current_call_->TryCancel();
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

bool WorkerLease::registered() const {
  absl::MutexLock lock(&mu_);
  return registered_;
}
int64_t WorkerLease::registrations() const {
  absl::MutexLock lock(&mu_);
  return registrations_;
}
int64_t WorkerLease::heartbeats() const {
  absl::MutexLock lock(&mu_);
  return heartbeats_;
}
absl::Duration WorkerLease::heartbeat_interval() const {
  absl::MutexLock lock(&mu_);
  return heartbeat_interval_;
}

bool WorkerLease::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool WorkerLease::SleepUnlessStopped(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), duration);
  return !stopping_;
}

int64_t WorkerLease::CurrentPolicyVersion() const {
  return options_.policy_version ? options_.policy_version()
                                 : options_.worker.policy_version();
}

template <typename Call>
grpc::Status WorkerLease::CallWithContext(absl::Duration timeout, Call call) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(timeout);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "lease stopping");
    }
    current_call_ = context.get();
  }
  grpc::Status status = call(context.get());
  absl::MutexLock lock(&mu_);
  current_call_ = nullptr;
  return status;
}

absl::Status WorkerLease::Register() {
  fapo::v1::RegisterWorkerRequest request;
  *request.mutable_worker() = options_.worker;
  request.mutable_worker()->set_policy_version(CurrentPolicyVersion());
  fapo::v1::RegisterWorkerResponse response;
  grpc::Status status = CallWithContext(
      options_.register_timeout, [&](grpc::ClientContext* context) {
        return stub_->RegisterWorker(context, request, &response);
      });
  if (!status.ok()) return FromGrpcStatus(status);
  absl::Duration interval = FromProto(response.heartbeat_interval());
  if (interval <= absl::ZeroDuration()) {
    interval = options_.default_heartbeat_interval;
  }
  absl::MutexLock lock(&mu_);
  registered_ = true;
  ++registrations_;
  heartbeat_interval_ = interval;
  return absl::OkStatus();
}

absl::Status WorkerLease::Heartbeat(fapo::v1::HeartbeatResponse* response) {
  fapo::v1::HeartbeatRequest request;
  request.set_worker_id(options_.worker.worker_id());
  request.set_in_flight(options_.in_flight ? options_.in_flight() : 0);
  request.set_policy_version(CurrentPolicyVersion());
  const absl::Duration timeout =
      std::min(options_.heartbeat_timeout, heartbeat_interval());
  grpc::Status status =
      CallWithContext(timeout, [&](grpc::ClientContext* context) {
        return stub_->Heartbeat(context, request, response);
      });
  if (!status.ok()) return FromGrpcStatus(status);
  absl::MutexLock lock(&mu_);
  ++heartbeats_;
  registered_ = response->registered();
  return absl::OkStatus();
}

// NOTE [lease loop]: one thread alternates between two modes. Registering:
// RegisterWorker until it succeeds, with backoff, each retry on a fresh
// channel (destroying the old one drops its subchannel and with it gRPC's
// reconnect backoff, which grows to 2 minutes and would otherwise hold the
// worker away from a scheduler that is back). Heartbeating: one Heartbeat
// per interval; any failure, or registered=false, goes back to registering
// (RegisterWorker is idempotent, and a scheduler that restarted needs it).
void WorkerLease::Run() {
  const std::string& scheduler = options_.scheduler_address;
  bool need_register = true;
  bool fresh_channel = false;  // the first attempt uses Start's channel
  absl::Duration backoff = options_.initial_backoff;
  absl::Time last_contact = absl::Now();
  absl::Status last_error;
  bool failing = false;  // in a failure streak (logged once)

  auto failed = [&](const absl::Status& status, absl::string_view what) {
    last_error = status;
    {
      absl::MutexLock lock(&mu_);
      registered_ = false;
    }
    if (!failing) {
      FAPO_LOG(WARNING) << what << " the scheduler at " << scheduler
                        << " failed: " << status
                        << "; retrying until it answers (giving up after "
                        << absl::FormatDuration(options_.lost_after) << ")";
      failing = true;
    }
    need_register = true;
    fresh_channel = true;
  };
  auto succeeded = [&] {
    last_contact = absl::Now();
    if (failing) {
      FAPO_LOG(INFO) << "reached the scheduler at " << scheduler << " again";
      failing = false;
    }
  };

  while (!stopping()) {
    if (need_register) {
      absl::Status status;
      if (fresh_channel) {
        stub_.reset();
        channel_.reset();
        auto channel = MakeChannel(scheduler, options_.channel);
        if (channel.ok()) {
          channel_ = *std::move(channel);
          stub_ = fapo::v1::Scheduler::NewStub(channel_);
          fresh_channel = false;
        } else {
          status = channel.status();
        }
      }
      if (status.ok()) status = Register();
      if (stopping()) break;
      if (status.ok()) {
        succeeded();
        need_register = false;
        backoff = options_.initial_backoff;
        FAPO_LOG(INFO) << "registered with the scheduler at " << scheduler
                       << " as " << options_.worker.worker_id() << " ("
                       << fapo::v1::WorkerRole_Name(options_.worker.role())
                       << ", " << options_.worker.address()
                       << "), heartbeat every "
                       << absl::FormatDuration(heartbeat_interval());
        continue;
      }
      failed(status, "registering with");
      if (absl::Now() - last_contact >= options_.lost_after) break;
      if (!SleepUnlessStopped(backoff)) break;
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }

    if (!SleepUnlessStopped(heartbeat_interval())) break;
    fapo::v1::HeartbeatResponse response;
    absl::Status status = Heartbeat(&response);
    if (stopping()) break;
    if (!status.ok()) {
      failed(status, "a heartbeat to");
      if (absl::Now() - last_contact >= options_.lost_after) break;
      continue;
    }
    succeeded();
    if (IsFinal(response.job_state())) {
      FAPO_LOG(INFO) << "the job is "
                     << fapo::v1::JobState_Name(response.job_state())
                     << "; the lease ends";
      if (options_.on_job_finished) {
        options_.on_job_finished(response.job_state());
      }
      return;
    }
    if (!response.registered()) {
      FAPO_LOG(INFO) << "the scheduler does not know this worker; "
                        "registering again";
      need_register = true;
    }
  }
  if (stopping()) return;
  FAPO_LOG(ERROR) << "lost the scheduler at " << scheduler << ": no answer for "
                  << absl::FormatDuration(absl::Now() - last_contact)
                  << " (last error: " << last_error << ")";
  if (options_.on_lost) options_.on_lost(last_error);
}

}  // namespace fapo::rpc
