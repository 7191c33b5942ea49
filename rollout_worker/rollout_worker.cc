#include "rollout_worker/rollout_worker.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/model/model.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::rollout {
namespace {

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(time);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

v1::FinishReason ToProto(engine::FinishReason reason) {
  return reason == engine::FinishReason::kStop ? v1::FINISH_REASON_STOP
                                               : v1::FINISH_REASON_LENGTH;
}

}  // namespace

// ------------------------------------------------------ GrpcWeightsFetcher

absl::Status GrpcWeightsFetcher::Fetch(const std::string& source_address,
                                       int64_t version,
                                       engine::WeightsAssembler& assembler) {
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    auto it = channels_.find(source_address);
    if (it == channels_.end()) {
      ASSIGN_OR_RETURN(channel,
                       rpc::MakeChannel(source_address, channel_options_));
      channels_.emplace(source_address, channel);
    } else {
      channel = it->second;
    }
  }
  engine::PullWeightsOptions pull = pull_;
  pull.on_context = [this](grpc::ClientContext* context) {
    absl::MutexLock lock(&mu_);
    current_ = context;
    if (context != nullptr && cancelled_) context->TryCancel();
  };
  return Annotate(engine::PullWeights(*channel, version, pull, assembler),
                  absl::StrCat("pulling weights version ", version, " from ",
                               source_address));
}

void GrpcWeightsFetcher::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (current_ != nullptr) current_->TryCancel();
}

// ----------------------------------------------------------- RolloutWorker

void RolloutWorker::Call::Cancel() {
  if (cancelled_.exchange(true)) return;
  std::function<void()> on_cancel;
  {
    absl::MutexLock lock(&mu_);
    on_cancel.swap(on_cancel_);
  }
  if (on_cancel) on_cancel();
}

void RolloutWorker::Call::SetOnCancel(std::function<void()> on_cancel) {
  absl::MutexLock lock(&mu_);
  on_cancel_ = std::move(on_cancel);
}

struct RolloutWorker::Metrics {
  metrics::CounterFamily* trajectories = nullptr;
  metrics::Counter* tokens = nullptr;
  metrics::Histogram* group_seconds = nullptr;
  metrics::Histogram* weight_sync_seconds = nullptr;
  metrics::Counter* weight_sync_bytes = nullptr;
  metrics::CounterFamily* weight_syncs = nullptr;
  metrics::Gauge* policy_version = nullptr;

  static absl::StatusOr<std::unique_ptr<Metrics>> Create(
      metrics::MetricsRegistry& registry) {
    auto m = std::make_unique<Metrics>();
    const std::vector<double> seconds =
        metrics::ExponentialBuckets(0.01, 2, 14);  // 10 ms .. ~82 s
    ASSIGN_OR_RETURN(
        m->trajectories,
        registry.AddCounter("fapo_rollout_worker_trajectories_total",
                            "Trajectories sent, by finish reason.",
                            {"finish_reason"}));
    ASSIGN_OR_RETURN(metrics::CounterFamily * tokens,
                     registry.AddCounter("fapo_rollout_worker_tokens_total",
                                         "Response tokens sent.", {}));
    m->tokens = &tokens->WithLabels({});
    ASSIGN_OR_RETURN(
        metrics::HistogramFamily * group,
        registry.AddHistogram("fapo_rollout_worker_group_seconds",
                              "Generation time of one group (one batch).",
                              seconds, {}));
    m->group_seconds = &group->WithLabels({});
    ASSIGN_OR_RETURN(
        metrics::HistogramFamily * sync,
        registry.AddHistogram("fapo_rollout_worker_weight_sync_seconds",
                              "UpdateWeights that changed the weights: pull, "
                              "checks and swap.",
                              seconds, {}));
    m->weight_sync_seconds = &sync->WithLabels({});
    ASSIGN_OR_RETURN(
        metrics::CounterFamily * bytes,
        registry.AddCounter("fapo_rollout_worker_weight_sync_bytes_total",
                            "Weight bytes received by applied updates.", {}));
    m->weight_sync_bytes = &bytes->WithLabels({});
    ASSIGN_OR_RETURN(
        m->weight_syncs,
        registry.AddCounter(
            "fapo_rollout_worker_weight_syncs_total",
            "Weight transfers attempted, by result (ok, error).", {"result"}));
    ASSIGN_OR_RETURN(metrics::GaugeFamily * version,
                     registry.AddGauge("fapo_rollout_worker_policy_version",
                                       "The policy version held.", {}));
    m->policy_version = &version->WithLabels({});
    return m;
  }
};

