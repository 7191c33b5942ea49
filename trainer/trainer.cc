#include "trainer/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "algorithm/loss/policy_loss.h"
#include "engine/model/policy_options.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tools/tools.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"
#include "trainer/checkpoint_manager.h"
#include "trainer/trainer_internal.h"

namespace fapo::trainer {

using internal::BuildMicroBatch;
using internal::CopyWeights;
using internal::kPolicySubdir;
using internal::LossOptions;
using internal::MicroBatch;
using internal::RecomputeOldLogProbs;
using internal::RunUpdates;
using internal::SequenceView;
using internal::StepTotals;
using internal::SumOverRanks;

namespace {

absl::Status ValidateSettings(const TrainerSettings& settings) {
  const config::TrainerOptions& t = settings.trainer;
  if (!(t.learning_rate > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trainer.learning_rate must be > 0, got ", t.learning_rate));
  }
  if (t.minibatches_per_step < 1 || t.micro_batch_size < 1) {
    return absl::InvalidArgumentError(
        "trainer.minibatches_per_step and trainer.micro_batch_size must be "
        ">= 1");
  }
  if (t.grad_clip < 0 || t.weight_decay < 0 || t.warmup_steps < 0) {
    return absl::InvalidArgumentError(
        "trainer.grad_clip, weight_decay and warmup_steps must be >= 0");
  }
  if (settings.total_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("job.steps must be >= 1, got ", settings.total_steps));
  }
  return algorithm::ValidatePolicyLossOptions(LossOptions(settings.algorithm));
}

}  // namespace

LrScheduleOptions LrScheduleOptionsFromSettings(
    const TrainerSettings& settings) {
  LrScheduleOptions options;
  options.peak = settings.trainer.learning_rate;
  options.warmup_steps = settings.trainer.warmup_steps;
  options.decay = settings.trainer.lr_schedule == config::LrSchedule::kCosine
                      ? LrDecay::kCosine
                      : LrDecay::kConstant;
  options.min_lr_ratio = settings.trainer.min_lr_ratio;
  options.total_steps = settings.total_steps;
  return options;
}

TrainerSettings TrainerSettingsFromSpec(const config::JobSpec& spec) {
  TrainerSettings settings;
  settings.trainer = spec.trainer;
  settings.algorithm = spec.algorithm;
  settings.total_steps = spec.job.steps;
  if (!spec.job.output_dir.empty()) {
    settings.checkpoint_dir = absl::StrCat(spec.job.output_dir, "/checkpoints");
  }
  settings.tokenizer_path = spec.policy.tokenizer_path;
  if (settings.tokenizer_path.empty() && !spec.policy.model_dir.empty()) {
    settings.tokenizer_path =
        absl::StrCat(spec.policy.model_dir, "/tokenizer.json");
  }
  if (spec.policy.model_dir.empty() && spec.policy.tokenizer_path.empty() &&
      spec.data.task == config::Task::kArith) {
    settings.tokenizer_json = engine::ArithTokenizerJson();
  }
  return settings;
}

namespace {

absl::StatusOr<std::unique_ptr<engine::CausalLM>> LoadPolicyFromModelDir(
    const config::JobSpec& spec) {
  const std::string& dir = spec.policy.model_dir;
  if (dir.empty() && spec.data.task == config::Task::kArith) {
    // policy.model_dir "" names the embedded tiny arith policy: initialised
    // from job.seed, as `fapo init-model --seed` would write it.
    FAPO_LOG(WARNING)
        << "policy.model_dir is not set: training the embedded tiny arith "
           "policy from a random initialisation (seed "
        << spec.job.seed
        << "); warm-start it with `fapo sft` and set policy.model_dir for "
           "a meaningful run";
    engine::ModelConfig config = engine::TinyArithModelConfig();
    auto tokenizer = engine::Tokenizer::FromJson(engine::ArithTokenizerJson());
    if (tokenizer.ok()) {
      if (auto eos = (*tokenizer)->TokenToId("<|endoftext|>")) {
        config.eos_token_ids = {*eos};
      }
    }
    return engine::CausalLM::FromConfig(config,
                                        static_cast<uint64_t>(spec.job.seed),
                                        engine::PolicyLoadOptions(spec.policy));
  }
  if (dir.empty() || !files::PathExists(absl::StrCat(dir, "/config.json"))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no policy to train: policy.model_dir ",
        dir.empty() ? std::string("is not set (only data.task arith has an "
                                  "embedded default policy)")
                    : absl::StrCat("(", dir, ") holds no config.json"),
        ". Create one with `fapo init-model --out DIR` and warm-start it with "
        "`fapo sft`, then set policy.model_dir to it"));
  }
  return engine::CausalLM::Load(dir, engine::PolicyLoadOptions(spec.policy));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const config::JobSpec& spec, GradientSync* gradient_sync) {
  TrainerSettings settings = TrainerSettingsFromSpec(spec);
  settings.gradient_sync = gradient_sync;
  std::optional<CheckpointInfo> newest;
  if (spec.trainer.resume && !settings.checkpoint_dir.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<CheckpointManager> manager,
                     CheckpointManager::Create(settings.checkpoint_dir,
                                               spec.trainer.keep_checkpoints));
    absl::StatusOr<CheckpointInfo> found = manager->FindNewestValid();
    if (found.ok()) newest = *found;
  }
  std::unique_ptr<engine::CausalLM> policy;
  if (newest.has_value()) {
    const std::string dir = absl::StrCat(newest->path, "/", kPolicySubdir);
    absl::StatusOr<std::unique_ptr<engine::CausalLM>> loaded =
        engine::CausalLM::Load(dir, engine::PolicyLoadOptions(spec.policy));
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("checkpoint ", newest->path, ": ",
                                       loaded.status().message()));
    }
    policy = *std::move(loaded);
  } else {
    ASSIGN_OR_RETURN(policy, LoadPolicyFromModelDir(spec));
  }
  std::unique_ptr<engine::CausalLM> reference;
  if (spec.algorithm.kl_coef > 0) {
    // The reference is the starting policy, also after a resume.
    ASSIGN_OR_RETURN(reference, LoadPolicyFromModelDir(spec));
  }
  RETURN_IF_ERROR(ValidateSettings(settings));
  std::unique_ptr<Trainer> trainer(
      new Trainer(std::move(settings), std::move(policy)));
  RETURN_IF_ERROR(trainer->Initialize(std::move(reference)));
  if (newest.has_value()) {
    ASSIGN_OR_RETURN(bool resumed, trainer->Resume());
    if (!resumed) {
      return absl::InternalError(absl::StrCat("checkpoint ", newest->path,
                                              " disappeared while resuming"));
    }
  }
  return trainer;
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::CreateWithPolicy(
    TrainerSettings settings, std::unique_ptr<engine::CausalLM> policy) {
  if (policy == nullptr) return absl::InvalidArgumentError("null policy");
  RETURN_IF_ERROR(ValidateSettings(settings));
  std::unique_ptr<engine::CausalLM> reference;
  if (settings.algorithm.kl_coef > 0) {
    ASSIGN_OR_RETURN(
        reference, engine::CausalLM::FromConfig(
                       policy->config(), 0,
                       engine::LoadOptions{policy->device(), policy->dtype()}));
    RETURN_IF_ERROR(CopyWeights(*policy, *reference, "reference policy"));
  }
  std::unique_ptr<Trainer> trainer(
      new Trainer(std::move(settings), std::move(policy)));
  RETURN_IF_ERROR(trainer->Initialize(std::move(reference)));
  return trainer;
}

