// Steps and the GenRM prompt.
//
// The GenRM reads a solution as numbered steps. What a step is belongs to the
// task (math: paragraphs, via SplitParagraphs; arith: lines), so the prompt
// builder takes the steps ready-made. The step indices in the prompt are the
// indices ParseVerdict (verdict.h) validates against.
#ifndef FAPO_ALGORITHM_GENRM_PROMPT_H_
#define FAPO_ALGORITHM_GENRM_PROMPT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fapo::algorithm {

// Splits a solution into paragraphs: runs of lines separated by one or more
// blank lines (empty, or only ASCII whitespace). Line ends may be "\n" or
// "\r\n"; paragraphs come back with "\n" line ends and without blank lines
// around them, and otherwise unchanged (indentation and trailing spaces
// inside kept). No non-blank line means no paragraphs.
std::vector<std::string> SplitParagraphs(absl::string_view solution);

// The GenRM prompt of the FAPO paper, Appendix F: the problem, the ground
// truth answer and the steps tagged <paragraph_i>...</paragraph_i>, indexed
// from 0, asking for the index of the earliest wrong step (or -1) in
// \boxed{}. FAPO-GenRM-4B was trained on exactly this text: keep the
// wording. Steps are inserted verbatim.
std::string BuildGenrmPrompt(absl::string_view problem,
                             absl::string_view ground_truth,
                             absl::Span<const std::string> steps);

}  // namespace fapo::algorithm

#endif  // FAPO_ALGORITHM_GENRM_PROMPT_H_
