// Private to trainer/trainer*.cc, the parts of the Trainer (trainer.h):
// what they share. Not included from anywhere else.
//
//   trainer.cc             settings, creation, TrainStep and SftStep
//   trainer_update.cc      the minibatch / micro-batch / AdamW loop both
//                          steps run, and the old log-probs' recompute
//   trainer_checkpoint.cc  SaveCheckpoint and Resume
#ifndef FAPO_TRAINER_TRAINER_INTERNAL_H_
#define FAPO_TRAINER_TRAINER_INTERNAL_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "algorithm/loss/policy_loss.h"
#include "engine/model/model.h"
#include "trainer/checkpoint_manager.h"
#include "trainer/trainer.h"

namespace fapo::trainer {
namespace internal {

// A checkpoint's files besides the manager's manifest (SaveCheckpoint).
inline constexpr char kPolicySubdir[] = "policy";
inline constexpr char kOptimizerFile[] = "optimizer.pt";
inline constexpr char kRngFile[] = "rng_state.pt";
inline constexpr char kTrainerStateFile[] = "trainer_state.json";
inline constexpr char kLastMetricsFile[] = "last_step_metrics.binpb";
inline constexpr char kSchedulerSnapshotFile[] = "scheduler_snapshot.bin";
inline constexpr char kTrainerStateFormat[] = "fapo-trainer-state-v1";

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

// `rows` as right-padded tensors on `device` (see MicroBatch).
MicroBatch BuildMicroBatch(absl::Span<const SequenceView> rows,
                           c10::Device device);

// Weights of `source` into `target`'s tensors (same names and shapes);
// InvalidArgument naming `what` otherwise.
absl::Status CopyWeights(const engine::CausalLM& source,
                         engine::CausalLM& target, absl::string_view what);

// The clipped-ratio loss's options from the job spec's algorithm section.
algorithm::PolicyLossOptions LossOptions(const config::AlgorithmOptions& a);

// The log-probs of every response token under `policy` as it is now, in
// micro-batches of `micro_size` under no-grad (the PPO anchor).
absl::Status RecomputeOldLogProbs(engine::CausalLM& policy,
                                  const std::vector<SequenceView>& sequences,
                                  int64_t micro_size,
                                  std::vector<std::vector<float>>* recomputed);

// Sums `values` over ranks in place (one collective on `device`).
absl::Status SumOverRanks(GradientSync& sync, c10::Device device,
                          at::Tensor* values);

// The shared minibatch / micro-batch / AdamW loop of TrainStep and SftStep
// (trainer_update.cc says how).
absl::Status RunUpdates(int64_t step, double learning_rate,
                        const TrainerSettings& settings,
                        engine::CausalLM& policy, engine::CausalLM* reference,
                        torch::optim::AdamW& optimizer,
                        std::vector<at::Tensor>& parameters,
                        const std::vector<SequenceView>& sequences,
                        int num_minibatches,
                        absl::Span<const int64_t> minibatch_sizes,
                        bool supervised, bool* updated, StepTotals* totals);

}  // namespace internal

struct Trainer::Impl {
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<engine::CausalLM> reference;  // frozen; kl_coef > 0 only
  std::vector<at::Tensor> parameters;
  std::unique_ptr<CheckpointManager> checkpoints;  // null: no checkpoint_dir
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_TRAINER_INTERNAL_H_