struct RolloutWorker::GenerateJob {
  v1::GenerateRequest request;
  TrajectoryCallback on_trajectory;
  DoneCallback on_done;
  std::shared_ptr<Call> call;
};

struct RolloutWorker::UpdateJob {
  int64_t version = 0;
  std::string source_address;
  std::function<void(absl::StatusOr<WeightsUpdate>)> done;
};

// Handed from the weights thread to the generation thread.
struct RolloutWorker::ApplyJob {
  const engine::WeightsAssembler* assembler = nullptr;
  bool done = false;
  absl::Status result;
};

absl::StatusOr<std::unique_ptr<RolloutWorker>> RolloutWorker::Create(
    std::unique_ptr<engine::CausalLM> model,
    std::unique_ptr<engine::Tokenizer> tokenizer,
    std::unique_ptr<WeightsFetcher> fetcher, RolloutWorkerOptions options) {
  if (model == nullptr || tokenizer == nullptr || fetcher == nullptr) {
    return absl::InvalidArgumentError(
        "RolloutWorker needs a model, a tokenizer and a weights fetcher");
  }
  if (tokenizer->vocab_size() > model->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the tokenizer has ", tokenizer->vocab_size(),
        " ids but the model's vocabulary only ", model->config().vocab_size));
  }
  std::unique_ptr<Metrics> metrics;
  if (options.registry != nullptr) {
    ASSIGN_OR_RETURN(metrics, Metrics::Create(*options.registry));
    metrics->policy_version->Set(
        static_cast<double>(options.initial_policy_version));
  }
  return std::unique_ptr<RolloutWorker>(new RolloutWorker(
      std::move(model), std::move(tokenizer), std::move(fetcher),
      std::move(options), std::move(metrics)));
}

RolloutWorker::RolloutWorker(std::unique_ptr<engine::CausalLM> model,
                             std::unique_ptr<engine::Tokenizer> tokenizer,
                             std::unique_ptr<WeightsFetcher> fetcher,
                             RolloutWorkerOptions options,
                             std::unique_ptr<Metrics> metrics)
    : options_(std::move(options)),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      fetcher_(std::move(fetcher)),
      metrics_(std::move(metrics)),
      policy_version_(options_.initial_policy_version) {
  std::set<int> stops(options_.extra_stop_token_ids.begin(),
                      options_.extra_stop_token_ids.end());
  stops.insert(model_->config().eos_token_ids.begin(),
               model_->config().eos_token_ids.end());
  if (options_.chatml) {
    if (std::optional<int> im_end = tokenizer_->TokenToId("<|im_end|>")) {
      stops.insert(*im_end);
    }
  }
  default_stop_ids_.assign(stops.begin(), stops.end());
  generation_thread_ = std::thread([this] { GenerationLoop(); });
  weights_thread_ = std::thread([this] { WeightsLoop(); });
}

RolloutWorker::~RolloutWorker() { Shutdown(); }

void RolloutWorker::Shutdown() {
  absl::MutexLock serial(&shutdown_mu_);
  stopping_.store(true);
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
  }
  fetcher_->Cancel();
  if (generation_thread_.joinable()) generation_thread_.join();
  if (weights_thread_.joinable()) weights_thread_.join();
}

