// trainer/: the policy update side of FAPO.
//
//   trainer.h             Trainer: GRPO/FAPO policy updates (TrainStep) and
//                         supervised updates (SftStep) through one
//                         minibatch / micro-batch / AdamW code path;
//                         checkpoints and resume
//   lr_schedule.h         warm-up, then constant or cosine
//   checkpoint_manager.h  atomic, checksummed checkpoint directories
//   gradient_sync.h       the seam data parallelism plugs into
//   communicator.h        collectives between trainer ranks (Gloo over
//                         c10d, a fake): a GradientSync
//   rank_group.h          data-parallel ranks: rank 0 shards each step
//                         over the others (NOTE [trainer ranks])
//   sft.h                 `fapo sft`: the supervised warm start on a corpus
//   trainer_service.h     the fapo.v1.Trainer gRPC adapter
//
// NOTE [trainer step semantics]: steps are 1-based and keyed: step s turns
// policy version s-1 into version s. TrainStep(s) right after step s-1 (or
// after resuming from a checkpoint of step s-1) trains; a repeat of the
// last applied step returns its recorded result without training (a
// retried RPC); any other step is FAILED_PRECONDITION. One training step
// splits the batch into trainer.minibatches_per_step contiguous minibatches,
// one AdamW step each (PPO-style epochs over fresh data); each minibatch is
// processed in micro-batches of trainer.micro_batch_size sequences whose
// gradients accumulate. The loss of each micro-batch is scaled so the
// accumulated gradient equals the gradient of the minibatch's loss as one
// batch: token-mean divides by the minibatch's response tokens (over all
// ranks), sequence-mean by its sequences. The PPO ratio's anchor (NOTE [old
// vs rollout log-probs] in algorithm/loss/policy_loss.h): with
// algorithm.importance_sampling_cap > 0 (the default) the step first
// recomputes every response token's log-prob under the current policy
// (no-grad, one extra forward) and uses those as old log-probs, with the
// trajectories' response_logprobs as the rollout log-probs the truncated
// importance weight corrects for; with the cap at 0 the response_logprobs
// are the anchor and there is no extra forward.
//
// Not thread-safe: one caller at a time (TrainerService runs every call on
// its trainer thread).
#ifndef FAPO_TRAINER_TRAINER_H_
#define FAPO_TRAINER_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/model/model.h"
#include "fapo/v1/common.pb.h"
#include "services/config/job_spec.h"
#include "trainer/comm/gradient_sync.h"
#include "trainer/lr_schedule.h"

namespace fapo::trainer {

// What a Trainer needs from the job spec, plus the process-level seams.
struct TrainerSettings {
  // Optimizer, schedule, batching and checkpoint options.
  config::TrainerOptions trainer;
  // clip_low / clip_high, loss_aggregation, kl_coef,
  // importance_sampling_cap.
  config::AlgorithmOptions algorithm;
  // job.steps: the cosine schedule's horizon. >= 1.
  int64_t total_steps = 300;
  // Where checkpoints go (<job.output_dir>/checkpoints); "" = none
  // (SaveCheckpoint fails, nothing resumes).
  std::string checkpoint_dir;
  // Copied into each checkpoint's policy/ when set and readable.
  std::string tokenizer_path;
  // Otherwise, when set, the tokenizer.json text written there (the
  // embedded arith tokenizer).
  std::string tokenizer_json;
  // Not owned; null = one process. NOTE [data-parallel seam] in
  // gradient_sync.h.
  GradientSync* gradient_sync = nullptr;
};

// Settings from the spec: checkpoint_dir = <job.output_dir>/checkpoints,
// tokenizer_path = policy.tokenizer_path (or <model_dir>/tokenizer.json).
TrainerSettings TrainerSettingsFromSpec(const config::JobSpec& spec);

// The learning-rate schedule of `settings` (trainer.learning_rate,
// warmup_steps, lr_schedule, min_lr_ratio; the horizon total_steps).
LrScheduleOptions LrScheduleOptionsFromSettings(
    const TrainerSettings& settings);

struct TrainStepResult {
  int64_t step = 0;
  int64_t policy_version = 0;
  // loss: mean over the step's minibatches of each minibatch's loss (for
  // SftStep, the mean token cross-entropy); clip_fraction, approx_kl,
  // entropy: token-weighted means over the whole batch; grad_norm: mean over
  // minibatches of the global norm before clipping; learning_rate: the
  // step's; num_trajectories, num_tokens (response tokens): over all ranks;
  // step_time: wall time of the call.
  v1::TrainMetrics metrics;
};

// One supervised example: the loss is the cross-entropy of the response
// tokens given everything before them.
struct SftExample {
  std::vector<int> prompt_token_ids;
  std::vector<int> response_token_ids;
};

// What the trainer started from (GetResumeState).
struct ResumeInfo {
  int64_t step = 0;  // 0 and empty when starting fresh
  int64_t policy_version = 0;
  std::string scheduler_snapshot;
  std::string checkpoint_path;
};

class Trainer {
 public:
  // The policy comes from the newest valid checkpoint under
  // <job.output_dir>/checkpoints when trainer.resume is set and there is one
  // (invalid ones are skipped with a warning naming them), else from
  // policy.model_dir; policy.model_dir "" with data.task arith is the
  // embedded tiny policy, randomly initialised from job.seed (a warning
  // says to warm-start it with `fapo sft`). Errors: FailedPrecondition when
  // policy.model_dir holds no config.json, or is "" for another task
  // (telling the user to run `fapo init-model` / `fapo sft`), the model
  // loader's errors, InvalidArgument for options out of range, DataLoss /
  // Internal naming the checkpoint file that cannot be loaded. With
  // algorithm.kl_coef > 0 a frozen reference copy of policy.model_dir is loaded
  // as well.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const config::JobSpec& spec, GradientSync* gradient_sync = nullptr);

