#include "tasks/task_source.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"
#include "tasks/arith/checker.h"
#include "tasks/arith/problem.h"
#include "tasks/math/dataset.h"
#include "tasks/math/verifier.h"

namespace fapo::tasks {

namespace arith = ::fapo::tasks::arith;
namespace math = ::fapo::tasks::math;

arith::ArithOptions ArithOptionsFromSpec(const config::ArithDataOptions& d) {
  arith::ArithOptions options;
  options.min_ops = d.min_ops;
  options.max_ops = d.max_ops;
  options.operand_max = d.operand_max;
  options.value_modulus = d.value_modulus;
  options.answer_modulus = d.answer_modulus;
  return options;
}

namespace {

// ValidateArithOptions names fields by their data.arith key ("max_ops");
// the prefix makes the message point into the job spec.
absl::Status ValidateArith(const config::JobSpec& spec) {
  absl::Status status =
      arith::ValidateArithOptions(ArithOptionsFromSpec(spec.data.arith));
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrCat("data.arith: ", status.message()));
}

class ArithPromptSource : public PromptSource {
 public:
  ArithPromptSource(arith::ProblemGenerator generator,
                    arith::ArithOptions options)
      : generator_(std::move(generator)), options_(options) {}

  absl::StatusOr<v1::Prompt> Next() override {
    arith::Problem problem = generator_.Next();
    ASSIGN_OR_RETURN(int64_t truth, arith::GroundTruth(problem, options_));
    v1::Prompt prompt;
    prompt.set_prompt_id(absl::StrCat("arith-", position_));
    prompt.set_task("arith");
    prompt.set_text(arith::FormatPrompt(problem));
    prompt.set_ground_truth(absl::StrCat(truth));
    ++position_;
    return prompt;
  }

  int64_t position() const override { return position_; }

 private:
  arith::ProblemGenerator generator_;
  arith::ArithOptions options_;
  int64_t position_ = 0;
};

// Cycles through the file; with shuffle, each epoch is a fresh permutation
// drawn from (seed, epoch), so position alone fixes what comes next.
class MathPromptSource : public PromptSource {
 public:
  MathPromptSource(std::vector<math::MathProblem> problems, bool shuffle,
                   uint64_t seed)
      : problems_(std::move(problems)), shuffle_(shuffle), seed_(seed) {}

  absl::StatusOr<v1::Prompt> Next() override {
    const int64_t n = static_cast<int64_t>(problems_.size());
    const int64_t epoch = position_ / n;
    if (order_.empty() || epoch != order_epoch_) Reorder(epoch);
    const math::MathProblem& problem =
        problems_[order_[static_cast<size_t>(position_ % n)]];
    v1::Prompt prompt;
    // The data's ids repeat across epochs; the prompt id must not.
    prompt.set_prompt_id(epoch == 0 ? problem.id
                                    : absl::StrCat(problem.id, "#", epoch));
    prompt.set_task("math");
    prompt.set_text(problem.prompt);
    prompt.set_ground_truth(problem.answer);
    ++position_;
    return prompt;
  }

  int64_t position() const override { return position_; }

  void Seek(int64_t position) { position_ = position; }

 private:
  void Reorder(int64_t epoch) {
    order_.resize(problems_.size());
    std::iota(order_.begin(), order_.end(), size_t{0});
    if (shuffle_) {
      std::seed_seq seq{
          static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32),
          static_cast<uint32_t>(epoch),
          static_cast<uint32_t>(static_cast<uint64_t>(epoch) >> 32)};
      std::mt19937_64 rng(seq);
      // Fisher-Yates with our own index draw: std::shuffle's use of the
      // engine is implementation-defined, and the order must not depend on
      // the standard library.
      for (size_t i = order_.size(); i > 1; --i) {
        const size_t j = static_cast<size_t>(rng() % i);
        std::swap(order_[i - 1], order_[j]);
      }
    }
    order_epoch_ = epoch;
  }

  std::vector<math::MathProblem> problems_;
  bool shuffle_;
  uint64_t seed_;
  std::vector<size_t> order_;
  int64_t order_epoch_ = -1;
  int64_t position_ = 0;
};

// The default: nothing to prepare.
class UnboundPromptVerifier : public PromptVerifier {
 public:
  UnboundPromptVerifier(const AnswerVerifier* verifier,
                        std::shared_ptr<const v1::Prompt> prompt)
      : verifier_(verifier), prompt_(std::move(prompt)) {}
  bool IsCorrect(absl::string_view response) const override {
    return verifier_->IsCorrect(*prompt_, response);
  }