std::shared_ptr<RolloutWorker::Call> RolloutWorker::Generate(
    const v1::GenerateRequest& request, TrajectoryCallback on_trajectory,
    DoneCallback on_done) {
  auto call = std::make_shared<Call>();
  // Versions only move forward, so a check now holds when the batch runs.
  const int64_t held = policy_version_.load();
  if (held < request.min_policy_version()) {
    on_done(absl::FailedPreconditionError(absl::StrCat(
        "worker ", options_.worker_id, " holds policy version ", held,
        ", the request needs at least ", request.min_policy_version())));
    return call;
  }
  auto job = std::make_unique<GenerateJob>();
  job->request = request;
  job->on_trajectory = std::move(on_trajectory);
  // Counted until its on_done starts, so a caller woken by on_done sees
  // the call gone.
  job->on_done = [this, on_done = std::move(on_done)](absl::Status status) {
    in_flight_.fetch_sub(1);
    on_done(std::move(status));
  };
  job->call = call;
  in_flight_.fetch_add(1);
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      // Cleared whenever the job leaves the queue, so it never outlives
      // the worker. A Cancel() that comes before this still ends the
      // call: the generation thread finds it cancelled.
      call->SetOnCancel([this, raw = call.get()] { DropQueued(raw); });
      generate_queue_.push_back(std::move(job));
      return call;
    }
  }
  job->on_done(absl::UnavailableError("rollout worker is shutting down"));
  return call;
}

void RolloutWorker::UpdateWeights(
    int64_t version, const std::string& source_address,
    std::function<void(absl::StatusOr<WeightsUpdate>)> done) {
  const int64_t held = policy_version_.load();
  if (version <= held) {
    done(WeightsUpdate{held, 0});
    return;
  }
  if (source_address.empty()) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "UpdateWeights to version ", version, " without a source_address")));
    return;
  }
  auto job = std::make_unique<UpdateJob>();
  job->version = version;
  job->source_address = source_address;
  job->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      update_queue_.push_back(std::move(job));
      return;
    }
  }
  job->done(absl::UnavailableError("rollout worker is shutting down"));
}

bool RolloutWorker::HasWeightsWork() const {
  return shutdown_ || !update_queue_.empty();
}

bool RolloutWorker::HasGenerationWork() const {
  return shutdown_ || pending_apply_ != nullptr || !generate_queue_.empty();
}

void RolloutWorker::WeightsLoop() {
  // Every pull assembles into this one buffer (WeightsAssembler(reuse)):
  // the worker holds a model-sized CPU buffer from its first update on,
  // instead of zeroing a fresh one per update.
  engine::WeightsBuffer assembly_buffer;
  while (true) {
    std::unique_ptr<UpdateJob> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &RolloutWorker::HasWeightsWork));
      if (shutdown_) break;
      job = std::move(update_queue_.front());
      update_queue_.pop_front();
    }
    // An earlier job may already have brought this version or a later one.
    const int64_t held = policy_version_.load();
    if (job->version <= held) {
      job->done(WeightsUpdate{held, 0});
      continue;
    }
    const absl::Time sync_started = absl::Now();
    engine::WeightsAssembler assembler(&assembly_buffer);
    absl::Status status =
        fetcher_->Fetch(job->source_address, job->version, assembler);
    if (status.ok() && !assembler.finished()) {
      status = absl::InternalError("weights fetcher returned unfinished");
    }
    if (!status.ok()) {
      FAPO_LOG(WARNING) << "weights version " << job->version
                        << " not applied, keeping version " << held << ": "
                        << status;
      if (metrics_)
        metrics_->weight_syncs->WithLabels({{"result", "error"}}).Increment();
      job->done(status);
      continue;
    }
    ApplyJob apply;
    apply.assembler = &assembler;
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) {
        apply.done = true;
        apply.result =
            absl::UnavailableError("rollout worker is shutting down");
      } else {
        pending_apply_ = &apply;
        mu_.Await(absl::Condition(&apply.done));
      }
    }
    if (!apply.result.ok()) {
      FAPO_LOG(WARNING) << "weights version " << assembler.version()
                        << " not applied: " << apply.result;
      if (metrics_)
        metrics_->weight_syncs->WithLabels({{"result", "error"}}).Increment();
      job->done(apply.result);
      continue;
    }
    if (metrics_) {
      metrics_->weight_syncs->WithLabels({{"result", "ok"}}).Increment();
      metrics_->weight_sync_seconds->Observe(
          absl::ToDoubleSeconds(absl::Now() - sync_started));
      metrics_->weight_sync_bytes->Increment(
          static_cast<double>(assembler.bytes_received()));
      metrics_->policy_version->Set(
          static_cast<double>(policy_version_.load()));
    }
    FAPO_LOG(INFO) << "now serving policy version " << policy_version_.load()
                   << " (" << assembler.bytes_received() << " bytes from "
                   << job->source_address << ")";
    job->done(
        WeightsUpdate{policy_version_.load(), assembler.bytes_received()});
  }
  // Drain: whoever waits learns the worker is gone.
  std::deque<std::unique_ptr<UpdateJob>> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(update_queue_);
  }
  for (auto& job : left) {
    job->done(absl::UnavailableError("rollout worker is shutting down"));
  }
}

