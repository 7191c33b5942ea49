#include "scheduler/scheduler_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "scheduler/options_from_spec.h"
#include "services/logging/log.h"
#include "services/runtime/spec_bridge.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {

namespace {

// The trainer's resume state, waiting up to a minute for it to come up.
absl::StatusOr<v1::ResumeState> AskResumeState(TrainerClient& trainer,
                                               const std::string& address) {
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (true) {
    absl::StatusOr<v1::ResumeState> state =
        trainer.GetResumeState(address, absl::Now() + absl::Seconds(5));
    if (state.ok() || state.status().code() != absl::StatusCode::kUnavailable ||
        absl::Now() > give_up) {
      return state;
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<runtime::ServiceInstance>>
SchedulerServer::Create(const runtime::ServiceContext& context,
                        const std::string& trainer_address) {
  const config::JobSpec& spec = *context.spec;
  std::unique_ptr<SchedulerServer> server(new SchedulerServer());
  const rpc::SecurityOptions security =
      runtime::RpcSecurityFromSpec(spec.security);

  GrpcGenrmClientOptions genrm_options;
  genrm_options.channel.security = security;
  ASSIGN_OR_RETURN(server->genrm_client_,
                   GrpcGenrmClient::Create(std::move(genrm_options)));
  GrpcRolloutClientOptions rollout_options;
  rollout_options.channel.security = security;
  ASSIGN_OR_RETURN(server->rollout_client_,
                   GrpcRolloutClient::Create(std::move(rollout_options)));

  rpc::ChannelOptions trainer_channel;
  trainer_channel.security = security;
  ASSIGN_OR_RETURN(server->trainer_client_,
                   GrpcTrainerClient::Create(std::move(trainer_channel)));

  v1::SchedulerSnapshot snapshot;
  bool resume = false;
  if (!trainer_address.empty()) {
    ASSIGN_OR_RETURN(v1::ResumeState state,
                     AskResumeState(*server->trainer_client_, trainer_address));
    if (state.step() > 0) {
      if (!snapshot.ParseFromString(state.scheduler_snapshot())) {
        return absl::DataLossError(
            absl::StrCat("the scheduler snapshot in checkpoint ",
                         state.checkpoint_path(), " does not parse"));
      }
      resume = true;
      FAPO_LOG(INFO) << "resuming at step " << state.step() << " from "
                     << state.checkpoint_path();
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tasks::PromptSource> prompts,
                   tasks::MakePromptSource(
                       spec, resume ? snapshot.prompt_source_position() : 0));
  ASSIGN_OR_RETURN(std::unique_ptr<tasks::AnswerVerifier> verifier,
                   tasks::MakeAnswerVerifier(spec));
  SchedulerOptions options = SchedulerOptionsFromSpec(spec);
  if (spec.scheduler.deterministic) {
    // NOTE [deterministic mode]: the verdicts must repeat too.
    const config::GenrmBackend backend =
        spec.genrm.backend == config::GenrmBackend::kLatency
            ? spec.genrm.latency.inner
            : spec.genrm.backend;
    if (backend == config::GenrmBackend::kOpenai ||
        (backend == config::GenrmBackend::kModel &&
         spec.genrm.model.temperature > 0)) {
      FAPO_LOG(WARNING) << "scheduler.deterministic: the GenRM's verdicts "
                           "may not repeat (an openai endpoint, or a model "
                           "sampled at temperature > 0), so neither will "
                           "the run";
    }
  }
  options.metrics = context.registry;
  SamplesWriterOptions samples_options = SamplesWriterOptionsFromSpec(spec);
  if (resume) samples_options.resumed_step = snapshot.step();
  if (!samples_options.path.empty() && samples_options.sample_fraction > 0) {
    ASSIGN_OR_RETURN(server->samples_,
                     SamplesWriter::Create(std::move(samples_options)));
    options.outcomes = server->samples_.get();
  }
  server->tick_interval_ = options.workers.heartbeat_interval;
  ASSIGN_OR_RETURN(
      server->scheduler_,
      Scheduler::Create(std::move(options), std::move(prompts),
                        std::move(verifier), server->genrm_client_.get(),
                        resume ? &snapshot : nullptr));
  server->service_ =
      std::make_unique<SchedulerService>(server->scheduler_.get());
  ASSIGN_OR_RETURN(server->driver_,
                   RolloutDriver::Create(RolloutDriverOptionsFromSpec(spec),
                                         server->scheduler_.get(),
                                         server->rollout_client_.get()));
  TrainerDriverOptions trainer_driver_options =
      TrainerDriverOptionsFromSpec(spec);
  trainer_driver_options.metrics = context.registry;
  ASSIGN_OR_RETURN(server->trainer_driver_,
                   TrainerDriver::Create(std::move(trainer_driver_options),
                                         server->scheduler_.get(),
                                         server->trainer_client_.get(),
                                         server->trainer_client_.get()));
  return std::unique_ptr<runtime::ServiceInstance>(std::move(server));
}

SchedulerServer::~SchedulerServer() { OnStopping(); }

std::vector<rpc::RegisteredService> SchedulerServer::services() {
  return {rpc::RegisteredService{service_.get(), "fapo.v1.Scheduler"}};
}

absl::Status SchedulerServer::OnServing(const std::string& advertised_address) {
  FAPO_LOG(INFO) << "scheduler serving at " << advertised_address
                 << "; workers register with --scheduler "
                 << advertised_address;
  driver_->Start();
  trainer_driver_->Start();
  ticker_ = std::thread([this] { TickLoop(); });
  return absl::OkStatus();
}

void SchedulerServer::TickLoop() {
  absl::Time finished = absl::InfiniteFuture();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_;
      };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), tick_interval_)) {
        return;
      }
    }
    scheduler_->Tick();
    const v1::JobState state = scheduler_->state();
    if (state != v1::JOB_STATE_SUCCEEDED && state != v1::JOB_STATE_FAILED) {
      continue;
    }
    const absl::Time now = absl::Now();
    if (finished == absl::InfiniteFuture()) {
      finished = now;
      if (state == v1::JOB_STATE_FAILED) {
        FAPO_LOG(ERROR) << "job failed: " << scheduler_->GetJobStatus().error();
      }
    }
    // Workers learn the outcome from their next heartbeat, then exit.
    if (now - finished >= 2 * tick_interval_) {
      runtime::RequestShutdown(state == v1::JOB_STATE_FAILED ? 1 : 0);
      return;
    }
  }
}

void SchedulerServer::OnStopping() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  if (trainer_driver_ != nullptr) trainer_driver_->Shutdown();
  if (driver_ != nullptr) driver_->Shutdown();
  // The last step's samples are on disk before the process exits.
  if (samples_ != nullptr) (void)samples_->Flush();
}

}  // namespace fapo::scheduler
