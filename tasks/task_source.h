// The two task-specific things the scheduler needs, behind interfaces so the
// scheduler logic stays task-agnostic and tests can script them:
//
//   PromptSource    the dataset: the next problem to generate for, as a
//                   fapo.v1.Prompt (text + ground truth; no token ids, the
//                   rollout worker tokenizes with its own tokenizer)
//   AnswerVerifier  whether a response's final answer is right (the outcome
//                   reward); wrong answers skip the GenRM (docs/architecture.md)
//
// Implementations for the two tasks: arith (tasks/arith: the seeded
// generator and the exact checker's answer rule) and math (tasks/math: a
// DAPO-Math-17k JSONL file, optionally shuffled by the job seed, cycled
// epoch after epoch; the boxed-answer verifier).
//
// Resume (NOTE [prompt source position]): a source is a pure function of
// (options, seed, position). Its position is the number of prompts drawn;
// the scheduler snapshots it and a restored source is created at that
// position, so a resumed job draws the prompts an uninterrupted one would.
#ifndef FAPO_TASKS_TASK_SOURCE_H_
#define FAPO_TASKS_TASK_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fapo/v1/common.pb.h"
#include "services/config/job_spec.h"
#include "tasks/arith/problem.h"

namespace fapo::tasks {

class PromptSource {
 public:
  virtual ~PromptSource() = default;
  // The next prompt: prompt_id unique per job, task, text, ground_truth.
  // Not thread-safe (the scheduler calls it under its lock).
  virtual absl::StatusOr<v1::Prompt> Next() = 0;
  // Prompts drawn since position 0.
  virtual int64_t position() const = 0;
};

// AnswerVerifier::IsCorrect for one prompt, with what the check needs from
// the prompt worked out once for the G samples of its group (arith parses
// the problem text). Thread-safe.
class PromptVerifier {
 public:
  virtual ~PromptVerifier() = default;
  virtual bool IsCorrect(absl::string_view response) const = 0;
};

class AnswerVerifier {
 public:
  virtual ~AnswerVerifier() = default;
  // True when `response` states the ground truth as its final answer.
  // Thread-safe.
  virtual bool IsCorrect(const v1::Prompt& prompt,
                         absl::string_view response) const = 0;
  // The same check bound to `prompt` (never null; keeps `prompt` alive and
  // must not outlive this verifier). The default calls IsCorrect each time;
  // verifiers with per-prompt work override it.
  virtual std::shared_ptr<const PromptVerifier> ForPrompt(
      std::shared_ptr<const v1::Prompt> prompt) const;
};

// The job's task ("arith" or "math") as named in Prompt.task and
// ScoreRequest.task.
std::string TaskName(config::Task task);

// data.arith as the arith task's options (shared by `fapo eval`).
tasks::arith::ArithOptions ArithOptionsFromSpec(
    const config::ArithDataOptions& data);

// The source data.task selects, seeded with job.seed and advanced to
// `position`. arith: InvalidArgument (naming data.arith.*) when the task
// options are invalid, e.g. an exact-arithmetic bound that overflows int64.
// math: the loader's errors (file and lines) for data.math.path.
absl::StatusOr<std::unique_ptr<PromptSource>> MakePromptSource(
    const config::JobSpec& spec, int64_t position = 0);

// The verifier for data.task. InvalidArgument for invalid arith options.
absl::StatusOr<std::unique_ptr<AnswerVerifier>> MakeAnswerVerifier(
    const config::JobSpec& spec);

// Task-level checks `fapo validate` runs beyond the spec's own schema: the
// arith options (ValidateArithOptions, e.g. the exact-mode int64 bound) or
// that data.math.path loads. Errors name the job spec keys.
absl::Status ValidateTaskOptions(const config::JobSpec& spec);

}  // namespace fapo::tasks

#endif  // FAPO_TASKS_TASK_SOURCE_H_
