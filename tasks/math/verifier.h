// The math task's verifier: final-answer extraction and answer equivalence.
//
// A response is correct when the answer in its last top-level \boxed{...}
// equals the ground truth after both are normalised (NormalizeAnswer). All
// functions are pure, thread-safe, never throw, and take time linear in the
// input with recursion depth capped (deeper nesting is kept verbatim), so
// garbage model output is safe to pass: a 1 MB response takes ~0.1 s.
#ifndef FAPO_TASKS_MATH_VERIFIER_H_
#define FAPO_TASKS_MATH_VERIFIER_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace fapo::tasks::math {

// Returns the argument of the last top-level \boxed or \fbox in `response`,
// trimmed of surrounding whitespace, or std::nullopt ("no answer") when there
// is none.
//
//   "... so \boxed{\frac{1}{2}}."      -> "\frac{1}{2}"   (nested braces)
//   "\boxed{1} ... \fbox{2}"           -> "2"             (last box wins)
//   "\boxed{\boxed{3}}"                -> "\boxed{3}"     (the outer box)
//   "$\boxed 5$"                       -> "5"             (bare token: up to
//                                                          whitespace or '$')
//   "\boxed{3} ... \boxed{4"           -> nullopt         (last box unclosed)
//   "\boxed{3 ... \boxed{4}"           -> "4"             (an unclosed box
//                                                          hides nothing)
//   "\boxed{}", "\boxedx{3}", "no box" -> nullopt
//   "...\nAnswer: 34"                  -> "34"            (no box at all: the
//                                                          last "Answer:" line,
//                                                          DAPO-Math-17k's
//                                                          form)
//
// Escaped braces (\{ and \}) do not count when matching braces. A truncated
// final box is "no answer", not the box before it: the model did not commit
// to that earlier answer last.
std::optional<std::string> ExtractFinalAnswer(absl::string_view response);

// Returns the canonical form of a final answer, meant for comparison (not for
// display): two answers are equal when their canonical forms are equal and
// not empty. Rules, in order:
//
//  1. LaTeX clean-up, everywhere in the string:
//     - \left \right \big... \displaystyle dropped (and the '.' of \left.);
//     - spacing \! \, \; \: "\ " \quad \qquad ~ and all whitespace dropped
//       (one space is kept between a control word and a letter: "\pi r");
//     - \dfrac \tfrac -> \frac, \dbinom \tbinom -> \binom, \le -> \leq,
//       \ge -> \geq, \ne -> \neq, \varnothing -> \emptyset, \lt \gt -> < >;
//     - \cdot, \times, U+00D7, U+00B7, U+22C5 -> '*';
//     - arguments of \frac \binom \sqrt ^ _ are always braced: \frac12 ==
//       \frac1{2} == \frac{1}{2}, \sqrt2 == \sqrt{2}, x^2 == x^{2};
//     - wrappers keep their content: \text \textbf \textit \textrm \textup
//       \textnormal \mathrm \mathbf \mathit \mbox \hbox \boxed \fbox;
//     - math delimiters $ \( \) \[ \] and currency "\$" dropped;
//     - "%" and "\%" dropped: 50% == 50. The value is NOT scaled, so
//       10% != 0.1;
//     - degrees ^\circ, ^{\circ} and U+00B0 dropped: 30^\circ == 30;
//     - U+2212 (minus) -> '-', U+03C0 -> \pi, U+221E -> \infty,
//       U+2264 U+2265 -> \leq \geq, U+00A0 U+2009 U+202F -> space;
//     - "{,}" -> ",".
//  2. Peeling (repeated, bounded): trailing periods, one brace group that
//     wraps the whole answer, and a leading single-variable assignment:
//     "x = 3", "x_1=3", "\theta=3" -> "3" (one '=' only; the variable is one
//     letter, optionally subscripted, or a Greek letter command).
//  3. A plain number with thousands separators loses them: "1,000" == 1000,
//     "-1,234.5"; "(1,2)" and "1,2" stay lists.
//  4. Structure: an answer enclosed in ( or [ and ) or ] (tuples, intervals)
//     and top-level comma lists are canonicalised element by element, so
//     "(0.5, 1]" == "(\frac12,1]". Order and bracket kinds matter.
//  5. Numbers: integers, decimals (".5", "3.", "3.00"), p/q, and \frac{a}{b}
//     of those, each with an optional sign, are exact rationals rendered as
//     "p" or "p/q" in lowest terms: \frac{2}{4} == 1/2 == 0.5 == .5 and
//     -\frac{1}{2} == \frac{-1}{2} == -0.5. Arithmetic is int64 with overflow
//     checks; a number that does not fit (e.g. 25 significant digits) stays
//     as its string, so it only equals the same spelling.
//
// Not handled (compared as the strings they normalise to): symbolic
// equivalence ("2\sqrt{2}" vs "\sqrt{8}", "\frac{\pi}{2}" vs "\pi/2"),
// scientific notation (1e3), units ("5\text{ cm}" != "5"), mixed numbers,
// unordered sets or solution lists ("1,2" != "2,1"), equations beyond one
// leading variable, multiple-choice letters vs their content. Whitespace
// removal also joins digits: "1 000" == "1000" (but so does "1 2" == "12").
std::string NormalizeAnswer(absl::string_view answer);

// True when `predicted` and `ground_truth` normalise to the same non-empty
// canonical form. Symmetric. Either side may still carry \boxed{...} or $...$.
// An empty answer equals nothing, not even another empty answer.
bool AnswersEqual(absl::string_view predicted, absl::string_view ground_truth);

// ExtractFinalAnswer(response) then AnswersEqual with `ground_truth`; false
// when the response has no answer.
bool IsCorrectResponse(absl::string_view response,
                       absl::string_view ground_truth);

}  // namespace fapo::tasks::math

#endif  // FAPO_TASKS_MATH_VERIFIER_H_