Trainer::Trainer(TrainerSettings settings,
                 std::unique_ptr<engine::CausalLM> policy)
    : settings_(std::move(settings)),
      policy_(std::move(policy)),
      impl_(std::make_unique<Impl>()) {
  lr_schedule_ = LrScheduleOptionsFromSettings(settings_);
}

Trainer::~Trainer() = default;

absl::Status Trainer::Initialize(std::unique_ptr<engine::CausalLM> reference) {
  try {
    policy_->SetRequiresGrad(true);
    impl_->parameters = policy_->parameters();
    if (reference != nullptr) reference->SetRequiresGrad(false);
    impl_->reference = std::move(reference);
    const config::TrainerOptions& t = settings_.trainer;
    // Decoupled weight decay on every tensor (norm weights included), as
    // torch.optim.AdamW over model.parameters() does.
    impl_->optimizer = std::make_unique<torch::optim::AdamW>(
        impl_->parameters, torch::optim::AdamWOptions(t.learning_rate)
                               .betas({t.adam_beta1, t.adam_beta2})
                               .eps(t.adam_eps)
                               .weight_decay(t.weight_decay));
  } catch (const c10::Error& error) {
    return absl::InternalError(
        absl::StrCat("creating the AdamW optimizer: ", error.what()));
  }
  if (!settings_.checkpoint_dir.empty()) {
    ASSIGN_OR_RETURN(
        impl_->checkpoints,
        CheckpointManager::Create(settings_.checkpoint_dir,
                                  settings_.trainer.keep_checkpoints));
  }
  return absl::OkStatus();
}

double Trainer::LearningRate(int64_t step) const {
  return LearningRateAt(lr_schedule_, step);
}