 private:
  const AnswerVerifier* verifier_;
  std::shared_ptr<const v1::Prompt> prompt_;
};

// The problem parsed once per group: parsing (and evaluating) it for every
// sample was a visible share of the scheduler's per-trajectory cost.
class ArithPromptVerifier : public PromptVerifier {
 public:
  ArithPromptVerifier(const arith::Checker* checker,
                      absl::StatusOr<arith::Problem> problem)
      : checker_(checker), problem_(std::move(problem)) {}
  bool IsCorrect(absl::string_view response) const override {
    return problem_.ok() && checker_->AnswerCorrect(*problem_, response);
  }

 private:
  const arith::Checker* checker_;
  absl::StatusOr<arith::Problem> problem_;  // an unparsable prompt: never
};

class ArithVerifier : public AnswerVerifier {
 public:
  explicit ArithVerifier(arith::Checker checker)
      : checker_(std::move(checker)) {}

  bool IsCorrect(const v1::Prompt& prompt,
                 absl::string_view response) const override {
    absl::StatusOr<arith::Problem> problem = arith::ParsePrompt(prompt.text());
    return problem.ok() && checker_.AnswerCorrect(*problem, response);
  }

  std::shared_ptr<const PromptVerifier> ForPrompt(
      std::shared_ptr<const v1::Prompt> prompt) const override {
    return std::make_shared<ArithPromptVerifier>(
        &checker_, arith::ParsePrompt(prompt->text()));
  }

 private:
  arith::Checker checker_;
};

class MathVerifier : public AnswerVerifier {
 public:
  bool IsCorrect(const v1::Prompt& prompt,
                 absl::string_view response) const override {
    return math::IsCorrectResponse(response, prompt.ground_truth());
  }
};

math::MathDataOptions MathOptionsFromSpec(const config::MathDataOptions& m) {
  math::MathDataOptions options;
  options.path = m.path;
  options.eval_path = m.eval_path;
  options.prompt_field = m.prompt_field;
  options.answer_field = m.answer_field;
  return options;
}

}  // namespace

std::shared_ptr<const PromptVerifier> AnswerVerifier::ForPrompt(
    std::shared_ptr<const v1::Prompt> prompt) const {
  return std::make_shared<UnboundPromptVerifier>(this, std::move(prompt));
}

std::string TaskName(config::Task task) {
  return task == config::Task::kArith ? "arith" : "math";
}

absl::StatusOr<std::unique_ptr<PromptSource>> MakePromptSource(
    const config::JobSpec& spec, int64_t position) {
  if (position < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt source position ", position, " is negative"));
  }
  const uint64_t seed = static_cast<uint64_t>(spec.job.seed);
  if (spec.data.task == config::Task::kArith) {
    RETURN_IF_ERROR(ValidateArith(spec));
    const arith::ArithOptions options = ArithOptionsFromSpec(spec.data.arith);
    ASSIGN_OR_RETURN(arith::ProblemGenerator generator,
                     arith::ProblemGenerator::Create(options, seed));
    auto source =
        std::make_unique<ArithPromptSource>(std::move(generator), options);
    // The generator has no seek: replaying is cheap (millions per second).
    for (int64_t i = 0; i < position; ++i) {
      RETURN_IF_ERROR(source->Next().status());
    }
    return std::unique_ptr<PromptSource>(std::move(source));
  }
  absl::StatusOr<std::vector<math::MathProblem>> problems =
      math::LoadMathProblems(MathOptionsFromSpec(spec.data.math));
  if (!problems.ok()) {
    return Annotate(problems.status(), "data.math.path");
  }
  auto source = std::make_unique<MathPromptSource>(*std::move(problems),
                                                   spec.data.shuffle, seed);
  source->Seek(position);
  return std::unique_ptr<PromptSource>(std::move(source));
}

absl::StatusOr<std::unique_ptr<AnswerVerifier>> MakeAnswerVerifier(
    const config::JobSpec& spec) {
  if (spec.data.task == config::Task::kMath) {
    return std::unique_ptr<AnswerVerifier>(std::make_unique<MathVerifier>());
  }
  RETURN_IF_ERROR(ValidateArith(spec));
  ASSIGN_OR_RETURN(
      arith::Checker checker,
      arith::Checker::Create(ArithOptionsFromSpec(spec.data.arith)));
  return std::unique_ptr<AnswerVerifier>(
      std::make_unique<ArithVerifier>(std::move(checker)));
}

absl::Status ValidateTaskOptions(const config::JobSpec& spec) {
  if (spec.data.task == config::Task::kArith) return ValidateArith(spec);
  return MakePromptSource(spec).status();
}

}  // namespace fapo::tasks
