#include "scheduler/clients/grpc_rollout_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <utility>

#include "absl/time/clock.h"
#include "services/rpc/security.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

// Streams not yet done, so the client's destructor can wait for them: the
// last reference to a channel must not be dropped on a gRPC callback thread
// (grpc#37858).
struct StreamCount {
  absl::Mutex mu;
  int live ABSL_GUARDED_BY(mu) = 0;
};

namespace {

// One Generate stream, owned jointly by its handle (GrpcStream) and by
// itself (`self_`, released at the end of OnDone), so that Cancel through a
// handle stays safe after the stream ended.
class StreamReactor final : public grpc::ClientReadReactor<v1::Trajectory> {
 public:
  StreamReactor(std::shared_ptr<v1::Rollout::Stub> stub,
                std::shared_ptr<StreamCount> count, v1::GenerateRequest request,
                absl::Time deadline, RolloutClient::OnTrajectory on_trajectory,
                RolloutClient::OnDone on_done)
      : stub_(std::move(stub)),
        count_(std::move(count)),
        request_(std::move(request)),
        on_trajectory_(std::move(on_trajectory)),
        on_done_(std::move(on_done)) {
    context_.set_deadline(absl::ToChronoTime(deadline));
  }

  void Start() {
    stub_->async()->Generate(&context_, &request_, this);
    StartRead(&trajectory_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    on_trajectory_(std::move(trajectory_));
    trajectory_.Clear();
    StartRead(&trajectory_);
  }

  void OnDone(const grpc::Status& status) override {
    RolloutClient::OnDone on_done = std::move(on_done_);
    absl::Status result = rpc::FromGrpcStatus(status);
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    on_done(std::move(result));
    stub_.reset();  // the client still holds the stub: not the last ref
    {
      absl::MutexLock lock(&count_->mu);
      --count_->live;
    }
    Release();
  }

  void Cancel() {
    absl::MutexLock lock(&mu_);
    if (!done_) context_.TryCancel();
  }

  // The handle and the reactor share ownership of the reactor.
  void Retain(std::shared_ptr<StreamReactor> self) { self_ = std::move(self); }

 private:
  void Release() {
    std::shared_ptr<StreamReactor> self = std::move(self_);
    // `self` may be the last reference: the reactor is deleted here.
  }

  std::shared_ptr<v1::Rollout::Stub> stub_;
  std::shared_ptr<StreamCount> count_;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::Trajectory trajectory_;
  RolloutClient::OnTrajectory on_trajectory_;
  RolloutClient::OnDone on_done_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<StreamReactor> self_;
};

class GrpcStream final : public RolloutStream {
 public:
  explicit GrpcStream(std::shared_ptr<StreamReactor> reactor)
      : reactor_(std::move(reactor)) {}
  void Cancel() override { reactor_->Cancel(); }

 private:
  std::shared_ptr<StreamReactor> reactor_;
};

class FinishedStream final : public RolloutStream {
 public:
  void Cancel() override {}
};

}  // namespace

GrpcRolloutClient::GrpcRolloutClient(GrpcRolloutClientOptions options)
    : options_(std::move(options)),
      count_(std::make_shared<StreamCount>()),
      stubs_(options_.channel) {}

// Stubs (and their channels) die with the client, after every stream.
GrpcRolloutClient::~GrpcRolloutClient() {
  absl::MutexLock lock(&count_->mu);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(count_->mu) {
    return count_->live == 0;
  };
  count_->mu.Await(absl::Condition(&done));
}

absl::StatusOr<std::unique_ptr<GrpcRolloutClient>> GrpcRolloutClient::Create(
    GrpcRolloutClientOptions options) {
  RETURN_IF_ERROR(
      rpc::MakeChannelCredentials(options.channel.security).status());
  return std::unique_ptr<GrpcRolloutClient>(
      new GrpcRolloutClient(std::move(options)));
}

std::unique_ptr<RolloutStream> GrpcRolloutClient::Generate(
    const RolloutWorker& worker, const v1::GenerateRequest& request,
    absl::Time deadline, OnTrajectory on_trajectory, OnDone on_done) {
  absl::StatusOr<std::shared_ptr<v1::Rollout::Stub>> stub =
      stubs_.Get(worker.address);
  if (!stub.ok()) {
    on_done(Annotate(stub.status(), "rollout worker " + worker.worker_id +
                                        " at " + worker.address));
    return std::make_unique<FinishedStream>();
  }
  {
    absl::MutexLock lock(&count_->mu);
    ++count_->live;
  }
  auto reactor = std::make_shared<StreamReactor>(
      *std::move(stub), count_, request, deadline, std::move(on_trajectory),
      std::move(on_done));
  reactor->Retain(reactor);
  reactor->Start();
  return std::make_unique<GrpcStream>(std::move(reactor));
}

}  // namespace fapo::scheduler
