// scheduler/clients/grpc_rollout_client.h: the real RolloutClient, over
// fapo.v1.Rollout/Generate with the gRPC callback API (a ClientReadReactor
// per stream). One channel per worker address, cached. Callbacks run on
// gRPC's callback threads; each stream keeps what it needs alive until its
// on_done has run; the client's destructor waits for them. See
// rollout_client.h.
#ifndef FAPO_SCHEDULER_CLIENTS_GRPC_ROLLOUT_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_GRPC_ROLLOUT_CLIENT_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fapo/v1/rollout.grpc.pb.h"
#include "scheduler/clients/rollout_client.h"
#include "services/rpc/channel.h"
#include "services/rpc/stub_cache.h"

namespace fapo::scheduler {

struct GrpcRolloutClientOptions {
  // Security (security.* in the job spec). Generate is never retried by
  // gRPC (it is not idempotent): the scheduler regenerates the group.
  rpc::ChannelOptions channel;
};

struct StreamCount;

class GrpcRolloutClient final : public RolloutClient {
 public:
  // Waits for every stream's on_done (callers cancel them first; the
  // RolloutDriver's Shutdown does).
  ~GrpcRolloutClient() override;

  // Errors: the credentials cannot be made (naming the file).
  static absl::StatusOr<std::unique_ptr<GrpcRolloutClient>> Create(
      GrpcRolloutClientOptions options);

  GrpcRolloutClient(const GrpcRolloutClient&) = delete;
  GrpcRolloutClient& operator=(const GrpcRolloutClient&) = delete;

  std::unique_ptr<RolloutStream> Generate(const RolloutWorker& worker,
                                          const v1::GenerateRequest& request,
                                          absl::Time deadline,
                                          OnTrajectory on_trajectory,
                                          OnDone on_done) override;

 private:
  explicit GrpcRolloutClient(GrpcRolloutClientOptions options);

  const GrpcRolloutClientOptions options_;
  const std::shared_ptr<StreamCount> count_;
  rpc::StubCache<v1::Rollout> stubs_;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_GRPC_ROLLOUT_CLIENT_H_
