// `fapo eval`: held-out evaluation of a policy checkpoint on the arith task.
// It draws held-out problems, samples one response to each with the
// engine's batched generation, grades every response with the task's exact
// checker (tasks/arith/checker.h) and reports accuracy, the paper's
// alpha / beta / gamma and the flawed-positive ratio (algorithm/
// flawed_metrics.h), each with its standard error.
//
// NOTE [held-out problems]: training prompts are ProblemGenerator(data.arith,
// job.seed)'s sequence (tasks/task_source.cc), and the generated SFT
// corpus is ProblemGenerator(data.arith, sft --seed)'s. The held-out set is
// the first data.eval_size problems of ProblemGenerator(data.arith,
// HeldOutProblemSeed(job.seed)): an independent stream, fixed by the job
// spec, so every checkpoint of a run is measured on the same problems.
// Independent is not disjoint: a problem space this small (7,840 distinct
// two-operation problems) makes short problems recur in any stream by
// chance, as they would in a fresh draw.
//
// Flawed positives appear only when sampling (greedy decoding of a
// warm-started policy never slips; docs/arith-testbed.md), so the
// default temperature is 1. Responses are decoded without special tokens
// (the end-of-sequence token that stopped them is not part of the answer).
#ifndef FAPO_TRAINER_EVAL_H_
#define FAPO_TRAINER_EVAL_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "algorithm/flawed_metrics.h"
#include "services/config/job_spec.h"
#include "tasks/arith/checker.h"
#include "tasks/arith/problem.h"

namespace fapo::trainer {

// The seed of the held-out problem stream for a job seed (NOTE [held-out
// problems]): MixSeed(job_seed, a stream of its own), never job_seed itself.
uint64_t HeldOutProblemSeed(uint64_t job_seed);

// The first `count` held-out problems of a job (NOTE [held-out problems]).
// InvalidArgument when `options` are invalid or count < 0.
absl::StatusOr<std::vector<tasks::arith::Problem>> HeldOutProblems(
    const tasks::arith::ArithOptions& options, uint64_t job_seed, int count);

// Grades responses[i] as an answer to problems[i] with the exact checker
// and counts sound / flawed positive / wrong (the checker plays the `rule`
// GenRM: a correct answer with a wrong step is a flawed positive).
// InvalidArgument when the sizes differ.
absl::StatusOr<algorithm::FlawedCounts> GradeResponses(
    const tasks::arith::Checker& checker,
    absl::Span<const tasks::arith::Problem> problems,
    absl::Span<const std::string> responses);

// A share and its binomial standard error sqrt(p (1 - p) / n); both 0 when
// n is 0.
struct Estimate {
  double value = 0;
  double standard_error = 0;
};

struct EvalSummary {
  int64_t samples = 0;  // graded responses
  algorithm::FlawedCounts counts;
  Estimate accuracy;  // correct / samples
  Estimate alpha;     // sound / samples
  Estimate beta;      // wrong / samples
  Estimate gamma;     // flawed positives / samples
  // flawed positives / correct; its error is over the correct responses.
  Estimate flawed_positive_ratio;
};

EvalSummary SummarizeCounts(const algorithm::FlawedCounts& counts);

struct EvalOptions {
  // Hugging Face checkpoint with tokenizer.json (required).
  std::string model_dir;
  // The task and the held-out stream: data.arith, job.seed (NOTE [held-out
  // problems]); policy.chat_format; rollout.max_new_tokens.
  tasks::arith::ArithOptions arith;
  uint64_t job_seed = 0;
  config::ChatFormat chat_format = config::ChatFormat::kRaw;
  int max_new_tokens = 64;
  // Held-out problems, one sample each. Default 1024 (data.eval_size).
  int samples = 1024;
  // Sampling temperature; 0 = greedy. Default 1.
  double temperature = 1.0;
  // Seed of the sampling draws (not of the problems). Default 0.
  uint64_t sampling_seed = 0;
  // Rows per Generate call. Default 256.
  int generation_batch_size = 256;
};

struct EvalReport {
  EvalSummary summary;
  double temperature = 0;
  // Responses cut by max_new_tokens (no end-of-sequence token).
  int64_t truncated = 0;
  double mean_response_tokens = 0;
  double seconds = 0;
};

// Runs the evaluation. Errors: the model and tokenizer loaders' (naming the
// path), InvalidArgument for options out of range, the generator's.
absl::StatusOr<EvalReport> RunEval(const EvalOptions& options);

// The report as one JSON object (the --json file; also the command's last
// stdout line): samples, accuracy, alpha, beta, gamma,
// flawed_positive_ratio and their *_stderr, the counts, temperature,
// truncated, mean_response_tokens, seconds.
std::string EvalReportJson(const EvalReport& report);

// `fapo eval --model DIR [--config JOB.yaml] [--samples N] [--temperature T]
// [--seed S] [--json FILE] [--threads N]`: the exit code (0 ok, 1 failure,
// 2 bad usage); the figures on `out`, errors on `err`. Without --config the
// job spec's defaults apply (job.seed 0, data.eval_size 1024, the default
// arith task). Only data.task arith is supported. --threads (default 1)
// sets LibTorch's intra-op threads: a tiny model runs fastest on one.
int RunEvalCommand(const std::vector<std::string>& args, std::ostream& out,
                   std::ostream& err);

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_EVAL_H_
