#include "scheduler/clients/grpc_genrm_client.h"

#include <grpcpp/client_context.h>

#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "services/rpc/security.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

// Everything one call needs until its callback has run: gRPC reads the
// context, request and response after Score returns. Holds no channel
// (NOTE [grpc channel lifetime]).
struct GrpcGenrmCallState {
  GrpcGenrmClient* client = nullptr;
  grpc::ClientContext context;
  v1::ScoreRequest request;
  v1::ScoreResponse response;
  GenrmClient::Done done;
};

namespace {

using CallState = GrpcGenrmCallState;

class GrpcCall final : public GenrmCall {
 public:
  explicit GrpcCall(std::shared_ptr<CallState> state)
      : state_(std::move(state)) {}
  // TryCancel is a no-op once the call has finished.
  void Cancel() override { state_->context.TryCancel(); }

 private:
  std::shared_ptr<CallState> state_;
};

// For a call that never reached gRPC: `done` has already run.
class FinishedCall final : public GenrmCall {
 public:
  void Cancel() override {}
};

}  // namespace

GrpcGenrmClient::GrpcGenrmClient(GrpcGenrmClientOptions options)
    : options_(std::move(options)), stubs_(options_.channel) {}

absl::StatusOr<std::unique_ptr<GrpcGenrmClient>> GrpcGenrmClient::Create(
    GrpcGenrmClientOptions options) {
  // Fail at start-up, not on the first Score, when credentials are broken.
  RETURN_IF_ERROR(
      rpc::MakeChannelCredentials(options.channel.security).status());
  return std::unique_ptr<GrpcGenrmClient>(
      new GrpcGenrmClient(std::move(options)));
}

GrpcGenrmClient::~GrpcGenrmClient() {
  std::vector<std::shared_ptr<CallState>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [raw, state] : live_) live.push_back(state);
  }
  for (const std::shared_ptr<CallState>& state : live) {
    state->context.TryCancel();
  }
  live.clear();
  absl::MutexLock lock(&mu_);
  auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return live_.empty();
  };
  mu_.Await(absl::Condition(&finished));
}

void GrpcGenrmClient::CallFinished(GrpcGenrmCallState* state) {
  absl::MutexLock lock(&mu_);
  live_.erase(state);
}

std::unique_ptr<GenrmCall> GrpcGenrmClient::Score(
    const GenrmServer& server, const v1::ScoreRequest& request,
    absl::Time deadline, Done done) {
  absl::StatusOr<std::shared_ptr<v1::GenRM::Stub>> stub =
      stubs_.Get(server.address);
  if (!stub.ok()) {
    done(Annotate(stub.status(), "GenRM server " + server.worker_id + " at " +
                                     server.address));
    return std::make_unique<FinishedCall>();
  }
  auto state = std::make_shared<CallState>();
  state->client = this;
  state->request = request;
  state->done = std::move(done);
  state->context.set_deadline(absl::ToChronoTime(deadline));
  CallState* raw = state.get();
  {
    absl::MutexLock lock(&mu_);
    live_.emplace(raw, state);
  }
  (*stub)->async()->Score(
      &raw->context, &raw->request, &raw->response,
      [state](grpc::Status status) {
        // Moved out first: `done` may drop the last handle on the call.
        GenrmClient::Done done = std::move(state->done);
        if (status.ok()) {
          done(std::move(*state->response.mutable_verdict()));
        } else {
          done(rpc::FromGrpcStatus(status));
        }
        // Last touch of the client: its destructor may return after this.
        state->client->CallFinished(state.get());
      });
  return std::make_unique<GrpcCall>(std::move(state));
}

}  // namespace fapo::scheduler