void RolloutWorker::GenerationLoop() {
  while (true) {
    std::unique_ptr<GenerateJob> job;
    ApplyJob* apply = nullptr;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &RolloutWorker::HasGenerationWork));
      if (shutdown_) {
        // The weights thread waits on a posted apply: release it.
        if (pending_apply_ != nullptr) {
          pending_apply_->result =
              absl::UnavailableError("rollout worker is shutting down");
          pending_apply_->done = true;
          pending_apply_ = nullptr;
        }
        break;
      }
      // Weights first: they are applied between two batches.
      if (pending_apply_ != nullptr) {
        apply = pending_apply_;
      } else {
        job = std::move(generate_queue_.front());
        generate_queue_.pop_front();
        job->call->SetOnCancel(nullptr);
      }
    }
    if (apply != nullptr) {
      absl::Status result = apply->assembler->ApplyTo(*model_);
      if (result.ok()) {
        int64_t held = policy_version_.load();
        const int64_t version = apply->assembler->version();
        while (version > held &&
               !policy_version_.compare_exchange_weak(held, version)) {
        }
      }
      absl::MutexLock lock(&mu_);
      apply->result = std::move(result);
      apply->done = true;
      pending_apply_ = nullptr;
      continue;
    }
    RunGenerate(*job);
  }
  std::deque<std::unique_ptr<GenerateJob>> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(generate_queue_);
  }
  for (auto& job : left) {
    job->call->SetOnCancel(nullptr);
    job->on_done(absl::UnavailableError("rollout worker is shutting down"));
  }
}

void RolloutWorker::DropQueued(const Call* call) {
  std::unique_ptr<GenerateJob> job;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(
        generate_queue_.begin(), generate_queue_.end(),
        [call](const auto& queued) { return queued->call.get() == call; });
    if (it == generate_queue_.end()) return;  // running or done already
    job = std::move(*it);
    generate_queue_.erase(it);
  }
  job->on_done(absl::CancelledError("Generate cancelled while queued"));
}

absl::StatusOr<std::vector<int>> RolloutWorker::PromptIds(
    const v1::GenerateRequest& request) const {
  const v1::Prompt& prompt = request.prompt();
  if (prompt.token_ids_size() > 0) {
    return std::vector<int>(prompt.token_ids().begin(),
                            prompt.token_ids().end());
  }
  if (prompt.text().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group ", request.group_id(), ": the prompt has neither text nor ids"));
  }
  // NOTE [policy prompt]: the format SFT and the trainer use.
  return tokenizer_->Encode(
      engine::FormatPolicyPrompt(prompt.text(), options_.chatml));
}