  // With the policy given (tests, `fapo sft`); the reference policy, when
  // kl_coef > 0, is a copy of it. Does not resume: call Resume().
  static absl::StatusOr<std::unique_ptr<Trainer>> CreateWithPolicy(
      TrainerSettings settings, std::unique_ptr<engine::CausalLM> policy);

  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Loads the newest valid checkpoint under settings.checkpoint_dir (policy
  // weights, optimizer and RNG state, step, scheduler snapshot). Returns
  // false when there is none (the trainer is unchanged). Errors name the
  // checkpoint file that cannot be loaded.
  absl::StatusOr<bool> Resume();

  // One training step on `batch` (this rank's share): NOTE [trainer step
  // semantics]. InvalidArgument, before anything changes, for an empty
  // batch, a trajectory without prompt or response tokens, response_logprobs
  // not one per response token, a sequence longer than the model's
  // max_position_embeddings. A failure after the first optimizer step
  // leaves the trainer unusable (later steps are FailedPrecondition:
  // restart from a checkpoint).
  //
  // `minibatch_sizes` (data-parallel ranks, rank_group.h): how many of this
  // rank's trajectories, in order, fall in each of the step's
  // trainer.minibatches_per_step minibatches, so each rank's k-th minibatch
  // is its share of the whole batch's k-th one whatever the sharding.
  // Empty = contiguous, equal splits of `batch`. InvalidArgument when given
  // with another length or sum.
  absl::StatusOr<TrainStepResult> TrainStep(
      int64_t step,
      const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch,
      absl::Span<const int64_t> minibatch_sizes = {});

  // The checks TrainStep makes on `batch` before anything changes (and an
  // empty batch is refused even with a GradientSync): a data-parallel rank
  // 0 runs them on the whole batch before it sends out shards, so no rank
  // fails a step the others run.
  absl::Status ValidateBatch(
      int64_t step,
      const google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>& batch)
      const;

  // OK when TrainStep(step) may train now; sets *repeat when `step` is the
  // last applied step (TrainStep then returns the recorded result without
  // training); FailedPrecondition for a step out of order or a broken
  // trainer. Touches nothing.
  absl::Status CheckStepOrder(int64_t step, bool* repeat) const;

  // One supervised step (same keying as TrainStep): a single AdamW step over
  // `examples` in micro-batches, token-mean cross-entropy of the responses.
  // metrics.clip_fraction and approx_kl are 0.
  absl::StatusOr<TrainStepResult> SftStep(
      int64_t step, absl::Span<const SftExample> examples);

  // Writes checkpoint `step` (must be the current step, NOTE [trainer step
  // semantics]) with `scheduler_snapshot` inside; returns its directory.
  // Keyed by step: an existing valid checkpoint of that step is kept and its
  // path returned. FailedPrecondition for another step or without a
  // checkpoint_dir.
  absl::StatusOr<std::string> SaveCheckpoint(
      int64_t step, absl::string_view scheduler_snapshot);

  // The learning rate step `step` uses.
  double LearningRate(int64_t step) const;

  // The last applied step (0 before the first) and the policy version (=
  // step).
  int64_t step() const { return step_; }
  int64_t policy_version() const { return step_; }
  const ResumeInfo& resume_info() const { return resume_info_; }
  const TrainerSettings& settings() const { return settings_; }
  engine::CausalLM& policy() { return *policy_; }

 private:
  struct Impl;
  Trainer(TrainerSettings settings, std::unique_ptr<engine::CausalLM> policy);

  absl::Status Initialize(std::unique_ptr<engine::CausalLM> reference);

  TrainerSettings settings_;
  LrScheduleOptions lr_schedule_;
  std::unique_ptr<engine::CausalLM> policy_;
  std::unique_ptr<Impl> impl_;
  int64_t step_ = 0;
  std::optional<TrainStepResult> last_result_;
  bool broken_ = false;
  ResumeInfo resume_info_;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_TRAINER_H_
