// fapo-trainer: the Trainer service (trainer/trainer_service.h) over a
// Trainer built from the job spec (policy.model_dir, or the newest valid
// checkpoint under <job.output_dir>/checkpoints when trainer.resume); with
// --scheduler, a WorkerLease (role TRAINER, capacity 1, reporting the
// policy version it serves) that stops the process cleanly once the job is
// over, and with exit code 1 when the scheduler is lost.
//
// Data parallelism (NOTE [trainer ranks] in trainer/rank_group.h): with
// trainer.ranks N > 1, N processes are started alike, with --rank 0..N-1
// and the same --rendezvous HOST:PORT (where rank 0 hosts the c10d store).
// Each joins the group before it reports ready (--ready-file). Rank 0
// serves the Trainer service and registers with --scheduler; ranks > 0
// serve health and /metrics only, train what rank 0 sends, exit 0 when
// rank 0 stops, and exit 1 when the group breaks (rank 0 does too).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "services/cli/service_main.h"

#ifdef FAPO_HAVE_TRAINER
#include "services/cli/spec_bridge.h"
#include "services/logging/log.h"
#include "services/rpc/worker_lease.h"
#include "services/status/status_macros.h"
#include "trainer/communicator.h"
#include "trainer/rank_group.h"
#include "trainer/trainer.h"
#include "trainer/trainer_service.h"

namespace fapo::cli {
namespace {

class TrainerInstance : public ServiceInstance {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceInstance>> Create(
      const ServiceContext& context, const trainer::RankAddress& address,
      absl::Duration keep_alive_interval) {
    const config::JobSpec& spec = *context.spec;
    std::unique_ptr<TrainerInstance> instance(new TrainerInstance(context));
    const int ranks = spec.trainer.ranks;
    RETURN_IF_ERROR(trainer::ValidateRankAddress(spec, address));
    instance->rank_ = address.rank;
    // The group before the Trainer: NCCL's communicator selects this rank's
    // GPU (rank % visible devices), which policy.device cuda then means;
    // and the Trainer takes the gradient sync at creation.
    if (ranks > 1) {
      FAPO_LOG(INFO) << "trainer rank " << address.rank << "/" << ranks
                     << ": joining the group at " << address.rendezvous;
      ASSIGN_OR_RETURN(instance->communicator_,
                       trainer::ConnectTrainerRanks(spec, address));
      instance->gradient_sync_ =
          std::make_unique<trainer::BucketedGradientSync>(
              instance->communicator_.get());
    }
    ASSIGN_OR_RETURN(
        std::unique_ptr<trainer::Trainer> trainer,
        trainer::Trainer::Create(spec, instance->gradient_sync_.get()));
    const trainer::ResumeInfo& resumed = trainer->resume_info();
    if (resumed.checkpoint_path.empty()) {
      FAPO_LOG(INFO) << "starting fresh at step 0";
    } else {
      FAPO_LOG(INFO) << "resumed at step " << resumed.step << " from "
                     << resumed.checkpoint_path;
    }
    if (address.rank > 0) {
      // Joined (step and weights agree with rank 0's) before it is ready.
      ASSIGN_OR_RETURN(instance->follower_,
                       trainer::RankGroupFollower::Create(
                           *trainer, instance->communicator_.get()));
      instance->trainer_ = std::move(trainer);
      FAPO_LOG(INFO) << "trainer rank " << address.rank << "/" << ranks
                     << ": joined; training what rank 0 sends";
      return std::unique_ptr<ServiceInstance>(std::move(instance));
    }
    if (ranks > 1) {
      trainer::RankGroupOptions options;
      options.keep_alive_interval = keep_alive_interval;
      // The step that found it has failed with the reason; nothing can be
      // trained any more, so stop (exit 1) rather than serve errors.
      options.on_group_lost = [](const absl::Status&) { RequestShutdown(1); };
      ASSIGN_OR_RETURN(
          instance->leader_,
          trainer::RankGroupLeader::Create(
              *trainer, instance->communicator_.get(), std::move(options)));
      FAPO_LOG(INFO) << "trainer rank 0/" << ranks
                     << ": all ranks joined; serving";
    }
    ASSIGN_OR_RETURN(
        instance->service_,
        trainer::TrainerService::Create(std::move(trainer), context.registry,
                                        instance->leader_.get()));
    return std::unique_ptr<ServiceInstance>(std::move(instance));
  }

  ~TrainerInstance() override {
    if (follower_thread_.joinable()) follower_thread_.join();
  }

  std::vector<rpc::RegisteredService> services() override {
    if (service_ == nullptr) return {};  // ranks > 0: health and /metrics
    return {{service_.get(), fapo::v1::Trainer::service_full_name()}};
  }

