// `fapo sft`: the supervised warm start of the policy on a JSONL corpus of
// {prompt, response} traces (tasks/arith/corpus.h), through the Trainer's
// own minibatch / micro-batch / AdamW code path (Trainer::SftStep). The
// result is a Hugging Face checkpoint (config.json, model.safetensors,
// tokenizer.json) that policy.model_dir can point at.
//
// What the policy sees before its response is NOTE [policy prompt] in
// engine/tokenizer/chat_format.h (raw: the prompt and "\n", since the arith
// prompt "3+7*4-2" ends in a digit as its first step does; chatml: one user
// turn and the generation prompt), shared with the rollout workers. The
// response is followed by the end-of-sequence token in training, so the
// model learns to stop.
#ifndef FAPO_TRAINER_SFT_H_
#define FAPO_TRAINER_SFT_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/tokenizer/tokenizer.h"
#include "services/config/job_spec.h"
#include "tasks/arith/corpus.h"
#include "trainer/trainer.h"

namespace fapo::trainer {

// engine::FormatPolicyPrompt for the job spec's chat format.
std::string PolicyPromptText(absl::string_view prompt,
                             config::ChatFormat chat_format);

// The examples of `records`: prompt ids = Encode(PolicyPromptText(prompt)),
// response ids = Encode(response) + eos_token_id. InvalidArgument naming the
// record (0-based) whose prompt or response encodes to nothing.
absl::StatusOr<std::vector<SftExample>> TokenizeCorpus(
    const std::vector<tasks::arith::CorpusRecord>& records,
    const engine::Tokenizer& tokenizer, config::ChatFormat chat_format,
    int eos_token_id);

struct SftOptions {
  // JSONL corpus. When empty, a corpus of generated_corpus_size records is
  // drawn from tasks/arith's CorpusGenerator (default arith and corpus
  // options, seeded with `seed`) and also written to
  // <out_dir>/sft_corpus.jsonl for inspection. generated_corpus_size 0
  // (default) = steps x batch_size (capped at 1e6): a fresh trace for every
  // example.
  std::string corpus_path;
  int generated_corpus_size = 0;
  // Where the trained model goes (required; created if missing).
  std::string out_dir;
  // Starting model (HF layout with tokenizer.json); "" = a freshly
  // initialised tiny arith policy (`fapo init-model --seed seed`'s
  // weights), kept in memory: out_dir gets a model only at the end.
  std::string init_model_dir;
  // NOTE [sft recipe]: the defaults warm the tiny arith policy up to what
  // docs/arith-testbed.md's warm-up reaches (held-out, sampled at T=1: accuracy
  // ~0.90, flawed-positive ratio ~0.28, the corpus's own 0.90 and 0.28) on
  // a quarter of its examples: 1000 steps of 32 (32k examples, about a
  // minute of one core) instead of 1000 of 128 (about four). On this task
  // the number of updates, not of examples, sets the pace: 300 steps of
  // 128 reach 0.32 sampled accuracy (loss still 0.18), 600 of 64 0.86,
  // 1000 of 32 0.89-0.91 (seeds 0-2). Figures: scripts/bench-sft.sh.
  // Optimizer steps. Default 1000.
  int64_t steps = 1000;
  // Examples per step, drawn by walking a seeded shuffle of the corpus,
  // epoch after epoch. Default 32.
  int batch_size = 32;
  // Sequences per forward/backward pass; each step's examples are sorted
  // by length first, so a micro-batch pads little. Default 32.
  int micro_batch_size = 32;
  // AdamW, warm-up then cosine to min_lr_ratio. Defaults: lr 2e-3 (as the
  // testbed), 50 warm-up steps (the testbed's 200 were a fifth of its run),
  // floor 0.1, weight decay 0.01, clip 1.0.
  double learning_rate = 2e-3;
  int warmup_steps = 50;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.01;
  double grad_clip = 1.0;
  // Seed of the initialisation (init_model_dir "") and the shuffle.
  uint64_t seed = 0;
  config::ChatFormat chat_format = config::ChatFormat::kRaw;
  // A progress line every log_every steps (and at the last); 0 = never.
  int log_every = 50;
};

struct SftReport {
  int64_t steps = 0;
  int64_t examples = 0;   // corpus size
  double first_loss = 0;  // mean token cross-entropy of step 1
  double last_loss = 0;   // ... of the last step
  double seconds = 0;
  std::string out_dir;
};

// Runs the warm start. `progress` (may be null) receives each progress
// line. Errors: the corpus reader's (naming the line), the model loader's,
// InvalidArgument for options out of range, Internal when the output
// cannot be written (naming the path).
absl::StatusOr<SftReport> RunSft(
    const SftOptions& options,
    const std::function<void(const std::string&)>& progress = nullptr);

// `fapo sft --out DIR [--corpus FILE | --corpus-size N] [--init-model DIR]
// [--steps N] [--batch-size N] [--micro-batch-size N] [--learning-rate X]
// [--warmup-steps N] [--seed S] [--chat-format raw|chatml] [--log-every N]
// [--threads N]`: the exit code (0 ok, 1 failure, 2 bad usage); progress
// and a final JSON summary on `out`, errors on `err`. Without --corpus the
// corpus is generated (SftOptions::generated_corpus_size). --threads
// (default 1) sets LibTorch's intra-op threads for the process.
int RunSftCommand(const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err);

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_SFT_H_
