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
#include "services/logging/log.h"
#include "services/status/status_macros.h"
#include "trainer/checkpoint_manager.h"

// NOTE [no std::filesystem with LibTorch]: LibTorch exports its own
// std::filesystem symbols, so code linked with it uses POSIX calls
// (checkpoint_manager.h's helpers) instead.

namespace fapo::trainer {
namespace {

constexpr char kPolicySubdir[] = "policy";
constexpr char kOptimizerFile[] = "optimizer.pt";
constexpr char kRngFile[] = "rng_state.pt";
constexpr char kTrainerStateFile[] = "trainer_state.json";
constexpr char kLastMetricsFile[] = "last_step_metrics.binpb";
constexpr char kSchedulerSnapshotFile[] = "scheduler_snapshot.bin";
constexpr char kTrainerStateFormat[] = "fapo-trainer-state-v1";

// One sequence of a batch, viewed in place (no copies of the token ids).
struct SequenceView {
  absl::Span<const int> prompt;
  absl::Span<const int> response;
  absl::Span<const float> old_logprobs;  // empty for supervised examples
  // Sampling-time log-probs when old_logprobs were recomputed (NOTE [old vs
  // rollout log-probs]); empty otherwise.
  absl::Span<const float> rollout_logprobs;
  float advantage = 0;
};

// A micro-batch as tensors. Rows are right-padded to the longest sequence;
// loss-side tensors are [B, T-1], aligned with ComputeLogProbs' output:
// response token j of a row with P prompt tokens sits at input position
// P + j, and its log-prob at index P + j - 1.
struct MicroBatch {
  at::Tensor input_ids;         // [B, T] int64
  at::Tensor attention_mask;    // [B, T] int64
  at::Tensor response_mask;     // [B, T-1] float
  at::Tensor old_logprobs;      // [B, T-1] float (zeros for supervised)
  at::Tensor rollout_logprobs;  // [B, T-1] float, or undefined
  at::Tensor advantages;        // [B] float
};

MicroBatch BuildMicroBatch(absl::Span<const SequenceView> rows,
                           c10::Device device) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  int64_t length = 2;
  for (const SequenceView& row : rows) {
    length = std::max<int64_t>(length, row.prompt.size() + row.response.size());
  }
  std::vector<int64_t> ids(batch * length, 0);
  std::vector<int64_t> attention(batch * length, 0);
  std::vector<float> mask(batch * (length - 1), 0.0f);
  std::vector<float> old_logprobs(batch * (length - 1), 0.0f);
  const bool with_rollout = !rows.empty() && !rows[0].rollout_logprobs.empty();
  std::vector<float> rollout_logprobs(with_rollout ? batch * (length - 1) : 0,
                                      0.0f);
  std::vector<float> advantages(batch, 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    const SequenceView& row = rows[b];
    const int64_t prompt_length = row.prompt.size();
    for (int64_t t = 0; t < prompt_length; ++t) {
      ids[b * length + t] = row.prompt[t];
      attention[b * length + t] = 1;
    }
    for (size_t j = 0; j < row.response.size(); ++j) {
      const int64_t position = prompt_length + static_cast<int64_t>(j);
      ids[b * length + position] = row.response[j];
      attention[b * length + position] = 1;
      mask[b * (length - 1) + position - 1] = 1.0f;
      if (!row.old_logprobs.empty()) {
        old_logprobs[b * (length - 1) + position - 1] = row.old_logprobs[j];
      }
      if (with_rollout) {
        rollout_logprobs[b * (length - 1) + position - 1] =
            row.rollout_logprobs[j];
      }
    }
    advantages[b] = row.advantage;
  }
  auto to_tensor = [&](auto& values, std::vector<int64_t> shape,
                       c10::ScalarType type) {
    return torch::from_blob(values.data(), shape,
                            torch::TensorOptions().dtype(type))
        .to(device, /*non_blocking=*/false, /*copy=*/true);
  };
  MicroBatch micro;
  micro.input_ids = to_tensor(ids, {batch, length}, torch::kInt64);
  micro.attention_mask = to_tensor(attention, {batch, length}, torch::kInt64);
  micro.response_mask = to_tensor(mask, {batch, length - 1}, torch::kFloat);
  micro.old_logprobs =
      to_tensor(old_logprobs, {batch, length - 1}, torch::kFloat);
  if (with_rollout) {
    micro.rollout_logprobs =
        to_tensor(rollout_logprobs, {batch, length - 1}, torch::kFloat);
  }
  micro.advantages = to_tensor(advantages, {batch}, torch::kFloat);
  return micro;
}

algorithm::PolicyLossOptions LossOptions(const config::AlgorithmOptions& a) {
  algorithm::PolicyLossOptions options;
  options.clip_low = a.clip_low;
  options.clip_high = a.clip_high;
  options.aggregation =
      a.loss_aggregation == config::LossAggregation::kSequenceMean
          ? algorithm::LossAggregation::kSequenceMean
          : algorithm::LossAggregation::kTokenMean;
  options.kl_coef = a.kl_coef;
  options.importance_sampling_cap = a.importance_sampling_cap;
  return options;
}

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

absl::Status CopyFile(const std::string& from, const std::string& to) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(from));
  return WriteStringToFile(to, contents);
}