  absl::Status OnServing(const std::string& advertised_address) override {
    if (follower_ != nullptr) {
      if (!scheduler_address_.empty()) {
        FAPO_LOG(INFO) << "--scheduler ignored on rank " << rank_
                       << ": only rank 0 registers";
      }
      follower_thread_ = std::thread([this] { RunFollower(); });
      return absl::OkStatus();
    }
    WorkerRegistration registration;
    registration.role = fapo::v1::WORKER_ROLE_TRAINER;
    registration.capacity = 1;
    trainer::TrainerService* service = service_.get();
    registration.policy_version = [service] {
      return service->policy_version();
    };
    ASSIGN_OR_RETURN(
        lease_, StartWorkerLease(ServiceContext{&spec_, nullptr, worker_id_,
                                                scheduler_address_},
                                 advertised_address, std::move(registration)));
    return absl::OkStatus();
  }

  void OnStopping() override {
    if (lease_ != nullptr) lease_->Stop();
    // A follower leaves after rank 0's next command (a keep-alive at most
    // --rank-keep-alive-ms away, NOTE [rank keep-alive]); rank 0 then
    // finds it gone.
    stopping_ = true;
  }

 private:
  explicit TrainerInstance(const ServiceContext& context)
      : spec_(*context.spec),
        worker_id_(context.worker_id),
        scheduler_address_(context.scheduler_address) {}

  void RunFollower() {
    absl::Status status = follower_->Run([this] { return stopping_.load(); });
    if (status.ok()) {
      RequestShutdown(0);  // rank 0 stopped: the job is over
    } else if (!absl::IsCancelled(status)) {
      FAPO_LOG(ERROR) << status.message()
                      << "; exiting (restart every trainer rank from the "
                         "last checkpoint)";
      RequestShutdown(1);
    }
  }

  const config::JobSpec spec_;
  const std::string worker_id_;
  const std::string scheduler_address_;
  int rank_ = 0;
  std::atomic<bool> stopping_{false};
  // Destroyed in reverse order: the follower thread is joined (in the
  // destructor), then the lease, the service (which finishes the steps it
  // has queued, over the leader), the follower's trainer, the leader
  // (which tells the other ranks to stop), and the communicator last.
  std::unique_ptr<trainer::Communicator> communicator_;  // ranks > 1
  std::unique_ptr<trainer::BucketedGradientSync> gradient_sync_;
  std::unique_ptr<trainer::RankGroupLeader> leader_;  // rank 0 of > 1
  std::unique_ptr<trainer::Trainer> trainer_;         // ranks > 0
  std::unique_ptr<trainer::RankGroupFollower> follower_;
  std::unique_ptr<trainer::TrainerService> service_;  // rank 0
  std::unique_ptr<rpc::WorkerLease> lease_;
  std::thread follower_thread_;
};

}  // namespace
}  // namespace fapo::cli
#endif  // FAPO_HAVE_TRAINER

int main(int argc, char** argv) {
  fapo::cli::ServiceDefinition definition;
  definition.binary = "fapo-trainer";
  definition.component = "trainer";
  definition.summary =
      "Applies GRPO/FAPO policy updates (clipped-ratio loss, AdamW, "
      "gradient clipping, LR schedule) in micro-batches, writes atomic "
      "checksummed checkpoints (resuming from the newest valid one) and "
      "serves the weights to rollout workers. With --scheduler it registers "
      "and exits when the job is over.";
  // Data-parallel ranks (see the file comment).
  static int64_t rank = 0;
  static std::string rendezvous;
  static int64_t keep_alive_ms = 2000;
  definition.add_flags = [](fapo::cli::FlagSet& flags) {
    flags.Int("rank", &rank,
              "this process's rank in [0, trainer.ranks); rank 0 serves the "
              "Trainer service and registers with --scheduler");
    flags.String("rendezvous", &rendezvous, "HOST:PORT",
                 "where rank 0 hosts the store the trainer ranks meet at "
                 "(the same on every rank; required when trainer.ranks > 1)");
    flags.Int("rank-keep-alive-ms", &keep_alive_ms,
              "rank 0 of several: how long it may be idle before it pings "
              "the other ranks (a dead one is found within this; ranks > 0 "
              "take as long to stop on SIGTERM)");
  };
#ifdef FAPO_HAVE_TRAINER
  static const auto rank_address = [](const fapo::config::JobSpec& spec) {
    fapo::trainer::RankAddress address;
    address.rank =
        static_cast<int>(std::clamp<int64_t>(rank, INT32_MIN, INT32_MAX));
    address.rendezvous = rendezvous;
    address.timeout = absl::Milliseconds(spec.trainer.collective_timeout_ms);
    return address;
  };
  definition.check_flags = [](const fapo::config::JobSpec& spec) {
    // Above trainer.collective_timeout_ms an idle follower times out
    // between steps; tests do that on purpose, so it is allowed.
    if (keep_alive_ms < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rank-keep-alive-ms must be >= 1, got ", keep_alive_ms));
    }
    return fapo::trainer::ValidateRankAddress(spec, rank_address(spec));
  };
  definition.factory = [](const fapo::cli::ServiceContext& context) {
    return fapo::cli::TrainerInstance::Create(
        context, rank_address(*context.spec),
        absl::Milliseconds(keep_alive_ms));
  };
#else
  definition.missing_note =
      "this build has no LibTorch (FAPO_WITH_TORCH=OFF): it serves only "
      "health, reflection and /metrics";
#endif
  return fapo::cli::RunServiceMain(definition, argc, argv);
}
