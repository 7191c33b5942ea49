// From a GenRM's text to a verdict, shared by the backends that generate
// text (model, openai): how a solution is split into numbered steps, and how
// the sampled answers become one Verdict.
#ifndef FAPO_GENRM_SERVER_GENRM_TEXT_H_
#define FAPO_GENRM_SERVER_GENRM_TEXT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "algorithm/verdict.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/genrm.pb.h"

namespace fapo::genrm {

// The solution's steps as the GenRM numbers them: for task "arith" its lines
// (NOTE [arith checking rules] in tasks/arith/checker.h: one trailing '\n'
// dropped, then split on '\n'; an empty solution has none), so step indices
// agree with the rule backend; otherwise its paragraphs
// (algorithm::SplitParagraphs).
std::vector<std::string> GenrmSteps(const fapo::v1::ScoreRequest& request);

// The wire enum for an algorithm status. The two differ numerically
// (algorithm/verdict.h): map by name, never cast.
fapo::v1::VerdictStatus ToWireVerdictStatus(algorithm::VerdictStatus status);

// `text` cut to at most `max_bytes`, never inside a UTF-8 character (proto
// string fields must stay valid UTF-8).
std::string TruncateUtf8(absl::string_view text, size_t max_bytes);

// The verdict from the texts of k sampled answers (k = sample_texts.size()):
// each is algorithm::ParseVerdict'ed against `num_steps`, then
// algorithm::MajorityVote'd. Sets trajectory_id, status, first_error_step,
// num_steps, num_samples, num_agreeing, the critique (the first text cut to
// `max_critique_bytes`) and answer_correct = true: a GenRM judges steps, and
// only correct answers are sent to one (the task's verifier decides
// correctness). Pure; thread-safe.
fapo::v1::Verdict VerdictFromSamples(absl::string_view trajectory_id,
                                     int num_steps,
                                     absl::Span<const std::string> sample_texts,
                                     size_t max_critique_bytes);

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_GENRM_TEXT_H_