// Weights of `source` into `target`'s tensors (same names and shapes).
absl::Status CopyWeights(const engine::CausalLM& source,
                         engine::CausalLM& target, absl::string_view what) {
  const auto& from = source.named_parameters();
  const auto& to = target.named_parameters();
  if (from.size() != to.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", from.size(), " tensors, the policy ", to.size()));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i].first != to[i].first ||
        !from[i].second.sizes().equals(to[i].second.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " does not match the policy at tensor ", to[i].first));
    }
    to[i].second.copy_(from[i].second);
  }
  return absl::OkStatus();
}

}  // namespace

struct Trainer::Impl {
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<engine::CausalLM> reference;  // frozen; kl_coef > 0 only
  std::vector<at::Tensor> parameters;
  std::unique_ptr<CheckpointManager> checkpoints;  // null: no checkpoint_dir
};

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
  if (dir.empty() || !PathExists(absl::StrCat(dir, "/config.json"))) {
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
  lr_schedule_.peak = settings_.trainer.learning_rate;
  lr_schedule_.warmup_steps = settings_.trainer.warmup_steps;
  lr_schedule_.schedule = settings_.trainer.lr_schedule;
  lr_schedule_.min_lr_ratio = settings_.trainer.min_lr_ratio;
  lr_schedule_.total_steps = settings_.total_steps;
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

// Sums over this rank's micro-batches (and, after the final all-reduce,
// over all ranks).
struct StepTotals {
  double loss = 0;         // sum over minibatches of each minibatch's loss
  double clip_tokens = 0;  // clip_fraction * tokens
  double kl_tokens = 0;    // approx_kl * tokens
  double entropy_tokens = 0;
  double tokens = 0;
  double sequences = 0;
  double grad_norm = 0;  // sum over updates
  int updates = 0;
};

}  // namespace

// The log-probs of every response token under the policy as it is now
// (before the step's first update), with the trainer's numerics, in
// micro-batches under no-grad: the PPO anchor (NOTE [old vs rollout
// log-probs] in algorithm/loss/policy_loss.h).
static absl::Status RecomputeOldLogProbs(
    engine::CausalLM& policy, const std::vector<SequenceView>& sequences,
    int64_t micro_size, std::vector<std::vector<float>>* recomputed) {
  recomputed->assign(sequences.size(), {});
  const int64_t count = static_cast<int64_t>(sequences.size());
  for (int64_t begin = 0; begin < count; begin += micro_size) {
    const int64_t end = std::min(begin + micro_size, count);
    MicroBatch micro = BuildMicroBatch(
        absl::MakeConstSpan(sequences).subspan(begin, end - begin),
        policy.device());
    ASSIGN_OR_RETURN(
        engine::TokenLogProbs logprobs,
        engine::ComputeLogProbs(policy, micro.input_ids, micro.attention_mask,
                                /*with_entropy=*/false,
                                /*enable_grad=*/false));
    at::Tensor cpu =
        logprobs.logprobs.to(torch::kCPU, torch::kFloat).contiguous();
    auto values = cpu.accessor<float, 2>();
    for (int64_t i = begin; i < end; ++i) {
      const SequenceView& row = sequences[i];
      std::vector<float>& out = (*recomputed)[i];
      out.resize(row.response.size());
      const int64_t prompt_length = row.prompt.size();
      for (size_t j = 0; j < row.response.size(); ++j) {
        out[j] = values[i - begin][prompt_length + static_cast<int64_t>(j) - 1];
      }
    }
  }
  return absl::OkStatus();
}