absl::Status Trainer::CheckStepOrder(int64_t step, bool* repeat) const {
  *repeat = false;
  if (broken_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "step ", step,
        " refused: an earlier step failed half-way and left the "
        "policy in an unknown state; restart the trainer from the last "
        "checkpoint"));
  }
  if (step == step_ + 1) return absl::OkStatus();
  if (step == step_ && step > 0) {
    if (last_result_.has_value() && last_result_->step == step) {
      *repeat = true;
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        absl::StrCat("step ", step,
                     " was applied before this trainer resumed and its "
                     "result was not kept; continue with step ",
                     step_ + 1));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("step ", step, " is out of order: the trainer is at step ",
                   step_, " and expects step ", step_ + 1));
}

namespace {

void SetDuration(absl::Duration duration, google::protobuf::Duration* out) {
  const int64_t seconds = absl::ToInt64Seconds(duration);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(duration - absl::Seconds(seconds))));
}

absl::Status ValidateSequence(const SequenceView& row, int vocab_size,
                              int64_t max_positions, absl::string_view what) {
  if (row.prompt.empty() || row.response.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " needs at least one prompt and one response token"));
  }
  if (static_cast<int64_t>(row.prompt.size() + row.response.size()) >
      max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", row.prompt.size() + row.response.size(),
                     " tokens, more than the model's max_position_embeddings ",
                     max_positions));
  }
  for (absl::Span<const int> ids : {row.prompt, row.response}) {
    for (int id : ids) {
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " has token id ", id,
                         " outside the vocabulary [0, ", vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Views `batch` as sequences (no copies), checking each trajectory.
static absl::Status BatchSequences(
    int64_t step,
    const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch,
    const engine::ModelConfig& config, std::vector<SequenceView>* sequences) {
  sequences->clear();
  sequences->reserve(batch.size());
  for (const v1::ScoredTrajectory& scored : batch) {
    const v1::Trajectory& trajectory = scored.trajectory();
    SequenceView row;
    row.prompt = absl::MakeConstSpan(trajectory.prompt_token_ids().data(),
                                     trajectory.prompt_token_ids().size());
    row.response = absl::MakeConstSpan(trajectory.response_token_ids().data(),
                                       trajectory.response_token_ids().size());
    row.old_logprobs =
        absl::MakeConstSpan(trajectory.response_logprobs().data(),
                            trajectory.response_logprobs().size());
    row.advantage = static_cast<float>(scored.advantage());
    const std::string what = absl::StrCat("TrainStep ", step, ": trajectory ",
                                          trajectory.trajectory_id());
    RETURN_IF_ERROR(ValidateSequence(row, config.vocab_size,
                                     config.max_position_embeddings, what));
    if (row.old_logprobs.size() != row.response.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has ", row.old_logprobs.size(), " response_logprobs for ",
          row.response.size(), " response tokens"));
    }
    if (!std::isfinite(scored.advantage())) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has a non-finite advantage"));
    }
    sequences->push_back(row);
  }
  return absl::OkStatus();
}

absl::Status Trainer::ValidateBatch(
    int64_t step,
    const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch)
    const {
  if (batch.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TrainStep ", step, ": empty batch"));
  }
  std::vector<SequenceView> sequences;
  return BatchSequences(step, batch, policy_->config(), &sequences);
}

