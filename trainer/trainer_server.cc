#include "trainer/trainer_server.h"

#include <utility>

#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::trainer {

absl::StatusOr<std::unique_ptr<TrainerServer>> TrainerServer::Create(
    const runtime::ServiceContext& context, const RankAddress& address,
    absl::Duration keep_alive_interval) {
  const config::JobSpec& spec = *context.spec;
  RETURN_IF_ERROR(ValidateRankAddress(spec, address));
  std::unique_ptr<TrainerServer> server(new TrainerServer(context));
  const int ranks = spec.trainer.ranks;
  server->rank_ = address.rank;
  // The group before the Trainer: NCCL's communicator selects this rank's
  // GPU (rank % visible devices), which policy.device cuda then means; and
  // the Trainer takes the gradient sync at creation.
  if (ranks > 1) {
    FAPO_LOG(INFO) << "trainer rank " << address.rank << "/" << ranks
                   << ": joining the group at " << address.rendezvous;
    ASSIGN_OR_RETURN(server->communicator_, ConnectTrainerRanks(spec, address));
    server->gradient_sync_ =
        std::make_unique<BucketedGradientSync>(server->communicator_.get());
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                   Trainer::Create(spec, server->gradient_sync_.get()));
  const ResumeInfo& resumed = trainer->resume_info();
  if (resumed.checkpoint_path.empty()) {
    FAPO_LOG(INFO) << "starting fresh at step 0";
  } else {
    FAPO_LOG(INFO) << "resumed at step " << resumed.step << " from "
                   << resumed.checkpoint_path;
  }
  if (address.rank > 0) {
    // Joined (step and weights agree with rank 0's) before it is ready.
    ASSIGN_OR_RETURN(
        server->follower_,
        RankGroupFollower::Create(*trainer, server->communicator_.get()));
    server->trainer_ = std::move(trainer);
    FAPO_LOG(INFO) << "trainer rank " << address.rank << "/" << ranks
                   << ": joined; training what rank 0 sends";
    return server;
  }
  if (ranks > 1) {
    RankGroupOptions options;
    options.keep_alive_interval = keep_alive_interval;
    // The step that found it has failed with the reason; nothing can be
    // trained any more, so stop (exit 1) rather than serve errors.
    TrainerServer* self = server.get();
    options.on_group_lost = [self](const absl::Status&) {
      self->RequestStop(1);
    };
    ASSIGN_OR_RETURN(server->leader_, RankGroupLeader::Create(
                                          *trainer, server->communicator_.get(),
                                          std::move(options)));
    FAPO_LOG(INFO) << "trainer rank 0/" << ranks
                   << ": all ranks joined; serving";
  }
  ASSIGN_OR_RETURN(server->service_,
                   TrainerService::Create(std::move(trainer), context.registry,
                                          server->leader_.get()));
  return server;
}

TrainerServer::~TrainerServer() {
  stopping_ = true;
  if (follower_thread_.joinable()) follower_thread_.join();
}

std::vector<rpc::RegisteredService> TrainerServer::services() {
  if (service_ == nullptr) return {};  // ranks > 0: health and /metrics
  return {{service_.get(), fapo::v1::Trainer::service_full_name()}};
}

absl::Status TrainerServer::StartServing() {
  if (follower_ != nullptr) {
    follower_thread_ = std::thread([this] { RunFollower(); });
  }
  return absl::OkStatus();
}

std::optional<runtime::WorkerRegistration> TrainerServer::Registration() {
  if (follower_ != nullptr) {
    if (!scheduler_address().empty()) {
      FAPO_LOG(INFO) << "--scheduler ignored on rank " << rank_
                     << ": only rank 0 registers";
    }
    return std::nullopt;
  }
  runtime::WorkerRegistration registration;
  registration.role = fapo::v1::WORKER_ROLE_TRAINER;
  registration.capacity = 1;
  TrainerService* service = service_.get();
  registration.policy_version = [service] { return service->policy_version(); };
  return registration;
}

void TrainerServer::Drain() {
  // A follower leaves after rank 0's next command (a keep-alive at most
  // keep_alive_interval away, NOTE [rank keep-alive]); rank 0 then finds it
  // gone.
  stopping_ = true;
}

void TrainerServer::RunFollower() {
  absl::Status status = follower_->Run([this] { return stopping_.load(); });
  if (status.ok()) {
    RequestStop(0);  // rank 0 stopped: the job is over
  } else if (!absl::IsCancelled(status)) {
    FAPO_LOG(ERROR) << status.message()
                    << "; exiting (restart every trainer rank from the last "
                       "checkpoint)";
    RequestStop(1);
  }
}

}  // namespace fapo::trainer