void RolloutWorker::RunGenerate(GenerateJob& job) {
  const v1::GenerateRequest& request = job.request;
  if (job.call->cancelled()) {
    job.on_done(absl::CancelledError("Generate cancelled while queued"));
    return;
  }
  if (request.num_samples() < 1 ||
      request.num_samples() > options_.max_samples_per_request) {
    job.on_done(absl::InvalidArgumentError(absl::StrCat(
        "group ", request.group_id(), ": num_samples ", request.num_samples(),
        " outside [1, ", options_.max_samples_per_request, "]")));
    return;
  }
  const v1::SamplingParams& sampling = request.sampling();
  if (sampling.max_new_tokens() < 1) {
    job.on_done(absl::InvalidArgumentError(
        absl::StrCat("group ", request.group_id(),
                     ": sampling.max_new_tokens must be >= 1, got ",
                     sampling.max_new_tokens())));
    return;
  }
  absl::StatusOr<std::vector<int>> prompt_ids = PromptIds(request);
  if (!prompt_ids.ok()) {
    job.on_done(prompt_ids.status());
    return;
  }
  engine::SamplingOptions options;
  options.temperature = sampling.temperature();
  // proto3 leaves an unset top_p at 0; "1 = off" is the only sane reading.
  options.top_p = sampling.top_p() > 0 ? sampling.top_p() : 1.0f;
  options.top_k = sampling.top_k();
  options.max_new_tokens = sampling.max_new_tokens();
  options.seed = sampling.seed();
  std::set<int> stops(default_stop_ids_.begin(), default_stop_ids_.end());
  stops.insert(sampling.stop_token_ids().begin(),
               sampling.stop_token_ids().end());
  options.stop_token_ids.assign(stops.begin(), stops.end());

  const int64_t version = policy_version_.load();
  const absl::Time started = absl::Now();
  Call* call = job.call.get();
  options.cancelled = [this, call] {
    return call->cancelled() || stopping_.load();
  };
  options.on_row_finished = [&](size_t row,
                                const engine::GenerationResult& result) {
    if (call->cancelled()) return;
    v1::Trajectory trajectory;
    trajectory.set_trajectory_id(absl::StrCat(request.group_id(), "/", row));
    trajectory.set_group_id(request.group_id());
    trajectory.set_sample_index(static_cast<int32_t>(row));
    trajectory.set_prompt_id(request.prompt().prompt_id());
    trajectory.mutable_prompt_token_ids()->Add(prompt_ids->begin(),
                                               prompt_ids->end());
    trajectory.mutable_response_token_ids()->Add(result.token_ids.begin(),
                                                 result.token_ids.end());
    trajectory.mutable_response_logprobs()->Add(result.logprobs.begin(),
                                                result.logprobs.end());
    // NOTE [response text]: the text is what the policy wrote, without
    // the stop token that ended it (the ids keep it: the policy is trained
    // to stop). Otherwise "#3<|endoftext|>" is not an answer line and every
    // finished response would be graded wrong. Special tokens written
    // mid-response stay in the text, so they count against the answer.
    absl::Span<const int> text_ids(result.token_ids);
    if (result.finish_reason == engine::FinishReason::kStop &&
        !text_ids.empty()) {
      text_ids.remove_suffix(1);
    }
    absl::StatusOr<std::string> text = tokenizer_->Decode(text_ids);
    if (text.ok()) {
      trajectory.set_response_text(*std::move(text));
    } else {
      // Ids the tokenizer does not know (a model vocabulary padded beyond
      // the tokenizer's): the ids still carry the response.
      FAPO_LOG(WARNING) << "cannot decode trajectory "
                        << trajectory.trajectory_id() << ": " << text.status();
    }
    trajectory.set_policy_version(version);
    trajectory.set_finish_reason(ToProto(result.finish_reason));
    SetTimestamp(started, trajectory.mutable_generation_started());
    SetTimestamp(absl::Now(), trajectory.mutable_generation_finished());
    trajectory.set_worker_id(options_.worker_id);
    if (metrics_) {
      metrics_->trajectories
          ->WithLabels({{"finish_reason",
                         engine::FinishReasonName(result.finish_reason)}})
          .Increment();
      metrics_->tokens->Increment(static_cast<double>(result.token_ids.size()));
    }
    job.on_trajectory(std::move(trajectory));
  };
  const std::vector<std::vector<int>> prompts(request.num_samples(),
                                              *prompt_ids);
  absl::StatusOr<std::vector<engine::GenerationResult>> results =
      engine::Generate(*model_, prompts, options);
  if (metrics_ && results.ok()) {
    metrics_->group_seconds->Observe(
        absl::ToDoubleSeconds(absl::Now() - started));
  }
  if (!results.ok() && stopping_.load()) {
    job.on_done(absl::UnavailableError("rollout worker is shutting down"));
  } else if (!results.ok()) {
    job.on_done(
        Annotate(results.status(), absl::StrCat("group ", request.group_id())));
  } else if (call->cancelled()) {
    job.on_done(absl::CancelledError("Generate cancelled"));
  } else {
    job.on_done(absl::OkStatus());
  }
}

}  // namespace fapo::rollout