absl::StatusOr<TrainStepResult> Trainer::TrainStep(
    int64_t step,
    const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch,
    absl::Span<const int64_t> minibatch_sizes) {
  bool repeat = false;
  RETURN_IF_ERROR(CheckStepOrder(step, &repeat));
  if (repeat) return *last_result_;
  const absl::Time start = absl::Now();
  // With a GradientSync this rank's share may be empty; it still joins the
  // step's collectives.
  if (batch.empty() && settings_.gradient_sync == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("TrainStep ", step, ": empty batch"));
  }
  if (!minibatch_sizes.empty()) {
    int64_t sum = 0;
    bool negative = false;
    for (int64_t size : minibatch_sizes) {
      sum += size;
      negative = negative || size < 0;
    }
    if (negative ||
        static_cast<int>(minibatch_sizes.size()) !=
            settings_.trainer.minibatches_per_step ||
        sum != batch.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TrainStep ", step, ": ", minibatch_sizes.size(),
          " minibatch sizes summing to ", sum, " for ", batch.size(),
          " trajectories and trainer.minibatches_per_step ",
          settings_.trainer.minibatches_per_step));
    }
  }
  std::vector<SequenceView> sequences;
  RETURN_IF_ERROR(BatchSequences(step, batch, policy_->config(), &sequences));
  const double learning_rate = LearningRate(step);
  StepTotals totals;
  bool updated = false;
  absl::Status status;
  std::vector<std::vector<float>> recomputed;
  try {
    if (settings_.algorithm.importance_sampling_cap > 0 && !sequences.empty()) {
      status = RecomputeOldLogProbs(
          *policy_, sequences, settings_.trainer.micro_batch_size, &recomputed);
      for (size_t i = 0; status.ok() && i < sequences.size(); ++i) {
        sequences[i].rollout_logprobs = sequences[i].old_logprobs;
        sequences[i].old_logprobs = recomputed[i];
      }
    }
    if (status.ok()) {
      status = RunUpdates(
          step, learning_rate, settings_, *policy_, impl_->reference.get(),
          *impl_->optimizer, impl_->parameters, sequences,
          settings_.trainer.minibatches_per_step, minibatch_sizes,
          /*supervised=*/false, &updated, &totals);
    }
  } catch (const std::exception& error) {
    status = absl::InternalError(error.what());
  }
  if (status.ok() && settings_.gradient_sync != nullptr) {
    try {
      at::Tensor reduce = torch::tensor(
          {totals.loss, totals.clip_tokens, totals.kl_tokens,
           totals.entropy_tokens, totals.tokens, totals.sequences},
          torch::kDouble);
      status =
          SumOverRanks(*settings_.gradient_sync, policy_->device(), &reduce);
      if (status.ok()) {
        totals.loss = reduce[0].item<double>();
        totals.clip_tokens = reduce[1].item<double>();
        totals.kl_tokens = reduce[2].item<double>();
        totals.entropy_tokens = reduce[3].item<double>();
        totals.tokens = reduce[4].item<double>();
        totals.sequences = reduce[5].item<double>();
      }
    } catch (const std::exception& error) {
      status = absl::InternalError(error.what());
    }
  }
  if (!status.ok()) {
    if (updated) broken_ = true;
    return absl::Status(status.code(), absl::StrCat("TrainStep ", step, ": ",
                                                    status.message()));
  }
  TrainStepResult result;
  result.step = step;
  result.policy_version = step;
  v1::TrainMetrics& metrics = result.metrics;
  const double tokens = std::max(totals.tokens, 1.0);
  metrics.set_loss(totals.updates > 0 ? totals.loss / totals.updates : 0.0);
  metrics.set_clip_fraction(totals.clip_tokens / tokens);
  metrics.set_approx_kl(totals.kl_tokens / tokens);
  metrics.set_grad_norm(totals.updates > 0 ? totals.grad_norm / totals.updates
                                           : 0.0);
  metrics.set_entropy(totals.entropy_tokens / tokens);
  metrics.set_learning_rate(learning_rate);
  metrics.set_num_trajectories(static_cast<int64_t>(totals.sequences));
  metrics.set_num_tokens(static_cast<int64_t>(totals.tokens));
  const absl::Duration elapsed = absl::Now() - start;
  SetDuration(elapsed, metrics.mutable_step_time());
  step_ = step;
  last_result_ = result;
  return result;
}

absl::StatusOr<TrainStepResult> Trainer::SftStep(
    int64_t step, absl::Span<const SftExample> examples) {
  bool repeat = false;
  RETURN_IF_ERROR(CheckStepOrder(step, &repeat));
  if (repeat) return *last_result_;
  const absl::Time start = absl::Now();
  if (examples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SftStep ", step, ": no examples"));
  }
  std::vector<SequenceView> sequences;
  sequences.reserve(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    SequenceView row;
    row.prompt = examples[i].prompt_token_ids;
    row.response = examples[i].response_token_ids;
    RETURN_IF_ERROR(
        ValidateSequence(row, policy_->config().vocab_size,
                         policy_->config().max_position_embeddings,
                         absl::StrCat("SftStep ", step, ": example ", i)));
    sequences.push_back(row);
  }
  const double learning_rate = LearningRate(step);
  StepTotals totals;
  bool updated = false;
  absl::Status status;
  try {
    status = RunUpdates(step, learning_rate, settings_, *policy_,
                        /*reference=*/nullptr, *impl_->optimizer,
                        impl_->parameters, sequences, /*num_minibatches=*/1,
                        /*minibatch_sizes=*/{}, /*supervised=*/true, &updated,
                        &totals);
  } catch (const std::exception& error) {
    status = absl::InternalError(error.what());
  }
  if (!status.ok()) {
    if (updated) broken_ = true;
    return absl::Status(status.code(),
                        absl::StrCat("SftStep ", step, ": ", status.message()));
  }
  TrainStepResult result;
  result.step = step;
  result.policy_version = step;
  const double tokens = std::max(totals.tokens, 1.0);
  result.metrics.set_loss(totals.loss);
  result.metrics.set_grad_norm(totals.grad_norm);
  result.metrics.set_entropy(totals.entropy_tokens / tokens);
  result.metrics.set_learning_rate(learning_rate);
  result.metrics.set_num_trajectories(static_cast<int64_t>(totals.sequences));
  result.metrics.set_num_tokens(static_cast<int64_t>(totals.tokens));
  const absl::Duration elapsed = absl::Now() - start;
  SetDuration(elapsed, result.metrics.mutable_step_time());
  step_ = step;
  last_result_ = result;
  return result;
}

}  // namespace fapo::trainer
