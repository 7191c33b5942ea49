// TrainerServer: what fapo-trainer runs (a runtime::WorkerService). A
// Trainer built from the job spec (policy.model_dir, or the newest valid
// checkpoint under <job.output_dir>/checkpoints when trainer.resume) and,
// on rank 0, the Trainer gRPC service (trainer_service.h) over it,
// registered with the scheduler as role TRAINER with capacity 1, reporting
// the policy version it serves.
//
// The rank topology (NOTE [trainer ranks] in trainer/comm/rank_group.h):
// with trainer.ranks N > 1, N processes are started alike, with ranks
// 0..N-1 and the same rendezvous HOST:PORT (where rank 0 hosts the c10d
// store). Create joins the group before it returns (the program reports
// ready only after it). Rank 0 leads: it serves the Trainer service and
// shards each step over the group (RankGroupLeader). Ranks > 0 follow:
// they serve no gRPC service of their own (health and /metrics only), do
// not register, train what rank 0 sends on a thread started by OnServing,
// ask the program to stop (exit 0) when rank 0 stops, and exit 1 when the
// group breaks (rank 0 does too).
#ifndef FAPO_TRAINER_TRAINER_SERVER_H_
#define FAPO_TRAINER_TRAINER_SERVER_H_

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/runtime/service_instance.h"
#include "trainer/comm/communicator.h"
#include "trainer/comm/gradient_sync.h"
#include "trainer/comm/rank_group.h"
#include "trainer/trainer.h"
#include "trainer/trainer_service.h"

namespace fapo::trainer {

class TrainerServer final : public runtime::WorkerService {
 public:
  // `address`: this process's rank and the group's rendezvous (checked
  // against trainer.ranks by ValidateRankAddress). `keep_alive_interval`:
  // how long rank 0 of several may be idle before it pings the others
  // (NOTE [rank keep-alive]). Blocks until every rank has joined or
  // trainer.collective_timeout_ms passed. Errors: the address's, the
  // group's, the Trainer's (a bad model or checkpoint).
  static absl::StatusOr<std::unique_ptr<TrainerServer>> Create(
      const runtime::ServiceContext& context, const RankAddress& address,
      absl::Duration keep_alive_interval = absl::Seconds(2));

  ~TrainerServer() override;

  std::vector<rpc::RegisteredService> services() override;

  int rank() const { return rank_; }
  // Rank 0's service; null on ranks > 0.
  TrainerService* service() { return service_.get(); }

 private:
  explicit TrainerServer(const runtime::ServiceContext& context)
      : WorkerService(context) {}

  std::optional<runtime::WorkerRegistration> Registration() override;
  absl::Status StartServing() override;
  void Drain() override;
  void RunFollower();

  int rank_ = 0;
  std::atomic<bool> stopping_{false};
  // Destroyed in reverse order: the follower thread is joined (in the
  // destructor), then the service (which finishes the steps it has queued,
  // over the leader), the follower's trainer, the leader (which tells the
  // other ranks to stop), and the communicator last.
  std::unique_ptr<Communicator> communicator_;  // ranks > 1
  std::unique_ptr<BucketedGradientSync> gradient_sync_;
  std::unique_ptr<RankGroupLeader> leader_;  // rank 0 of > 1
  std::unique_ptr<Trainer> trainer_;         // ranks > 0
  std::unique_ptr<RankGroupFollower> follower_;
  std::unique_ptr<TrainerService> service_;  // rank 0
  std::thread follower_thread_;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_TRAINER_SERVER_H_