// Sums `values` over ranks in place (one collective). The tensor lives on
// the policy's device: the communicator serves that device (CPU for Gloo,
// CUDA for NCCL).
static absl::Status SumOverRanks(GradientSync& sync, c10::Device device,
                                 at::Tensor* values) {
  std::vector<at::Tensor> reduce = {values->to(device)};
  RETURN_IF_ERROR(sync.AllReduceSum(reduce));
  *values = reduce[0].to(torch::kCPU);
  return absl::OkStatus();
}

// The shared minibatch / micro-batch / AdamW loop of TrainStep and SftStep.
// `supervised` selects the cross-entropy objective. `minibatch_sizes`: as
// TrainStep's (checked by the caller); empty = equal contiguous splits.
static absl::Status RunUpdates(
    int64_t step, double learning_rate, const TrainerSettings& settings,
    engine::CausalLM& policy, engine::CausalLM* reference,
    torch::optim::AdamW& optimizer, std::vector<at::Tensor>& parameters,
    const std::vector<SequenceView>& sequences, int num_minibatches,
    absl::Span<const int64_t> minibatch_sizes, bool supervised, bool* updated,
    StepTotals* totals) {
  GradientSync* sync = settings.gradient_sync;
  const int64_t count = static_cast<int64_t>(sequences.size());
  std::vector<int64_t> bounds(num_minibatches + 1);
  for (int k = 0; k <= num_minibatches; ++k) {
    bounds[k] = minibatch_sizes.empty()
                    ? count * k / num_minibatches
                    : (k == 0 ? 0 : bounds[k - 1] + minibatch_sizes[k - 1]);
  }
  // Global tokens and sequences of each minibatch: the accumulation
  // denominators (NOTE [trainer step semantics]).
  at::Tensor counts = torch::zeros({2 * num_minibatches}, torch::kDouble);
  for (int k = 0; k < num_minibatches; ++k) {
    double tokens = 0;
    for (int64_t i = bounds[k]; i < bounds[k + 1]; ++i) {
      tokens += sequences[i].response.size();
    }
    counts[2 * k] = tokens;
    counts[2 * k + 1] = static_cast<double>(bounds[k + 1] - bounds[k]);
  }
  if (sync != nullptr) {
    RETURN_IF_ERROR(SumOverRanks(*sync, policy.device(), &counts));
  }
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate);
  }
  const algorithm::PolicyLossOptions loss_options =
      LossOptions(settings.algorithm);
  const bool sequence_mean =
      !supervised &&
      loss_options.aggregation == algorithm::LossAggregation::kSequenceMean;
  const int64_t micro_size = settings.trainer.micro_batch_size;
  const double max_norm = settings.trainer.grad_clip > 0
                              ? settings.trainer.grad_clip
                              : std::numeric_limits<double>::infinity();
  for (int k = 0; k < num_minibatches; ++k) {
    const double global_tokens = counts[2 * k].item<double>();
    const double global_sequences = counts[2 * k + 1].item<double>();
    if (global_tokens <= 0) continue;  // an empty minibatch on every rank
    optimizer.zero_grad();
    for (int64_t begin = bounds[k]; begin < bounds[k + 1];
         begin += micro_size) {
      const int64_t end = std::min(begin + micro_size, bounds[k + 1]);
      MicroBatch micro = BuildMicroBatch(
          absl::MakeConstSpan(sequences).subspan(begin, end - begin),
          policy.device());
      ASSIGN_OR_RETURN(
          engine::TokenLogProbs current,
          engine::ComputeLogProbs(policy, micro.input_ids, micro.attention_mask,
                                  /*with_entropy=*/true));
      const double micro_tokens = micro.response_mask.sum().item<double>();
      at::Tensor scaled_loss;
      double entropy_sum;
      if (supervised) {
        at::Tensor ce_sum = -(current.logprobs * micro.response_mask).sum();
        scaled_loss = ce_sum / global_tokens;
        entropy_sum =
            (current.entropy * micro.response_mask).sum().item<double>();
      } else {
        algorithm::PolicyLossInputs inputs;
        inputs.logprobs = current.logprobs;
        inputs.old_logprobs = micro.old_logprobs;
        inputs.advantages = micro.advantages;
        inputs.mask = micro.response_mask;
        inputs.entropy = current.entropy;
        if (micro.rollout_logprobs.defined()) {
          inputs.rollout_logprobs = micro.rollout_logprobs;
        }
        if (reference != nullptr) {
          ASSIGN_OR_RETURN(engine::TokenLogProbs ref,
                           engine::ComputeLogProbs(*reference, micro.input_ids,
                                                   micro.attention_mask,
                                                   /*with_entropy=*/false,
                                                   /*enable_grad=*/false));
          inputs.ref_logprobs = ref.logprobs;
        }
        ASSIGN_OR_RETURN(algorithm::PolicyLossResult result,
                         algorithm::ComputePolicyLoss(inputs, loss_options));
        // The micro-batch's mean times its share of the minibatch: the sum
        // over micro-batches (and ranks) is the minibatch's mean.
        const double share =
            sequence_mean ? static_cast<double>(end - begin) / global_sequences
                          : micro_tokens / global_tokens;
        scaled_loss = result.loss * share;
        totals->clip_tokens += result.clip_fraction * micro_tokens;
        totals->kl_tokens += result.approx_kl * micro_tokens;
        entropy_sum = result.entropy * micro_tokens;
      }
      scaled_loss.backward();
      totals->loss += scaled_loss.item<double>();
      totals->entropy_tokens += entropy_sum;
      totals->tokens += micro_tokens;
      totals->sequences += static_cast<double>(end - begin);
    }
    std::vector<at::Tensor> grads;
    grads.reserve(parameters.size());
    for (at::Tensor& parameter : parameters) {
      if (!parameter.grad().defined()) {
        parameter.mutable_grad() = torch::zeros_like(parameter);
      }
      grads.push_back(parameter.grad());
    }
    if (sync != nullptr) RETURN_IF_ERROR(sync->AllReduceSum(grads));
    const double grad_norm =
        torch::nn::utils::clip_grad_norm_(parameters, max_norm);
    totals->grad_norm += grad_norm;
    ++totals->updates;
    if (!std::isfinite(grad_norm)) {
      // Same decision on every rank: the norm is of the summed gradients.
      FAPO_LOG(WARNING) << "step " << step << ": gradient norm is " << grad_norm
                        << "; minibatch " << k << " skipped";
      optimizer.zero_grad();
      continue;
    }
    *updated = true;
    optimizer.step();
  }
  optimizer.zero_grad();
  return absl::OkStatus();
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

