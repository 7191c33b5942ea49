#include "genrm_server/rule_backend.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"
#include "tasks/arith/checker.h"

namespace fapo::genrm {

namespace arith = ::fapo::tasks::arith;

absl::StatusOr<std::unique_ptr<RuleBackend>> RuleBackend::Create(
    const RuleBackendOptions& options) {
  auto checker = arith::Checker::Create(options.arith);
  if (!checker.ok()) {
    return Annotate(checker.status(), "rule backend: data.arith");
  }
  return std::unique_ptr<RuleBackend>(new RuleBackend(*std::move(checker)));
}

void RuleBackend::ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                             BatchDone done) {
  BatchResults results;
  results.reserve(requests.size());
  for (const fapo::v1::ScoreRequest& request : requests) {
    results.push_back(ScoreOne(request));
  }
  done(std::move(results));
}

absl::StatusOr<fapo::v1::Verdict> RuleBackend::ScoreOne(
    const fapo::v1::ScoreRequest& request) const {
  if (request.task() == "arith") return ScoreArith(request);
  return absl::InvalidArgumentError(absl::StrCat(
      "rule backend: no step checker for task \"", request.task(),
      "\" (request ", request.request_id(), "); known tasks: arith"));
}

absl::StatusOr<fapo::v1::Verdict> RuleBackend::ScoreArith(
    const fapo::v1::ScoreRequest& request) const {
  auto problem = arith::ParsePrompt(request.problem());
  if (!problem.ok()) {
    return Annotate(problem.status(),
                    absl::StrCat("rule backend: request ", request.request_id(),
                                 ": arith problem"));
  }
  // The checker derives the answer from the problem itself, so a
  // ground_truth is not needed; when one is given it must agree, or the
  // options this backend checks under are not the ones that made the problem
  // (a wrong value_modulus would silently give wrong verdicts).
  if (!request.ground_truth().empty()) {
    auto expected = arith::GroundTruth(*problem, arith_checker_.options());
    int64_t given = 0;
    if (expected.ok() && (!absl::SimpleAtoi(request.ground_truth(), &given) ||
                          given != *expected)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rule backend: request ", request.request_id(), ": ground_truth \"",
          request.ground_truth(), "\" is not the answer ", *expected,
          " of problem \"", request.problem(),
          "\" under this backend's data.arith options"));
    }
  }
  const arith::CheckResult check =
      arith_checker_.Check(*problem, request.solution());

  fapo::v1::Verdict verdict;
  verdict.set_trajectory_id(request.trajectory_id());
  verdict.set_answer_correct(check.answer_correct);
  verdict.set_first_error_step(check.first_error_step);
  verdict.set_num_steps(check.num_steps);
  verdict.set_status(fapo::v1::VERDICT_STATUS_OK);
  // A critique in the GenRM's own form: ParseVerdict(critique, num_steps)
  // gives back this verdict, so consumers of critiques need no special case.
  verdict.set_critique(absl::StrCat(
      "arith rule checker: ", arith::TraceClassName(check.trace_class),
      ". \\boxed{", check.first_error_step, "}"));
  verdict.set_num_samples(1);
  verdict.set_num_agreeing(1);
  return verdict;
}

}  // namespace fapo::genrm
