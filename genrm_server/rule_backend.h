// The `rule` GenRM backend: exact verdicts from a task's step checker. It is
// the ground truth the model and openai backends are measured against, and
// the GenRM of the embedded default.
//
// Tasks:
//   "arith": `problem` is the arith prompt text ("3+7*4-2", FormatPrompt's
//     form), `solution` the response; tasks::arith::Checker judges it under
//     the configured ArithOptions (NOTE [arith checking rules] in
//     tasks/arith/checker.h). The verdict: status OK, first_error_step (-1
//     when every step is sound), num_steps, answer_correct, num_samples 1 and
//     num_agreeing 1, and a critique ending in \boxed{first_error_step} so
//     that algorithm::ParseVerdict reads it back to the same verdict.
//   anything else: InvalidArgument naming the task (no checker for it).
//
// Per-request errors (the rest of the batch is judged normally):
//   InvalidArgument: an unknown task; a problem ParsePrompt rejects; a
//   non-empty ground_truth that is not the problem's answer under the
//   configured options (a sign that the backend's data.arith options differ
//   from the ones that made the problem).
//
// ScoreBatch runs the checks on the caller's thread and calls `done` before
// it returns. Thread-safe; stateless after Create.
#ifndef FAPO_GENRM_SERVER_RULE_BACKEND_H_
#define FAPO_GENRM_SERVER_RULE_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "genrm_server/genrm_backend.h"
#include "tasks/arith/checker.h"
#include "tasks/arith/problem.h"

namespace fapo::genrm {

struct RuleBackendOptions {
  // The arith task's options (the job spec's data.arith); only the two
  // moduli matter to a verdict. Default: ArithOptions' defaults.
  tasks::arith::ArithOptions arith;
};

class RuleBackend : public GenrmBackend {
 public:
  // InvalidArgument when the arith options are invalid.
  static absl::StatusOr<std::unique_ptr<RuleBackend>> Create(
      const RuleBackendOptions& options);

  RuleBackend(const RuleBackend&) = delete;
  RuleBackend& operator=(const RuleBackend&) = delete;

  void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                  BatchDone done) override;
  std::string name() const override { return "rule"; }

  // One request's verdict, synchronously (what ScoreBatch does per request).
  absl::StatusOr<fapo::v1::Verdict> ScoreOne(
      const fapo::v1::ScoreRequest& request) const;

 private:
  explicit RuleBackend(tasks::arith::Checker arith_checker)
      : arith_checker_(std::move(arith_checker)) {}

  absl::StatusOr<fapo::v1::Verdict> ScoreArith(
      const fapo::v1::ScoreRequest& request) const;

  const tasks::arith::Checker arith_checker_;
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_RULE_BACKEND_H_