absl::StatusOr<std::string> Trainer::SaveCheckpoint(
    int64_t step, absl::string_view scheduler_snapshot) {
  if (impl_->checkpoints == nullptr) {
    return absl::FailedPreconditionError(
        "no checkpoint directory (job.output_dir) is configured");
  }
  if (step != step_) {
    return absl::FailedPreconditionError(
        absl::StrCat("SaveCheckpoint ", step, ": the trainer is at step ",
                     step_, " and can only save that step"));
  }
  auto write = [&](const std::string& dir) -> absl::Status {
    const std::string policy_dir = absl::StrCat(dir, "/", kPolicySubdir);
    RETURN_IF_ERROR(policy_->Save(policy_dir));
    const std::string tokenizer_copy =
        absl::StrCat(policy_dir, "/tokenizer.json");
    if (!settings_.tokenizer_path.empty() &&
        PathExists(settings_.tokenizer_path)) {
      RETURN_IF_ERROR(CopyFile(settings_.tokenizer_path, tokenizer_copy));
    } else if (!settings_.tokenizer_json.empty()) {
      RETURN_IF_ERROR(
          WriteStringToFile(tokenizer_copy, settings_.tokenizer_json));
    }
    const std::string optimizer_path = absl::StrCat(dir, "/", kOptimizerFile);
    const std::string rng_path = absl::StrCat(dir, "/", kRngFile);
    try {
      torch::save(*impl_->optimizer, optimizer_path);
      at::Tensor rng_state;
      {
        auto generator = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(generator.mutex());
        rng_state = generator.get_state();
      }
      torch::save(rng_state, rng_path);
    } catch (const c10::Error& error) {
      return absl::InternalError(absl::StrCat("writing ", optimizer_path, " / ",
                                              rng_path, ": ", error.what()));
    }
    nlohmann::json state = {{"format", kTrainerStateFormat},
                            {"step", step_},
                            {"policy_version", policy_version()}};
    RETURN_IF_ERROR(WriteStringToFile(absl::StrCat(dir, "/", kTrainerStateFile),
                                      state.dump(1)));
    if (last_result_.has_value() && last_result_->step == step_) {
      RETURN_IF_ERROR(
          WriteStringToFile(absl::StrCat(dir, "/", kLastMetricsFile),
                            last_result_->metrics.SerializeAsString()));
    }
    return WriteStringToFile(absl::StrCat(dir, "/", kSchedulerSnapshotFile),
                             scheduler_snapshot);
  };
  return impl_->checkpoints->Save(step, write);
}

absl::StatusOr<bool> Trainer::Resume() {
  if (impl_->checkpoints == nullptr) return false;
  absl::StatusOr<CheckpointInfo> newest = impl_->checkpoints->FindNewestValid();
  if (absl::IsNotFound(newest.status())) return false;
  RETURN_IF_ERROR(newest.status());
  const std::string& dir = newest->path;
  auto file_error = [&](absl::string_view file, absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("checkpoint file ", dir, "/", file, ": ", why));
  };
  // Everything is read and checked before the trainer changes.
  ASSIGN_OR_RETURN(std::string state_text,
                   ReadFileToString(absl::StrCat(dir, "/", kTrainerStateFile)));
  nlohmann::json state = nlohmann::json::parse(state_text, nullptr, false);
  if (!state.is_object() || state.value("format", "") != kTrainerStateFormat ||
      !state.contains("step") || !state["step"].is_number_integer()) {
    return file_error(kTrainerStateFile, "not a fapo-trainer-state-v1 file");
  }
  const int64_t step = state["step"].get<int64_t>();
  ASSIGN_OR_RETURN(
      std::string snapshot,
      ReadFileToString(absl::StrCat(dir, "/", kSchedulerSnapshotFile)));
  std::optional<v1::TrainMetrics> last_metrics;
  const std::string metrics_path = absl::StrCat(dir, "/", kLastMetricsFile);
  if (PathExists(metrics_path)) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(metrics_path));
    last_metrics.emplace();
    if (!last_metrics->ParseFromString(bytes)) {
      return file_error(kLastMetricsFile, "not a fapo.v1.TrainMetrics");
    }
  }
  const std::string policy_dir = absl::StrCat(dir, "/", kPolicySubdir);
  absl::StatusOr<std::unique_ptr<engine::CausalLM>> loaded =
      engine::CausalLM::Load(
          policy_dir, engine::LoadOptions{policy_->device(), policy_->dtype()});
  if (!loaded.ok()) {
    return file_error(kPolicySubdir, loaded.status().message());
  }
  // From here on a failure leaves a mix of old and new state: the trainer
  // refuses to train until a Resume succeeds.
  broken_ = true;
  RETURN_IF_ERROR(
      CopyWeights(**loaded, *policy_, absl::StrCat("checkpoint ", policy_dir)));
  const std::string optimizer_path = absl::StrCat(dir, "/", kOptimizerFile);
  try {
    torch::load(*impl_->optimizer, optimizer_path);
  } catch (const c10::Error& error) {
    return file_error(kOptimizerFile, error.what());
  }
  try {
    at::Tensor rng_state;
    torch::load(rng_state, absl::StrCat(dir, "/", kRngFile));
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  } catch (const c10::Error& error) {
    return file_error(kRngFile, error.what());
  }
  step_ = step;
  broken_ = false;
  last_result_.reset();
  if (last_metrics.has_value()) {
    last_result_ = TrainStepResult{step, step, *last_metrics};
  }
  resume_info_ = ResumeInfo{step, step, std::move(snapshot), dir};
  FAPO_LOG(INFO) << "resumed from " << dir << " at step " << step;
  return true;
}

}  // namespace fapo::trainer
